"""`send --all`: batched, pipelined delivery against a real local SMTP server."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paperdigest.bulk import send_many
from paperdigest.config import ProfileSettings, Settings
from paperdigest.delivery import ledger
from paperdigest.errors import RunStopped
from paperdigest.ledger import stat_fields
from paperdigest.outbox import RateLimit
from paperdigest.shards import parse_shard, shard_of, take_shard
from paperdigest.store import Store
from tests.mail_fixtures import QUIET, Handler, MailServer, write_config

pytestmark = QUIET

NOW = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)


def _readers(store: Store, n: int, seed: int = 5) -> list[ProfileSettings]:
    """n profiles with a few stars each (every fifth has none: it gets the newest papers)."""
    rng = random.Random(seed)
    pks = [pk for (pk,) in store.conn.execute("SELECT pk FROM papers ORDER BY pk")]
    profiles = []
    for i in range(n):
        name = f"reader{i:03d}"
        if i % 5:
            for paper in store.papers(rng.sample(pks, 4)):
                store.star(name, paper)
        profiles.append(ProfileSettings(name=name, email=f"{name}@example.org"))
    return profiles


def _recipients(server: MailServer) -> list[str]:
    return sorted(r for received in server.received for r in received.recipients)


@pytest.mark.parametrize("outbox_process", [False, True])
def test_send_all_sends_each_reader_once_over_few_reused_connections(
    store, plain_server, outbox_process
):
    profiles = _readers(store, 30)
    settings = Settings(smtp=plain_server.settings(connections=2), profiles=profiles)

    report = send_many(store, settings, profiles, now=NOW, outbox_process=outbox_process)

    assert sorted(report.sent) == [p.name for p in profiles]
    assert _recipients(plain_server) == sorted(p.email[0] for p in profiles)
    # 30 messages, at most one connection per sender
    assert len({r.peer for r in plain_server.received}) <= 2
    ids = {r.message["Message-ID"] for r in plain_server.received}
    assert ids == set(report.sent.values())  # the ledger keeps each message's id
    assert all(r.message["Subject"].startswith("paperdigest 2026-06-01")
               for r in plain_server.received)
    assert report.summary() == "sent 30, skipped 0, failed 0"
    # The same day again: nobody gets a second digest.
    again = send_many(store, settings, profiles, now=NOW + timedelta(hours=1))
    assert not again.sent and len(again.skipped) == 30
    assert again.summary() == "sent 0, skipped 30 (30 already sent today), failed 0"
    assert len(plain_server.received) == 30


class RefusingHandler(Handler):
    """Refuses one address at RCPT, as a server does for an unknown mailbox."""

    refused = "reader007@example.org"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.refused:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@contextlib.contextmanager
def _serving(ca, handler: Handler) -> Iterator[MailServer]:
    """A local SMTP server answering with `handler`, for the test's duration."""
    server = MailServer("none", ca)
    server.handler = handler
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_one_refused_recipient_costs_that_reader_not_the_batch(store, ca):
    with _serving(ca, RefusingHandler()) as server:
        profiles = _readers(store, 12)
        settings = Settings(smtp=server.settings(connections=1), profiles=profiles)
        report = send_many(store, settings, profiles, now=NOW)
    assert list(report.failed) == ["reader007"]
    assert "550" in report.failed["reader007"]
    assert len(report.sent) == 11
    assert "reader007@example.org" not in _recipients(server)
    assert len(server.received) == 11
    assert "failed 1 (1 " in report.summary()
    statuses = {e.profile: e.status for e in ledger(store)}
    assert statuses["reader007"] == "failed"  # not sent: tomorrow's run may try again
    assert store.shown_pks("reader007") == set()


def test_the_rate_limit_spaces_messages_evenly(store, plain_server):
    profiles = _readers(store, 6)
    settings = Settings(smtp=plain_server.settings(max_per_minute=30), profiles=profiles)
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # a fake clock: only waiting moves it
        slept.append(seconds)
        clock[0] += seconds

    limit = RateLimit(settings.smtp.max_per_minute, clock=lambda: clock[0], sleep=sleep)
    report = send_many(store, settings, profiles, now=NOW, limit=limit)

    assert len(report.sent) == 6
    assert limit.waits == 5  # every message after the first waited its turn
    assert sum(slept) == pytest.approx(5 * 2.0)  # 30 a minute: one every 2 s
    assert len(plain_server.received) == 6


