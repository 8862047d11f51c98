"""arXiv's daily announcement feed and the API backfill, served by a real local server.

Every feed and page is built from real papers (tests/fixtures/arxiv/listings-sample.jsonl.gz,
taken from ../shared/data/arxiv-listings-2025-2026.jsonl.gz): their ids, titles, abstracts
and categories, on the days arXiv listed them.
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from paperdigest.config import Settings
from paperdigest.models import PaperRecord
from paperdigest.parsers.arxiv import parse_arxiv_page
from paperdigest.parsers.arxiv_rss import announcement_day, parse_arxiv_rss, split_authors
from paperdigest.refresh import refresh_sources
from paperdigest.sources.arxiv import Throttle
from paperdigest.sources.arxiv_feed import fetch_arxiv_feed
from paperdigest.sources.http import RetryPolicy, make_client
from paperdigest.store import Store
from tests.arxiv_feeds import (
    ATOM,
    AUTHORS,
    LICENSE,
    RSS,
    Item,
    atom_page,
    items_for,
    papers,
    rss_feed,
    submitted,
)

DAY = date(2026, 6, 30)  # a Tuesday: 530 papers in the sample
# The primary categories of that day's 530 papers, so the feed lists all of them.
DAY_CATEGORIES = ["cs.CV", "cs.CL", "cs.AI", "cs.IT", "cs.GT", "cs.CE", "cs.GR"]


class FakeTime:
    """An injected sleep and clock: sleeping moves the clock, and nothing else does."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def empty(tmp_path: Path):
    with Store.open(tmp_path / "db") as opened:
        yield opened


