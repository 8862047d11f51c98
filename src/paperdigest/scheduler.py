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
from collections.abc import Callable, Sequence
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
from paperdigest.errors import PaperdigestError, RunStopped
from paperdigest.ledger import is_done
from paperdigest.mailer import ManagedConnection, open_connection
from paperdigest.refresh import refresh_sources
from paperdigest.store import Store
from paperdigest.subscriptions import unsubscribed_profiles, unsubscribed_since, why_skipped

log = logging.getLogger(__name__)

# Under the daemon, a batch logs its progress every this many profiles.
LOG_EVERY = 1000


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


def due_groups(
    profiles: Sequence[ProfileSettings], digest: DigestSettings
) -> list[tuple[str, ...]]:
    """Profile names grouped by send time, time zone and digest days: each group is due
    at the same instants, so it is ranked and sent as one batch."""
    groups: dict[tuple, list[str]] = {}
    for profile in profiles:
        key = (send_time_of(profile, digest), profile.timezone or digest.timezone,
               tuple(digest_days(profile, digest)))
        groups.setdefault(key, []).append(profile.name)
    return [tuple(names) for names in groups.values()]


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
                "email to the config file (`paperdigest config init` writes a starter one)"
            )
        missing = [p.name for p in settings.profiles if not p.email]
        if missing:
            raise PaperdigestError(f"profile {missing[0]!r} has no email address")
        self.settings = settings
        self._profiles = {p.name: p for p in settings.profiles}
        self.data_dir = data_dir
        self.clock = clock
        self.connect = connect
        self.stop = threading.Event()
        self._lock = threading.Lock()  # one digest at a time: they share the store
        self._scheduler: BackgroundScheduler | None = None
        self._attempts: dict[str, tuple[date, int]] = {}  # profile -> (day, runs so far)
        self.next_retry: dict[str, datetime] = {}  # profile -> when the next try is due
        self.outcomes: dict[str, str] = {}  # profile -> outcome of the last batch

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise StopRequested("stopping")

    def send_now(self, *names: str) -> str:
        """The job: refresh sources, then send today's digest of each named profile unless
        the ledger has it (several: one batch, see bulk.py). Returns what happened; never
        raises, so one bad day never stops the daemon."""
        if len(names) != 1:
            return self._guarded(", ".join(names[:3]), lambda: self._send_group(names))
        profile = self._profiles.get(names[0])
        if profile is None:  # pragma: no cover - jobs are made from the same settings
            return "unknown profile"
        return self._guarded(profile.name, lambda: self._send(profile))

    def _guarded(self, label: str, job: Callable[[], str]) -> str:
        with self._lock:
            try:
                return job()
            except (StopRequested, RunStopped):
                log.warning("%s: stopped before the digest went out; it is sent on restart "
                            "(within the catch-up window)", label)
                return "stopped"
            except PaperdigestError as exc:
                log.error("%s: %s", label, exc)
                return f"error: {exc}"
            except Exception as exc:  # keep the daemon alive, and the message short
                log.error("%s: unexpected %s: %s", label, type(exc).__name__, exc)
                return f"error: {type(exc).__name__}"

    def _send_group(self, names: Sequence[str]) -> str:
        """Profiles due at the same moment, sent in one batched run with a log line every
        LOG_EVERY profiles and a summary. Each profile that did not finish its day is then
        retried on its own (run_job)."""
        from paperdigest.bulk import send_many

        profiles = [self._profiles[name] for name in names if name in self._profiles]
        now = self.clock()
        with Store.open(self.data_dir) as store:
            due = [p for p in profiles
                   if not is_done(store, p.name, local_date(p, self.settings, now))]
            stopped = unsubscribed_profiles(store)
        for profile in [p for p in due if p.name in stopped]:  # no fetch, no retry
            log.info("%s: %s", profile.name, why_skipped(profile.name, stopped[profile.name]))
            self.outcomes[profile.name] = "unsubscribed"
        due = [p for p in due if p.name not in stopped]
        if not due:
            log.info("%d profiles: today's digests were already sent", len(profiles))
            return "already sent"
        for profile in due:
            self._count_attempt(profile.name, local_date(profile, self.settings, now))
        self._refresh()
        log.info("sending %d digests", len(due))

        def progress(state) -> None:
            if state.done % LOG_EVERY == 0 or state.done == state.total:
                log.info("%d of %d profiles done (%d sent, %d skipped, %d failed)",
                         state.done, state.total, state.sent, state.skipped, state.failed)

        with Store.open(self.data_dir) as store:
            report = send_many(store, self.settings, due, now=self.clock(),
                               connect=self.connect, sleep=self._sleep, progress=progress,
                               stop=self.stop)
        log.info("digests: %s", report.summary())
        self.outcomes |= {
            name: outcome for outcomes, outcome in (
                (report.sent, "sent"), (report.empty, "empty"), (report.skipped, "skipped"),
                (report.maybe, "maybe"), (report.failed, "failed"),
                (report.resting, "resting"),
            ) for name in outcomes
        }
        return report.summary()

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

    def run_job(self, *names: str) -> str:
        """The scheduled job: one attempt (a batch for several profiles), then a retry
        scheduled for each profile whose day needs one."""
        self.outcomes = {}
        outcome = self.send_now(*names)
        for name in names:
            self.plan_retry(name, self.outcomes.get(name, outcome) if len(names) > 1
                            else outcome)
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
        for names in due_groups(self.settings.profiles, digest):
            scheduler.add_job(
                self.run_job,
                make_trigger(self._profiles[names[0]], digest),
                args=list(names),
                id=f"digest:{names[0]}",
                name=f"digest for {names[0]}" + (f" and {len(names) - 1} more"
                                                 if len(names) > 1 else ""),
            )
        return scheduler

    def run(self) -> None:
        scheduler = self._scheduler = self.build_scheduler()
        scheduler.start()
        try:
            now = self.clock()
            for names in due_groups(self.settings.profiles, self.settings.digest):
                at = next_send_time(self._profiles[names[0]], self.settings.digest, now)
                who = names[0] if len(names) == 1 else f"{len(names)} profiles"
                log.info("%s: next digest at %s", who, at.isoformat())
            due = self.catch_up()
            if due:
                who = due[0] if len(due) == 1 else f"{len(due)} profiles"
                log.info("%s: today's digest is not sent and its send time has passed; "
                         "sending now", who)
                scheduler.add_job(self.run_job, args=due, id=f"catchup:{due[0]}")
            while not self.stop.wait(1.0):
                pass
            log.info("stopping: letting a send in progress finish")
        finally:
            scheduler.shutdown(wait=True)
        log.info("stopped")