def test_no_rate_limit_never_waits():
    limit = RateLimit(None, clock=lambda: 0.0, sleep=lambda s: pytest.fail("slept"))
    for _ in range(100):
        limit.wait()
    assert limit.waits == 0


def test_shards_split_the_profiles_exactly_and_stably():
    names = [f"user-{i}" for i in range(2000)] + ["ada", "Zoë", "名前"]
    for n in (1, 2, 3, 7):
        shares = [take_shard(names, names, k, n) for k in range(1, n + 1)]
        together = [name for share in shares for name in share]
        assert sorted(together) == sorted(names)  # none missed, none doubled
        if n > 1:
            assert all(len(s) > len(names) / n * 0.8 for s in shares)  # roughly even
    # Not Python's salted hash(): the same shard in any process, on any host.
    script = "from paperdigest.shards import shard_of; print(shard_of('ada', 7))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"}, check=True)
    assert int(other.stdout) == shard_of("ada", 7)


@pytest.mark.parametrize("bad", ["0/4", "5/4", "1", "a/b", "1/0"])
def test_a_bad_shard_is_one_clear_line(bad):
    from paperdigest.errors import PaperdigestError

    with pytest.raises(PaperdigestError, match="--shard"):
        parse_shard(bad)


def test_send_all_shard_takes_its_share_with_a_summary(cli, data_dir, tmp_path, plain_server):
    names = [f"reader{i}" for i in range(9)]
    profiles = [{"name": n, "email": f"{n}@example.org"} for n in names]
    config = str(write_config(tmp_path / "c.toml", plain_server.settings(), profiles))
    sent: list[str] = []
    for k in (1, 2, 3):
        result = cli("--config", config, "send", "--all", "--shard", f"{k}/3")
        assert result.exit_code == 0, result.output
        assert "sent " in result.stderr and "failed 0" in result.stderr
        sent += [line.split(":")[0] for line in result.stdout.splitlines()]
    assert sorted(sent) == names
    assert len(plain_server.received) == 9
    bad = cli("--config", config, "send", "--shard", "1/3")
    assert bad.exit_code != 0 and "--shard needs --all" in bad.stderr


class HoldingHandler(Handler):
    """Accepts `hold_after` messages, then keeps the next one waiting forever: the client
    is stuck before the server said yes, as when a process dies mid-batch."""

    hold_after = 10**9
    release = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        import asyncio

        if len(self.received) >= self.hold_after:
            while not self.release.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


KILLED_RUN = """
import sys
from datetime import datetime
from pathlib import Path
from paperdigest.bulk import send_many
from paperdigest.config import load_settings
from paperdigest.store import Store
settings = load_settings(Path(sys.argv[1]))
with Store.open(Path(sys.argv[2])) as store:
    send_many(store, settings, settings.profiles, now=datetime.fromisoformat(sys.argv[3]),
              outbox_process=sys.argv[4] == "process")
"""


def _children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        child = int(stat.parent.name)
        fields = stat_fields(child)  # [state, parent pid, ...]; [] once it is gone
        if fields[:1] not in ([], ["Z"]) and fields[1] == str(pid):
            found.append(child)
    return found


def _alive(pid: int) -> bool:
    return stat_fields(pid)[:1] not in ([], ["Z"])


