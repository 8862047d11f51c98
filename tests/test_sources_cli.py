"""`paperdigest fetch` and `paperdigest status` through the real CLI, against a local server
that pages like the live APIs and serves real recorded days."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from paperdigest.digest import assemble_digest, item_for
from paperdigest.render import make_environment, render_digest
from paperdigest.store import Store
from tests.source_servers import (
    ArxivAPI,
    DailyPapersAPI,
    fixture,
    listed_on,
    real_day,
    real_days_api,
)


@pytest.fixture
def hf_api(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> DailyPapersAPI:
    api = real_days_api().install(httpserver)
    # The environment override the README documents, pointing at the local server.
    monkeypatch.setenv("PAPERDIGEST_SOURCES__HF__BASE_URL", httpserver.url_for("/"))
    return api


def stored(data_dir: Path, arxiv_ids: list[str]) -> list[tuple[str, str]]:
    with Store.open(data_dir) as store:
        return store.conn.execute(
            "SELECT arxiv_id, listed FROM papers "
            "WHERE arxiv_id IN (SELECT value FROM json_each(?)) ORDER BY arxiv_id",
            (json.dumps(arxiv_ids),),
        ).fetchall()


def test_fetch_one_day_reports_counts(cli, data_dir: Path, hf_api: DailyPapersAPI) -> None:
    result = cli("fetch", "--source", "hf", "--date", "2025-09-30")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hf: 50 new, 0 updated, 0 skipped"

    again = cli("fetch", "--source", "hf", "--date", "2025-09-30")
    assert again.stdout.strip() == "hf: 0 new, 0 updated, 0 skipped"

    found = cli("search", "ToolUniverse", "--json")
    (hit,) = json.loads(found.stdout)
    assert hit["id"] == "2509.23426"
    assert hit["github"] == "https://github.com/mims-harvard/ToolUniverse"
    assert hit["github_stars"] == 233
    assert hit["hf_page"] == "https://huggingface.co/papers/2509.23426"
    assert hit["project_page"] == "https://aiscientist.tools/"
    assert hit["organization"] == "Harvard University"
    assert hit["ai_keywords"] and hit["doi"] is None


def test_fetch_since_stores_every_paper_once_on_its_daily_papers_day(
    cli, data_dir: Path, hf_api: DailyPapersAPI
) -> None:
    # Three real archived days, fetched as one range (2024-10-10 is a Thursday; the
    # days around it have nothing on this server, as a weekend has nothing live).
    hf_api.days["2024-10-11"] = real_day("2024-03-12")  # stand-in for the next day
    result = cli("fetch", "--source", "hf", "--since", "2024-10-09", "--until", "2024-10-12")
    assert result.exit_code == 0, result.output
    # 46 + 9 papers; two were seed papers already, which gain their arXiv ids.
    assert result.stdout.strip() == "hf: 53 new, 2 updated, 0 skipped"
    assert sorted(hf_api.pages_of("2024-10-10")) == [0]  # 46: a short page, the last
    oct_10 = [i["paper"]["id"] for i in real_day("2024-10-10")]
    oct_11 = [i["paper"]["id"] for i in real_day("2024-03-12")]
    rows = stored(data_dir, oct_10 + oct_11)
    assert len(rows) == 55  # every paper once
    assert {listed for arxiv_id, listed in rows if arxiv_id in oct_10} == {"2024-10-10"}
    assert {listed for arxiv_id, listed in rows if arxiv_id in oct_11} == {"2024-10-11"}


def test_fetch_since_runs_through_today(cli, data_dir: Path, hf_api: DailyPapersAPI) -> None:
    # The three real days, served as the last three days, as the live API would list them
    # (the 2024 items carry no submittedOnDailyAt: their day is the day asked for).
    today = date.today()
    days = [today - timedelta(days=n) for n in (2, 1, 0)]
    hf_api.days = {
        days[0].isoformat(): listed_on(real_day("2025-09-30"), days[0]),
        days[1].isoformat(): listed_on(real_day("2024-10-10"), days[1]),
        days[2].isoformat(): real_day("2024-03-12"),
    }
    result = cli("fetch", "--source", "hf", "--since", (today - timedelta(days=3)).isoformat())
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hf: 103 new, 2 updated, 0 skipped"
    for day, name in zip(days, ("2025-09-30", "2024-10-10", "2024-03-12"), strict=True):
        ids = [i["paper"]["id"] for i in real_day(name)]
        rows = stored(data_dir, ids)
        assert len(rows) == len(ids) and {listed for _, listed in rows} == {day.isoformat()}


def test_fetch_a_day_then_status(cli, data_dir: Path, hf_api: DailyPapersAPI) -> None:
    result = cli("fetch", "--source", "hf", "--date", "2024-03-12")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hf: 8 new, 1 updated, 0 skipped"  # one was a seed paper
    status = cli("status")
    assert status.exit_code == 0
    assert re.search(r"hf\s+yes\s+.* ok: 8 new, 1 updated, 0 skipped", status.stdout)
    assert re.search(r"arxiv\s+no\s+never fetched", status.stdout)
    assert re.search(r"default\s+0\s+0\s+never\s+not scheduled", status.stdout)


def test_the_digest_shows_each_papers_details_line(
    cli, data_dir: Path, hf_api: DailyPapersAPI
) -> None:
    cli("fetch", "--source", "hf", "--date", "2025-09-30")
    with Store.open(data_dir) as store:
        papers = [store.resolve(ref) for ref in ("2509.24006", "2509.23426")]
    digest = assemble_digest(date(2025, 9, 30), "ada", [item_for(p, 1.0, "new") for p in papers])
    rendered = render_digest(digest, make_environment())
    # Wrapped between words, never inside a link.
    assert (
        "   remaining weights with…\n"
        "   Tsinghua University ·\n"
        "   Hugging Face <https://huggingface.co/papers/2509.24006> · Diffusion\n"
        "   Transformer, attention latency, sequence length, quadratic complexity,\n"
        "   sparse acceleration\n"
        "   -- new [id 2509.24006]\n"
    ) in rendered.text
    assert "   code ★233 <https://github.com/mims-harvard/ToolUniverse> ·\n" in rendered.text
    assert (
        '<a href="https://github.com/mims-harvard/ToolUniverse" style="color:#1d4ed8;">'
        "code ★233</a> &middot; "
    ) in rendered.html


@pytest.mark.parametrize("source", ["hf", "arxiv"])
def test_an_unresolvable_host_fails_at_once_in_one_line(
    cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.setenv(f"PAPERDIGEST_SOURCES__{source.upper()}__BASE_URL",
                       "https://paperdigest-test.invalid")
    monkeypatch.setenv("PAPERDIGEST_SOURCES__ARXIV__CATEGORIES", '["cs.LG"]')
    result = cli("fetch", "--source", source, "--date", "2025-09-30")
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert line == (
        f"{source}: 0 new, 0 updated, 0 skipped; failed: cannot reach "
        "paperdigest-test.invalid: the host name does not resolve (offline?); to turn this "
        f"source off, set enabled = false under [sources.{source}] or "
        f"PAPERDIGEST_SOURCES__{source.upper()}__ENABLED=false"
    )
    assert result.stderr.strip() == ""  # no retry to report; the line above says it all


def test_arxivs_own_error_message_is_shown(
    cli, data_dir: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ArxivAPI(refuse=(400, fixture("arxiv_error_400_id_abc.xml"))).install(httpserver)
    monkeypatch.setenv("PAPERDIGEST_SOURCES__ARXIV__BASE_URL", httpserver.url_for("/"))
    monkeypatch.setenv("PAPERDIGEST_SOURCES__ARXIV__REQUEST_DELAY", "0")
    monkeypatch.setenv("PAPERDIGEST_SOURCES__ARXIV__CATEGORIES", '["cs.LG"]')
    result = cli("fetch", "--source", "arxiv", "--date", "2025-09-30")
    assert result.exit_code == 1
    assert re.search(r"arxiv: 0 new.*failed: .*HTTP 400 BAD REQUEST: incorrect id format for abc",
                     result.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2025-02-30"], "--date '2025-02-30' is not a date as YYYY-MM-DD"),
        (["--date", "2025-03-17", "--since", "2025-03-10"], "give --date or --since, not both"),
        (["--since", "2020-01-01"], "fetch at most 366 days at a time (--since with --until)"),
        (["--until", "2024-01-01"], "--until goes with --since"),
        (["--since", "2024-01-05", "--until", "2024-01-01"], "--since 2024-01-05 is after "
                                                            "2024-01-01"),
    ],
)
def test_bad_dates_are_one_clean_line(cli, data_dir: Path, args: list[str], message: str) -> None:
    result = cli("fetch", *args)
    assert result.exit_code != 0
    assert result.stderr.strip().endswith(message)
    assert "Traceback" not in result.output


def test_no_enabled_source_is_explained(cli, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERDIGEST_SOURCES__HF__ENABLED", "false")
    result = cli("fetch")
    assert result.exit_code == 1
    assert "no source is enabled" in result.stderr


def test_every_command_has_help(cli) -> None:
    for command in ("fetch", "status"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout
