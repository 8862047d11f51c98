"""Fetching live sources end to end: real recorded responses, served by a local HTTP server
that pages like the live APIs (tests/source_servers.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from paperdigest.config import ProfileSettings, Settings
from paperdigest.parsers.arxiv import parse_arxiv_page
from paperdigest.refresh import refresh_sources
from paperdigest.scheduler import Daemon
from paperdigest.service import select_picks
from paperdigest.sources.arxiv import Throttle
from paperdigest.store import Store
from tests.arxiv_feeds import RSS, Item, rss_feed
from tests.mail_fixtures import QUIET, MailServer, write_config
from tests.source_servers import (
    ArxivAPI,
    DailyPapersAPI,
    Entry,
    busy_day,
    fixture,
    listed_on,
    real_day,
    real_days_api,
    real_entries,
)

pytestmark = QUIET  # the plain SMTP test server warns about AUTH without TLS

SEP_30 = date(2025, 9, 30)
OCT_1 = date(2025, 10, 1)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def base(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def make_settings(server: HTTPServer | str, **extra: object) -> Settings:
    url = server if isinstance(server, str) else base(server)
    return Settings(
        sources={
            "hf": {"base_url": url},
            "arxiv": {
                "enabled": True,
                "base_url": url,
                "feed_url": url,
                "categories": ["cs.SE"],
                "max_results": 10,
                "page_size": 2,
                "request_delay": 3.0,
            },
            "retries": 2,
            "backoff": 0.5,
        },
        **extra,
    )


def fetch(store: Store, server: HTTPServer | None, source: str, since: date,
          until: date | None = None, settings: Settings | None = None,
          sleeps: Sleeps | None = None):
    """One source's fetch of since..until, as if today were `until`."""
    assert settings is not None or server is not None
    (result,) = refresh_sources(
        store, settings or make_settings(server), sources=[source], since=since,
        until=until or since, today=until or since,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return result


def paper_row(store: Store, arxiv_id: str) -> dict:
    row = store.conn.execute("SELECT * FROM papers WHERE arxiv_id = ?", (arxiv_id,)).fetchone()
    return dict(row)


def listed_days(store: Store, arxiv_ids: list[str]) -> dict[str, str]:
    rows = store.conn.execute(
        "SELECT arxiv_id, listed FROM papers WHERE arxiv_id IN (SELECT value FROM json_each(?))",
        (json.dumps(arxiv_ids),),
    )
    return {arxiv_id: listed for arxiv_id, listed in rows}


def ids_of(items: list[dict]) -> list[str]:
    return [item["paper"]["id"] for item in items]


def mark_sent(store: Store, profile: str, day: date, pks: list[int]) -> None:
    """A digest the profile was sent, as the delivery ledger records it."""
    with store.transaction() as conn:
        digest_id = conn.execute(
            "INSERT INTO digests(profile, digest_date, status, created_at, sent_at) "
            "VALUES (?, ?, 'sent', ?, ?)",
            (profile, day.isoformat(), f"{day}T07:00:00+00:00", f"{day}T07:00:05+00:00"),
        ).lastrowid
        for rank, pk in enumerate(pks, 1):
            conn.execute(
                "INSERT INTO digest_items(digest_id, paper_pk, rank, score, reason) "
                "VALUES (?, ?, ?, 0.5, 'new')",
                (digest_id, pk, rank),
            )


@pytest.fixture
def empty_store(isolated_dirs: Path) -> Iterator[Store]:
    """A store with no seed corpus, so the newest listing day is a fetched one."""
    with Store.open(isolated_dirs) as opened:
        yield opened


# -- Hugging Face Daily Papers -----------------------------------------------------------


def test_a_real_day_of_exactly_50_is_stored_whole_on_its_daily_papers_day(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    api = real_days_api().install(httpserver)
    hf = fetch(empty_store, httpserver, "hf", SEP_30)
    assert (hf.ok, hf.new, hf.skipped) == (True, 50, 0)
    ids = ids_of(real_day("2025-09-30"))
    assert set(listed_days(empty_store, ids).values()) == {"2025-09-30"}
    # 50 could be a page the server cut at its default size: the next page is asked for.
    assert api.pages_of("2025-09-30") == [0, 1]
    assert {r["limit"] for r in api.requests} == {"100"}


def test_a_busy_day_of_105_is_stored_whole(empty_store: Store, httpserver: HTTPServer) -> None:
    api = DailyPapersAPI({OCT_1.isoformat(): busy_day(OCT_1)}).install(httpserver)
    progress: list[tuple[str, int, int | None]] = []
    (hf,) = refresh_sources(
        empty_store, make_settings(httpserver), sources=["hf"], since=OCT_1, until=OCT_1,
        today=OCT_1, sleep=Sleeps(), on_progress=lambda *step: progress.append(step),
    )
    assert (hf.ok, hf.new, hf.skipped) == (True, 105, 0)
    assert api.pages_of(OCT_1.isoformat()) == [0, 1]
    assert progress == [("hf", 0, 1), ("hf", 1, 1)]  # the bar counts days, not pages
    listed = listed_days(empty_store, ids_of(busy_day(OCT_1)))
    assert len(listed) == 105 and set(listed.values()) == {"2025-10-01"}


def test_a_server_that_caps_limit_at_50_still_gives_the_whole_day(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    api = DailyPapersAPI({OCT_1.isoformat(): busy_day(OCT_1)}, max_limit=50).install(httpserver)
    hf = fetch(empty_store, httpserver, "hf", OCT_1)
    assert (hf.ok, hf.new) == (True, 105)
    assert api.pages_of(OCT_1.isoformat()) == [0, 1, 2]


def test_a_server_that_refuses_our_limit_is_read_in_its_own_pages(
    empty_store: Store, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = DailyPapersAPI({OCT_1.isoformat(): busy_day(OCT_1)}, refuse_limit_over=50)
    api.install(httpserver)
    hf = fetch(empty_store, httpserver, "hf", OCT_1)
    assert (hf.ok, hf.new) == (True, 105)
    assert [r.get("limit") for r in api.requests] == ["100", None, None, None]
    assert api.pages_of(OCT_1.isoformat()) == [0, 0, 1, 2]
    assert any("default pages instead" in r.getMessage() for r in caplog.records)


def test_a_paper_repeated_on_a_later_page_is_counted_once(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    items = busy_day(OCT_1)
    # The listing shifted while it was read: page 1 repeats five papers of page 0.
    DailyPapersAPI({OCT_1.isoformat(): items[:100] + items[:5]}).install(httpserver)
    hf = fetch(empty_store, httpserver, "hf", OCT_1)
    assert (hf.ok, hf.new, hf.updated, hf.unchanged, hf.skipped) == (True, 100, 0, 0, 0)
    assert empty_store.count_papers() == 100


def test_a_full_page_then_a_failed_page_is_reported_and_the_first_page_kept(
    empty_store: Store, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = DailyPapersAPI({OCT_1.isoformat(): busy_day(OCT_1)})
    api.failures[(OCT_1.isoformat(), 1)] = 503
    api.install(httpserver)
    hf = fetch(empty_store, httpserver, "hf", OCT_1)
    assert not hf.ok and hf.new == 100
    assert "2025-10-01: page 1 failed after a full page" in hf.error
    assert "papers past the first 100 of that day are missing" in hf.error
    assert "HTTP 503" in hf.error
    entry = empty_store.last_fetch("hf")
    assert entry is not None and not entry.ok and entry.new == 100
    assert "page 1 failed after a full page" in entry.error
    assert any("page 1 failed after a full page" in r.getMessage() for r in caplog.records)
    # The next fetch (it catches up from the last good one) reads the whole day.
    api.failures.clear()
    again = fetch(empty_store, httpserver, "hf", OCT_1)
    assert (again.ok, again.new, again.unchanged) == (True, 5, 100)


def test_fetching_again_changes_nothing(empty_store: Store, httpserver: HTTPServer) -> None:
    real_days_api().install(httpserver)
    fetch(empty_store, httpserver, "hf", SEP_30)
    snapshot = empty_store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall()
    again = fetch(empty_store, httpserver, "hf", SEP_30)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 50)
    assert empty_store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall() == snapshot


def test_a_paper_featured_again_is_new_again_for_profiles_not_sent_it(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    items = real_day("2025-09-30")
    api = real_days_api().install(httpserver)
    fetch(empty_store, httpserver, "hf", SEP_30)
    starred, again = (empty_store.resolve(i) for i in ids_of(items[:2]))
    for profile in ("ada", "bob"):
        empty_store.star(profile, starred)
    mark_sent(empty_store, "ada", SEP_30, [again.pk])  # ada was sent it; bob was not
    # Both profiles' picks on 30 September, with the index cache built.
    assert again.pk in {p.paper.pk for p in select_picks(empty_store, "bob", 60, 1).picks}
    assert again.pk not in {p.paper.pk for p in select_picks(empty_store, "ada", 60, 1).picks}

    # On 2 October Daily Papers features it again, with one paper first listed that day.
    oct_2 = date(2025, 10, 2)
    fresh = real_day("2024-10-10")[0]
    api.days[oct_2.isoformat()] = listed_on([items[1], fresh], oct_2)
    hf = fetch(empty_store, httpserver, "hf", oct_2)
    assert (hf.new, hf.updated) == (1, 1)
    assert empty_store.resolve(again.id).pk == again.pk
    assert paper_row(empty_store, again.id)["listed"] == "2025-10-02"

    # Within a one-day window only 2 October's papers are candidates.
    bob = {p.paper.id for p in select_picks(empty_store, "bob", 60, 1).picks}
    ada = {p.paper.id for p in select_picks(empty_store, "ada", 60, 1).picks}
    assert bob == {again.id, fresh["paper"]["id"]}  # new again for bob
    assert ada == {fresh["paper"]["id"]}  # never twice for ada


def test_a_seed_paper_gains_its_arxiv_id_and_keeps_its_star(
    store: Store, httpserver: HTTPServer
) -> None:
    seed = store.resolve("One Initialization to Rule them All: Fine-tuning via Explained "
                         "Variance Adaptation")
    assert seed.arxiv_id is None
    store.star("ada", seed)
    before = store.count_papers()
    real_days_api().install(httpserver)
    hf = fetch(store, httpserver, "hf", date(2024, 10, 10))
    assert (hf.ok, hf.new, hf.updated) == (True, 45, 1)
    assert store.count_papers() == before + 45
    paper = store.resolve("2410.07170")
    assert paper.pk == seed.pk and paper.id == "2410.07170"
    assert [p.id for p, _ in store.starred("ada")] == ["2410.07170"]
    assert paper.listed == date(2024, 10, 10)
    assert paper.hf_page == "https://huggingface.co/papers/2410.07170"


def test_what_readers_value_is_stored(empty_store: Store, httpserver: HTTPServer) -> None:
    real_days_api().install(httpserver)
    fetch(empty_store, httpserver, "hf", SEP_30)
    tool = empty_store.resolve("2509.23426")
    assert (tool.github, tool.github_stars) == ("https://github.com/mims-harvard/ToolUniverse",
                                                 233)
    assert tool.project_page == "https://aiscientist.tools/"
    assert tool.hf_page == "https://huggingface.co/papers/2509.23426"
    sla = empty_store.resolve("2509.24006")
    assert sla.organization == "Tsinghua University"
    assert "Diffusion Transformer" in sla.ai_keywords
    assert paper_row(empty_store, "2509.24006")["upvotes"] == 78


def test_malformed_responses_are_skipped_and_touch_nothing(
    empty_store: Store, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = real_days_api().install(httpserver)
    fetch(empty_store, httpserver, "hf", SEP_30)
    snapshot = empty_store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall()
    httpserver.clear()
    day = fixture("hf_2025-09-30.json")
    httpserver.expect_request(
        "/api/daily_papers", query_string={"date": "2025-09-30", "limit": "100", "p": "0"}
    ).respond_with_data(day[: len(day) // 3], content_type="application/json")  # truncated
    items = real_day("2024-10-10")
    del items[0]["paper"]["summary"]  # a missing summary
    items[1]["paper"]["authors"] = "Omer Madmon"  # a wrong type
    api.days["2024-10-10"] = items
    api.install(httpserver)

    hf = fetch(empty_store, httpserver, "hf", SEP_30, date(2025, 10, 1))
    assert hf.ok and (hf.new, hf.updated, hf.skipped) == (0, 0, 1)
    assert "date=2025-09-30&limit=100&p=0: invalid JSON" in hf.problems[0]
    assert any("invalid JSON" in r.getMessage() for r in caplog.records)  # logged as well
    assert empty_store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall() == snapshot

    bad = fetch(empty_store, httpserver, "hf", date(2024, 10, 10))
    assert bad.ok and (bad.new, bad.skipped) == (44, 2)
    assert f"item 0 ({items[0]['paper']['id']}): missing or empty 'paper.summary'" in (
        bad.problems[0]
    )
    assert f"item 1 ({items[1]['paper']['id']})" in bad.problems[1]


def test_429_and_a_500_are_retried_within_one_fetch(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    first = {"date": "2024-03-12", "limit": "100", "p": "0"}
    httpserver.expect_oneshot_request("/api/daily_papers", query_string=first).respond_with_data(
        "Too Many Requests", status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_oneshot_request(
        "/api/daily_papers", query_string={**first, "date": "2024-03-13"}
    ).respond_with_data("Internal Server Error", status=500)
    real_days_api().install(httpserver)
    sleeps = Sleeps()
    hf = fetch(empty_store, httpserver, "hf", date(2024, 3, 12), date(2024, 3, 13), sleeps=sleeps)
    assert (hf.ok, hf.new) == (True, 9)
    assert sleeps == [2.0, 0.5]  # Retry-After, then the first backoff step


@pytest.mark.parametrize("source", ["hf", "arxiv"])
def test_an_unresolvable_host_fails_at_once_in_one_line(
    empty_store: Store, source: str
) -> None:
    sleeps = Sleeps()
    settings = make_settings("http://paperdigest-test.invalid")
    result = fetch(empty_store, None, source, SEP_30, settings=settings, sleeps=sleeps)
    assert not result.ok and sleeps == []  # no retry, no wait
    assert result.error == (
        "cannot reach paperdigest-test.invalid: the host name does not resolve (offline?); "
        f"to turn this source off, set enabled = false under [sources.{source}] or "
        f"PAPERDIGEST_SOURCES__{source.upper()}__ENABLED=false"
    )


# -- arXiv -------------------------------------------------------------------------------


def test_arxiv_stores_comment_doi_and_journal_ref_and_stops_paging_past_since(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    api = ArxivAPI().install(httpserver)
    sleeps = Sleeps()
    arxiv = fetch(empty_store, httpserver, "arxiv", date(2024, 5, 1), date(2024, 5, 31),
                  sleeps=sleeps)
    assert (arxiv.ok, arxiv.new) == (True, 1)
    # Newest first by first version: the third page reaches back past 1 May, so it is the
    # last asked for. One request every 3 s: two waits, none longer.
    assert [r["start"] for r in api.requests] == ["0", "2", "4"]
    assert {r["sortBy"] for r in api.requests} == {"submittedDate"}
    assert len(sleeps) == 2 and all(0 < s <= 3.0 for s in sleeps)
    paper = empty_store.resolve("2405.13786")
    assert paper.doi == "10.1109/ICSTW58534.2023.00023"
    assert paper.journal_ref.startswith("Proc. 2023 IEEE International Conference on Software")
    assert paper.arxiv_comment
    assert paper.listed == date(2024, 5, 22)


def test_arxiv_paper_is_new_on_its_first_version_unless_revisions_are_asked_for(
    isolated_dirs: Path, httpserver: HTTPServer
) -> None:
    api = ArxivAPI().install(httpserver)
    august = (date(2025, 8, 1), date(2025, 8, 31))
    with Store.open(isolated_dirs / "first") as store:
        first = fetch(store, httpserver, "arxiv", *august)
        assert first.new == 1
        # Revised on 12 August, first published on 7 March: new on 7 March.
        assert store.resolve("2503.05378").listed == date(2025, 3, 7)
    settings = make_settings(httpserver)
    settings.sources.arxiv.include_revisions = True
    api.requests.clear()
    with Store.open(isolated_dirs / "revisions") as store:
        revised = fetch(store, httpserver, "arxiv", *august, settings=settings)
        assert revised.new == 1
        assert store.resolve("2503.05378").listed == date(2025, 8, 12)
    assert {r["sortBy"] for r in api.requests} == {"lastUpdatedDate"}


def test_a_new_version_updates_in_place_and_is_new_again_only_for_those_not_sent_it(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    entries = real_entries()
    (real,) = [e for e in entries if b"2503.05378v2" in e.xml]  # v2 of 12 August
    # The listing as it was on 7 March: version 1 (the real entry, re-dated and
    # re-versioned), and another real paper re-dated to that day for the profiles to star.
    v1 = Entry(real.redated(date(2025, 3, 7)).xml.replace(b"2503.05378v2", b"2503.05378v1"))
    liked = entries[0].redated(date(2025, 3, 7))
    api = ArxivAPI(entries=[v1, liked]).install(httpserver)
    fetch(empty_store, httpserver, "arxiv", date(2025, 3, 7))
    paper = empty_store.resolve("2503.05378")
    for profile in ("ada", "bob"):
        empty_store.star(profile, empty_store.resolve("2202.12139"))
    mark_sent(empty_store, "ada", date(2025, 3, 8), [paper.pk])
    assert paper.pk in {p.paper.pk for p in select_picks(empty_store, "bob", 10, 1).picks}

    api.entries = [real]
    settings = make_settings(httpserver)
    settings.sources.arxiv.include_revisions = True
    arxiv = fetch(empty_store, httpserver, "arxiv", date(2025, 8, 12), settings=settings)
    assert (arxiv.ok, arxiv.new, arxiv.updated) == (True, 0, 1)
    row = paper_row(empty_store, "2503.05378")
    assert row["pk"] == paper.pk and row["version"] == 2 and row["listed"] == "2025-08-12"
    # Within a day of 12 August: the new version is new for bob, and never twice for ada.
    assert [p.paper.pk for p in select_picks(empty_store, "bob", 10, 1).picks] == [paper.pk]
    assert select_picks(empty_store, "ada", 10, 1).picks == []


def test_arxiv_400_error_message_reaches_the_user(
    empty_store: Store, httpserver: HTTPServer
) -> None:
    api = ArxivAPI(refuse=(400, fixture("arxiv_error_400_id_abc.xml"))).install(httpserver)
    sleeps = Sleeps()
    arxiv = fetch(empty_store, httpserver, "arxiv", SEP_30, sleeps=sleeps)
    assert not arxiv.ok
    assert arxiv.error.endswith("HTTP 400 BAD REQUEST: incorrect id format for abc")
    assert len(api.requests) == 1 and sleeps == []  # a refused query is not retried


def test_throttle_spaces_requests_by_the_interval() -> None:
    now = [100.0]
    sleeps = Sleeps()

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        now[0] += seconds

    throttle = Throttle(3.0, sleep=sleep, clock=lambda: now[0])
    throttle.wait()
    now[0] += 1.0  # a request that took one second
    throttle.wait()
    now[0] += 5.0
    throttle.wait()
    assert sleeps == [2.0]


# -- one source down: the digest still goes out ------------------------------------------


def todays_feed(entries: list[Entry]) -> bytes:
    """Real recorded arXiv entries as today's cs.SE announcement, which the daily job reads."""
    xml = b"".join(entry.xml for entry in entries)
    page = b'<feed xmlns="http://www.w3.org/2005/Atom" ' + (
        b'xmlns:arxiv="http://arxiv.org/schemas/atom">' + xml + b"</feed>"
    )
    records = parse_arxiv_page(page, "entries").result.records
    assert len(records) == len(entries)
    papers = [
        {"id": r.arxiv_id, "title": r.title, "abstract": r.abstract, "authors": r.authors,
         "categories": list(r.categories), "primary": r.primary_category, "doi": r.doi,
         "journal_ref": r.journal_ref}
        for r in records
    ]
    return rss_feed(["cs.SE"], date.today(), [Item(p, "new") for p in papers])


@pytest.fixture
def hf_down_arxiv_up(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    httpserver.expect_request("/api/daily_papers").respond_with_data(
        "Service Unavailable", status=503
    )
    # Five real entries, announced today in the feed the daily job reads.
    httpserver.expect_request("/rss/cs.SE").respond_with_data(
        todays_feed(real_entries()[:5]), content_type=RSS
    )
    yield httpserver


def test_hf_down_the_daily_job_still_sends_the_digest(
    isolated_dirs: Path, hf_down_arxiv_up: HTTPServer, plain_server: MailServer
) -> None:
    settings = make_settings(
        hf_down_arxiv_up,
        smtp=plain_server.settings(),
        profiles=[ProfileSettings(name="ada", email=["ada@example.com"])],
    )
    settings.sources.retries = 1
    settings.sources.backoff = 0.0
    settings.sources.arxiv.request_delay = 0.0

    assert Daemon(settings, isolated_dirs).send_now("ada") == "sent"

    (message,) = plain_server.received
    text = message.message.get_body(preferencelist=("plain",)).get_content()
    assert "Testing Deep Learning Models" in text  # an arXiv paper fetched just before
    assert "DOI <https://doi.org/10.1109/ICSTW55395.2022.00035>" in text  # its details
    with Store.open(isolated_dirs) as store:
        hf = store.last_fetch("hf")
        arxiv = store.last_fetch("arxiv")
    assert hf is not None and not hf.ok and "HTTP 503" in (hf.error or "")
    assert arxiv is not None and arxiv.ok and arxiv.new == 5


def test_hf_down_fetch_reports_it_preview_and_status_still_work(
    cli, isolated_dirs: Path, tmp_path: Path, hf_down_arxiv_up: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path / "config.toml", {"host": "localhost"},
                          [{"name": "ada", "email": "ada@example.com", "send_time": "07:30"}])
    monkeypatch.setenv("PAPERDIGEST_CONFIG", str(config))
    env = {
        "PAPERDIGEST_SOURCES__HF__BASE_URL": base(hf_down_arxiv_up),
        "PAPERDIGEST_SOURCES__ARXIV__BASE_URL": base(hf_down_arxiv_up),
        "PAPERDIGEST_SOURCES__ARXIV__FEED_URL": base(hf_down_arxiv_up),
        "PAPERDIGEST_SOURCES__ARXIV__ENABLED": "true",
        "PAPERDIGEST_SOURCES__ARXIV__CATEGORIES": '["cs.SE"]',
        "PAPERDIGEST_SOURCES__ARXIV__PAGE_SIZE": "2",
        "PAPERDIGEST_SOURCES__ARXIV__REQUEST_DELAY": "0",
        "PAPERDIGEST_SOURCES__RETRIES": "1",
        "PAPERDIGEST_SOURCES__BACKOFF": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    result = cli("fetch")
    assert result.exit_code == 1
    assert "arxiv: 5 new, 0 updated, 0 skipped" in result.stdout
    assert "hf: 0 new, 0 updated, 0 skipped; failed: " in result.stdout
    assert "HTTP 503" in result.stdout
    assert "Traceback" not in result.output

    preview = cli("preview", "--profile", "ada")
    assert preview.exit_code == 0
    assert "Testing Deep Learning Models" in preview.stdout

    status = cli("status")
    assert status.exit_code == 0, status.output
    lines = status.stdout
    assert re.search(r"arxiv\s+yes\s+\d{4}-\d\d-\d\d \d\d:\d\d ok: 5 new", lines)
    assert re.search(r"hf\s+yes\s+\d{4}-\d\d-\d\d \d\d:\d\d FAILED: ", lines)
    assert re.search(r"ada\s+0\s+0\s+never\s+\d{4}-\d\d-\d\d \d\d:30", lines)
    assert "new today" in lines
