"""Hostile input at the command line: terminal output, config values, full disks, files in
the way, an emptied database (issue 12). Every failure is one line, never a traceback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paperdigest.store import DB_NAME, Store
from tests.mail_fixtures import QUIET, write_config

ADA = {"name": "ada", "email": "ada@example.com"}
CONTROL = [chr(c) for c in (*range(0, 9), *range(11, 32), *range(127, 160))]


def _no_control(text: str) -> bool:
    return not any(c in text for c in CONTROL)


@contextlib.contextmanager
def tiny_disk(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem that fills up: a tmpfs of `size` (needs root; skips otherwise)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path, leave: int = 0) -> None:
    """Take every free byte of the filesystem holding `directory`, but `leave`."""
    filler = directory / "filler"
    with open(filler, "wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))


# -- terminal output ---------------------------------------------------------------------


HOSTILE = "Owned \x1b]0;pwned\x07 \x1b[2J sparse \x9b31m pruning title"


def test_escape_sequences_in_stored_titles_never_reach_the_terminal(
    data_dir: Path, cli
) -> None:
    # Rows stored before the boundary sanitised text: written straight into the database.
    with Store.open(data_dir) as store:
        rows = store.conn.execute("SELECT pk FROM papers ORDER BY pk LIMIT 40").fetchall()
        for n, (pk,) in enumerate(rows):
            store.conn.execute("UPDATE papers SET title = ?, listed_label = ? WHERE pk = ?",
                               (f"{HOSTILE} {n}", "Mar\x1b[5m 11", pk))
    with Store.open(data_dir) as store:
        first = store.papers([rows[0][0]])[0]
    star = cli("star", first.id)
    assert star.exit_code == 0
    outputs = [
        star,
        cli("search", "sparse pruning title"),
        cli("stars"),
        cli("recommend", "--limit", "50"),
        cli("preview", "--picks", "50"),
        cli("status"),
    ]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert _no_control(result.stdout.replace("\n", "").replace("\t", ""))
        assert _no_control(result.stderr.replace("\n", ""))
    for result in outputs[:5]:  # status shows no titles
        assert "pwned" in result.stdout and "\ufffd" in result.stdout


def test_a_title_that_looks_like_rich_markup_prints_as_written(data_dir: Path, cli) -> None:
    with Store.open(data_dir) as store:
        store.conn.execute("UPDATE papers SET title = ? WHERE pk = 1",
                           ("Sparse [bold red]pruning[/] and [/unbalanced] markup",))
    result = cli("search", "unbalanced markup")
    assert result.exit_code == 0, result.output
    assert "[bold red]pruning[/]" in result.stdout


# -- config values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"name": "../../x", "email": "a@example.com"}, "profiles.0.name: invalid profile name"),
        ({"name": "/tmp/x", "email": "a@example.com"}, "profiles.0.name: invalid profile name"),
        ({"name": "ada", "email": "a@example.com\r\nBcc: all@example.com"},
         "contains a line break"),
        ({"name": "ada", "email": "a@example.com, b@example.com"}, "several addresses"),
        ({"name": "ada", "email": "not an address"}, "is not an email address"),
    ],
)
def test_bad_profile_names_and_addresses_are_refused(
    profile: dict[str, str], message: str, tmp_path: Path, cli
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[[profiles]]\nname = {json.dumps(profile['name'])}\n"
                      f"email = {json.dumps(profile['email'])}\n")
    for args in (("config", "check"), ("send", "--all", "--dry-run")):
        result = cli("--config", str(config), *args)
        assert result.exit_code == 2
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_several_addresses_as_a_list_and_a_display_name_are_fine(tmp_path: Path, cli) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[smtp]\nsender = "Digest Bot <bot@example.com>"\n'
                      '[[profiles]]\nname = "ada"\n'
                      'email = ["ada@example.com", "Ada Lovelace <ada@work.example>"]\n')
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code == 0, result.output
    assert 'email = ["ada@example.com", "Ada Lovelace <ada@work.example>"]' in result.stdout


@pytest.mark.filterwarnings(*QUIET[0].args)
def test_send_to_something_that_is_not_an_address_is_refused(
    data_dir: Path, tmp_path: Path, cli, plain_server
) -> None:
    config = str(write_config(tmp_path / "c.toml", plain_server.settings(), [ADA]))
    for bad in ("not an address", "a@example.com\nBcc: b@example.com", "a@x.org, b@y.org"):
        result = cli("--config", config, "send", "--to", bad)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: --to: ")
        assert len(result.stderr.strip().splitlines()) == 1
    assert plain_server.received == []


# -- files in the way and full disks -----------------------------------------------------


def test_an_outbox_that_is_a_file_is_one_line(data_dir: Path, tmp_path: Path, cli) -> None:
    (data_dir / "outbox").write_text("not a folder")
    config = str(write_config(tmp_path / "c.toml", {}, [ADA]))
    result = cli("--config", config, "send", "--dry-run")
    assert result.exit_code == 1
    assert f"cannot write {data_dir / 'outbox'}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_index_that_is_a_file_still_gives_the_digest(data_dir: Path, cli) -> None:
    with Store.open(data_dir) as store:
        pk_ids = store.conn.execute("SELECT id FROM papers ORDER BY pk LIMIT 2").fetchall()
    assert cli("star", pk_ids[0][0], pk_ids[1][0]).exit_code == 0
    expected = cli("recommend", "--json").stdout
    shutil.rmtree(data_dir / "index")
    (data_dir / "index").write_text("in the way")
    result = cli("recommend", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout == expected
    assert "cannot keep the index cache" in result.stderr


def test_a_full_disk_on_dry_run_says_disk_full(tmp_path: Path, cli) -> None:
    with tiny_disk(tmp_path / "disk", "4m") as disk:
        data = disk / "data"
        assert cli("--data-dir", str(data), "search", "sparse").exit_code == 0  # seeds
        config = str(write_config(tmp_path / "c.toml", {}, [ADA]))
        _fill(disk)
        result = cli("--data-dir", str(data), "--config", config, "send", "--dry-run")
        assert result.exit_code == 1
        assert "disk full" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not any((data / "outbox").glob("*.eml"))


def test_a_full_disk_during_ingest_says_disk_full_and_loses_nothing(
    tmp_path: Path, cli
) -> None:
    with tiny_disk(tmp_path / "disk", "6m") as disk:
        data = disk / "data"
        assert cli("--data-dir", str(data), "search", "sparse").exit_code == 0  # seeds
        with Store.open(data) as store:
            before = store.count_papers()
        big = tmp_path / "big.jsonl"
        big.write_text("".join(
            json.dumps({"title": f"Paper number {i} on sparse pruning",
                        "abstract": f"Abstract {i} " + "words " * 3000}) + "\n"
            for i in range(2000)
        ))
        result = cli("--data-dir", str(data), "ingest", str(big))
        assert result.exit_code == 1
        assert "disk full" in result.stderr and "cannot rollback" not in result.stderr
        assert "Traceback" not in result.output
        with Store.open(data) as store:
            assert store.count_papers() == before  # the file's transaction, not the store


# -- an emptied database -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_an_emptied_database_says_stars_and_history_are_gone(
    how: str, tmp_path: Path, cli
) -> None:
    data = tmp_path / "data"
    assert cli("--data-dir", str(data), "search", "sparse").exit_code == 0
    first = cli("--data-dir", str(data), "search", "sparse")
    assert "started afresh" not in first.stderr
    for suffix in ("", "-wal", "-shm"):
        path = data / (DB_NAME + suffix)
        if how == "truncated" and suffix == "":
            path.write_bytes(b"")
        else:
            path.unlink(missing_ok=True)
    result = cli("--data-dir", str(data), "search", "sparse")
    assert result.exit_code == 0
    assert "started afresh" in result.stderr
    assert "stars, dismissals and digest history are gone" in result.stderr
    again = cli("--data-dir", str(data), "search", "sparse")
    assert "started afresh" not in again.stderr  # said once, when it happened


def test_a_truncated_database_file_fails_in_one_line(data_dir: Path, cli) -> None:
    path = data_dir / DB_NAME
    path.write_bytes(path.read_bytes()[:3000])
    result = subprocess.run(
        [sys.executable, "-c", "from paperdigest.cli import main; main()",
         "--data-dir", str(data_dir), "search", "sparse"],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr


def test_json_output_escapes_what_could_steer_a_terminal(data_dir: Path, cli) -> None:
    title = "Sparse \x1b[2J pruning \x9b31m with a lone surrogate"
    with Store.open(data_dir) as store:
        store.conn.execute("UPDATE papers SET title = ? WHERE pk = 1", (title,))
    result = cli("search", "--json", "sparse pruning lone surrogate")
    assert result.exit_code == 0, result.output
    assert _no_control(result.stdout.replace("\n", ""))
    assert json.loads(result.stdout)[0]["title"] == title  # escaped, not changed


def test_a_full_disk_keeps_the_index_in_memory_and_the_digest_goes_out(
    tmp_path: Path, cli
) -> None:
    with tiny_disk(tmp_path / "disk", "8m") as disk:
        data = disk / "data"
        assert cli("--data-dir", str(data), "search", "sparse").exit_code == 0  # seeds
        with Store.open(data) as store:
            ids = [r[0] for r in store.conn.execute("SELECT id FROM papers LIMIT 3")]
        assert cli("--data-dir", str(data), "star", *ids).exit_code == 0
        _fill(disk, leave=256 * 1024)  # room for SQLite's WAL, none for the index cache
        result = cli("--data-dir", str(data), "recommend", "--json")
        assert result.exit_code == 0, result.output
        assert "cannot keep the index cache" in result.stderr and "disk full" in result.stderr
        assert len(json.loads(result.stdout)) == 15
        assert not list((data / "index").glob("*.npy"))  # nothing half-written left behind
