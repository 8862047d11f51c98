"""Speed benchmark for issue 5: ingest, daily digests, arxiv-sanity-lite baseline, preview.

    python bench/speed.py [--data PATH] [--scale N] [--days 30] [--asl-days 5]

Progress goes to stderr; the last stdout line is one JSON object with the figures.
The data file is read from disk only (default: <repo>/../shared/data/...), never fetched.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import date
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "arxiv-listings-2025-2026.jsonl.gz"
PROFILE = "bench"
N_STARS = 20


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- the corpus ---------------------------------------------------------------------------


def _perturb(text: str, rng: random.Random) -> str:
    """Drop about one word in twenty and swap one neighbouring pair."""
    words = [w for w in text.split() if rng.random() > 0.05] or text.split()
    if len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def scaled(records: list, n: int) -> Iterator:
    """`n` records: the originals, then perturbed copies with distinct arXiv ids."""
    yield from records[:n]
    copy = 0
    produced = min(n, len(records))
    while produced < n:
        copy += 1
        for i, record in enumerate(records):
            if produced >= n:
                return
            rng = random.Random(copy * 1_000_003 + i)
            yield replace(
                record,
                arxiv_id=f"9{copy:03d}.{i:05d}",
                url=None,
                title=_perturb(record.title, rng),
                abstract=_perturb(record.abstract, rng),
            )
            produced += 1


def pick_stars(records: list, before: date) -> list[str]:
    """20 coherent stars: cs.CL papers about retrieval, listed before the replay."""
    pool = [
        r.arxiv_id
        for r in records
        if r.primary_category == "cs.CL"
        and "retriev" in r.title.lower()
        and r.published is not None
        and r.published < before
    ]
    if len(pool) < N_STARS:
        pool = [r.arxiv_id for r in records if r.published and r.published < before]
    step = max(1, len(pool) // N_STARS)
    return pool[::step][:N_STARS]


def star_all(store, arxiv_ids: list[str]) -> list[int]:
    pks = []
    for arxiv_id in arxiv_ids:
        paper = store.resolve(arxiv_id)
        store.star(PROFILE, paper)
        pks.append(paper.pk)
    return pks


# -- arxiv-sanity-lite ------------------------------------------------------------------


def asl_digest(db_dir: str, max_pk: int, star_pks: list[int], window_days: int) -> dict:
    """arxiv-sanity-lite's pipeline on the corpus up to `max_pk` (runs in a child process)."""
    import sqlite3
    from datetime import timedelta

    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    from paperdigest.store import DB_NAME

    conn = sqlite3.connect(Path(db_dir) / DB_NAME)
    start = time.perf_counter()
    rows = conn.execute(
        "SELECT pk, title, abstract, listed FROM papers WHERE pk <= ? ORDER BY pk", (max_pk,)
    ).fetchall()
    from arxiv_sanity_lite import SVM_PARAMS, VECTORIZER_PARAMS

    vectorizer = TfidfVectorizer(**VECTORIZER_PARAMS)
    x = vectorizer.fit_transform(f"{r[1]}. {r[2]}" for r in rows)
    pks = np.array([r[0] for r in rows])
    y = np.isin(pks, star_pks).astype(int)
    clf = LinearSVC(**SVM_PARAMS, max_iter=5000)
    clf.fit(x, y)
    listed = np.array([date.fromisoformat(r[3]) for r in rows])
    cutoff = listed.max() - timedelta(days=window_days)
    candidates = np.flatnonzero((listed >= cutoff) & (y == 0))
    scores = clf.decision_function(x[candidates])
    _ = candidates[np.argsort(-scores)[:10]]
    elapsed = time.perf_counter() - start
    return {"s": elapsed, "rss_mb": peak_rss_mb()}


# -- phases ------------------------------------------------------------------------------


def ingest_all(data: Path, records: list | None, n: int, work: Path) -> tuple[float, float]:
    from paperdigest.ingest import ingest_files
    from paperdigest.store import Store

    target = work / "full"
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    with Store.open(target) as store:
        if records is None:  # the real path: parse the file, merge record by record
            report = ingest_files(
                store,
                [data],
                on_progress=lambda p, d, t: log(f"ingest {d:,}/{t:,}"),
                today=date(2026, 11, 24),
            )
            stats = report.stats
        else:
            stats = store.ingest(
                scaled(records, n),
                today=date(2026, 11, 24),
                progress=lambda d: log(f"ingest {d:,}/{n:,}") if d % 50_000 == 0 else None,
            )
        elapsed = time.perf_counter() - start
        log(f"ingested {stats.new:,} new in {elapsed:.1f}s into {target}")
    return elapsed, peak_rss_mb()


