"""The pure parsers of live-source responses, on real recorded responses and broken variants."""

from __future__ import annotations

import json
from datetime import date

from paperdigest.parsers.arxiv import arxiv_error_message, parse_arxiv_feed, parse_arxiv_page
from paperdigest.parsers.hf import parse_hf_daily
from tests.source_servers import fixture, real_day

SEP_30 = date(2025, 9, 30)


def test_hf_day_reads_every_field_we_keep() -> None:
    result = parse_hf_daily(fixture("hf_2025-09-30.json"), "hf 2025-09-30", SEP_30)
    assert result.problems == []
    assert len(result.records) == 50
    tool = next(r for r in result.records if r.arxiv_id == "2509.23426")
    assert tool.title.startswith("Democratizing AI scientists using ToolUniverse")
    assert "\n" not in tool.title and "\n" not in tool.abstract
    assert tool.authors[0] == "Shanghua Gao"
    assert tool.github == "https://github.com/mims-harvard/ToolUniverse"
    assert tool.github_stars == 233
    assert tool.project_page == "https://aiscientist.tools/"
    assert tool.hf_page == "https://huggingface.co/papers/2509.23426"
    assert tool.url == "https://arxiv.org/abs/2509.23426"
    assert tool.source == "hf"
    assert tool.ai_summary and tool.ai_keywords and all(tool.ai_keywords)
    sla = next(r for r in result.records if r.arxiv_id == "2509.24006")
    assert sla.organization == "Tsinghua University"  # submitterOrganization.fullname
    assert sla.upvotes == 78 and sla.comments == 2
    assert sla.ai_keywords[:2] == ("Diffusion Transformer", "attention latency")
    assert sla.github is None and sla.github_stars is None


def test_hf_lists_every_paper_on_its_daily_papers_day() -> None:
    records = parse_hf_daily(fixture("hf_2025-09-30.json"), "hf", SEP_30).records
    # The arXiv time (top-level publishedAt) is days earlier; the listing day is not.
    assert {r.listed for r in records} == {SEP_30}
    assert min(r.published for r in records if r.published) < date(2025, 9, 29)
    # Even without the requested day, paper.submittedOnDailyAt says it.
    assert {r.listed for r in parse_hf_daily(fixture("hf_2025-09-30.json"), "hf").records} == {
        SEP_30
    }


def test_hf_2024_items_without_submitted_on_daily_at_take_the_requested_day() -> None:
    day = date(2024, 10, 10)
    records = parse_hf_daily(fixture("hf_2024-10-10.json"), "hf", day).records
    assert len(records) == 46 and {r.listed for r in records} == {day}
    # With no requested day either, the old top-level publishedAt is the last resort.
    old = parse_hf_daily(fixture("hf_2024-03-12.json"), "hf").records
    assert {r.listed for r in old} == {date(2024, 3, 12)}


def test_hf_links_with_surrounding_spaces_are_kept_and_other_schemes_dropped() -> None:
    items = real_day("2025-09-30")
    tool = next(i for i in items if i["paper"]["id"] == "2509.23426")
    tool["paper"]["projectPage"] = "  https://aiscientist.tools/ "
    tool["paper"]["githubRepo"] = "\thttps://github.com/mims-harvard/ToolUniverse"
    other = next(i for i in items if i["paper"]["id"] == "2509.24006")
    other["paper"]["projectPage"] = " javascript:alert(1)"
    records = {r.arxiv_id: r for r in parse_hf_daily(json.dumps(items).encode(), "hf").records}
    assert records["2509.23426"].project_page == "https://aiscientist.tools/"
    assert records["2509.23426"].github == "https://github.com/mims-harvard/ToolUniverse"
    assert records["2509.24006"].project_page is None


def test_hf_bad_items_are_skipped_with_where_and_why() -> None:
    items = real_day("2024-03-12")
    first, second = items[0]["paper"]["id"], items[1]["paper"]["id"]
    del items[0]["paper"]["summary"]  # missing summary
    items[1]["paper"]["upvotes"] = "many"  # wrong type
    items.append({"title": "no paper object"})
    items.append(["not", "an", "object"])
    items.append({"paper": {"id": "not-an-id", "title": "x", "summary": "y"}})
    result = parse_hf_daily(json.dumps(items).encode(), "GET daily_papers?date=2024-03-12")
    assert len(result.records) == 7
    messages = [str(p) for p in result.problems]
    assert len(messages) == 5
    assert f"item 0 ({first})" in messages[0] and "'paper.summary'" in messages[0]
    assert f"item 1 ({second})" in messages[1] and "upvotes" in messages[1]
    assert all(m.startswith("GET daily_papers?date=2024-03-12 item") for m in messages)