@pytest.mark.parametrize("outbox", ["threads", "process"])
def test_a_killed_batch_resumes_without_doubling_anyone(data_dir, tmp_path, ca, outbox):
    server = MailServer("none", ca)
    server.handler = HoldingHandler()
    server.handler.hold_after = 8
    server.start()
    try:
        with Store.open(data_dir) as store:
            profiles = _readers(store, 25)
        config = write_config(
            tmp_path / "c.toml", server.settings(connections=1, retries=0),
            [{"name": p.name, "email": p.email[0]} for p in profiles],
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")}
        run = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, str(config), str(data_dir), NOW.isoformat(),
             outbox],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while _sent_count(data_dir) < 8:  # the server took 8; the 9th hangs
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            assert time.monotonic() < deadline, "the batch never got going"
            time.sleep(0.1)
        senders = _children(run.pid)
        if outbox == "process":  # the outbox process, and the resource tracker spawn starts
            assert senders
        run.send_signal(signal.SIGKILL)
        run.wait()
        # Nothing of the killed run is left to race the next one.
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in senders):
            assert time.monotonic() < deadline, "a process of the killed run lives on"
            time.sleep(0.05)
        assert len(server.received) == 8
        server.handler.hold_after = 10**9
        server.handler.release.set()

        settings = Settings(smtp=server.settings(connections=1, retries=0), profiles=profiles)
        with Store.open(data_dir) as store:
            # At once: the dead run's claims still hold, so nobody is sent twice.
            soon = send_many(store, settings, profiles, now=NOW + timedelta(minutes=1))
            assert not set(soon.sent) & {r.recipients[0].split("@")[0]
                                         for r in server.received[:8]}
            # After its claims expired, everybody left gets theirs.
            later = send_many(store, settings, profiles, now=NOW + timedelta(hours=2))
            assert not later.failed
    finally:
        server.stop()
    counts = {p.email[0]: _recipients(server).count(p.email[0]) for p in profiles}
    assert set(counts.values()) == {1}, counts  # every reader exactly once


def _sent_count(data_dir: Path) -> int:
    with Store.open(data_dir) as store:
        return sum(1 for e in ledger(store) if e.status == "sent")


def test_the_daemon_sends_profiles_due_together_as_one_batch(data_dir, plain_server, caplog):
    from paperdigest.scheduler import Daemon

    with Store.open(data_dir) as store:
        profiles = _readers(store, 6)
    late = ProfileSettings(name="owl", email="owl@example.org", send_time="22:00")
    settings = Settings(
        smtp=plain_server.settings(), profiles=[*profiles, late],
        digest={"send_time": "07:00", "timezone": "UTC"},
        sources={"hf": {"enabled": False}, "arxiv": {"enabled": False}},
    )
    daemon = Daemon(settings, data_dir, clock=lambda: NOW)
    jobs = sorted(daemon.build_scheduler().get_jobs(), key=lambda j: len(j.args))
    assert [list(j.args) for j in jobs] == [["owl"], [p.name for p in profiles]]

    with caplog.at_level("INFO"):
        outcome = daemon.send_now(*jobs[1].args)
    assert outcome == "sent 6, skipped 0, failed 0"
    assert "6 of 6 profiles done (6 sent, 0 skipped, 0 failed)" in caplog.text
    assert len(plain_server.received) == 6
    assert daemon.send_now(*jobs[1].args) == "already sent"
    assert len(plain_server.received) == 6


SAMPLE = Path(__file__).parent / "fixtures" / "arxiv_days" / "sample.jsonl.gz"


def test_the_next_day_is_ranked_in_the_batch_and_sends_what_one_profile_would(
    tmp_path, plain_server
):
    """Day 2 of real arXiv listings: each digest covers the papers listed since the reader's
    last one, with their follow and mute rules and min_score, exactly as the one-profile
    path builds it, and repeats nothing of day 1."""
    from paperdigest.follows import Action, Field, Rule
    from paperdigest.ingest import ingest_files
    from paperdigest.ledger import saved_items
    from paperdigest.service import build_digest

    day1, day2 = (datetime(2026, 6, 30, 7, 0, tzinfo=UTC), datetime(2026, 7, 1, 7, 0, tzinfo=UTC))
    with Store.open(tmp_path / "arxiv") as store:
        ingest_files(store, [SAMPLE], today=day2.date())
        profiles = _readers(store, 12)
        store.add_rule("reader001", Rule(Action.mute, Field.keyword, "language"))
        store.add_rule("reader002", Rule(Action.follow, Field.keyword, "learning"))
        profiles[3] = ProfileSettings(name="reader003", email="reader003@example.org",
                                      min_score=3.7)
        settings = Settings(smtp=plain_server.settings(), profiles=profiles,
                            digest={"trending": 0})
        cfg = settings.digest

        assert len(send_many(store, settings, profiles, now=day1).sent) == 12
        expected = {
            p.name: build_digest(store, p.name, day2.date(), cfg.picks, cfg.window_days, 0,
                                 min_score=settings.min_score(p.name))
            for p in profiles
        }
        report = send_many(store, settings, profiles, now=day2)

        assert len(report.sent) == 12
        for p in profiles:
            days = {
                row["digest_date"]: [pk for pk, _, _ in saved_items(store, row["id"])]
                for row in store.conn.execute(
                    "SELECT id, digest_date FROM digests WHERE profile = ?", (p.name,))
            }
            assert days["2026-07-01"] == [item.pk for item in expected[p.name].shown], p.name
            assert not set(days["2026-07-01"]) & set(days["2026-06-30"]), p.name
        assert expected["reader002"].followed  # the rule matched day 2's papers
        assert len(expected["reader003"].items) < cfg.picks  # the cut left some out
        # Everything on day 2 was listed since day 1's digest.
        listed = {p.pk: p.listed for p in store.papers(
            [i.pk for d in expected.values() for i in d.shown])}
        assert min(listed.values()).isoformat() >= "2026-06-30"