def replay(
    records: list, n: int, work: Path, days: int, asl_days: int
) -> dict[str, object]:
    from paperdigest.corpus_index import open_index
    from paperdigest.service import build_digest
    from paperdigest.store import Store

    listing_days = sorted({r.published for r in records if r.published})
    replay_days = listing_days[-days:]
    first = replay_days[0]
    stars = pick_stars(records, first)
    by_day: dict[date, list] = {}
    for r in scaled(records, n):
        if r.published >= first:
            by_day.setdefault(r.published, []).append(r)
    target = work / "replay"
    shutil.rmtree(target, ignore_errors=True)
    store = Store.open(target)
    setup = time.perf_counter()
    store.ingest((r for r in scaled(records, n) if r.published < first),
                 today=date(2026, 11, 24),
                 progress=lambda d: log(f"replay setup ingest {d:,}") if d % 100_000 == 0 else None)
    records.clear()  # the bench's own copy is not part of the pipeline's memory
    gc.collect()
    log(f"replay store: {store.count_papers():,} papers before {first} "
        f"({time.perf_counter() - setup:.1f}s)")
    star_pks = star_all(store, stars)
    start = time.perf_counter()
    open_index(store, progress=log)
    index_build = time.perf_counter() - start
    log(f"initial index build {index_build:.1f}s, rss now {current_rss_mb():.0f} MB")
    digest_s: list[float] = []
    day_ingest_s: list[float] = []
    max_pks: list[int] = []
    for day in replay_days:
        t0 = time.perf_counter()
        store.ingest(by_day.get(day, []), today=day)
        day_ingest_s.append(time.perf_counter() - t0)
        max_pks.append(store.conn.execute("SELECT max(pk) FROM papers").fetchone()[0])
        t0 = time.perf_counter()
        digest = build_digest(store, PROFILE, day, picks=10, window_days=7, trending=5)
        digest_s.append(time.perf_counter() - t0)
        log(f"{day}: +{len(by_day.get(day, [])):,} papers, digest {digest_s[-1]:.3f}s "
            f"({digest.count} picks), rss {current_rss_mb():.0f} MB")
    store.close()
    ours_peak = peak_rss_mb()
    # arxiv-sanity-lite on some of the same days, each in a fresh child process whose memory
    # is reported apart from ours.
    chosen = sorted({round(i * (days - 1) / max(asl_days - 1, 1)) for i in range(asl_days)})
    asl_s: list[float] = []
    asl_rss: list[float] = []
    ctx = get_context("spawn")
    for i in chosen:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            result = pool.submit(asl_digest, str(target), max_pks[i], star_pks, 7).result()
        asl_s.append(result["s"])
        asl_rss.append(result["rss_mb"])
        log(f"asl {replay_days[i]}: {result['s']:.1f}s (ours {digest_s[i]:.3f}s), "
            f"child peak {result['rss_mb']:.0f} MB")
    return {
        "index_build_s": index_build,
        "digest_s": digest_s,
        "day_ingest_s": day_ingest_s,
        "asl_s": asl_s,
        "asl_peak_rss_mb": max(asl_rss) if asl_rss else None,
        "asl_days": [replay_days[i].isoformat() for i in chosen],
        "asl_ours_s": [digest_s[i] for i in chosen],
        "stars": stars,
        "peak_rss_mb": ours_peak,
    }


def preview_runs(work: Path, stars: list[str], runs: int) -> tuple[float, float]:
    """`paperdigest preview` as a whole process on the full store, after the stars exist.

    The first run builds the index cache (cold); the others reuse it (warm)."""
    from paperdigest.store import Store

    data_dir = work / "full"
    with Store.open(data_dir) as store:
        star_all(store, stars)
    exe = Path(sys.executable).with_name("paperdigest")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "paperdigest"]
    env = dict(os.environ, XDG_CONFIG_HOME=str(work / "xdg"), PAPERDIGEST_PROFILE=PROFILE)
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(
            [*command, "--data-dir", str(data_dir), "preview", "--profile", PROFILE],
            capture_output=True, text=True, env=env, check=False,
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"preview failed: {done.stderr[-2000:]}")
        log(f"preview run {i} ({'cold cache' if i == 0 else 'warm'}): {times[-1]:.2f}s")
    return times[0], statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--scale", type=int, default=None, help="grow the corpus to N papers")
    parser.add_argument("--days", type=int, default=30, help="listing days to replay")
    parser.add_argument("--asl-days", type=int, default=5,
                        help="how many of the replayed days to also run arxiv-sanity-lite on")
    parser.add_argument("--preview-runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="scratch dir (default: temp)")
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"no data file at {args.data}; pass --data PATH")
    work = args.work or Path(tempfile.mkdtemp(prefix="paperdigest-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"work dir {work}")

    from paperdigest.ingest import parse_file

    records: list | None = None
    if args.scale:
        t0 = time.perf_counter()
        records = parse_file(args.data).records
        n = args.scale
        log(f"parsed {len(records):,} records in {time.perf_counter() - t0:.1f}s; "
            f"scaling to {n:,}")
        ingest_s, ingest_rss = ingest_all(args.data, records, n, work)
    else:
        ingest_s, ingest_rss = ingest_all(args.data, None, 0, work)
        records = parse_file(args.data).records
        n = len(records)
    log(f"peak RSS after ingest {ingest_rss:.0f} MB")
    result = replay(records, n, work, args.days, args.asl_days)
    stars = result["stars"]
    del records
    preview_cold, preview_warm = preview_runs(work, stars, args.preview_runs)
    digest = result["digest_s"]
    asl = result["asl_s"]
    ours_same_days = statistics.median(result["asl_ours_s"]) if asl else None
    summary = {
        "papers": n,
        "ingest_s": round(ingest_s, 2),
        "index_build_s": round(result["index_build_s"], 2),
        "digest_median_s": round(statistics.median(digest), 4),
        "digest_max_s": round(max(digest), 4),
        "asl_digest_median_s": round(statistics.median(asl), 2) if asl else None,
        "asl_ratio": round(statistics.median(asl) / ours_same_days, 1) if asl else None,
        "asl_days_timed": len(asl),
        "asl_peak_rss_mb": round(result["asl_peak_rss_mb"] or 0),
        "preview_s": round(preview_warm, 2),
        "preview_cold_s": round(preview_cold, 2),
        "peak_rss_mb": round(max(ingest_rss, result["peak_rss_mb"])),
    }
    if asl:
        log(f"arxiv-sanity-lite / ours on the same days: {summary['asl_ratio']}x")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