def test_hf_truncated_or_wrong_shaped_json_is_one_problem() -> None:
    data = fixture("hf_2024-03-12.json")
    for broken, expected in (
        (data[: len(data) // 2], "invalid JSON"),
        (b'{"error": "Invalid date"}', "expected a JSON list, got dict"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ):
        result = parse_hf_daily(broken, "hf")
        assert result.records == []
        assert len(result.problems) == 1 and expected in result.problems[0].message


def test_arxiv_page_reads_entries_paging_and_what_authors_add() -> None:
    page = parse_arxiv_page(fixture("arxiv_query_testing_page1.xml"), "arxiv p1")
    assert page.result.problems == []
    assert (page.total, page.start, page.entries) == (214881, 0, 10)
    first = page.result.records[0]
    assert (first.arxiv_id, first.version) == ("2202.12139", 1)
    assert first.title == (
        "Testing Deep Learning Models: A First Comparative Study of Multiple Testing Techniques"
    )
    assert first.categories == ("cs.SE", "cs.LG") and first.primary_category == "cs.SE"
    assert first.authors[0] == "Mohit Kumar Ahuja"
    assert first.url == "https://arxiv.org/abs/2202.12139"
    assert first.arxiv_comment == (
        "Artificial Intelligence in Software Testing 2022 workshop @ ICST 2022"
    )
    assert first.doi == "10.1109/ICSTW55395.2022.00035"
    assert first.journal_ref.startswith("Artificial Intelligence in Software Testing @ 2022")
    revised = next(r for r in page.result.records if r.arxiv_id == "2503.05378")
    assert revised.version == 2
    assert (revised.published, revised.updated) == (date(2025, 3, 7), date(2025, 8, 12))
    # Paging reaches back by first versions; the oldest latest version is later.
    assert page.oldest == date(2012, 2, 21)
    assert page.oldest_activity == date(2012, 2, 21)


def test_arxiv_legacy_format_and_old_style_ids_parse() -> None:
    legacy = parse_arxiv_page(fixture("arxiv_query_all_GAN_2024-01-22_legacy.xml"), "gan")
    assert legacy.result.problems == [] and len(legacy.result.records) == 10
    assert legacy.total == 10468
    gan = legacy.result.records[0]
    assert gan.title == (
        "Generative Adversarial Networks and Adversarial Autoencoders: Tutorial and Survey"
    )
    assert gan.arxiv_comment.startswith("To appear as a part of an upcoming textbook")
    assert gan.doi is None and gan.journal_ref is None
    (astro,) = parse_arxiv_feed(fixture("arxiv_id_astro-ph_0601001.xml"), "astro").records
    assert astro.arxiv_id == "astro-ph/0601001"
    assert astro.journal_ref == "ActaAstron.56:1-50,2006"


def test_arxiv_truncated_feed_is_skipped_whole() -> None:
    data = fixture("arxiv_query_testing_page2.xml")
    page = parse_arxiv_page(data[: int(len(data) * 0.8)], "arxiv p2")
    assert page.result.records == [] and page.entries == 0
    (problem,) = page.result.problems
    assert problem.where == "arxiv p2" and "not a well-formed Atom feed" in problem.message


def test_arxiv_entry_missing_summary_is_skipped_others_kept() -> None:
    text = fixture("arxiv_query_testing_page1.xml").decode()
    start = text.index("<summary>")
    end = text.index("</summary>") + len("</summary>")
    result = parse_arxiv_feed((text[:start] + text[end:]).encode(), "arxiv p1")
    assert len(result.records) == 9
    (problem,) = result.problems
    assert "entry 0 (2202.12139)" in problem.where and "<summary>" in problem.message


def test_arxiv_error_feed_says_what_is_wrong() -> None:
    error_feed = fixture("arxiv_error_400_id_abc.xml")
    assert arxiv_error_message(error_feed) == "incorrect id format for abc"
    result = parse_arxiv_feed(error_feed, "arxiv")
    assert result.records == []
    assert "arXiv reported an error: incorrect id format for abc" in result.problems[0].message
    assert arxiv_error_message(fixture("arxiv_query_testing_page1.xml")) is None
    for junk in (b"", b'{"not": "xml"}', b"<html><body>Service Unavailable</body></html>"):
        assert parse_arxiv_feed(junk, "arxiv").problems
        assert arxiv_error_message(junk) is None
