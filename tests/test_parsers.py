"""The seed-dump and JSONL parsers on the real seed files and on broken input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from paperdigest.ids import normalise_title
from paperdigest.ingest import parse_file
from paperdigest.parsers import parse_jsonl, parse_seed_dump
from tests.conftest import SEEDS

EXPECTED = {
    "000_f209292489805d2c.txt": (66, "Mar 11"),
    "001_88b590c7abbed6f9.txt": (284, None),
    "002_0d2f5975437b0cd6.txt": (75, "Mar 20"),
    "003_f0e5782d32d58324.txt": (88, "May 7"),
    "004_f0aa929aa1009b5f.txt": (62, "Mar 14"),
}


def test_each_seed_file_parses_completely_with_its_date() -> None:
    for name, (count, label) in EXPECTED.items():
        result = parse_seed_dump((SEEDS / name).read_bytes(), name)
        assert result.problems == [], name
        assert len(result.records) == count, name
        assert {r.listed_label for r in result.records} == {label}, name


def test_all_seed_files_hold_575_records_and_524_distinct_papers() -> None:
    records = [
        r
        for p in sorted(SEEDS.glob("*.txt"))
        for r in parse_seed_dump(p.read_bytes(), p.name).records
    ]
    assert len(records) == 575
    assert len({normalise_title(r.title) for r in records}) == 524


def test_glued_subscribe_is_stripped_from_the_first_title() -> None:
    name = "001_88b590c7abbed6f9.txt"
    first = parse_seed_dump((SEEDS / name).read_bytes(), name).records[0]
    assert first.title.startswith("Split Computing and Early Exiting")
    assert first.abstract.startswith("Mobile devices such as smartphones")


def test_no_header_text_leaks_into_a_record() -> None:
    for path in SEEDS.glob("*.txt"):
        for record in parse_seed_dump(path.read_bytes(), path.name).records:
            assert "Subscribe" not in record.title
            assert "trending papers" not in record.title.lower()


ABSTRACT = "We study a thing. " * 30


def test_title_without_abstract_is_reported_with_its_line_and_skipped() -> None:
    text = f"Mar 3\n\nGood Title\n\n{ABSTRACT}\n\nOrphan Title\n\nAnother Title\n\n{ABSTRACT}\n"
    result = parse_seed_dump(text.encode(), "dump.txt")
    assert [r.title for r in result.records] == ["Good Title", "Another Title"]
    assert [str(p) for p in result.problems] == ["dump.txt:7: title with no abstract; skipped"]


def test_trailing_title_and_leading_abstract_are_reported() -> None:
    text = f"{ABSTRACT}\nA Title\n{ABSTRACT}\nLast Title\n"
    result = parse_seed_dump(text.encode(), "d.txt")
    assert [r.title for r in result.records] == ["A Title"]
    assert [str(p) for p in result.problems] == [
        "d.txt:1: abstract with no title; skipped",
        "d.txt:4: title with no abstract; skipped",
    ]


def test_empty_and_binary_files_are_reported_not_raised() -> None:
    assert "no papers found" in str(parse_seed_dump(b"", "empty.txt").problems[0])
    binary = parse_seed_dump(b"\x89PNG\r\n\x1a\n\x00\x00\x00", "image.txt")
    assert binary.records == []
    assert str(binary.problems[0]) == "image.txt: not a UTF-8 text file; skipped"


def test_a_year_in_the_date_line_gives_a_published_date() -> None:
    text = f"Mar 11, 2024\n\nA Title\n\n{ABSTRACT}\n"
    (record,) = parse_seed_dump(text.encode(), "d.txt").records
    assert record.published is not None and record.published.isoformat() == "2024-03-11"


def test_jsonl_reads_good_lines_and_reports_bad_ones() -> None:
    lines = [
        json.dumps({"id": "arXiv:2503.11731v2", "title": "A  Paper", "abstract": "Text.",
                    "authors": [{"name": "Ada"}, "Grace"], "published": "2025-03-18",
                    "url": "https://arxiv.org/abs/2503.11731"}),
        "{not json",
        json.dumps({"title": ""}),
        json.dumps(["a", "list"]),
        json.dumps({"title": "B", "authors": 7}),
        "",
        json.dumps({"title": "C"}),
    ]
    result = parse_jsonl("\n".join(lines).encode(), "p.jsonl")
    assert [r.title for r in result.records] == ["A Paper", "C"]
    first = result.records[0]
    assert first.arxiv_id == "2503.11731"
    assert first.authors == ("Ada", "Grace")
    assert first.published is not None and first.published.isoformat() == "2025-03-18"
    assert [p.where for p in result.problems] == [f"p.jsonl:{n}" for n in (2, 3, 4, 5)]


def test_parse_file_reads_gzipped_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "papers.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"title": "Zipped", "abstract": "x"}\n'))
    assert [r.title for r in parse_file(path).records] == ["Zipped"]
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip at all")
    assert "not a valid gzip file" in str(parse_file(broken).problems[0])
