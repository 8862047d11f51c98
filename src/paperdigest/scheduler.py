"""When digests go out: send times as pure functions of `now`, and the `run` daemon.

Every profile gets an APScheduler CronTrigger at its local hour in its own time zone, so
the zone database handles DST. The scheduler only says "now might be the time"; the
ledger (ledger.py) decides whether a digest is actually due, so a double fire (the
repeated hour when clocks go back), a catch-up and a manual `send` never add up to two.

How the daemon keeps "one digest a day":

- After kill -9 (the systemd unit restarts it): on start it comes back to any day in the
  catch-up window that is not done (sent, or maybe delivered twice); the ledger hands it
  the dead process's claim at once.
- An SMTP outage: a run that did not get the digest out is tried again, after
  `smtp.backoff` seconds, doubling up to 15 minutes, while the catch-up window
  (send time + `digest.catchup_hours`) lasts; each attempt and the next try are logged.
- A server that answers late: the run records "maybe delivered"; the retry sends one more
  copy with the same Message-ID, and the ledger refuses any after that.
- SIGTERM: the source refresh runs in a worker thread that checks the stop event between
  requests and in its backoff sleeps; the daemon waits for it only briefly, then leaves it
  (an unfinished write is rolled back by SQLite), so it stops within seconds, before any
  digest is claimed. A send in progress is let finish.
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
)
from paperdigest.errors import PaperdigestError
from paperdigest.ledger import is_done
from paperdigest.mailer import ManagedConnection, open_connection
from paperdigest.refresh import refresh_sources
from paperdigest.store import Store
from paperdigest.subscriptions import unsubscribed_since, why_skipped

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


MAX_RETRY_DELAY = 900.0  # seconds: the daemon's backoff doubles up to 15 minutes
# After SIGTERM, how long a source refresh may take to reach its next stop check before
# the daemon leaves it behind.
REFRESH_STOP_GRACE = 0.5


def retry_delay(backoff: float, failures: int) -> float:
    """Seconds before the next try after `failures` failed runs of the day."""
    return min(max(backoff, 0.01) * 2 ** (failures - 1), MAX_RETRY_DELAY)


def window_end(profile: ProfileSettings, digest: DigestSettings, now: datetime) -> datetime:
    """The end of the catch-up window of the latest send time: no try after it."""
    return last_send_time(profile, digest, now) + timedelta(hours=digest.catchup_hours)


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
        self._scheduler: BackgroundScheduler | None = None
        self._attempts: dict[str, tuple[date, int]] = {}  # profile -> (day, runs so far)
        self.next_retry: dict[str, datetime] = {}  # profile -> when the next try is due

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
        day = local_date(profile, self.settings, now)
        with Store.open(self.data_dir) as store:
            if is_done(store, profile.name, day):
                log.info("%s: today's digest was already sent", profile.name)
                return "already sent"
            since = unsubscribed_since(store, profile.name)
            if since is not None:  # no fetch either: nobody reads this digest
                log.info("%s: %s", profile.name, why_skipped(profile.name, since))
                return "unsubscribed"
        attempt = self._count_attempt(profile.name, day)
        log.info("%s: attempt %d at the %s digest", profile.name, attempt, day)
        if attempt == 1:
            self._refresh()  # retries send from what is stored: no polling of the sources
        with Store.open(self.data_dir) as store:
            report = send_digests(
                store, self.settings, [profile], now=self.clock(), connect=self.connect,
                sleep=self._sleep,
            )
        name = profile.name
        if name in report.sent:
            log.info("%s: digest sent to %s", name, ", ".join(profile.email))
            return "sent"
        if name in report.empty:
            log.info("%s: %s", name, report.empty[name])
            return "empty"
        if name in report.skipped:
            log.info("%s: %s", name, report.skipped[name])
            return "skipped"
        if name in report.resting:
            log.info("%s: %s", name, report.resting[name])
            return "resting"
        if name in report.maybe:
            log.error("%s: maybe delivered: %s", name, report.maybe[name])
            return "maybe"
        log.error("%s: not sent: %s", name, report.failed.get(name))
        return "failed"

    def _count_attempt(self, name: str, day: date) -> int:
        last_day, count = self._attempts.get(name, (day, 0))
        count = count + 1 if last_day == day else 1
        self._attempts[name] = (day, count)
        return count

    def _refresh(self) -> None:
        """Refresh the sources in a worker thread the daemon can leave behind on SIGTERM.
        A source failing never stops the digest; StopRequested when the daemon stops."""
        outcome: dict[str, object] = {}

        def work() -> None:
            try:
                with Store.open(self.data_dir) as store:
                    outcome["results"] = refresh_sources(store, self.settings, stop=self.stop)
            except BaseException as exc:  # reported by the daemon thread below
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="refresh", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
            if self.stop.is_set():
                worker.join(REFRESH_STOP_GRACE)
                if worker.is_alive():
                    log.warning("stopping: leaving the source refresh behind (a request was "
                                "in flight; nothing half-written is kept)")
                raise StopRequested("stopping")
        if "error" in outcome:
            exc = outcome["error"]
            log.warning("refreshing sources failed (%s: %s); sending from the papers "
                        "already stored", type(exc).__name__, exc)
        for result in outcome.get("results") or []:  # type: ignore[union-attr]
            if not getattr(result, "ok", True):
                log.warning("source %s failed: %s", result.source, result.error)

    def run_job(self, name: str) -> str:
        """The scheduled job: one attempt, then a retry scheduled if the day needs one."""
        outcome = self.send_now(name)
        self.plan_retry(name, outcome)
        return outcome

    def plan_retry(self, name: str, outcome: str) -> datetime | None:
        """After a run that did not finish the day: the next try, with backoff, while the
        catch-up window lasts. Returns when, or None."""
        self.next_retry.pop(name, None)
        profile = self.settings.profile(name)
        if profile is None or outcome in ("sent", "already sent", "empty", "resting", "stopped",
                                          "unsubscribed"):
            return None
        if self.stop.is_set():
            return None
        now = self.clock()
        day = local_date(profile, self.settings, now)
        with Store.open(self.data_dir) as store:
            if is_done(store, name, day):
                return None
        failures = self._attempts.get(name, (day, 1))[1]
        delay = retry_delay(self.settings.smtp.backoff, failures)
        at = now + timedelta(seconds=delay)
        end = window_end(profile, self.settings.digest, now)
        if at > end:
            log.error("%s: attempt %d did not send the %s digest and the catch-up window "
                      "closed at %s; no more tries today", name, failures, day,
                      end.isoformat(timespec="seconds"))
            return None
        log.warning("%s: attempt %d did not send the %s digest (%s); next try at %s (in "
                    "%.3gs)", name, failures, day, outcome, at.isoformat(timespec="seconds"),
                    delay)
        self.next_retry[name] = at
        if self._scheduler is not None:
            self._scheduler.add_job(
                self.run_job, "date", run_date=datetime.now(UTC) + timedelta(seconds=delay),
                args=[name], id=f"retry:{name}", replace_existing=True,
            )
        return at

    def catch_up(self) -> list[str]:
        """Profiles whose send time passed today, within the grace window, unsent."""
        now = self.clock()
        due = []
        with Store.open(self.data_dir) as store:
            for profile in self.settings.profiles:
                if not catchup_due(profile, self.settings.digest, now):
                    continue
                if is_done(store, profile.name, local_date(profile, self.settings, now)):
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
                self.run_job,
                make_trigger(profile, digest),
                args=[profile.name],
                id=f"digest:{profile.name}",
                name=f"digest for {profile.name}",
            )
        return scheduler

    def run(self) -> None:
        scheduler = self._scheduler = self.build_scheduler()
        scheduler.start()
        try:
            now = self.clock()
            for profile in self.settings.profiles:
                at = next_send_time(profile, self.settings.digest, now)
                log.info("%s: next digest at %s", profile.name, at.isoformat())
            for name in self.catch_up():
                log.info("%s: today's digest is not sent and its send time has passed; "
                         "sending now", name)
                scheduler.add_job(self.run_job, args=[name], id=f"catchup:{name}")
            while not self.stop.wait(1.0):
                pass
            log.info("stopping: letting a send in progress finish")
        finally:
            scheduler.shutdown(wait=True)
        log.info("stopped")

