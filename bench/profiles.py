"""Benchmark for issue 15: `send --all` for N readers on one machine.

    python bench/profiles.py --profiles N [--data PATH] [--work DIR] [--single 40]

Loads the arXiv corpus once into a work dir (kept between runs with --work), gives N
profiles 20 random stars each (straight into the stars table) and writes a config with N
[[profiles]] entries (its load time is measured), then, in a fresh process (so its peak
RSS is the send's own), runs the real batched `send --all` path (bulk.send_many) into a
local SMTP server in another process that counts messages, runs it a second time (it must
send none), then runs the next day (each digest covers what was listed since the first),
and times the one-profile-at-a-time path (delivery.send_digests per profile) on --single
extra profiles in the same process. Progress goes to stderr; the last stdout
line is JSON:

    {"profiles": N, "seconds": ..., "ms_per_profile": ..., "ratio_vs_single": ...,
     "msgs_per_s": ..., "peak_rss_mb": ..., "delivered": ...}
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_DATA = Path("shared") / "data" / "arxiv-listings-2025-2026.jsonl.gz"
# ../shared/data beside the checkout; a git worktree one level deeper looks one further up.
DEFAULT_DATA = next(
    (up / _DATA for up in (REPO.parent, REPO.parent.parent) if (up / _DATA).is_file()),
    REPO.parent / _DATA,
)
N_STARS = 20
# The first digest on the corpus's last listing day (its window: the 7 days up to it),
# then the next day's (the papers listed since the first one, less what it showed).
NOW = datetime(2026, 6, 30, 7, 0, tzinfo=UTC)
NEXT = NOW + timedelta(days=1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def children_peak_rss_mb() -> float:
    """The largest finished child's peak (the outbox process of a big run)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# -- the counting SMTP server (its own process: it must not share our GIL) ----------------


