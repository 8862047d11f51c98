"""Exactly one digest per profile per day, under faults: a server that answers late, drops
the connection, or is down; a sender killed with SIGKILL; a ledger that cannot be written
after the server accepted; SIGTERM during a source refresh. Real SMTP and HTTP servers on
localhost, real SQLite, real daemon processes and real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from paperdigest import ledger as ledger_api
from paperdigest.config import ProfileSettings, Settings
from paperdigest.delivery import ledger, send_digests
from paperdigest.ledger import Holder
from paperdigest.refresh import refresh_sources
from paperdigest.scheduler import Daemon, retry_delay
from paperdigest.store import Store
from tests.mail_fixtures import QUIET, write_config
from tests.smtp_faults import FaultServer

pytestmark = QUIET

ADA = {"name": "ada", "email": "ada@example.com"}
WAIT = 60  # seconds a test waits for a process before calling it stuck


@pytest.fixture
def faulty():
    server = FaultServer().start()
    yield server
    server.handler.release.set()
    server.stop()


def _settings(server: FaultServer, **smtp: object) -> Settings:
    return Settings(smtp=server.settings(**smtp), profiles=[ProfileSettings(**ADA)])


def _send(store: Store, settings: Settings, **options):
    return send_digests(store, settings, settings.profiles, **options)


def _statuses(store: Store) -> list[str]:
    return [entry.status for entry in ledger(store)]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- a server that answers late or drops the connection ---------------------------------


def test_a_late_answer_is_maybe_delivered_and_resent_once_with_the_same_message_id(
    store, faulty
):
    faulty.handler.answer_after = 30  # stores the message, answers long after the timeout
    settings = _settings(faulty, timeout=0.5, retries=3)

    first = _send(store, settings)
    assert "ada" in first.maybe and not first.sent and not first.failed
    assert len(faulty.received) == 1  # retries=3, yet never sent again within the run
    assert _statuses(store) == ["maybe"]

    faulty.handler.answer_after = None  # the server is quick again
    second = _send(store, settings)
    assert second.sent.keys() == {"ada"}
    assert len(faulty.received) == 2
    assert len(set(faulty.message_ids())) == 1  # the copies fold into one
    third = _send(store, settings)
    assert "already sent" in third.skipped["ada"]
    assert len(faulty.received) == 2
    assert _statuses(store) == ["sent"]


def test_a_server_that_never_answers_gets_two_copies_at_most(store, faulty):
    faulty.handler.answer_after = 30
    settings = _settings(faulty, timeout=0.5)
    for _ in range(4):
        _send(store, settings)
    assert len(faulty.received) == 2
    assert len(set(faulty.message_ids())) == 1
    [entry] = ledger(store)
    assert entry.status == "maybe" and entry.maybe_count == 2
    report = _send(store, settings)
    assert "may have been delivered 2 times" in report.skipped["ada"]


def test_a_dropped_connection_after_the_message_is_not_retried_and_status_shows_it(
    cli, data_dir, tmp_path, faulty
):
    faulty.handler.drop_after_data = True
    config = str(write_config(tmp_path / "c.toml", faulty.settings(retries=3), [ADA]))

    result = cli("--config", config, "send")
    assert result.exit_code == 1
    assert "maybe delivered" in result.stderr and "same Message-ID" in result.stderr
    assert "Traceback" not in result.output
    assert len(faulty.received) == 1

    status = " ".join(cli("--config", config, "status").stdout.split())
    assert "MAYBE DELIVERED" in status and "the next run sends it once more" in status

    faulty.handler.drop_after_data = False
    assert cli("--config", config, "send").exit_code == 0
    assert len(faulty.received) == 2 and len(set(faulty.message_ids())) == 1
    assert "MAYBE" not in cli("--config", config, "status").stdout


def test_a_refusal_after_the_message_is_not_maybe(store, faulty):
    faulty.handler.reject = "554 5.7.1 no"
    _send(store, _settings(faulty))
    assert _statuses(store) == ["failed"]  # the server said no: certainly not delivered
    faulty.handler.reject = None
    assert _send(store, _settings(faulty)).sent.keys() == {"ada"}
    assert len(faulty.received) == 1


def test_every_attempt_of_a_day_has_one_message_id_and_force_makes_a_new_one(store, faulty):
    faulty.handler.reject = "554 5.7.1 no"
    settings = _settings(faulty)
    _send(store, settings)
    [failed] = ledger(store)
    faulty.handler.reject = None
    _send(store, settings)
    _send(store, settings, force=True)
    first, forced = faulty.message_ids()
    assert first == failed.message_id  # fixed when the day was first claimed
    assert forced != first


# -- the ledger cannot be written after the server accepted -------------------------------

FAILING_DISK = """
CREATE TEMP TRIGGER disk_full BEFORE UPDATE OF status ON digests
WHEN new.status = 'sent' BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;
"""


def test_failing_to_record_sent_in_a_live_process_sends_nothing_more(store, faulty, caplog):
    store.conn.executescript(FAILING_DISK)
    settings = _settings(faulty)
    report = _send(store, settings)
    assert report.sent.keys() == {"ada"}  # the server has it
    assert "could not record it" in caplog.text
    store.conn.execute("DROP TRIGGER disk_full")  # space again
    again = _send(store, settings)
    assert "already sent" in again.skipped["ada"]
    assert len(faulty.received) == 1
    assert _statuses(store) == ["sent"]


def test_failing_to_record_sent_then_exiting_resends_once_with_the_same_message_id(
    data_dir, faulty
):
    script = textwrap.dedent(f"""
        from pathlib import Path
        from paperdigest.config import ProfileSettings, Settings
        from paperdigest.delivery import send_digests
        from paperdigest.store import Store
        settings = Settings(smtp={faulty.settings()!r}, profiles=[ProfileSettings(**{ADA!r})])
        with Store.open(Path({str(data_dir)!r})) as store:
            store.conn.executescript({FAILING_DISK!r})
            report = send_digests(store, settings, settings.profiles)
        print(sorted(report.sent))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=WAIT)
    assert done.stdout.strip() == "['ada']", done.stderr
    with Store.open(data_dir) as store:
        [row] = ledger(store)
        assert row.status == "sending"  # what the dead process left
        report = _send(store, _settings(faulty))
        assert report.sent.keys() == {"ada"}
        assert _statuses(store) == ["sent"]
    assert len(faulty.received) == 2
    assert len(set(faulty.message_ids())) == 1


