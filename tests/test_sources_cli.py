"""`paperdigest fetch` and `paperdigest status` through the real CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

FIXTURES = Path(__file__).parent / "fixtures" / "sources"


@pytest.fixture
def hf_server(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    for day in ("2025-03-17", "2025-03-18"):
        httpserver.expect_request(
            "/api/daily_papers", query_string={"date": day}
        ).respond_with_data((FIXTURES / f"hf_{day}.json").read_bytes(),
                            content_type="application/json")
    # The environment override the README documents, pointing at the local server.
    monkeypatch.setenv("PAPERDIGEST_SOURCES__HF__BASE_URL", httpserver.url_for("/"))
    return httpserver


def test_fetch_one_day_reports_counts(cli, data_dir: Path, hf_server: HTTPServer) -> None:
    result = cli("fetch", "--source", "hf", "--date", "2025-03-17")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hf: 3 new, 0 updated, 0 skipped"
    assert len(hf_server.log) == 1

    again = cli("fetch", "--source", "hf", "--date", "2025-03-17")
    assert again.stdout.strip() == "hf: 0 new, 0 updated, 0 skipped"

    found = cli("search", "ReCamMaster")
    assert "2503.11647" in found.stdout


def test_fetch_two_days_then_status(cli, data_dir: Path, hf_server: HTTPServer) -> None:
    result = cli("fetch", "--source", "hf", "--date", "2025-03-18")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hf: 2 new, 1 updated, 0 skipped"  # one was a seed paper
    status = cli("status")
    assert status.exit_code == 0
    assert re.search(r"hf\s+yes\s+.* ok: 2 new, 1 updated, 0 skipped", status.stdout)
    assert re.search(r"arxiv\s+no\s+never fetched", status.stdout)
    assert re.search(r"default\s+0\s+0\s+never\s+not scheduled", status.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2025-02-30"], "--date '2025-02-30' is not a date as YYYY-MM-DD"),
        (["--date", "2025-03-17", "--since", "2025-03-10"], "give --date or --since, not both"),
        (["--since", "2024-01-01"], "fetch at most 31 days at a time"),
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
