"""The candidate window is counted from today (issue 12, input). A fresh install still shows
a real digest of the bundled seed papers, and a store nothing was listed in lately shows its
newest papers and says so in one line, rather than an empty digest."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from paperdigest.store import DB_NAME, Store
from paperdigest.window import fallen_back_to, window_end
from tests.mail_fixtures import QUIET, write_config

TODAY = date(2026, 12, 1)
NOTE = "No papers in the last 7 days; showing the newest, listed up to"


def _paperdigest(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, as a user types it."""
    env = {**os.environ, "PAPERDIGEST_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-c", "from paperdigest.cli import main; main()", *args],
        capture_output=True, text=True, env=env,
    )


def _age(data_dir: Path, days: int) -> date:
    """Move every listing day back, as if the seed corpus was loaded `days` ago."""
    conn = sqlite3.connect(data_dir / DB_NAME)
    with conn:
        conn.execute("UPDATE papers SET listed = date(listed, ?)", (f"-{days} days",))
    newest = conn.execute("SELECT max(listed) FROM papers").fetchone()[0]
    conn.close()
    return date.fromisoformat(newest)


def test_the_window_ends_today_when_anything_was_listed_in_it() -> None:
    # The newest paper three days ago: the window is still the 7 days up to today.
    assert window_end(TODAY - timedelta(days=3), 7, TODAY) == TODAY
    assert window_end(TODAY - timedelta(days=7), 7, TODAY) == TODAY
    assert fallen_back_to(TODAY - timedelta(days=7), 7, TODAY) is None
    # Nothing in the last 7 days: the newest listing day instead.
    assert window_end(TODAY - timedelta(days=8), 7, TODAY) == TODAY - timedelta(days=8)
    assert fallen_back_to(TODAY - timedelta(days=8), 7, TODAY) == TODAY - timedelta(days=8)
    # An empty store, or no window at all (0), never falls back.
    assert window_end(None, 7, TODAY) == TODAY
    assert fallen_back_to(TODAY - timedelta(days=400), 0, TODAY) is None


def test_older_papers_leave_the_window_even_when_nothing_is_newer(data_dir: Path) -> None:
    """Counted from today, not from the newest paper: a paper 9 days old is out of a
    7-day window although the newest one is 3 days old."""
    with Store.open(data_dir) as store:
        pks = [pk for (pk,) in store.conn.execute("SELECT pk FROM papers ORDER BY pk")]
        with store.conn:
            store.conn.execute("UPDATE papers SET listed = ?",
                               ((TODAY - timedelta(days=9)).isoformat(),))
            store.conn.execute("UPDATE papers SET listed = ? WHERE pk = ?",
                               ((TODAY - timedelta(days=3)).isoformat(), pks[0]))
        window = store.window_papers(7, today=TODAY)
    assert [paper.pk for paper in window] == [pks[0]]


def test_a_fresh_install_previews_a_digest_of_seed_papers(tmp_path: Path) -> None:
    """The README's first command, in a new data dir: picks, and no note about old papers."""
    data_dir = tmp_path / "fresh"
    preview = _paperdigest(data_dir, "preview")
    assert preview.returncode == 0, preview.stderr
    assert "Loaded 524 papers from the bundled seed corpus" in preview.stderr
    assert "\n1. " in preview.stdout and "\n10. " in preview.stdout
    assert NOTE not in preview.stdout + preview.stderr

    ids = [line.rsplit("[id ", 1)[1].rstrip("]") for line in preview.stdout.splitlines()
           if "[id " in line][:2]
    assert _paperdigest(data_dir, "star", *ids).returncode == 0
    picked = _paperdigest(data_dir, "preview")
    assert picked.returncode == 0, picked.stderr
    assert "\n10. " in picked.stdout
    assert "-- like “" in picked.stdout  # ranked from the stars, not merely the newest
    assert NOTE not in picked.stdout


def test_seed_papers_loaded_weeks_ago_still_make_a_digest_that_says_so(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "old"
    first = _paperdigest(data_dir, "preview")
    assert first.returncode == 0, first.stderr
    ids = [line.rsplit("[id ", 1)[1].rstrip("]") for line in first.stdout.splitlines()
           if "[id " in line][:2]
    assert _paperdigest(data_dir, "star", *ids).returncode == 0
    newest = _age(data_dir, 40)

    preview = _paperdigest(data_dir, "preview")
    assert preview.returncode == 0, preview.stderr
    note = f"{NOTE} {newest.isoformat()}."
    assert note in preview.stdout.splitlines()
    assert "\n10. " in preview.stdout and "-- like “" in preview.stdout

    recommend = _paperdigest(data_dir, "recommend", "--limit", "5")
    assert recommend.returncode == 0, recommend.stderr
    assert note in recommend.stderr.splitlines()
    assert len([line for line in recommend.stdout.splitlines() if "like" in line]) >= 5

    html = tmp_path / "digest.html"
    assert _paperdigest(data_dir, "preview", "--out", str(html)).returncode == 0
    assert newest.isoformat() in html.read_text(encoding="utf-8")


@pytest.mark.filterwarnings(*QUIET[0].args)
def test_send_on_old_seed_papers_mails_them_with_the_note(
    data_dir: Path, tmp_path: Path, cli, plain_server
) -> None:
    newest = _age(data_dir, 40)
    config = str(write_config(tmp_path / "c.toml", plain_server.settings(),
                              [{"name": "ada", "email": "ada@example.com"}]))
    result = cli("--config", config, "send", "--profile", "ada")
    assert result.exit_code == 0, result.output
    [received] = plain_server.received
    text = received.message.get_body(preferencelist=("plain",)).get_content()
    assert f"{NOTE} {newest.isoformat()}" in " ".join(text.split())
    assert "\n1. " in text
