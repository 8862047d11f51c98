"""Fetching live sources end to end, from recorded responses on a real local server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from paperdigest.config import ProfileSettings, Settings
from paperdigest.refresh import refresh_sources
from paperdigest.scheduler import Daemon
from paperdigest.service import select_picks
from paperdigest.sources.arxiv import Throttle
from paperdigest.store import Store
from tests.mail_fixtures import QUIET, MailServer, write_config

pytestmark = QUIET  # the plain SMTP test server warns about AUTH without TLS

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
ARXIV_PAGES = ["arxiv_cs.LG_p0.xml", "arxiv_cs.LG_p1.xml", "arxiv_cs.LG_p2.xml"]
ATOM = "application/atom+xml; charset=utf-8"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def base(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def serve_hf(server: HTTPServer, day: str, body: bytes | None = None, **kw: object) -> None:
    if body is None:
        path = FIXTURES / f"hf_{day}.json"
        body = path.read_bytes() if path.exists() else b"[]"  # no papers that day
    server.expect_request("/api/daily_papers", query_string={"date": day}).respond_with_data(
        body, content_type="application/json", **kw
    )


def arxiv_query(category: str, start: int, size: int) -> dict[str, str]:
    return {
        "search_query": f"cat:{category}",
        "sortBy": "submittedDate",
        "sortOrder": "descending",
        "start": str(start),
        "max_results": str(size),
    }


def serve_arxiv(server: HTTPServer, pages: list[bytes] | None = None) -> None:
    pages = pages or [fixture(name) for name in ARXIV_PAGES]
    for number, body in enumerate(pages):
        server.expect_request(
            "/api/query", query_string=arxiv_query("cs.LG", 2 * number, 2)
        ).respond_with_data(body, content_type=ATOM)


def make_settings(server: HTTPServer, **extra: object) -> Settings:
    return Settings(
        sources={
            "hf": {"base_url": base(server)},
            "arxiv": {
                "enabled": True,
                "base_url": base(server),
                "categories": ["cs.LG"],
                "max_results": 10,
                "page_size": 2,
                "request_delay": 3.0,
            },
            "retries": 2,
            "backoff": 0.5,
        },
        **extra,
    )


def paper_row(store: Store, arxiv_id: str) -> dict:
    row = store.conn.execute("SELECT * FROM papers WHERE arxiv_id = ?", (arxiv_id,)).fetchone()
    return dict(row)


def fetch_march(store: Store, server: HTTPServer, sleeps: Sleeps, **kw: object):
    for day in range(14, 19):
        serve_hf(server, f"2025-03-{day}")
    serve_arxiv(server)
    return refresh_sources(
        store, make_settings(server), since=date(2025, 3, 14), until=date(2025, 3, 18),
        today=date(2025, 3, 18), sleep=sleeps, **kw,
    )


def test_both_sources_merge_into_one_record_per_paper(
    store: Store, httpserver: HTTPServer
) -> None:
    seed = store.resolve("Once-for-All: Train One Network and Specialize it for Efficient "
                         "Deployment")
    store.star("ada", seed)
    store.dismiss("ada", store.resolve("Scaling Laws Beyond Backpropagation"))
    before = store.count_papers()
    sleeps = Sleeps()

    hf, arxiv = fetch_march(store, httpserver, sleeps)

    assert (hf.source, hf.ok, hf.new, hf.updated, hf.skipped) == ("hf", True, 5, 1, 0)
    # 2503.13424, 2503.12533 and 2503.11731 were on Hugging Face too.
    assert (arxiv.source, arxiv.ok, arxiv.new, arxiv.updated) == ("arxiv", True, 2, 3)
    assert store.count_papers() == before + 7
    httpserver.check_assertions()
    # Three arXiv pages, one request every 3 s: two waits between them, none longer.
    assert len(sleeps) == 2 and all(0 < s <= 3.0 for s in sleeps)

    being = paper_row(store, "2503.12533")
    assert being["upvotes"] == 52 and being["comments"] == 3  # from Hugging Face
    assert being["primary_category"] == "cs.RO"  # from arXiv
    assert json.loads(being["categories"]) == ["cs.RO", "cs.AI", "cs.LG"]
    assert being["project_page"] == "https://beingbeyond.github.io/being-0"
    neuvo = paper_row(store, "2503.11731")
    assert neuvo["version"] == 2 and neuvo["updated"] == "2025-03-17"
    assert neuvo["ai_summary"].startswith("Neuvo GEAF")

    # The seed paper gained its arXiv id; its star came along, under the same pk.
    ofa = store.resolve("arXiv:1908.09791v3")
    assert ofa.pk == seed.pk and ofa.id == "1908.09791"
    assert [p.id for p, _ in store.starred("ada")] == ["1908.09791"]
    assert paper_row(store, "1908.09791")["github"].endswith("mit-han-lab/once-for-all")
    assert len(store.dismissed_pks("ada")) == 1

    # Upvotes now exist, so the digest has a Trending section to show. (The window is wide
    # because the seed papers, which carry no year, are listed on the day they were loaded.)
    assert store.trending(3, 5000)[0].arxiv_id == "2503.11647"


def test_fetching_again_changes_nothing(store: Store, httpserver: HTTPServer) -> None:
    fetch_march(store, httpserver, Sleeps())
    snapshot = store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall()
    again = refresh_sources(
        store, make_settings(httpserver), since=date(2025, 3, 14), until=date(2025, 3, 18),
        sleep=Sleeps(),
    )
    assert [(r.new, r.updated, r.skipped) for r in again] == [(0, 0, 0), (0, 0, 0)]
    assert store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall() == snapshot


def test_a_new_version_updates_in_place_and_is_never_shown_twice(
    store: Store, httpserver: HTTPServer
) -> None:
    fetch_march(store, httpserver, Sleeps())
    neuvo = store.resolve("2503.11731v2")
    store.star("ada", store.resolve("2503.12533"))
    # Ada's digest of 18 March showed the paper (as the delivery ledger records it).
    with store.transaction() as conn:
        digest_id = conn.execute(
            "INSERT INTO digests(profile, digest_date, status, created_at, sent_at) "
            "VALUES ('ada', '2025-03-18', 'sent', '2025-03-18T07:00:00+00:00', "
            "'2025-03-18T07:00:05+00:00')"
        ).lastrowid
        conn.execute(
            "INSERT INTO digest_items(digest_id, paper_pk, rank, score, reason) "
            "VALUES (?, ?, 1, 0.5, 'new')",
            (digest_id, neuvo.pk),
        )
    httpserver.clear()
    httpserver.expect_request(
        "/api/query", query_string=arxiv_query("cs.NE", 0, 10)
    ).respond_with_data(fixture("arxiv_cs.NE_v3.xml"), content_type=ATOM)
    settings = make_settings(httpserver)
    settings.sources.arxiv.categories = ["cs.NE"]
    settings.sources.arxiv.page_size = 100

    (result,) = refresh_sources(store, settings, sources=["arxiv"], since=date(2025, 3, 19),
                                until=date(2025, 3, 19), sleep=Sleeps())

    assert (result.ok, result.new, result.updated) == (True, 0, 1)
    v3 = store.resolve("https://arxiv.org/abs/2503.11731v3")
    assert v3.pk == neuvo.pk and v3.id == "2503.11731"
    assert v3.title.startswith("Evolving Task-Specific Activation Functions")
    assert paper_row(store, "2503.11731")["version"] == 3
    assert neuvo.pk in store.shown_pks("ada")
    picks = select_picks(store, "ada", 50, window_days=400).picks
    assert picks and neuvo.pk not in {p.paper.pk for p in picks}


def test_malformed_responses_are_skipped_and_touch_nothing(
    store: Store, httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    fetch_march(store, httpserver, Sleeps())
    snapshot = store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall()
    httpserver.clear()
    day = fixture("hf_2025-03-17.json")
    serve_hf(httpserver, "2025-03-17", day[: len(day) // 3])  # truncated JSON
    items = json.loads(fixture("hf_2025-03-18.json"))
    del items[0]["paper"]["summary"]  # a missing summary
    items[1]["paper"]["authors"] = "Lan Chen"  # a wrong type
    serve_hf(httpserver, "2025-03-18", json.dumps(items).encode())
    pages = [fixture(name) for name in ARXIV_PAGES]
    pages[1] = pages[1][: len(pages[1]) // 2]  # truncated XML: that page is skipped
    serve_arxiv(httpserver, pages)

    hf, arxiv = refresh_sources(
        store, make_settings(httpserver), since=date(2025, 3, 17), until=date(2025, 3, 18),
        sleep=Sleeps(),
    )
    assert hf.ok and arxiv.ok
    assert (hf.new, hf.updated, hf.skipped) == (0, 0, 3)
    assert "date=2025-03-17: invalid JSON" in hf.problems[0]
    assert "date=2025-03-18 item 0 (2503.13424): missing or empty 'paper.summary'" in (
        hf.problems[1]
    )
    assert "item 1 (2503.13327)" in hf.problems[2]
    assert arxiv.skipped == 1 and "start=2: not a well-formed Atom feed" in arxiv.problems[0]
    assert any("invalid JSON" in r.getMessage() for r in caplog.records)  # logged as well
    assert store.conn.execute("SELECT * FROM papers ORDER BY pk").fetchall() == snapshot


def test_429_and_a_500_are_retried_within_one_fetch(store: Store, httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request(
        "/api/daily_papers", query_string={"date": "2025-03-17"}
    ).respond_with_data("Too Many Requests", status=429, headers={"Retry-After": "2"})
    httpserver.expect_oneshot_request(
        "/api/daily_papers", query_string={"date": "2025-03-18"}
    ).respond_with_data("Internal Server Error", status=500)
    serve_hf(httpserver, "2025-03-17")
    serve_hf(httpserver, "2025-03-18")
    sleeps = Sleeps()
    (hf,) = refresh_sources(store, make_settings(httpserver), sources=["hf"],
                            since=date(2025, 3, 17), until=date(2025, 3, 18), sleep=sleeps)
    assert (hf.ok, hf.new) == (True, 5)
    assert sleeps == [2.0, 0.5]  # Retry-After, then the first backoff step


def test_arxiv_paging_stops_once_results_reach_back_past_since(
    store: Store, httpserver: HTTPServer
) -> None:
    serve_arxiv(httpserver)
    (arxiv,) = refresh_sources(store, make_settings(httpserver), sources=["arxiv"],
                               since=date(2025, 3, 17), until=date(2025, 3, 18), sleep=Sleeps())
    # Page 1 reaches back to 16 March, so page 2 is never asked for; 2503.12533 (16 March)
    # falls outside the window.
    assert len(httpserver.log) == 2
    assert (arxiv.ok, arxiv.new) == (True, 3)


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


def redated(name: str, day: date) -> bytes:
    """A recorded arXiv page moved to `day`, for the daily job's default window."""
    return re.sub(rb"2025-03-1\d", day.isoformat().encode(), fixture(name))


