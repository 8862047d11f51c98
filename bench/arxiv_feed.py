"""What following arXiv categories costs (issue 16): papers a day, and parse + store time.

    python bench/arxiv_feed.py [--data PATH] [--repeat 5]

1. Papers a day per category, counted in the listings file (default
   <repo>/../shared/data/arxiv-listings-2025-2026.jsonl.gz).
2. Parse + store of a real-sized day: the 530 papers arXiv listed on 2026-06-30 (the test
   sample, tests/fixtures/arxiv/), written as the announcement feed the tests serve, parsed
   with parse_arxiv_rss and stored with Store.ingest: into an empty store, and into one that
   already holds the whole listings file. Also the largest feed arXiv sends (2,000 items).

Progress goes to stderr; the last stdout line is one JSON object with the figures.
Nothing is fetched: the feeds are built in memory.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "arxiv-listings-2025-2026.jsonl.gz"
for path in (REPO / "src", REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.arxiv_feeds import items_for, papers, rss_feed  # noqa: E402

from paperdigest.models import PaperRecord  # noqa: E402
from paperdigest.parsers.arxiv_rss import parse_arxiv_rss  # noqa: E402
from paperdigest.store import Store  # noqa: E402

DAY = date(2026, 6, 30)
DAY_CATEGORIES = ["cs.CV", "cs.CL", "cs.AI", "cs.IT", "cs.GT", "cs.CE", "cs.GR"]
CAP_CATEGORIES = ["cs.CV", "cs.CL", "cs.AI", "cs.IT"]
WATCHED = ("cs.LG", "cs.CV", "cs.CL", "cs.AI")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def per_day(data: Path) -> tuple[dict[str, dict[str, float]], list[dict]]:
    counts = {category: Counter() for category in WATCHED}
    primary_lg: Counter[str] = Counter()
    days: set[str] = set()
    rows: list[dict] = []
    with gzip.open(data, "rt", encoding="utf-8") as lines:
        for line in lines:
            paper = json.loads(line)
            rows.append(paper)
            day = paper["listing_date"]
            days.add(day)
            for category in WATCHED:
                if category in paper["categories"]:
                    counts[category][day] += 1
            if paper["primary"] == "cs.LG":
                primary_lg[day] += 1
    figures: dict[str, dict[str, float]] = {}
    for category, by_day in [*counts.items(), ("cs.LG primary", primary_lg)]:
        values = sorted(by_day.get(day, 0) for day in days)
        figures[category] = {
            "days": len(values),
            "median": statistics.median(values),
            "mean": round(statistics.fmean(values), 1),
            "p90": values[int(0.9 * (len(values) - 1))],
            "max": values[-1],
        }
    return figures, rows


def timed(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def store_time(records: list[PaperRecord], preload: list[dict] | None) -> float:
    with tempfile.TemporaryDirectory() as directory, Store.open(Path(directory)) as store:
        if preload:
            store.ingest(
                PaperRecord(title=p["title"], abstract=p["abstract"], arxiv_id=p["id"],
                            categories=tuple(p["categories"]), source="file")
                for p in preload
                if p["listing_date"] < "2026-06-30"  # the day itself arrives by the feed
            )
        start = time.perf_counter()
        stats = store.ingest(records)
        elapsed = time.perf_counter() - start
        assert stats.new == len(records), stats
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    log(f"counting papers a day in {args.data}")
    counts, rows = per_day(args.data)
    for category, figures in counts.items():
        print(f"{category:14} papers a listing day: {figures}")

    day_feed = rss_feed(DAY_CATEGORIES, DAY, items_for(DAY_CATEGORIES, papers("2026-06-30")))
    cap_feed = rss_feed(CAP_CATEGORIES, DAY, items_for(CAP_CATEGORIES, papers())[:2000])
    parsed = parse_arxiv_rss(day_feed, "bench")
    records = parsed.new.records
    log(f"parsing the {len(records)}-paper feed of {DAY} ({len(day_feed):,} bytes)")
    parse_day = timed(args.repeat, lambda: parse_arxiv_rss(day_feed, "bench"))
    parse_cap = timed(args.repeat, lambda: parse_arxiv_rss(cap_feed, "bench"))
    log("storing it into an empty store")
    store_empty = statistics.median(store_time(records, None) for _ in range(args.repeat))
    log(f"storing it into a store holding {len(rows):,} papers")
    store_full = store_time(records, rows)
    figures = {
        "papers_per_day": counts,
        "day_papers": len(records),
        "day_feed_bytes": len(day_feed),
        "parse_day_s": round(parse_day, 3),
        "parse_2000_items_s": round(parse_cap, 3),
        "store_day_empty_s": round(store_empty, 3),
        "store_day_into_full_store_s": round(store_full, 3),
    }
    print(f"{len(records)}-paper day: parse {parse_day:.2f} s, store {store_empty:.2f} s "
          f"(empty store) / {store_full:.2f} s (store of {len(rows):,}); "
          f"2,000-item feed: parse {parse_cap:.2f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
