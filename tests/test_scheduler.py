"""When digests go out: triggers and catch-up computed against an injected clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from paperdigest.config import DigestSettings, ProfileSettings, Settings
from paperdigest.delivery import ledger
from paperdigest.scheduler import (
    Daemon,
    catchup_due,
    make_trigger,
    next_send_time,
)
from paperdigest.store import Store
from tests.mail_fixtures import QUIET

pytestmark = QUIET

PARIS = ZoneInfo("Europe/Paris")
DIGEST = DigestSettings(send_time="07:00", timezone="UTC", catchup_hours=6)


def paris(hour: int = 7, minute: int = 0) -> ProfileSettings:
    return ProfileSettings(name="ada", email="ada@example.com", timezone="Europe/Paris",
                           send_time=f"{hour:02}:{minute:02}")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_next_send_time_is_the_profiles_local_hour():
    at = next_send_time(paris(7, 30), DIGEST, utc(2026, 6, 1, 4, 0))
    assert at == datetime(2026, 6, 1, 7, 30, tzinfo=PARIS)
    assert at.utcoffset() == timedelta(hours=2)
    # Past today's hour: tomorrow.
    assert next_send_time(paris(7, 30), DIGEST, utc(2026, 6, 1, 6, 0)) == datetime(
        2026, 6, 2, 7, 30, tzinfo=PARIS
    )


def test_a_profile_without_its_own_time_uses_the_digest_defaults():
    plain = ProfileSettings(name="bob", email="bob@example.com")
    at = next_send_time(plain, DIGEST, utc(2026, 6, 1, 12, 0))
    assert at == utc(2026, 6, 2, 7, 0)


@pytest.mark.parametrize(
    "now",
    [
        utc(2026, 6, 1, 4, 0),
        utc(2026, 3, 28, 12, 0),  # the night before clocks go forward in Paris
        utc(2026, 10, 24, 12, 0),  # the night before they go back
        utc(2026, 12, 31, 23, 59),
    ],
)
def test_the_cron_trigger_fires_when_next_send_time_says(now):
    profile = paris(7, 0)
    trigger = make_trigger(profile, DIGEST)
    assert trigger.get_next_fire_time(None, now) == next_send_time(profile, DIGEST, now)


@pytest.mark.parametrize("start", [utc(2026, 3, 27, 12), utc(2026, 10, 23, 12)])
def test_dst_days_keep_the_local_hour(start):
    profile = paris(7, 0)
    now = start
    seen = []
    for _ in range(4):
        at = next_send_time(profile, DIGEST, now)
        seen.append(at)
        now = at + timedelta(seconds=1)
    assert [(a.hour, a.minute) for a in seen] == [(7, 0)] * 4
    offsets = {a.astimezone(UTC).hour for a in seen}
    assert offsets == {5, 6}  # the UTC hour moves, the local one does not
    assert [a.date() for a in seen] == [start.date() + timedelta(days=n) for n in range(1, 5)]


def test_catch_up_is_due_only_within_the_grace_window_of_todays_send_time():
    profile = paris(7, 0)  # 05:00 UTC in summer
    assert not catchup_due(profile, DIGEST, utc(2026, 6, 1, 4, 59))  # not yet
    assert catchup_due(profile, DIGEST, utc(2026, 6, 1, 5, 0))
    assert catchup_due(profile, DIGEST, utc(2026, 6, 1, 11, 0))  # 6 hours late
    assert not catchup_due(profile, DIGEST, utc(2026, 6, 1, 11, 1))
    never = DIGEST.model_copy(update={"catchup_hours": 0})
    assert not catchup_due(profile, never, utc(2026, 6, 1, 5, 1))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _daemon(server, data_dir, now: datetime, **digest: object) -> tuple[Daemon, Clock]:
    settings = Settings(
        smtp=server.settings(),
        digest={"send_time": "07:00", "timezone": "Europe/Paris", **digest},
        profiles=[ProfileSettings(name="ada", email="ada@example.com")],
        # The daemon refreshes sources first; no test reaches the internet.
        sources={"hf": {"enabled": False}, "arxiv": {"enabled": False}},
    )
    clock = Clock(now)
    return Daemon(settings, data_dir, clock=clock), clock


def test_the_scheduled_job_fires_at_the_configured_local_time(data_dir, plain_server):
    daemon, _ = _daemon(plain_server, data_dir, utc(2026, 6, 1, 0, 0))
    scheduler = daemon.build_scheduler()
    [job] = scheduler.get_jobs()
    fire = job.trigger.get_next_fire_time(None, utc(2026, 6, 1, 0, 0))
    assert fire == datetime(2026, 6, 1, 7, 0, tzinfo=PARIS)
    assert job.args == ("ada",)


def test_catch_up_sends_once_after_a_missed_hour_and_never_twice(data_dir, plain_server):
    daemon, clock = _daemon(plain_server, data_dir, utc(2026, 6, 1, 8, 0))  # 10:00 in Paris
    assert daemon.catch_up() == ["ada"]
    assert daemon.send_now("ada") == "sent"
    # Restarted later the same day: nothing is due any more.
    clock.now = utc(2026, 6, 1, 9, 0)
    assert daemon.catch_up() == []
    assert daemon.send_now("ada") == "already sent"
    assert len(plain_server.received) == 1
    # The next day's hour sends the next digest.
    clock.now = utc(2026, 6, 2, 5, 0)
    assert daemon.send_now("ada") == "sent"
    assert len(plain_server.received) == 2


def test_no_catch_up_outside_the_grace_window(data_dir, plain_server):
    daemon, _ = _daemon(plain_server, data_dir, utc(2026, 6, 1, 14, 0), catchup_hours=2)
    assert daemon.catch_up() == []


def test_the_repeated_hour_when_clocks_go_back_sends_once(data_dir, plain_server):
    # 02:30 in Paris happens twice on 2026-10-25; the cron trigger fires at both.
    daemon, clock = _daemon(plain_server, data_dir, utc(2026, 10, 25, 0, 30),
                            send_time="02:30")
    trigger = make_trigger(daemon.settings.profiles[0], daemon.settings.digest)
    first = trigger.get_next_fire_time(None, utc(2026, 10, 24, 12, 0))
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    clock.now = first
    assert daemon.send_now("ada") == "sent"
    clock.now = second
    assert daemon.send_now("ada") == "already sent"
    assert len(plain_server.received) == 1


def test_a_failing_source_refresh_never_stops_the_digest(data_dir, plain_server, monkeypatch,
                                                         caplog):
    def broken(store, settings, **options):
        raise RuntimeError("hf is down")

    monkeypatch.setattr("paperdigest.scheduler.refresh_sources", broken)
    daemon, _ = _daemon(plain_server, data_dir, utc(2026, 6, 1, 5, 0))
    with caplog.at_level(logging.WARNING):
        assert daemon.send_now("ada") == "sent"
    assert "refreshing sources failed (RuntimeError: hf is down)" in caplog.text
    assert len(plain_server.received) == 1


def test_a_failed_send_is_logged_and_the_daemon_carries_on(data_dir, plain_server, caplog):
    plain_server.handler.reject = "554 5.7.1 no thanks"
    daemon, _ = _daemon(plain_server, data_dir, utc(2026, 6, 1, 5, 0))
    with caplog.at_level(logging.ERROR):
        assert daemon.send_now("ada") == "failed"
    assert "554 5.7.1 no thanks" in caplog.text
    assert plain_server.settings()["password"] not in caplog.text
    with Store.open(data_dir) as store:
        assert [e.status for e in ledger(store)] == ["failed"]


def test_run_logs_each_jobs_next_run_and_stops_cleanly(data_dir, plain_server, caplog):
    daemon, _ = _daemon(plain_server, data_dir, utc(2026, 6, 1, 0, 0))
    daemon.stop.set()  # as SIGTERM would: run starts, logs, and shuts down at once
    with caplog.at_level(logging.INFO):
        daemon.run()
    assert "ada: next digest at 2026-06-01T07:00:00+02:00" in caplog.text
    assert "stopped" in caplog.text


def test_the_send_time_is_parsed_as_a_local_time_of_day():
    assert DigestSettings(send_time="6:05").send_time == time(6, 5)