def base(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def settings_for(server: HTTPServer, categories: list[str], **arxiv: object) -> Settings:
    return Settings(
        sources={
            "hf": {"enabled": False},
            "arxiv": {
                "feed_url": base(server),
                "base_url": base(server),
                "categories": categories,
                "request_delay": 3.0,
                **arxiv,
            },
            "retries": 0,
        }
    )


def serve_feed(server: HTTPServer, categories: list[str], day: date, items: list[Item]) -> None:
    server.expect_request(f"/rss/{'+'.join(categories)}").respond_with_data(
        rss_feed(categories, day, items), content_type=RSS
    )


def row(store: Store, arxiv_id: str) -> dict:
    found = store.conn.execute("SELECT * FROM papers WHERE arxiv_id = ?", (arxiv_id,))
    return dict(found.fetchone())


def stored_ids(store: Store) -> set[str]:
    return {r[0] for r in store.conn.execute("SELECT arxiv_id FROM papers")}


def fetch_feed(store: Store, settings: Settings, today: date = date(2026, 7, 2), **kw):
    (result,) = refresh_sources(store, settings, sources=["arxiv"], today=today, **kw)
    return result


# -- the daily feed ------------------------------------------------------------------------


def test_a_530_paper_day_is_stored_whole_and_listed_on_its_announcement_day(
    empty: Store, httpserver: HTTPServer
) -> None:
    day_papers = papers("2026-06-30")
    assert len(day_papers) == 530
    serve_feed(httpserver, DAY_CATEGORIES, DAY, items_for(DAY_CATEGORIES, day_papers))

    # Fetched two days later: the listing day comes from the feed, not the clock.
    result = fetch_feed(empty, settings_for(httpserver, DAY_CATEGORIES))

    assert (result.ok, result.new, result.updated, result.skipped) == (True, 530, 0, 0)
    assert len(httpserver.log) == 1  # one request for every category
    assert stored_ids(empty) == {p["id"] for p in day_papers}
    days = empty.conn.execute("SELECT DISTINCT listed, announced FROM papers").fetchall()
    assert [tuple(d) for d in days] == [("2026-06-30", "2026-06-30")]
    paper = day_papers[0]
    stored = row(empty, paper["id"])
    assert (stored["title"], stored["abstract"]) == (paper["title"], paper["abstract"])
    assert json.loads(stored["authors"]) == list(AUTHORS)
    assert json.loads(stored["categories"]) == paper["categories"]
    assert (stored["version"], stored["license"]) == (1, LICENSE)
    assert stored["url"] == f"https://arxiv.org/abs/{paper['id']}"
    # The same feed again changes nothing.
    again = fetch_feed(empty, settings_for(httpserver, DAY_CATEGORIES))
    assert (again.new, again.updated) == (0, 0)


def test_cross_lists_are_kept_with_all_their_categories(
    empty: Store, httpserver: HTTPServer
) -> None:
    in_cl = papers("2026-06-30", ["cs.CL"])
    items = items_for(["cs.CL"], in_cl)
    crosses = [i.paper for i in items if i.announce_type == "cross"]
    assert crosses and len(crosses) < len(items)
    serve_feed(httpserver, ["cs.CL"], DAY, items)

    result = fetch_feed(empty, settings_for(httpserver, ["cs.CL"]))

    assert result.new == len(in_cl)
    for paper in crosses:
        stored = row(empty, paper["id"])
        assert json.loads(stored["categories"]) == paper["categories"]
        assert paper["primary"] != "cs.CL" and stored["listed"] == "2026-06-30"


def test_replacements_update_stored_papers_and_add_none(
    empty: Store, httpserver: HTTPServer
) -> None:
    monday = papers("2026-06-29")
    serve_feed(httpserver, DAY_CATEGORIES, date(2026, 6, 29), items_for(DAY_CATEGORIES, monday))
    settings = settings_for(httpserver, DAY_CATEGORIES)
    assert fetch_feed(empty, settings).new == len(monday)

    revised = [Item(p, "replace", 2) for p in monday[:20]]
    never_stored = [Item(p, "replace-cross", 3) for p in papers("2026-06-26")[:10]]
    tuesday = items_for(DAY_CATEGORIES, papers("2026-06-30"))
    httpserver.clear()
    serve_feed(httpserver, DAY_CATEGORIES, DAY, tuesday + revised + never_stored)

    result = fetch_feed(empty, settings)

    assert (result.new, result.updated, result.skipped) == (530, 20, 0)
    assert empty.count_papers() == len(monday) + 530
    first = row(empty, monday[0]["id"])
    assert first["version"] == 2
    assert first["listed"] == "2026-06-29"  # still listed on the day it was new
    assert not stored_ids(empty) & {i.paper["id"] for i in never_stored}


def test_with_include_revisions_a_replacement_is_a_new_paper_of_its_day(
    empty: Store, httpserver: HTTPServer
) -> None:
    revised = [Item(p, "replace", 2) for p in papers("2026-06-26")[:10]]
    serve_feed(httpserver, ["cs.CV"], DAY, revised)

    result = fetch_feed(empty, settings_for(httpserver, ["cs.CV"], include_revisions=True))

    assert result.new == 10
    stored = row(empty, revised[0].paper["id"])
    assert (stored["version"], stored["listed"]) == (2, "2026-06-30")


def test_a_feed_cut_at_2000_items_is_fetched_again_one_category_at_a_time(
    empty: Store, httpserver: HTTPServer
) -> None:
    followed = ["cs.CV", "cs.CL", "cs.AI", "cs.IT"]
    # Every paper of the sample announced at once: more than one feed can hold.
    everything = items_for(followed, papers())
    assert len(everything) > 2000
    big_day = date(2026, 7, 1)
    serve_feed(httpserver, followed, big_day, everything[:2000])  # arXiv cuts it
    for category in followed:
        serve_feed(httpserver, [category], big_day, items_for([category], papers()))
    fake = FakeTime()

    result = fetch_feed(empty, settings_for(httpserver, followed), sleep=fake.sleep,
                        clock=fake.clock)

    assert (result.ok, result.new, result.skipped) == (True, len(everything), 0)
    assert stored_ids(empty) == {i.paper["id"] for i in everything}
    requested = [request.path for request, _ in httpserver.log]
    assert requested == ["/rss/cs.CV+cs.CL+cs.AI+cs.IT"] + [f"/rss/{c}" for c in followed]
    assert fake.sleeps == [3.0] * 4  # one request every 3 s


def test_a_single_category_that_fills_a_feed_is_reported(httpserver: HTTPServer) -> None:
    items = items_for(["cs.CV"], papers())
    serve_feed(httpserver, ["cs.CV"], DAY, items)
    with make_client(5.0) as client:
        batches = list(
            fetch_arxiv_feed(client, base(httpserver), ["cs.CV"], RetryPolicy(retries=0),
                             Throttle(0.0), cap=len(items))
        )
    (batch,) = batches
    assert len(batch.result.records) == len(items)  # kept, and flagged
    (problem,) = batch.result.problems
    assert "arXiv's limit for one feed: the cs.CV listing may be cut" in problem.message


def test_an_empty_weekend_feed_is_quiet(empty: Store, httpserver: HTTPServer) -> None:
    saturday = date(2026, 7, 4)
    serve_feed(httpserver, ["cs.CV", "cs.CL"], saturday, [])

    result = fetch_feed(empty, settings_for(httpserver, ["cs.CV", "cs.CL"]))

    assert (result.ok, result.new, result.skipped, result.problems) == (True, 0, 0, ())
    (note,) = result.notes
    assert note.startswith("no arXiv announcement on that day (2026-07-04)")
    assert empty.last_fetch("arxiv").ok


def test_fetch_says_there_was_no_announcement(
    cli, isolated_dirs: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_feed(httpserver, ["cs.CV"], date(2026, 7, 4), [])
    monkeypatch.setenv("PAPERDIGEST_SOURCES__ARXIV__FEED_URL", base(httpserver))
    monkeypatch.setenv("PAPERDIGEST_SOURCES__ARXIV__CATEGORIES", '["cs.CV"]')
    monkeypatch.setenv("PAPERDIGEST_SOURCES__HF__ENABLED", "false")

    result = cli("fetch")  # arXiv is on: categories are set

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "arxiv: 0 new, 0 updated, 0 skipped",
        f"arxiv: no arXiv announcement on that day (2026-07-04): {base(httpserver)}/rss/cs.CV "
        "is empty",
    ]
    assert "warning" not in result.stderr.lower()


def test_a_malformed_feed_is_skipped_and_touches_nothing(
    empty: Store, httpserver: HTTPServer
) -> None:
    body = rss_feed(["cs.CV"], DAY, items_for(["cs.CV"], papers("2026-06-30")))
    httpserver.expect_request("/rss/cs.CV").respond_with_data(body[: len(body) // 2],
                                                              content_type=RSS)
    result = fetch_feed(empty, settings_for(httpserver, ["cs.CV"]))
    assert (result.ok, result.new, result.skipped) == (True, 0, 1)
    assert "not a well-formed RSS feed" in result.problems[0]
    assert empty.count_papers() == 0


# -- the API backfill ----------------------------------------------------------------------


def serve_api(server: HTTPServer, category: str) -> list[dict]:
    """The search API over the sample, newest submission first, paged as asked."""
    results = sorted(
        papers(categories=[category]), key=lambda p: (submitted(p), p["id"]), reverse=True
    )

    def answer(request: Request) -> Response:
        args = {k: v[0] for k, v in parse_qs(request.query_string.decode()).items()}
        assert args["search_query"] == f"cat:{category}"
        assert (args["sortBy"], args["sortOrder"]) == ("submittedDate", "descending")
        start, size = int(args["start"]), int(args["max_results"])
        page = atom_page(args["search_query"], results[start : start + size], start,
                         len(results))
        return Response(page, content_type=ATOM)

    server.expect_request("/api/query").respond_with_handler(answer)
    return results


def test_a_backfill_of_three_days_pages_past_200(empty: Store, httpserver: HTTPServer) -> None:
    results = serve_api(httpserver, "cs.CV")
    # Submitted Fri 26 to Tue 30 June: listed Mon 29 June, Tue 30 June and Wed 1 July.
    wanted = {p["id"] for p in results if p["listing_date"] >= "2026-06-29"}
    assert len(wanted) > 400
    fake = FakeTime()

    (result,) = refresh_sources(
        empty, settings_for(httpserver, ["cs.CV"]), sources=["arxiv"],
        since=date(2026, 6, 26), until=date(2026, 6, 30), today=date(2026, 7, 1),
        sleep=fake.sleep, clock=fake.clock,
    )

    assert (result.ok, result.new, result.skipped) == (True, len(wanted), 0)
    assert stored_ids(empty) == wanted  # and nothing submitted before the 26th
    starts = [int(parse_qs(r.query_string.decode())["start"][0]) for r, _ in httpserver.log]
    assert starts == list(range(0, 200 * len(starts), 200)) and starts[-1] >= 400
    assert fake.sleeps == [3.0] * (len(starts) - 1)  # one request every 3 s


def test_a_backfill_that_hits_max_results_says_so(empty: Store, httpserver: HTTPServer) -> None:
    serve_api(httpserver, "cs.CV")
    (result,) = refresh_sources(
        empty, settings_for(httpserver, ["cs.CV"], max_results=400, request_delay=0.0),
        sources=["arxiv"], since=date(2026, 6, 26), until=date(2026, 6, 30),
        today=date(2026, 7, 1), sleep=FakeTime().sleep,
    )
    assert result.new == 400 and len(httpserver.log) == 2
    (problem,) = result.problems
    assert "stopped at sources.arxiv.max_results = 400 results before reaching 2026-06-26" in (
        problem
    )


# -- one paper, whichever source comes first ------------------------------------------------


def three_sources(paper: dict) -> dict[str, PaperRecord]:
    feed = parse_arxiv_rss(rss_feed(["cs.CV"], DAY, items_for(["cs.CV"], [paper])), "feed")
    page = parse_arxiv_page(atom_page("cat:cs.CV", [paper], 0, 1), "api")
    hf = PaperRecord(
        title=paper["title"], abstract=paper["abstract"], arxiv_id=paper["id"],
        authors=AUTHORS, url=f"https://arxiv.org/abs/{paper['id']}",
        published=submitted(paper).date(), listed=date(2026, 7, 1), upvotes=12, source="hf",
    )
    return {"feed": feed.new.records[0], "api": page.result.records[0], "hf": hf}


@pytest.mark.parametrize("names", [("feed", "api"), ("api", "feed")])
def test_the_feed_and_the_api_make_one_paper_listed_on_its_announcement_day(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    paper = papers("2026-06-30", ["cs.CV"])[0]
    records = three_sources(paper)
    with Store.open(tmp_path) as store:
        for name in names:
            store.ingest([records[name]], today=date(2026, 7, 2))
        assert store.count_papers() == 1
        stored = row(store, paper["id"])
    assert (stored["listed"], stored["announced"]) == ("2026-06-30", "2026-06-30")
    assert stored["published"] == "2026-06-29" and stored["license"] == LICENSE
    assert stored["primary_category"] == "cs.CV"


def test_hugging_face_the_feed_and_the_api_make_one_paper_in_any_order(tmp_path: Path) -> None:
    paper = papers("2026-06-30", ["cs.CV"])[0]
    records = three_sources(paper)
    rows = []
    for number, order in enumerate(itertools.permutations(records)):
        with Store.open(tmp_path / str(number)) as store:
            for name in order:
                store.ingest([records[name]], today=date(2026, 7, 2))
            assert store.count_papers() == 1
            found = row(store, paper["id"])
        rows.append({k: v for k, v in found.items() if k not in ("pk", "added_at")})
    assert all(r == rows[0] for r in rows)
    assert (rows[0]["upvotes"], rows[0]["license"], rows[0]["announced"]) == (
        12, LICENSE, "2026-06-30"
    )


# -- the parser on its own -----------------------------------------------------------------


def test_the_listing_day_is_the_announcement_date_in_new_york() -> None:
    assert announcement_day("Tue, 30 Jun 2026 00:00:00 -0400") == date(2026, 6, 30)
    assert announcement_day("Tue, 30 Jun 2026 03:30:00 +0000") == date(2026, 6, 29)
    assert announcement_day("Mon, 05 Jan 2026 05:00:00 GMT") == date(2026, 1, 5)
    assert announcement_day("not a date") is None


def test_authors_come_from_dc_creator() -> None:
    assert split_authors("Ada Lovelace, Alan Turing and Grace Hopper") == (
        "Ada Lovelace", "Alan Turing", "Grace Hopper",
    )
    assert split_authors("Ada Lovelace, Alan Turing, and Grace Hopper")[-1] == "Grace Hopper"


def test_item_text_is_kept_as_plain_text_never_markup() -> None:
    paper = dict(papers("2026-06-30")[0])
    paper["title"] = "Beating <script>alert(1)</script> & 'friends' at x<y"
    paper["abstract"] = "We show a <b>bold</b> claim &amp; more, for 1 < 2."
    feed = parse_arxiv_rss(rss_feed(["cs.CV"], DAY, [Item(paper)]), "feed")
    (record,) = feed.new.records
    assert record.title == paper["title"] and record.abstract == paper["abstract"]


def test_a_bad_item_is_skipped_and_the_rest_kept() -> None:
    day = papers("2026-06-30")[:3]
    body = rss_feed(["cs.CV"], DAY, [Item(p) for p in day]).decode()
    body = body.replace(f"arXiv:{day[1]['id']}v1", "arXiv:not-an-id", 1)
    body = body.replace(f"oai:arXiv.org:{day[1]['id']}v1", "oai:arXiv.org:nope", 1)
    feed = parse_arxiv_rss(body.encode(), "feed")
    assert [r.arxiv_id for r in feed.new.records] == [day[0]["id"], day[2]["id"]]
    (problem,) = feed.new.problems
    assert problem.where == "feed item 1" and "not an arXiv id" in problem.message
    assert feed.items == 3


# -- announcements the daily job did not read ----------------------------------------------


def serve_day(server: HTTPServer, day: str) -> None:
    server.clear()
    serve_feed(server, ["cs.CV"], date.fromisoformat(day),
               items_for(["cs.CV"], papers(day, ["cs.CV"])))


def test_missed_announcements_are_named_with_the_backfill_that_reads_them(
    empty: Store, httpserver: HTTPServer
) -> None:
    settings = settings_for(httpserver, ["cs.CV"])
    serve_day(httpserver, "2026-06-25")  # Thursday
    assert fetch_feed(empty, settings).notes == ()
    serve_day(httpserver, "2026-06-26")
    assert fetch_feed(empty, settings).notes == ()
    serve_day(httpserver, "2026-06-29")  # Monday: the weekend had no announcement
    assert fetch_feed(empty, settings).notes == ()

    serve_day(httpserver, "2026-07-01")  # Tuesday's was not read
    assert fetch_feed(empty, settings).notes == (
        "the announcements of 2026-06-30 were not read (the last one read was of "
        "2026-06-29); `paperdigest fetch --source arxiv --since 2026-06-28` fetches them",
    )


def test_a_backfill_over_the_gap_silences_the_reminder(
    empty: Store, httpserver: HTTPServer
) -> None:
    settings = settings_for(httpserver, ["cs.CV"], request_delay=0.0)
    serve_day(httpserver, "2026-06-26")
    fetch_feed(empty, settings)
    httpserver.clear()
    serve_api(httpserver, "cs.CV")
    (backfill,) = refresh_sources(empty, settings, sources=["arxiv"], since=date(2026, 6, 25),
                                  until=date(2026, 6, 30), today=date(2026, 7, 1))
    assert backfill.ok and backfill.new > 0
    serve_day(httpserver, "2026-07-01")
    assert fetch_feed(empty, settings).notes == ()


def test_old_style_ids_and_revisions_are_read_from_the_description() -> None:
    paper = dict(papers("2026-06-30")[0], id="math/0601001")
    feed = parse_arxiv_rss(rss_feed(["math.CO"], DAY, [Item(paper, "replace", 3)]), "feed")
    assert feed.new.records == []
    (revised,) = feed.revised
    assert (revised.arxiv_id, revised.version, revised.listed) == ("math/0601001", 3, None)
    assert revised.url == "https://arxiv.org/abs/math/0601001"
