"""Fault injection for issue 12: does each profile get exactly one digest a day?

    python bench/faults.py [--outage 35] [--only NAME]

Replays, against a real SMTP server on localhost (tests/smtp_faults.py) and real
`paperdigest` processes, the faults a daemon running for months meets: kill -9 mid-send
then a restart, an SMTP outage at send time, a server answering after the client's
timeout, a database write failing after the server accepted, two sends at once, SIGTERM
during a source refresh. Prints a
table: scenario, messages delivered, distinct Message-IDs, expected. Run by hand (about
two minutes, most of it the outage), not in CI; nothing reaches the network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from tests.mail_fixtures import write_config  # noqa: E402
from tests.smtp_faults import FaultServer  # noqa: E402

from paperdigest.ingest import ensure_seeded  # noqa: E402
from paperdigest.store import DB_NAME, Store  # noqa: E402

ADA = {"name": "ada", "email": "ada@example.com"}
CLI = [sys.executable, "-c", "from paperdigest.cli import main; main()"]
WAIT = 120.0
FAILING_DISK = """
CREATE TEMP TRIGGER disk_full BEFORE UPDATE OF status ON digests
WHEN new.status = 'sent' BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;
"""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    scenario: str
    delivered: int
    message_ids: int
    expected: str
    ok: bool


class World:
    """A seeded data dir, a config and a fault server for one scenario."""

    def __init__(self, root: Path, seeded: Path, name: str, **smtp: object) -> None:
        self.dir = root / name
        self.data = self.dir / "data"
        self.data.mkdir(parents=True)
        shutil.copy(seeded, self.data / DB_NAME)
        self.server = FaultServer()
        now = datetime.now(UTC)
        self.config = write_config(
            self.dir / "config.toml", self.server.settings(**smtp), [ADA],
            send_time=f"{now:%H:%M}", timezone="UTC", catchup_hours=1,
        )
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
            "PAPERDIGEST_DATA_DIR": str(self.data),
            "PAPERDIGEST_SOURCES__HF__ENABLED": "false",
        }

    def send(self) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "--config", str(self.config), "send"], env=self.env,
                              capture_output=True, text=True, timeout=WAIT)

    def daemon(self) -> Daemon:
        return Daemon(subprocess.Popen(
            [*CLI, "--config", str(self.config), "run"], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))

    def row(self, scenario: str, expected: int, ids: int = 1) -> Row:
        got = self.server.message_ids()
        return Row(scenario, len(got), len(set(got)),
                   f"{expected} ({ids} Message-ID)" if expected else "0", len(got) == expected
                   and len(set(got)) == ids)


class Daemon:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.text = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self.lock:
                self.text += line

    def wait_for(self, needle: str) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self.lock:
                if needle in self.text:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the daemon never logged {needle!r}:\n{self.text}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(WAIT)


def kill_before_payload(world: World) -> Row:
    world.server.handler.hold_at_mail = True
    first = world.daemon()
    world.server.handler.held.wait(WAIT)
    first.stop(signal.SIGKILL)
    world.server.handler.hold_at_mail = False
    world.server.handler.release.set()
    second = world.daemon()
    second.wait_for("digest sent")
    second.stop()
    world.send()  # one more run, as cron would: must send nothing
    return world.row("kill -9 before the message went out, then restart", 1)


def kill_after_payload(world: World) -> Row:
    world.server.handler.hold_answer = True
    first = world.daemon()
    world.server.handler.stored.wait(WAIT)
    first.stop(signal.SIGKILL)
    world.server.handler.hold_answer = False
    world.server.handler.release.set()
    second = world.daemon()
    second.wait_for("digest sent")
    second.stop()
    world.send()
    return world.row("kill -9 after the server stored it, before its answer; restart", 2)


def outage(world: World, seconds: float) -> Row:
    daemon = world.daemon()  # the server is down: connections are refused
    time.sleep(seconds)
    world.server.start()
    daemon.wait_for("digest sent")
    daemon.stop()
    attempts = daemon.text.count("did not send")
    world.send()
    row = world.row(f"{seconds:g} s SMTP outage at send time, daemon retrying", 1)
    row.scenario += f" ({attempts} failed runs)"
    return row


def late_answer(world: World) -> Row:
    world.server.handler.answer_after = 10  # stores it, answers after the 2 s timeout
    for _ in range(4):  # cron running `send` again and again
        world.send()
    return world.row("server answers after the client timeout; 4 runs of send", 2)


def late_then_quick(world: World) -> Row:
    world.server.handler.answer_after = 10
    world.send()
    world.server.handler.answer_after = None
    for _ in range(3):
        world.send()
    return world.row("one late answer, then a quick server; 4 runs of send", 2)


def _send_with_failing_disk(world: World) -> str:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from paperdigest.config import load_settings
        from paperdigest.delivery import send_digests
        from paperdigest.store import Store
        settings = load_settings(Path({str(world.config)!r}))
        with Store.open(Path({str(world.data)!r})) as store:
            store.conn.executescript({FAILING_DISK!r})
            first = send_digests(store, settings, settings.profiles)
            {{again}}
    """)
    return script


