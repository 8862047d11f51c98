"""Exactly once: the ledger, retries, refusals and concurrent sends, against a real server."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

from paperdigest.config import ProfileSettings, Settings
from paperdigest.delivery import claim_ttl, ledger, send_digests
from paperdigest.mailer import open_connection
from paperdigest.store import Store
from tests.mail_fixtures import QUIET, MailServer, write_config

pytestmark = QUIET

ADA = {"name": "ada", "email": "ada@example.com"}


def _ids(received) -> list[str]:
    text = received.message.get_body(preferencelist=("plain",)).get_content()
    return re.findall(r"\[id ([^\]]+)\]", text)


def _settings(server: MailServer, **smtp: object) -> Settings:
    return Settings(smtp=server.settings(**smtp), profiles=[ProfileSettings(**ADA)])


def test_a_second_send_is_refused_and_force_resends_the_same_picks(
    cli, data_dir, tmp_path, plain_server
):
    config = str(write_config(tmp_path / "c.toml", plain_server.settings(), [ADA]))
    assert cli("--config", config, "send").exit_code == 0

    again = cli("--config", config, "send")
    assert again.exit_code == 1
    assert "already sent" in again.stderr and "--force" in again.stderr
    assert len(plain_server.received) == 1

    forced = cli("--config", config, "send", "--force")
    assert forced.exit_code == 0, forced.output
    first, second = plain_server.received
    assert _ids(first) and _ids(second) == _ids(first)
    assert first.message["Message-ID"] != second.message["Message-ID"]
    with Store.open(data_dir) as store:
        assert [e.status for e in ledger(store)] == ["sent", "sent"]


def test_a_5xx_rejection_marks_nothing_sent(cli, data_dir, tmp_path, plain_server):
    plain_server.handler.reject = "554 5.7.1 message rejected"
    config = str(write_config(tmp_path / "c.toml", plain_server.settings(retries=3), [ADA]))

    result = cli("--config", config, "send")

    assert result.exit_code == 1
    assert "554 5.7.1 message rejected" in result.stderr
    assert "Traceback" not in result.output
    with Store.open(data_dir) as store:
        assert store.shown_pks("ada") == set()
        [entry] = ledger(store)
        assert entry.status == "failed" and "554" in (entry.error or "")
    # Not a claim left behind: once the server accepts, the day's digest goes out.
    plain_server.handler.reject = None
    assert cli("--config", config, "send").exit_code == 0
    assert len(plain_server.received) == 1


def test_a_server_that_is_down_then_up_gets_one_message(store, ca):
    server = MailServer("none", ca)  # its port is known, nothing listens yet
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if server._controller is None:
            server.start()

    try:
        report = send_digests(store, _settings(server, retries=3, backoff=0.5),
                              [ProfileSettings(**ADA)], sleep=sleep)
    finally:
        server.stop()
    assert report.sent.keys() == {"ada"} and not report.failed
    assert len(server.received) == 1
    assert waits == [0.5]  # refused once, retried once
    assert store.shown_pks("ada")


def test_a_4xx_answer_is_retried_with_exponential_backoff(store, plain_server):
    plain_server.handler.transient_failures = 2
    waits: list[float] = []
    report = send_digests(store, _settings(plain_server, retries=3, backoff=0.25),
                          [ProfileSettings(**ADA)], sleep=waits.append)
    assert report.sent.keys() == {"ada"}
    assert waits == [0.25, 0.5]
    assert len(plain_server.received) == 1


def test_retries_run_out(store, plain_server):
    plain_server.handler.transient_failures = 10
    waits: list[float] = []
    report = send_digests(store, _settings(plain_server, retries=2),
                          [ProfileSettings(**ADA)], sleep=waits.append)
    assert "451" in report.failed["ada"]
    assert len(waits) == 2 and plain_server.received == []
    assert store.shown_pks("ada") == set()


def test_a_refused_login_is_not_retried(store, plain_server):
    connects = []

    def connect(smtp):
        connects.append(1)
        return open_connection(smtp)

    report = send_digests(store, _settings(plain_server, password="wrong", retries=5),
                          [ProfileSettings(**ADA)], connect=connect, sleep=lambda s: None)
    assert "refused the login" in report.failed["ada"]
    assert len(connects) == 1


def test_two_concurrent_sends_deliver_one_message(data_dir, plain_server):
    settings = _settings(plain_server)
    profile = [ProfileSettings(**ADA)]
    first_claimed = threading.Event()
    second_done = threading.Event()
    reports = {}

    def slow_connect(smtp):
        # The first run holds its claim while the second one tries its luck.
        first_claimed.set()
        assert second_done.wait(10)
        return open_connection(smtp)

    def first() -> None:
        with Store.open(data_dir) as store:
            reports["first"] = send_digests(store, settings, profile, connect=slow_connect)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_claimed.wait(10)
    with Store.open(data_dir) as store:
        reports["second"] = send_digests(store, settings, profile)
    second_done.set()
    thread.join(10)

    assert reports["first"].sent.keys() == {"ada"}
    assert "being sent by another paperdigest process" in reports["second"].skipped["ada"]
    assert len(plain_server.received) == 1


def test_two_concurrent_send_processes_deliver_one_message(data_dir, tmp_path, plain_server):
    import subprocess
    import sys

    config = write_config(tmp_path / "c.toml", plain_server.settings(), [ADA])
    command = [sys.executable, "-c", "from paperdigest.cli import main; main()",
               "--config", str(config), "send"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    results = [(run.wait(60), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 1], results
    assert len(plain_server.received) == 1


def test_a_claim_with_no_recorded_holder_expires(store, plain_server):
    # A row written before claims named their process: only its age can free it.
    settings = _settings(plain_server)
    now = datetime.now(UTC)
    crashed_at = now - claim_ttl(settings.smtp) - timedelta(minutes=1)
    store.conn.execute(
        "INSERT INTO digests(profile, digest_date, status, created_at) VALUES (?, ?, ?, ?)",
        ("ada", now.date().isoformat(), "sending", crashed_at.isoformat(timespec="seconds")),
    )
    report = send_digests(store, settings, [ProfileSettings(**ADA)], now=now)
    assert report.sent.keys() == {"ada"}
    assert [e.status for e in ledger(store)] == ["sent"]  # the same row, taken over


def test_papers_never_repeat_across_days(store, plain_server):
    settings = _settings(plain_server)
    profile = [ProfileSettings(**ADA)]
    day_one = datetime(2026, 5, 4, 7, tzinfo=UTC)
    send_digests(store, settings, profile, now=day_one)
    send_digests(store, settings, profile, now=day_one + timedelta(days=1))
    first, second = (_ids(r) for r in plain_server.received)
    assert first and second and not set(first) & set(second)


def test_one_connection_serves_every_profile(store, plain_server):
    settings = Settings(
        smtp=plain_server.settings(),
        profiles=[ProfileSettings(**ADA), ProfileSettings(name="bob", email="bob@example.com")],
    )
    connects = []

    def connect(smtp):
        connects.append(1)
        return open_connection(smtp)

    report = send_digests(store, settings, settings.profiles, connect=connect)
    assert report.sent.keys() == {"ada", "bob"}
    assert len(connects) == 1
    assert [r.recipients for r in plain_server.received] == [["ada@example.com"],
                                                             ["bob@example.com"]]