def test_an_attempt_that_cannot_be_recorded_is_not_sent(store, faulty):
    store.conn.executescript("""
        CREATE TEMP TRIGGER no_space BEFORE UPDATE OF data_attempts ON digests
        WHEN new.profile = 'ada' BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;
    """)
    settings = Settings(smtp=faulty.settings(), profiles=[
        ProfileSettings(**ADA), ProfileSettings(name="bob", email="bob@example.com")])
    report = _send(store, settings)
    assert "cannot write the attempt to the ledger" in report.failed["ada"]
    assert report.sent.keys() == {"bob"}  # the same connection still serves the next one
    assert [r.recipients for r in faulty.received] == [["bob@example.com"]]


# -- claims name their holder ------------------------------------------------------------


def _orphan_claim(store: Store, holder: Holder, *, in_flight: bool = False) -> None:
    now = datetime.now(UTC)
    store.conn.execute(
        "INSERT INTO digests(profile, digest_date, status, created_at, claimed_at, holder_pid,"
        " holder_host, holder_start, attempts, in_flight, message_id) "
        "VALUES ('ada', ?, 'sending', ?, ?, ?, ?, ?, 1, ?, '<orphan@example.org>')",
        (now.date().isoformat(), now.isoformat(), now.isoformat(), holder.pid, holder.host,
         holder.start, int(in_flight)),
    )