@pytest.fixture
def hf_down_arxiv_up(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    httpserver.expect_request("/api/daily_papers").respond_with_data(
        "Service Unavailable", status=503
    )
    today = date.today()
    serve_arxiv(httpserver, [redated(name, today) for name in ARXIV_PAGES])
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
    assert "MM-Spatial" in text  # an arXiv paper fetched just before
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
        "PAPERDIGEST_SOURCES__ARXIV__ENABLED": "true",
        "PAPERDIGEST_SOURCES__ARXIV__CATEGORIES": '["cs.LG"]',
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
    assert re.search(r"hf: 0 new, 0 updated, 0 skipped; failed: .*HTTP 503", result.stdout)
    assert "Traceback" not in result.output

    preview = cli("preview", "--profile", "ada")
    assert preview.exit_code == 0
    assert "MM-Spatial" in preview.stdout

    status = cli("status")
    assert status.exit_code == 0, status.output
    lines = status.stdout
    assert re.search(r"arxiv\s+yes\s+\d{4}-\d\d-\d\d \d\d:\d\d ok: 5 new", lines)
    assert re.search(r"hf\s+yes\s+\d{4}-\d\d-\d\d \d\d:\d\d FAILED: ", lines)
    assert re.search(r"ada\s+0\s+0\s+never\s+\d{4}-\d\d-\d\d \d\d:30", lines)
    assert "new today" in lines