class SlowHandler(Handler):
    """Takes 50 ms to answer each message, as a busy provider does."""

    async def handle_DATA(self, server, session, envelope) -> str:
        import asyncio

        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("outbox_process", [False, True])
def test_a_stopped_run_settles_every_claim_and_the_next_run_sends_the_rest(
    store, ca, outbox_process
):
    """The daemon's SIGTERM mid-batch: the run ends early with RunStopped, no claim is
    left held (each is sent, or failed so that the next run sends it), and every reader
    gets exactly one digest in the end."""
    with _serving(ca, SlowHandler()) as server:
        _stop_and_resume(store, server, outbox_process)


def _stop_and_resume(store: Store, server: MailServer, outbox_process: bool) -> None:
    profiles = _readers(store, 20)
    settings = Settings(smtp=server.settings(connections=1), profiles=profiles)
    stop = threading.Event()

    def progress(state) -> None:
        if state.sent >= 3:
            stop.set()

    with pytest.raises(RunStopped):
        send_many(store, settings, profiles, now=NOW, stop=stop, progress=progress,
                  outbox_process=outbox_process)
    statuses = Counter(e.status for e in ledger(store))
    assert set(statuses) <= {"sent", "failed"}, statuses  # nothing left "sending"
    assert 3 <= statuses["sent"] < 20
    assert len(server.received) == statuses["sent"]

    later = send_many(store, settings, profiles, now=NOW + timedelta(minutes=5))
    assert len(later.sent) == 20 - statuses["sent"]
    counts = Counter(_recipients(server))
    assert sorted(counts) == sorted(p.email[0] for p in profiles)
    assert set(counts.values()) == {1}, counts


def _outbox_pid() -> int:
    """The outbox process this test process started (not multiprocessing's tracker)."""
    for pid in _children(os.getpid()):
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"spawn_main" in command and b"resource_tracker" not in command:
            return pid
    raise AssertionError("no outbox process")


def test_a_killed_outbox_process_stops_the_run_and_the_next_run_sends_the_rest(store, ca):
    """The outbox process dies mid-run (SIGKILL, as the OOM killer does): the run fails
    with one line, no claim is left held, and the next run sends everyone who was not
    sent; a digest whose payload had started goes once more at most, same Message-ID."""
    from paperdigest.outbox import OutboxDied

    with _serving(ca, SlowHandler()) as server:
        profiles = _readers(store, 20)
        settings = Settings(smtp=server.settings(connections=1), profiles=profiles)

        def progress(state) -> None:
            if state.sent == 3:
                os.kill(_outbox_pid(), signal.SIGKILL)

        with pytest.raises(OutboxDied, match="stopped unexpectedly"):
            send_many(store, settings, profiles, now=NOW, progress=progress,
                      outbox_process=True)
        statuses = Counter(e.status for e in ledger(store))
        assert set(statuses) <= {"sent", "failed", "maybe"}, statuses  # none held
        assert 3 <= statuses["sent"] < 20
        later = send_many(store, settings, profiles, now=NOW + timedelta(minutes=5))
        assert not later.failed, later.failed
    ids: dict[str, set[str]] = {}
    for received in server.received:
        ids.setdefault(received.recipients[0], set()).add(received.message["Message-ID"])
    assert sorted(ids) == sorted(p.email[0] for p in profiles)  # everyone got theirs
    assert all(len(one) == 1 for one in ids.values())  # a repeat carries the same id
    assert len(server.received) <= 20 + statuses["maybe"]
