"""When digests go out: send times as pure functions of `now`, and the `run` daemon.

Every profile gets an APScheduler CronTrigger at its local hour in its own time zone, so
the zone database handles DST. The scheduler only says "now might be the time"; the
ledger (delivery.py) decides whether a digest is actually due, so a double fire (the
repeated hour when clocks go back), a catch-up and a manual `send` never add up to two.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from paperdigest.config import DigestSettings, ProfileSettings, Settings, SmtpSettings
from paperdigest.delivery import (
    digest_days,
    is_digest_day,
    local_date,
    send_digests,
    was_sent,
)
from paperdigest.errors import PaperdigestError
from paperdigest.mailer import ManagedConnection, open_connection
from paperdigest.refresh import refresh_sources
from paperdigest.store import Store

log = logging.getLogger(__name__)


# -- pure: when ---------------------------------------------------------------------------


def send_time_of(profile: ProfileSettings, digest: DigestSettings) -> time_of_day:
    return profile.send_time or digest.send_time


def zone_of(profile: ProfileSettings, digest: DigestSettings) -> ZoneInfo:
    return ZoneInfo(profile.timezone or digest.timezone)


def scheduled_at(profile: ProfileSettings, digest: DigestSettings, day: date) -> datetime:
    """The send instant on a local calendar day. A time that does not exist that day (the
    skipped hour in spring) lands an hour later in wall time, as the cron trigger does."""
    zone = zone_of(profile, digest)
    wall = datetime.combine(day, send_time_of(profile, digest), tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone)


def next_send_time(profile: ProfileSettings, digest: DigestSettings, now: datetime) -> datetime:
    """The first send instant at or after `now` on a digest day (aware, profile's zone)."""
    today = now.astimezone(zone_of(profile, digest)).date()
    for offset in range(-1, 10):
        if not is_digest_day(profile, digest, today + timedelta(days=offset)):
            continue
        candidate = scheduled_at(profile, digest, today + timedelta(days=offset))
        if candidate >= now:
            return candidate
    raise AssertionError("unreachable: a send time exists every day")  # pragma: no cover


def last_send_time(profile: ProfileSettings, digest: DigestSettings, now: datetime) -> datetime:
    """The latest send instant at or before `now` on a digest day."""
    today = now.astimezone(zone_of(profile, digest)).date()
    for offset in range(1, -10, -1):
        if not is_digest_day(profile, digest, today + timedelta(days=offset)):
            continue
        candidate = scheduled_at(profile, digest, today + timedelta(days=offset))
        if candidate <= now:
            return candidate
    raise AssertionError("unreachable: a send time exists every day")  # pragma: no cover


def catchup_due(profile: ProfileSettings, digest: DigestSettings, now: datetime) -> bool:
    """Whether today's send time has passed, no longer ago than digest.catchup_hours.
    Only the ledger knows whether the digest went out anyway."""
    missed = last_send_time(profile, digest, now)
    zone = zone_of(profile, digest)
    same_day = missed.astimezone(zone).date() == now.astimezone(zone).date()
    return same_day and now - missed <= timedelta(hours=digest.catchup_hours)


def make_trigger(profile: ProfileSettings, digest: DigestSettings) -> CronTrigger:
    at = send_time_of(profile, digest)
    days = ",".join(digest_days(profile, digest))
    return CronTrigger(
        day_of_week=days, hour=at.hour, minute=at.minute, timezone=zone_of(profile, digest)
    )


# -- the daemon -----------------------------------------------------------------------------


class StopRequested(Exception):
    """The daemon is stopping: give up waiting to retry."""


class Daemon:
    """One job per profile; `run` blocks until `stop` is set, then lets a send finish."""

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        connect: Callable[[SmtpSettings], ManagedConnection] = open_connection,
    ) -> None:
        if not settings.profiles:
            raise PaperdigestError(
                "no profiles are configured; add a [[profiles]] entry with a name and an "
                "email to the config file (see config.example.toml)"
            )
        missing = [p.name for p in settings.profiles if not p.email]
        if missing:
            raise PaperdigestError(f"profile {missing[0]!r} has no email address")
        self.settings = settings
        self.data_dir = data_dir
        self.clock = clock
        self.connect = connect
        self.stop = threading.Event()
        self._lock = threading.Lock()  # one digest at a time: they share the store

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise StopRequested("stopping")

    def send_now(self, name: str) -> str:
        """The job: refresh sources, then send today's digest unless the ledger has it.
        Returns what happened; never raises, so one bad day never stops the daemon."""
        profile = self.settings.profile(name)
        if profile is None:  # pragma: no cover - jobs are made from the same settings
            return "unknown profile"
        with self._lock:
            try:
                return self._send(profile)
            except StopRequested:
                log.warning("%s: stopped before the digest went out; it is sent on restart "
                            "(within the catch-up window)", name)
                return "stopped"
            except PaperdigestError as exc:
                log.error("%s: %s", name, exc)
                return f"error: {exc}"
            except Exception as exc:  # keep the daemon alive, and the message short
                log.error("%s: unexpected %s: %s", name, type(exc).__name__, exc)
                return f"error: {type(exc).__name__}"

    def _send(self, profile: ProfileSettings) -> str:
        now = self.clock()
        with Store.open(self.data_dir) as store:
            if was_sent(store, profile.name, local_date(profile, self.settings, now)):
                log.info("%s: today's digest was already sent", profile.name)
                return "already sent"
            try:
                for result in refresh_sources(store, self.settings) or []:
                    if not getattr(result, "ok", True):
                        log.warning("source %s failed: %s", result.source, result.error)
            except Exception as exc:  # a source failing never stops the digest
                log.warning("refreshing sources failed (%s: %s); sending from the papers "
                            "already stored", type(exc).__name__, exc)
            report = send_digests(
                store, self.settings, [profile], now=self.clock(), connect=self.connect,
                sleep=self._sleep,
            )
        if profile.name in report.sent:
            log.info("%s: digest sent to %s", profile.name, ", ".join(profile.email))
            return "sent"
        if profile.name in report.skipped:
            log.info("%s: %s", profile.name, report.skipped[profile.name])
            return "skipped"
        if profile.name in report.resting:
            log.info("%s: %s", profile.name, report.resting[profile.name])
            return "resting"
        log.error("%s: not sent: %s", profile.name, report.failed.get(profile.name))
        return "failed"

    def catch_up(self) -> list[str]:
        """Profiles whose send time passed today, within the grace window, unsent."""
        now = self.clock()
        due = []
        with Store.open(self.data_dir) as store:
            for profile in self.settings.profiles:
                if not catchup_due(profile, self.settings.digest, now):
                    continue
                if was_sent(store, profile.name, local_date(profile, self.settings, now)):
                    continue
                due.append(profile.name)
        return due

    def build_scheduler(self) -> BackgroundScheduler:
        digest = self.settings.digest
        # A late wake-up (suspend, a busy machine) still runs within the catch-up window.
        grace = max(60, int(digest.catchup_hours * 3600))
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        for profile in self.settings.profiles:
            scheduler.add_job(
                self.send_now,
                make_trigger(profile, digest),
                args=[profile.name],
                id=f"digest:{profile.name}",
                name=f"digest for {profile.name}",
            )
        return scheduler

    def run(self) -> None:
        scheduler = self.build_scheduler()
        scheduler.start()
        try:
            now = self.clock()
            for profile in self.settings.profiles:
                at = next_send_time(profile, self.settings.digest, now)
                log.info("%s: next digest at %s", profile.name, at.isoformat())
            for name in self.catch_up():
                log.info("%s: today's send time passed while paperdigest was not running; "
                         "sending now", name)
                scheduler.add_job(self.send_now, args=[name], id=f"catchup:{name}")
            while not self.stop.wait(1.0):
                pass
            log.info("stopping: letting a send in progress finish")
        finally:
            scheduler.shutdown(wait=True)
        log.info("stopped")