def test_a_claim_whose_process_is_gone_is_taken_over_at_once(store, faulty, caplog):
    me = Holder.current()
    _orphan_claim(store, Holder(_dead_pid(), me.host, "whatever"))
    report = _send(store, _settings(faulty))
    assert report.sent.keys() == {"ada"}
    assert "which is no longer running" in caplog.text
    assert faulty.message_ids() == ["<orphan@example.org>"]  # the day's own Message-ID
    assert _statuses(store) == ["sent"]


def test_a_killed_holder_not_yet_reaped_is_gone(store, faulty):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = ledger_api.process_start(child.pid) or ""
        child.kill()
        # Not waited for: a zombie still has its pid, but holds nothing.
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = datetime.now(UTC) + timedelta(seconds=WAIT)
        while ") Z " not in stat.read_text() and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
        me = Holder.current()
        _orphan_claim(store, Holder(child.pid, me.host, start))
        assert _send(store, _settings(faulty)).sent.keys() == {"ada"}
    finally:
        child.wait()


def test_a_pid_reused_by_another_process_does_not_hold_the_claim(store, faulty):
    me = Holder.current()
    _orphan_claim(store, Holder(os.getppid(), me.host, "a process that started earlier"))
    assert _send(store, _settings(faulty)).sent.keys() == {"ada"}


def test_a_live_holder_keeps_its_claim(store, faulty):
    parent = os.getppid()
    me = Holder.current()
    _orphan_claim(store, Holder(parent, me.host, ledger_api.process_start(parent) or ""))
    report = _send(store, _settings(faulty))
    assert f"pid {parent}" in report.skipped["ada"]
    assert faulty.received == []


def test_a_holder_on_another_host_is_trusted_until_its_claim_expires(store, faulty):
    _orphan_claim(store, Holder(1, "elsewhere.example", "x"))
    assert "being sent" in _send(store, _settings(faulty)).skipped["ada"]
    later = datetime.now(UTC) + timedelta(hours=2)
    assert _send(store, _settings(faulty), now=later).sent.keys() == {"ada"}


# -- an empty digest -------------------------------------------------------------------------


def _dismiss_everything(data_dir: Path) -> None:
    with Store.open(data_dir) as store:
        store.conn.execute(
            "INSERT INTO dismissals(profile, paper_pk, dismissed_at) "
            "SELECT 'ada', pk, '2026-01-01T00:00:00+00:00' FROM papers"
        )


def test_a_digest_with_no_picks_is_not_mailed_unless_the_profile_asks(
    cli, data_dir, tmp_path, faulty
):
    _dismiss_everything(data_dir)
    config = str(write_config(tmp_path / "c.toml", faulty.settings(), [ADA]))
    result = cli("--config", config, "send")
    assert result.exit_code == 0, result.output
    assert "no new papers to pick" in result.stdout and "send_empty" in result.stdout
    assert faulty.received == []

    wanted = str(write_config(tmp_path / "e.toml", faulty.settings(),
                              [{**ADA, "send_empty": True}]))
    assert cli("--config", wanted, "send").exit_code == 0
    assert len(faulty.received) == 1


# -- the daemon retries ---------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_daemon_retries_with_doubling_backoff_until_the_catch_up_window_closes(
    data_dir, caplog
):
    down = FaultServer()  # never started: connections are refused
    settings = Settings(
        smtp=down.settings(retries=0, backoff=300),
        digest={"send_time": "07:00", "timezone": "UTC", "catchup_hours": 1},
        profiles=[ProfileSettings(**ADA)],
        sources={"hf": {"enabled": False}},
    )
    clock = Clock(datetime(2026, 6, 1, 7, 0, tzinfo=UTC))
    daemon = Daemon(settings, data_dir, clock=clock)
    waits = []
    with caplog.at_level("INFO"):
        while True:
            assert daemon.send_now("ada") == "failed"
            at = daemon.plan_retry("ada", "failed")
            if at is None:
                break
            waits.append((at - clock.now).total_seconds())
            clock.now = at
    assert waits == [300, 600, 900, 900, 900]  # doubling from smtp.backoff, capped at 15 min
    assert "attempt 2 did not send" in caplog.text and "next try at" in caplog.text
    assert "the catch-up window closed at 2026-06-01T08:00:00+00:00" in caplog.text
    assert retry_delay(300, 10) == 900