def _serve(port: int, count, ready) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Counter:
        async def handle_DATA(self, server, session, envelope) -> str:
            with count.get_lock():
                count.value += len(envelope.rcpt_tos)
            return "250 2.0.0 OK"

    controller = Controller(Counter(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        asyncio.run(asyncio.sleep(10**9))
    finally:
        controller.stop()


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds a process has used so far (Linux /proc), else None."""
    from paperdigest.ledger import stat_fields

    fields = stat_fields(pid)  # from /proc/PID/stat's state on: utime, stime at 11, 12
    if len(fields) <= 12:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- setup ------------------------------------------------------------------------------


def setup_corpus(data: Path, db_dir: Path) -> None:
    """Ingest the corpus and build the index once; later runs with --work reuse them."""
    from paperdigest.corpus_index import open_index
    from paperdigest.ingest import ingest_files
    from paperdigest.store import Store

    marker = db_dir / "corpus-ready"
    if marker.exists():
        log(f"reusing the corpus in {db_dir}")
        return
    t0 = time.perf_counter()
    with Store.open(db_dir) as store:
        report = ingest_files(store, [data], today=date(2026, 7, 1),
                              on_progress=lambda p, d, t: log(f"ingest {d:,}/{t:,}"))
        log(f"ingested {report.stats.new:,} papers in {time.perf_counter() - t0:.0f}s")
        t0 = time.perf_counter()
        open_index(store, lambda m: log(f"index: {m}"))
        log(f"built the index in {time.perf_counter() - t0:.0f}s")
    marker.write_text("ok\n")


def make_profiles(db_dir: Path, names: list[str], seed: int) -> None:
    """20 random stars per profile, written straight into the stars table (fresh ledger)."""
    from paperdigest.store import Store

    rng = random.Random(seed)
    with Store.open(db_dir) as store, store.transaction() as conn:
        for table in ("stars", "dismissals", "digest_items", "digest_copies", "digests"):
            conn.execute(f"DELETE FROM {table}")
        pks = [pk for (pk,) in conn.execute("SELECT pk FROM papers")]
        conn.executemany(
            "INSERT INTO stars(profile, paper_pk, starred_at) VALUES (?, ?, ?)",
            (
                (name, pk, "2026-06-01T00:00:00+00:00")
                for name in names
                for pk in rng.sample(pks, N_STARS)
            ),
        )


def write_config(
    path: Path, port: int, names: list[str], connections: int, links: bool = True
) -> None:
    lines = [
        "[smtp]", 'host = "127.0.0.1"', f"port = {port}", 'security = "none"',
        'sender = "digest@bench.invalid"', "retries = 2", "backoff = 0.1",
        f"connections = {connections}", "", "[digest]", "trending = 0", "",
    ]
    if links:  # signed links in every message, as a deployment with `serve` sends them
        lines += ["[web]", 'base_url = "https://papers.bench.invalid"', ""]
    for name in names:
        lines += ["[[profiles]]", f'name = "{name}"', f'email = "{name}@bench.invalid"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- the measured run (a fresh process) ---------------------------------------------------


def measure(config: Path, db_dir: Path, n: int, n_single: int, port: int) -> dict:
    from paperdigest.bulk import send_many
    from paperdigest.config import load_settings
    from paperdigest.corpus_index import open_index
    from paperdigest.delivery import send_digests
    from paperdigest.store import Store

    t0 = time.perf_counter()
    settings = load_settings(config)
    config_s = time.perf_counter() - t0
    log(f"config with {len(settings.profiles):,} profiles loaded in {config_s:.2f}s")
    batch, single = settings.profiles[:n], settings.profiles[n:]
    with Store.open(db_dir) as store:
        t0 = time.perf_counter()
        open_index(store)
        index_s = time.perf_counter() - t0
        log(f"index opened in {index_s:.2f}s")
        step = max(1, n // 10)

        def progress(state) -> None:
            if state.done % step == 0:
                log(f"{state.done:,}/{state.total:,} ({state.sent:,} sent), "
                    f"{(time.perf_counter() - t0) / state.done * 1000:.1f} ms a profile so "
                    f"far, peak RSS {peak_rss_mb():.0f} MB")

        t0, cpu0 = time.perf_counter(), cpu_s()
        report = send_many(store, settings, batch, now=NOW, progress=progress)
        seconds = time.perf_counter() - t0 + config_s + index_s
        # CPU time, this process and its outbox process: what the shared machine's load
        # does not inflate as much as the wall clock.
        batch_cpu = cpu_s() - cpu0 + cpu_s(resource.RUSAGE_CHILDREN)
        outbox_cpu = cpu_s(resource.RUSAGE_CHILDREN)
        log(f"batch: {report.summary()} in {seconds:.1f}s")
        t0 = time.perf_counter()
        again = send_many(store, settings, batch, now=NOW)
        second_s = time.perf_counter() - t0
        log(f"second run: {again.summary()} in {second_s:.1f}s")
        t0 = time.perf_counter()
        following = send_many(store, settings, batch, now=NEXT)
        next_s = time.perf_counter() - t0
        log(f"next day: {following.summary()} in {next_s:.1f}s "
            f"({next_s / max(1, n) * 1000:.1f} ms a profile)")

        t0, cpu0 = time.perf_counter(), cpu_s()
        single_sent = 0
        for profile in single:  # the one-profile path: claim, rank, render, connect, send
            single_sent += len(send_digests(store, settings, [profile], now=NOW).sent)
        single_ms = (time.perf_counter() - t0) / max(1, len(single)) * 1000
        single_cpu_ms = (cpu_s() - cpu0) / max(1, len(single)) * 1000
        log(f"one profile at a time: {single_ms:.1f} ms a profile on {len(single)}")
    stages = {k: round(v / max(1, n) * 1000, 2) for k, v in report.seconds.items()}
    ms = seconds / max(1, n) * 1000
    return {
        "sent": len(report.sent), "failed": len(report.failed),
        "second_run_sent": len(again.sent), "second_run_s": round(second_s, 2),
        "config_load_s": round(config_s, 2), "index_open_s": round(index_s, 2),
        "stage_ms_per_profile": stages, "single_ms_per_profile": round(single_ms, 1),
        "single_sent": single_sent,
        "next_day_sent": len(following.sent), "next_day_s": round(next_s, 1),
        "next_day_ms_per_profile": round(next_s / max(1, n) * 1000, 2),
        "cpu_ms_per_profile": round(batch_cpu / max(1, n) * 1000, 2),
        "outbox_cpu_ms_per_profile": round(outbox_cpu / max(1, n) * 1000, 2),
        "single_cpu_ms_per_profile": round(single_cpu_ms, 1),
        "seconds": round(seconds, 1), "ms_per_profile": round(ms, 2),
        "ratio_vs_single": round(single_ms / ms, 1) if ms else None,
        "peak_rss_mb": round(peak_rss_mb()),
        # The send process and its outbox process together (an upper bound: two peaks).
        "peak_rss_with_outbox_mb": round(peak_rss_mb() + children_peak_rss_mb()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="scratch dir (kept: reused)")
    parser.add_argument("--single", type=int, default=40,
                        help="extra profiles sent one at a time, for the ratio")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--no-links", action="store_true",
                        help="mail without web.base_url (no signed links), as before issue 13")
    parser.add_argument("--measure", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # the child process
        config, db_dir, n, n_single, port = args.measure
        print(json.dumps(measure(Path(config), Path(db_dir), int(n), int(n_single), int(port))))
        return
    if not args.data.is_file():
        raise SystemExit(f"no data file at {args.data}; pass --data PATH")
    work = args.work or Path(tempfile.mkdtemp(prefix="paperdigest-profiles-"))
    db_dir = work / "data"
    db_dir.mkdir(parents=True, exist_ok=True)
    log(f"work dir {work}")
    setup_corpus(args.data, db_dir)
    n = args.profiles
    names = [f"reader{i:06d}" for i in range(n + args.single)]
    t0 = time.perf_counter()
    make_profiles(db_dir, names, args.seed)
    log(f"{len(names):,} profiles with {N_STARS} stars each in {time.perf_counter() - t0:.1f}s")

    port = free_port()
    config = work / "config.toml"
    write_config(config, port, names, args.connections, links=not args.no_links)
    count = multiprocessing.Value("q", 0)
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, count, ready), daemon=True)
    server.start()
    ready.wait(30)
    server_cpu0 = process_cpu_s(server.pid)
    try:
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(config), str(db_dir), str(n),
             str(args.single), str(port)],
            stdout=subprocess.PIPE, text=True, check=True,
        )
    finally:
        time.sleep(0.2)
        delivered_total = count.value
        server_cpu = process_cpu_s(server.pid)
        server.terminate()
    result = json.loads(child.stdout.strip().splitlines()[-1])
    delivered = delivered_total - result["single_sent"] - result["next_day_sent"]
    result["delivered"] = delivered
    if server_cpu is not None and server_cpu0 is not None and delivered_total:
        # What the counting SMTP server itself costs a message: it shares the two cores.
        result["smtp_server_cpu_ms_per_message"] = round(
            (server_cpu - server_cpu0) / delivered_total * 1000, 2)
    result["msgs_per_s"] = round(delivered / result["seconds"], 1) if result["seconds"] else 0
    log(json.dumps(result))
    print(json.dumps({
        "profiles": n,
        "seconds": result["seconds"],
        "ms_per_profile": result["ms_per_profile"],
        "ratio_vs_single": result["ratio_vs_single"],
        "msgs_per_s": result["msgs_per_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "delivered": delivered,
    }))


if __name__ == "__main__":
    main()
