"""The pure parsers of live-source responses, on recorded fixtures and broken variants."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from paperdigest.parsers.arxiv import parse_arxiv_feed, parse_arxiv_page
from paperdigest.parsers.hf import parse_hf_daily

FIXTURES = Path(__file__).parent / "fixtures" / "sources"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_hf_day_reads_every_field_we_keep() -> None:
    result = parse_hf_daily(fixture("hf_2025-03-17.json"), "hf 2025-03-17")
    assert result.problems == []
    assert [r.arxiv_id for r in result.records] == ["2503.11731", "2503.12533", "2503.11647"]
    recam = result.records[2]
    assert recam.title == "ReCamMaster: Camera-Controlled Generative Rendering from A Single Video"
    assert recam.abstract.startswith("Camera control has been actively studied")
    assert recam.authors[:2] == ("Jianhong Bai", "Menghan Xia")
    assert recam.upvotes == 103
    assert recam.comments == 6
    assert recam.github == "https://github.com/KwaiVGI/ReCamMaster"
    assert recam.project_page == "https://jianhongbai.github.io/ReCamMaster/"
    assert recam.published == date(2025, 3, 14)
    assert recam.url == "https://arxiv.org/abs/2503.11647"
    assert recam.source == "hf"
    assert result.records[0].ai_summary.startswith("Neuvo GEAF")


def test_hf_second_day_parses_too() -> None:
    result = parse_hf_daily(fixture("hf_2025-03-18.json"), "hf 2025-03-18")
    assert result.problems == []
    assert len(result.records) == 3
    assert all(r.upvotes is not None for r in result.records)


def test_hf_lists_a_paper_on_its_daily_papers_day_not_its_arxiv_day() -> None:
    records = parse_hf_daily(fixture("hf_2025-03-18.json"), "hf 2025-03-18").records
    once_for_all = next(r for r in records if r.arxiv_id == "1908.09791")
    assert once_for_all.published == date(2019, 8, 26)
    assert once_for_all.listed == date(2025, 3, 18)


def test_hf_bad_items_are_skipped_with_where_and_why() -> None:
    items = json.loads(fixture("hf_2025-03-17.json"))
    del items[0]["paper"]["summary"]  # missing summary
    items[1]["paper"]["upvotes"] = "many"  # wrong type
    items.append({"title": "no paper object"})
    items.append(["not", "an", "object"])
    items.append({"paper": {"id": "not-an-id", "title": "x", "summary": "y"}})
    result = parse_hf_daily(json.dumps(items).encode(), "GET daily_papers?date=2025-03-17")
    assert [r.arxiv_id for r in result.records] == ["2503.11647"]
    messages = [str(p) for p in result.problems]
    assert len(messages) == 5
    assert "item 0 (2503.11731)" in messages[0] and "'paper.summary'" in messages[0]
    assert "item 1 (2503.12533)" in messages[1] and "upvotes" in messages[1]
    assert all(m.startswith("GET daily_papers?date=2025-03-17 item") for m in messages)


def test_hf_truncated_or_wrong_shaped_json_is_one_problem() -> None:
    data = fixture("hf_2025-03-17.json")
    for broken, expected in (
        (data[: len(data) // 2], "invalid JSON"),
        (b'{"error": "Invalid date"}', "expected a JSON list, got dict"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ):
        result = parse_hf_daily(broken, "hf")
        assert result.records == []
        assert len(result.problems) == 1 and expected in result.problems[0].message


def test_arxiv_page_reads_entries_and_paging() -> None:
    page = parse_arxiv_page(fixture("arxiv_cs.LG_p0.xml"), "arxiv p0")
    assert (page.total, page.start, page.entries) == (5, 0, 2)
    assert page.oldest == date(2025, 3, 17)
    first = page.result.records[0]
    assert first.arxiv_id == "2503.13424" and first.version == 1
    # arXiv wraps titles and abstracts across lines; they come out as single lines.
    assert first.title == (
        "Infinite Mobility: Scalable High-Fidelity Synthesis of Articulated Objects "
        "via Procedural Generation"
    )
    assert "\n" not in first.abstract
    assert first.categories == ("cs.CV", "cs.LG")
    assert first.primary_category == "cs.CV"
    assert first.published == date(2025, 3, 17) and first.updated == date(2025, 3, 17)
    assert first.authors[0] == "Xinyu Lian"
    assert first.url == "https://arxiv.org/abs/2503.13424"


def test_arxiv_version_comes_from_the_entry_id() -> None:
    page = parse_arxiv_page(fixture("arxiv_cs.LG_p2.xml"), "arxiv p2")
    (record,) = page.result.records
    assert (record.arxiv_id, record.version) == ("2503.11731", 2)
    assert record.published == date(2025, 3, 14) and record.updated == date(2025, 3, 17)


def test_arxiv_truncated_feed_is_skipped_whole() -> None:
    data = fixture("arxiv_cs.LG_p1.xml")
    page = parse_arxiv_page(data[: int(len(data) * 0.8)], "arxiv p1")
    assert page.result.records == [] and page.entries == 0
    (problem,) = page.result.problems
    assert problem.where == "arxiv p1" and "not a well-formed Atom feed" in problem.message


def test_arxiv_entry_missing_summary_is_skipped_others_kept() -> None:
    text = fixture("arxiv_cs.LG_p0.xml").decode()
    start = text.index("<summary>")
    end = text.index("</summary>") + len("</summary>")
    result = parse_arxiv_feed((text[:start] + text[end:]).encode(), "arxiv p0")
    assert [r.arxiv_id for r in result.records] == ["2503.13111"]
    (problem,) = result.problems
    assert "entry 0 (2503.13424)" in problem.where and "<summary>" in problem.message


def test_arxiv_error_feed_and_non_feeds_are_problems() -> None:
    error_feed = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>http://arxiv.org/api/errors</id><title>arXiv Query Error</title>
  <updated>2025-03-18T00:00:00-04:00</updated>
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345v</id>
    <title>Error</title>
    <summary>incorrect id format for 1234.12345v</summary>
    <updated>2025-03-18T00:00:00-04:00</updated>
    <author><name>arXiv api core</name></author>
  </entry>
</feed>"""
    result = parse_arxiv_feed(error_feed, "arxiv")
    assert result.records == []
    assert "arXiv reported an error: incorrect id format" in result.problems[0].message
    for junk in (b"", b'{"not": "xml"}', b"<html><body>Service Unavailable</body></html>"):
        assert parse_arxiv_feed(junk, "arxiv").problems
