"""Hostile or broken input costs one item, never a run, a digest or memory (issue 12)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from paperdigest import store as store_module
from paperdigest.ingest import parse_file
from paperdigest.models import PaperRecord
from paperdigest.parsers.arxiv import parse_arxiv_feed
from paperdigest.parsers.hf import parse_hf_daily
from paperdigest.parsers.text import (
    MAX_ABSTRACT_CHARS,
    MAX_TITLE_CHARS,
    clamp_dates,
    safe_record,
)
from paperdigest.recommend import eligible_day_rows
from paperdigest.store import Store

ABSTRACT = "We study sparse training of large language models and show it works. " * 3


def _jsonl(path: Path, *objects: object) -> Path:
    path.write_text("\n".join(json.dumps(o) for o in objects) + "\n", encoding="utf-8")
    return path


# -- text made safe once, for every source ---------------------------------------------


def test_every_string_of_a_record_is_made_safe_and_capped() -> None:
    record = PaperRecord(
        title="Evil \x1b]0;owned\x07title \ud800 " + "x" * 5000,
        abstract="line one\nline\ttwo\x00\x1b[2J" + "y" * 50_000,
        authors=("Ada\x1b[31m", "\x07", "B" * 1000),
        url="javascript:alert(1)\n",
        listed_label="Mar\x1b 11",
        ai_summary="\ud83d alone",
        organization="Org\x1b]8;;http://evil\x07",
        arxiv_comment="12 pages\x00, " + "c" * 5000,
        ai_keywords=("\x1b[2J", "sparse\x9b"),
        hf_page="https://huggingface.co/papers/1 x",
    )
    safe = safe_record(record)
    assert safe.title.startswith("Evil ]0;ownedtitle \ufffd x")
    assert len(safe.title) == MAX_TITLE_CHARS and safe.title.endswith("…")
    assert safe.abstract.startswith("line one\nline\ttwo")  # newline and tab are kept
    assert "\x00" not in safe.abstract and "\x1b" not in safe.abstract
    assert len(safe.abstract) == MAX_ABSTRACT_CHARS
    assert safe.authors[0] == "Ada[31m" and len(safe.authors) == 2  # "\x07" was nothing
    assert len(safe.authors[1]) <= 300
    assert safe.listed_label == "Mar 11"
    assert safe.ai_summary == "\ufffd alone"
    assert safe.organization == "Org]8;;http://evil"
    assert safe.arxiv_comment is not None and len(safe.arxiv_comment) == 1_000
    assert safe.arxiv_comment.startswith("12 pages, c")
    assert safe.ai_keywords == ("[2J", "sparse")
    assert safe.hf_page is None  # a link with a space in it is no link


@pytest.mark.parametrize("source", ["jsonl", "seed", "hf", "arxiv"])
def test_a_lone_surrogate_or_escape_from_any_source_is_stored_safely(
    source: str, store: Store, tmp_path: Path
) -> None:
    title = "Hostile \x1b[2J Title \ud800 Sparse Pruning"
    if source == "jsonl":
        # JSON escapes are how a lone surrogate arrives: the file itself is valid UTF-8.
        path = tmp_path / "p.jsonl"
        path.write_text(json.dumps({"title": title, "abstract": ABSTRACT}) + "\n")
        records = parse_file(path).records
    elif source == "seed":
        path = tmp_path / "dump.txt"
        path.write_text(f"Hostile \x1b[2J Title Sparse Pruning\n{ABSTRACT}\n")
        records = parse_file(path).records
    elif source == "hf":
        item = {"paper": {"id": "2611.00001", "title": title, "summary": ABSTRACT,
                          "authors": [{"name": "Ada"}]}, "publishedAt": "2026-11-30"}
        records = parse_hf_daily(json.dumps([item]).encode(), "hf").records
    else:
        fixture = Path(__file__).parent / "fixtures/sources/arxiv_id_astro-ph_0601001.xml"
        feed = fixture.read_text()
        start = feed.index("<title>", feed.index("<entry>")) + len("<title>")
        end = feed.index("</title>", start)
        # XML cannot carry ESC at all, but it can carry C1 controls such as CSI (U+009B).
        hostile = feed[:start] + "Hostile &#155;2J Title Sparse Pruning" + feed[end:]
        records = parse_arxiv_feed(hostile.encode(), "arxiv").records
    assert records
    before = store.count_papers()
    store.ingest(records)  # one bad string once rolled back the whole file or day
    assert store.count_papers() == before + len(records)
    (paper, _), *_ = store.search("hostile sparse pruning")
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in paper.title)
    assert "\ud800" not in paper.title
    assert paper.title.startswith("Hostile")


def test_a_ten_megabyte_title_is_capped_before_it_reaches_a_digest(
    store: Store, tmp_path: Path
) -> None:
    path = _jsonl(tmp_path / "big.jsonl", {"title": "Huge " * 2_000_000, "abstract": "a" * 10**6})
    store.ingest(parse_file(path).records)
    row = store.conn.execute(
        "SELECT length(title), length(abstract) FROM papers WHERE title LIKE 'Huge Huge%'"
    ).fetchone()
    assert tuple(row) == (MAX_TITLE_CHARS, MAX_ABSTRACT_CHARS)


# -- dates in the future ----------------------------------------------------------------


def test_future_dates_are_clamped_to_the_day_seen_and_reported() -> None:
    today = date(2026, 12, 1)
    record = PaperRecord("Far Future", "x", published=date(9999, 12, 31),
                         listed=date(2027, 1, 1), updated=date(2026, 11, 30))
    clamped, warning = clamp_dates(record, today)
    assert (clamped.published, clamped.listed, clamped.updated) == (
        today, today, date(2026, 11, 30)
    )
    assert warning is not None and "Far Future" in warning and "9999-12-31" in warning
    assert clamp_dates(clamped, today) == (clamped, None)


def test_the_candidate_window_ends_today_whatever_the_newest_date() -> None:
    today = date(2026, 12, 1).toordinal()
    days = np.array([today - 30, today - 6, today - 1, today, date.max.toordinal()])
    # A 9999-12-31 paper neither empties the window nor narrows it to itself.
    assert eligible_day_rows(days, [], 7, today).tolist() == [1, 2, 3, 4]
    # A store not refreshed for a month still has the week before its newest paper.
    stale = np.array([today - 40, today - 33, today - 30])
    assert eligible_day_rows(stale, [], 7, today).tolist() == [1, 2]


def test_a_paper_dated_9999_does_not_shrink_later_digests(
    data_dir: Path, tmp_path: Path, cli
) -> None:
    today = date.today()
    week = [
        {"title": f"Sparse pruning of transformer layers study {i}", "abstract": ABSTRACT,
         "published": (today - timedelta(days=i % 5)).isoformat()}
        for i in range(30)
    ]
    assert cli("ingest", str(_jsonl(tmp_path / "week.jsonl", *week))).exit_code == 0
    assert cli("star", "Sparse pruning of transformer layers study 0").exit_code == 0
    before = json.loads(cli("recommend", "--json", "--limit", "20").stdout)
    assert len(before) == 20

    future = _jsonl(tmp_path / "future.jsonl", {"title": "Doomsday paper on sparse pruning",
                                                "abstract": ABSTRACT,
                                                "published": "9999-12-31"})
    result = cli("ingest", str(future))
    assert result.exit_code == 0
    assert "Doomsday paper on sparse pruning" in result.stderr
    assert "9999-12-31" in result.stderr and today.isoformat() in result.stderr
    after = json.loads(cli("recommend", "--json", "--limit", "20").stdout)
    assert len(after) == 20  # once cut to the one future paper
    with Store.open(data_dir) as store:
        (listed,) = store.conn.execute(
            "SELECT listed FROM papers WHERE title LIKE 'Doomsday%'"
        ).fetchone()
    assert listed == today.isoformat()


# -- a bad line costs one line ----------------------------------------------------------


def test_a_bad_byte_or_a_nul_costs_one_line(tmp_path: Path) -> None:
    good = [json.dumps({"title": f"Paper {i}", "abstract": "x"}).encode() for i in range(6)]
    lines = [good[0], b'{"title": "Bad \xff byte"}', good[1], b'{"title": "N\x00UL"}',
             *good[2:]]
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = parse_file(path)
    assert [r.title for r in result.records] == [f"Paper {i}" for i in range(6)]
    assert [str(p) for p in result.problems] == [
        f"{path}:2: not UTF-8 text (byte 16); skipped",
        f"{path}:4: a NUL byte in the line; skipped",
    ]


def test_a_json_array_file_gets_one_message(tmp_path: Path) -> None:
    papers = [{"title": f"Paper {i}", "abstract": "x"} for i in range(10)]
    pretty = tmp_path / "saved.json"
    pretty.write_text(json.dumps(papers, indent=2))
    result = parse_file(pretty)
    assert result.records == []
    assert [str(p) for p in result.problems] == [
        f"{pretty}: a JSON array of 10 paper objects, not JSON Lines; write one object per "
        "line (for example with `jq -c '.[]'`) and ingest that; skipped"
    ]
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text("[1, 2,\n 3]\n")
    assert [p.message for p in parse_file(numbers).problems] == [
        "a JSON array, not JSON Lines (one object per line); skipped"
    ]


def test_deeply_nested_json_is_one_problem_not_a_traceback(
    data_dir: Path, tmp_path: Path, cli
) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "\n" + json.dumps({"title": "Fine", "abstract": "x"}) + "\n"
                    + '{"a": ' * 100_000 + "\n")
    result = parse_file(path)
    # The first line opens an array: one message for the file.
    assert "JSON array" in str(result.problems[0])
    path.write_text(json.dumps({"title": "Fine", "abstract": "x"}) + "\n" + '{"a": ' * 100_000
                    + "\n")
    result = cli("ingest", str(path))
    assert result.exit_code == 0
    assert f"{path}:2: JSON nested too deeply; skipped" in result.stderr
    assert "1 new" in result.stdout
    nested = parse_hf_daily(b"[" * 100_000, "hf day")
    assert [p.message for p in nested.problems] == ["JSON nested too deeply; skipped"]


# -- compressed files --------------------------------------------------------------------


def test_a_corrupt_gz_is_one_line_and_keeps_what_came_before(
    data_dir: Path, tmp_path: Path, cli
) -> None:
    body = "".join(json.dumps({"title": f"Zipped paper {i}", "abstract": "x"}) + "\n"
                   for i in range(2000)).encode()
    packed = gzip.compress(body)
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    result = parse_file(truncated)
    assert 0 < len(result.records) < 2000
    assert [p.message for p in result.problems] == [
        "not a valid gzip file (Compressed file ended before the end-of-stream marker was "
        "reached); stopped there"
    ]
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(packed[:20] + b"\x00" * 64 + packed[84:])
    out = cli("ingest", str(garbage))
    assert out.exit_code == 1
    assert "not a valid gzip file" in out.stderr and "Traceback" not in out.stderr


def test_decompressed_size_is_capped_and_memory_stays_small(tmp_path: Path) -> None:
    path = tmp_path / "spaces.jsonl.gz"
    # 256 MiB of spaces in one line, about 256 KB compressed.
    with gzip.open(path, "wb", compresslevel=9) as out:
        block = b" " * 2**20
        for _ in range(256):
            out.write(block)
        out.write(b"\n" + json.dumps({"title": "After", "abstract": "x"}).encode() + b"\n")
    # VmHWM, the peak resident memory of this process image (ru_maxrss would carry over
    # pytest's own peak across exec).
    script = (
        "import re, sys; from pathlib import Path; from paperdigest.ingest import "
        "parse_file; r = parse_file(Path(sys.argv[1]), max_bytes=128 * 2**20); "
        "print(len(r.records)); print('|'.join(p.message for p in r.problems)); "
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, check=True)
    records, problems, peak_kib = done.stdout.splitlines()
    assert records == "0"
    assert problems == ("more than 128 MiB of text once decompressed; stopped there (the rest "
                        "of the file is not read)")
    # Reading 128 MiB held a block at a time: far below the text it read.
    assert int(peak_kib) < 100 * 1024


def test_an_over_long_line_costs_one_line(tmp_path: Path, monkeypatch) -> None:
    from paperdigest import ingest

    monkeypatch.setattr(ingest, "MAX_LINE_BYTES", 4 * 2**20)
    path = tmp_path / "long.jsonl"
    path.write_bytes(json.dumps({"title": "A", "abstract": "x"}).encode() + b"\n"
                     + b" " * (5 * 2**20) + b"x\n"
                     + json.dumps({"title": "B", "abstract": "x"}).encode() + b"\n")
    result = parse_file(path)
    assert [r.title for r in result.records] == ["A", "B"]
    assert [str(p) for p in result.problems] == [f"{path}:2: line longer than 4 MiB; skipped"]



def test_papers_stored_with_future_dates_are_clamped_by_the_migration(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.ingest([PaperRecord("Old Future Paper", "x", published=date(2026, 1, 1))],
                     today=date(2026, 1, 1))
        # As a store written before the fix held it: one schema version back, dated 9999.
        store.conn.execute("UPDATE papers SET listed = '9999-12-31', published = '9999-12-31'")
        store.conn.execute(f"PRAGMA user_version = {len(store_module.MIGRATIONS) - 1}")
    with Store.open(tmp_path) as store:
        row = store.conn.execute("SELECT listed, published, added_at FROM papers").fetchone()
    assert row["listed"] == row["published"] == row["added_at"][:10]


def test_a_day_ahead_is_a_time_zone_not_the_future() -> None:
    """arXiv's feed carries tomorrow's date from 20:00 New York time: kept, not warned
    about; two days ahead is clamped, the announcement day too."""
    today = date(2026, 12, 1)
    ahead = PaperRecord("Evening feed", "x", listed=date(2026, 12, 2),
                        announced=date(2026, 12, 2))
    assert clamp_dates(ahead, today) == (ahead, None)
    later = PaperRecord("Too far", "x", listed=date(2026, 12, 3), announced=date(2026, 12, 3))
    clamped, warning = clamp_dates(later, today)
    assert (clamped.listed, clamped.announced) == (today, today)
    assert warning is not None and "announced 2026-12-03" in warning