def db_failure_exit(world: World) -> Row:
    script = _send_with_failing_disk(world).replace("{again}", "pass")
    subprocess.run([sys.executable, "-c", script], env=world.env, capture_output=True,
                   timeout=WAIT)
    for _ in range(3):
        world.send()
    return world.row("'sent' not written after the 250 (disk full), process exits", 2)


def db_failure_live(world: World) -> Row:
    again = ("store.conn.execute('DROP TRIGGER disk_full'); "
             "send_digests(store, settings, settings.profiles)")
    script = _send_with_failing_disk(world).replace("{again}", again)
    subprocess.run([sys.executable, "-c", script], env=world.env, capture_output=True,
                   timeout=WAIT)
    for _ in range(2):
        world.send()
    return world.row("'sent' not written after the 250, same process tries again", 1)


def concurrent(world: World) -> Row:
    runs = [subprocess.Popen([*CLI, "--config", str(world.config), "send"], env=world.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(2)]
    for run in runs:
        run.wait(WAIT)
    return world.row("two sends at once", 1)


def sigterm_in_refresh(world: World) -> Row:
    silent = socket.socket()  # a source that takes the request and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    world.env["PAPERDIGEST_SOURCES__HF__ENABLED"] = "true"
    world.env["PAPERDIGEST_SOURCES__HF__BASE_URL"] = f"http://127.0.0.1:{silent.getsockname()[1]}"
    daemon = world.daemon()  # sources.timeout, retries and backoff at their defaults
    conn, _ = silent.accept()
    conn.recv(65536)
    started = time.monotonic()
    daemon.stop(signal.SIGTERM)
    took = time.monotonic() - started
    conn.close()
    silent.close()
    row = world.row(f"SIGTERM during a source refresh (default timeouts): exited in "
                    f"{took:.1f} s, code {daemon.proc.returncode}", 0, 0)
    row.ok = row.ok and daemon.proc.returncode == 0
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=35.0, help="seconds the server is down")
    parser.add_argument("--only", help="run only scenarios whose function name has this")
    args = parser.parse_args()

    scenarios: list[tuple[str, dict[str, object], Callable[[World], Row]]] = [
        ("kill_before_payload", {}, kill_before_payload),
        ("kill_after_payload", {"timeout": 120}, kill_after_payload),
        ("outage", {"retries": 1, "backoff": 5},
         lambda world: outage(world, args.outage)),
        ("late_answer", {"timeout": 2}, late_answer),
        ("late_then_quick", {"timeout": 2}, late_then_quick),
        ("db_failure_exit", {}, db_failure_exit),
        ("db_failure_live", {}, db_failure_live),
        ("concurrent", {}, concurrent),
        ("sigterm_in_refresh", {}, sigterm_in_refresh),
    ]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="paperdigest-faults-") as tmp:
        root = Path(tmp)
        log("seeding a database")
        with Store.open(root / "seeded") as store:
            ensure_seeded(store)
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        seeded = root / "seeded" / DB_NAME
        for name, smtp, run in scenarios:
            if args.only and args.only not in name:
                continue
            log(name)
            world = World(root, seeded, name, **smtp)
            if name != "outage":
                world.server.start()
            try:
                rows.append(run(world))
            finally:
                world.server.handler.release.set()
                world.server.stop()
            log(f"{name}: {rows[-1]}")
    print(f"Fault injection, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| scenario | delivered | Message-IDs | expected | ok |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row.scenario} | {row.delivered} | {row.message_ids} | {row.expected} | "
              f"{'yes' if row.ok else 'NO'} |")


if __name__ == "__main__":
    main()