def test_the_daemon_retries_a_maybe_delivered_day_once(data_dir, faulty):
    faulty.handler.answer_after = 30
    settings = Settings(
        smtp=faulty.settings(timeout=0.5, backoff=1),
        digest={"send_time": "07:00", "timezone": "UTC", "catchup_hours": 6},
        profiles=[ProfileSettings(**ADA)],
        sources={"hf": {"enabled": False}},
    )
    clock = Clock(datetime(2026, 6, 1, 7, 0, tzinfo=UTC))
    daemon = Daemon(settings, data_dir, clock=clock)
    assert daemon.send_now("ada") == "maybe"
    assert daemon.plan_retry("ada", "maybe") is not None
    assert daemon.send_now("ada") == "maybe"
    assert daemon.plan_retry("ada", "maybe") is None  # two copies may be out: done
    assert daemon.catch_up() == []
    assert len(faulty.received) == 2 and len(set(faulty.message_ids())) == 1


# -- a real daemon process, real signals -----------------------------------------------------


class DaemonProcess:
    """`paperdigest run` as a child process; its log lines are collected as they come."""

    def __init__(self, config: Path, **env: str) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from paperdigest.cli import main; main()",
             "--config", str(config), "run"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PAPERDIGEST_SOURCES__HF__ENABLED": "false", **env},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, text: str, count: int = 1) -> None:
        with self._changed:
            found = self._changed.wait_for(lambda: self.log_count(text) >= count, WAIT)
        assert found, f"no {text!r} in the daemon's log:\n{self.log}"

    def log_count(self, text: str) -> int:
        return "".join(self.lines).count(text)

    def signal(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)


@pytest.fixture
def daemons():
    started: list[DaemonProcess] = []

    def start(config: Path, **env: str) -> DaemonProcess:
        started.append(DaemonProcess(config, **env))
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()


def _daemon_config(tmp_path: Path, smtp: dict[str, object], **digest: object) -> Path:
    now = datetime.now(UTC)  # send time "now": the daemon catches it up at start
    return write_config(tmp_path / "daemon.toml", smtp, [ADA],
                        send_time=f"{now:%H:%M}", timezone="UTC", catchup_hours=1, **digest)


def test_sigkill_before_the_message_went_out_then_restart_sends_it_once(
    data_dir, tmp_path, faulty, daemons, cli
):
    faulty.handler.hold_at_mail = True
    config = _daemon_config(tmp_path, faulty.settings())
    first = daemons(config)
    assert faulty.handler.held.wait(WAIT), first.log
    assert first.signal(signal.SIGKILL) == -signal.SIGKILL

    faulty.handler.hold_at_mail = False
    faulty.handler.release.set()
    second = daemons(config)
    second.wait_for("digest sent")
    assert "which is no longer running" in second.log  # the claim was taken over at once
    assert len(faulty.received) == 1
    assert second.signal(signal.SIGTERM) == 0
    assert "already sent" in cli("--config", str(config), "send").stderr
    assert len(faulty.received) == 1


def test_sigkill_after_the_message_went_out_resends_once_with_the_same_message_id(
    data_dir, tmp_path, faulty, daemons, cli
):
    faulty.handler.hold_answer = True  # stores the message, then keeps the sender waiting
    config = _daemon_config(tmp_path, faulty.settings(timeout=120))
    first = daemons(config)
    assert faulty.handler.stored.wait(WAIT), first.log
    first.signal(signal.SIGKILL)

    faulty.handler.hold_answer = False
    faulty.handler.release.set()
    second = daemons(config)
    second.wait_for("digest sent")
    assert second.signal(signal.SIGTERM) == 0
    assert len(faulty.received) == 2
    assert len(set(faulty.message_ids())) == 1  # a duplicate mail systems fold, not a new one
    with Store.open(data_dir) as store:
        assert _statuses(store) == ["sent"]
    assert "already sent" in cli("--config", str(config), "send").stderr
    assert len(faulty.received) == 2


def test_the_daemon_rides_out_an_smtp_outage_at_send_time(data_dir, tmp_path, daemons):
    server = FaultServer()  # its port is fixed; nothing listens yet
    config = _daemon_config(tmp_path, server.settings(retries=0, backoff=0.2))
    daemon = daemons(config)
    try:
        daemon.wait_for("next try at", count=2)  # two failed attempts, each logged
        server.start()
        daemon.wait_for("digest sent")
        assert daemon.signal(signal.SIGTERM) == 0
    finally:
        server.stop()
    assert len(server.received) == 1
    assert "attempt 3" in daemon.log


class SilentHTTP:
    """Accepts connections and reads requests, never answers: a source that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.asked = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            conn.recv(65536)
            self.asked.set()

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("hang", ["request in flight", "backoff sleep"])
def test_sigterm_during_the_source_refresh_stops_the_daemon_before_it_sends(
    data_dir, tmp_path, faulty, daemons, httpserver, hang
):
    if hang == "request in flight":
        silent = SilentHTTP()
        base_url = f"http://127.0.0.1:{silent.port}"
    else:
        httpserver.expect_request("/api/daily_papers").respond_with_data("down", status=503)
        base_url = httpserver.url_for("/").rstrip("/")
    config = _daemon_config(tmp_path, faulty.settings())
    daemon = daemons(
        config,
        PAPERDIGEST_SOURCES__HF__ENABLED="true",
        PAPERDIGEST_SOURCES__HF__BASE_URL=base_url,
        PAPERDIGEST_SOURCES__TIMEOUT="600",  # the request would hang ten minutes
        PAPERDIGEST_SOURCES__RETRIES="5",
        PAPERDIGEST_SOURCES__BACKOFF="600",  # and each backoff would sleep ten minutes
    )
    try:
        if hang == "request in flight":
            assert silent.asked.wait(WAIT), daemon.log
        else:
            daemon.wait_for("retrying in")
        assert daemon.signal(signal.SIGTERM) == 0
    finally:
        if hang == "request in flight":
            silent.close()
    assert "stopped" in daemon.log
    assert faulty.received == []
    with Store.open(data_dir) as store:
        assert ledger(store) == []  # nothing claimed: a restart sends the day as usual


# -- the refresh honours a stop event --------------------------------------------------------


def test_a_stop_event_ends_a_refresh_between_requests(store, httpserver):
    for day in ("2025-03-17", "2025-03-18", "2025-03-19"):
        query = {"date": day, "limit": "100", "p": "0"}
        httpserver.expect_request("/api/daily_papers", query_string=query) \
            .respond_with_data(b"[]", content_type="application/json")
    settings = Settings(sources={"hf": {"base_url": httpserver.url_for("/").rstrip("/")}})
    stop = threading.Event()

    def progress(source: str, done: int, expected: int | None) -> None:
        if done == 1:
            stop.set()  # SIGTERM arrives while the first day is being stored

    results = refresh_sources(store, settings, sources=["hf"], since=date(2025, 3, 17),
                              until=date(2025, 3, 19), stop=stop, on_progress=progress)
    assert len(httpserver.log) == 1  # the other two days were never asked for
    assert results == []  # the stopped source is not logged as fetched
    assert store.last_fetch("hf") is None


def test_a_stop_event_cuts_a_backoff_sleep_short(store, httpserver):
    from werkzeug import Response

    stop = threading.Event()

    def down(request) -> Response:
        stop.set()  # SIGTERM arrives with this answer: the client is about to back off
        return Response("down", status=503)

    httpserver.expect_request("/api/daily_papers").respond_with_handler(down)
    settings = Settings(sources={"hf": {"base_url": httpserver.url_for("/").rstrip("/")},
                                 "retries": 5, "backoff": 600})
    results = refresh_sources(store, settings, sources=["hf"], stop=stop)
    assert len(httpserver.log) == 1 and results == []
