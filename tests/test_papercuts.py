"""Papercuts a new user meets, each through the real CLI on the seeded store."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date

import pytest
import typer.main

from paperdigest.cli import app
from paperdigest.store import DB_NAME, Store
from tests.mail_fixtures import QUIET, write_config

pytestmark = QUIET

STAR = "The Unreasonable Effectiveness of Random Pruning"
JSON_KEYS = {"id", "arxiv_id", "title", "authors", "url", "listed", "published"}


def ingest_one(cli, tmp_path, **fields) -> str:
    record = {"id": "2612.30001", "title": "Tardigrade Locomotion Models",
              "abstract": "Water bears walk.", "authors": ["Ada Lovelace"],
              "published": date.today().isoformat(), **fields}
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert cli("ingest", str(path)).exit_code == 0
    return record["id"]


def test_search_finds_a_paper_by_its_id_and_by_its_arxiv_id(cli, data_dir, tmp_path):
    ingest_one(cli, tmp_path)
    for ref in ("2612.30001", "arXiv:2612.30001v2", "https://arxiv.org/abs/2612.30001"):
        hits = json.loads(cli("search", ref, "--json").stdout)
        assert hits[0]["id"] == "2612.30001", ref
    seed_id = json.loads(cli("search", "sparse training", "--json").stdout)[3]["id"]
    assert json.loads(cli("search", seed_id, "--json").stdout)[0]["id"] == seed_id


def test_the_not_found_hint_of_star_leads_to_the_paper(cli, data_dir, tmp_path):
    ingest_one(cli, tmp_path)
    missing = cli("star", "2612.3000")
    assert missing.exit_code == 1
    hint = re.search(r"try `paperdigest (search '[^']+')`", missing.stderr).group(1)
    assert hint == "search '2612.3000'"
    # The hint's own search, given the full id, finds it.
    assert json.loads(cli("search", "2612.30001", "--json").stdout)[0]["id"] == "2612.30001"


def test_json_outputs_say_everything_about_a_paper(cli, data_dir, tmp_path):
    ingest_one(cli, tmp_path)
    cli("star", "2612.30001")
    [hit] = [h for h in json.loads(cli("search", "tardigrade", "--json").stdout)]
    assert set(hit) >= JSON_KEYS
    assert hit["arxiv_id"] == "2612.30001" and hit["authors"] == ["Ada Lovelace"]
    assert hit["url"] == "https://arxiv.org/abs/2612.30001"
    assert hit["listed"] == hit["published"] == date.today().isoformat()
    [starred] = json.loads(cli("stars", "--json").stdout)
    assert JSON_KEYS | {"starred_at"} <= set(starred)
    picks = json.loads(cli("recommend", "--json", "--limit", "3").stdout)
    assert all(JSON_KEYS | {"score", "reason"} <= set(p) for p in picks)
    seed = json.loads(cli("search", "sparse", "--json").stdout)[0]
    assert seed["arxiv_id"] is None and seed["published"] is None  # unknown, not made up


def test_global_options_work_after_the_command_name_too(
    cli, data_dir, tmp_path, monkeypatch
):
    monkeypatch.delenv("PAPERDIGEST_DATA_DIR")
    where = str(data_dir)
    assert cli("--data-dir", where, "profile", "add", "bob").exit_code == 0
    assert cli("star", STAR, "--data-dir", where, "--profile", "bob").exit_code == 0
    assert len(json.loads(cli("stars", "--json", f"--data-dir={where}", "-p", "bob").stdout)) == 1
    assert len(json.loads(cli("--data-dir", where, "--profile", "bob", "stars", "--json")
                          .stdout)) == 1
    assert json.loads(cli("--data-dir", where, "stars", "--json").stdout) == []
    config = tmp_path / "c.toml"
    config.write_text('[digest]\nsend_time = "06:15"\n')
    result = cli("config", "check", "--config", str(config))
    assert result.exit_code == 0 and 'send_time = "06:15"' in result.stdout


def test_dismissing_a_starred_paper_says_it_removes_the_star(cli, data_dir):
    cli("star", STAR)
    result = cli("dismiss", STAR)
    assert "dismissed:" in result.stdout and "(its star is removed)" in result.stdout
    assert "star is removed" not in cli("dismiss", "Sparse Iso-FLOP Transformations").stdout


def test_star_and_config_check_say_what_to_do_next(cli, data_dir, tmp_path, plain_server):
    assert "Next: `paperdigest recommend`" in cli("star", STAR).stdout
    assert "Next:" not in cli("star", STAR).stdout  # nothing changed: nothing new to do
    config = write_config(tmp_path / "c.toml", plain_server.settings(),
                          [{"name": "ada", "email": "ada@example.com"}])
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code == 0
    assert result.stderr.strip().splitlines()[-1].startswith(
        "Next: `paperdigest send --dry-run`")


def test_forget_deletes_a_paper_and_history_keeps_a_note(
    cli, data_dir, tmp_path, plain_server
):
    paper_id = ingest_one(cli, tmp_path)
    cli("star", STAR)
    cli("follow", "keyword", "tardigrade")
    config = write_config(tmp_path / "c.toml", plain_server.settings(),
                          [{"name": "default", "email": "ada@example.com"}])
    assert cli("--config", str(config), "send").exit_code == 0
    cli("profile", "add", "bob")
    cli("star", paper_id, "--profile", "bob")

    refused = cli("forget", paper_id, input="n\n")
    assert refused.exit_code == 1
    assert json.loads(cli("search", paper_id, "--json").stdout)[0]["id"] == paper_id

    result = cli("forget", paper_id, input="y\n")
    assert result.exit_code == 0, result.output
    assert "forgot: 2612.30001" in result.stdout
    assert "it was starred by bob on" in result.stdout
    assert "it was in default's digest of" in result.stdout
    assert json.loads(cli("search", "tardigrade", "--json").stdout) == []
    assert json.loads(cli("stars", "--json", "--profile", "bob").stdout) == []
    with Store.open(data_dir) as store:
        [(forgotten_id, title, _, history)] = store.forgotten()
        assert (forgotten_id, title) == (paper_id, "Tardigrade Locomotion Models")
        assert {(h["profile"], h["what"]) for h in history} == {("bob", "stars"),
                                                                 ("default", "digest")}
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # The index notices the deletion; the ranking goes on without the paper.
    picks = json.loads(cli("recommend", "--json", "--limit", "5").stdout)
    assert len(picks) == 5 and paper_id not in {p["id"] for p in picks}
    assert cli("forget", "nothing-like-this", "--yes").exit_code == 1


def test_status_does_not_count_undated_seed_papers_as_new_today(cli, data_dir, tmp_path):
    assert re.search(r"524 stored, 0 new today", cli("status").stdout)
    ingest_one(cli, tmp_path)
    assert re.search(r"525 stored, 1 new today", cli("status").stdout)


def test_tables_show_full_dates_and_fit_80_columns(cli, data_dir):
    cli("star", STAR)
    for args in (("search", "sparse training"), ("recommend",), ("stars",), ("follows",)):
        text = cli(*args).stdout
        assert all(len(line) <= 80 for line in text.splitlines()), args
    search = cli("search", "sparse training").stdout.splitlines()
    rows = [line for line in search[1:] if re.match(r"^ [0-9a-f]{8} ", line)]
    assert rows and all(re.search(r"\d{4}-\d\d-\d\d\s*$", row) for row in rows)
    # No title wraps over more than two lines.
    header, *recommend = cli("recommend").stdout.splitlines()
    left, right = header.index("title"), header.index("why")
    starts = [i for i, line in enumerate(recommend) if re.match(r"^\s*\d+\.\d{3}\s", line)]
    assert len(starts) == 15
    for here, there in zip(starts, [*starts[1:], len(recommend)], strict=True):
        titles = [line[left:right].strip() for line in recommend[here:there]]
        assert len([t for t in titles if t]) <= 2, recommend[here:there]


def _all_commands():
    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        names += [(name, sub) for sub in subcommands] if subcommands else [(name,)]
    return names


@pytest.mark.parametrize("command", _all_commands(), ids=" ".join)
def test_help_shows_no_python_types(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert not re.search(r"<(str|int|bool|float|path|list\[\w+\])>|list\[", result.stdout,
                         re.I), result.stdout


def test_bad_flag_values_get_one_plain_sentence(cli, data_dir):
    result = cli("recommend", "--limit", "0")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: Invalid value for '--limit' / '-n': Input "
                                     "should be greater than or equal to 1 (see "
                                     "`paperdigest recommend --help`)")


def test_shell_completion_is_offered_and_completes_commands(cli, monkeypatch):
    script = cli("--show-completion", "bash")
    assert script.exit_code == 0 and "_PAPERDIGEST_COMPLETE" in script.stdout
    monkeypatch.setenv("_PAPERDIGEST_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "paperdigest fol")
    monkeypatch.setenv("COMP_CWORD", "1")
    completed = cli()
    assert completed.stdout.split() == ["follow", "follows"]


# -- config check ----------------------------------------------------------------------


def test_config_check_reports_every_problem_at_once(cli, tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('[smtp]\nhots = "mail.example.org"\nport = 0\n'
                      '[digest]\npiks = 3\n')
    monkeypatch.setenv("PAPERDIGEST_DIGEST__WINDOW_DAYS", "-3")
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    text = "\n".join(lines)
    assert "smtp.hots: unknown key (did you mean smtp.host?)" in text
    assert "digest.piks: unknown key (did you mean digest.picks?)" in text
    assert "smtp.port: Input should be greater than or equal to 1" in text
    assert ("digest.window_days: Input should be greater than or equal to 0 "
            "(from the environment variable PAPERDIGEST_DIGEST__WINDOW_DAYS)") in text


def test_config_check_fails_for_profiles_that_cannot_be_sent(cli, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[smtp]\nhost = "mail.example.org"\n'
                      '[[profiles]]\nname = "ada"\n'
                      '[[profiles]]\nname = "ada"\nemail = ["ada@", "ada@example.org"]\n')
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code == 2
    text = result.stderr
    assert "profiles: the name 'ada' is used by 2 profiles" in text
    assert "profiles.0.email: profile 'ada' has no address, but sending is configured" in text
    assert "profiles.1.email: 'ada@' is not an email address" in text
    assert "ada@example.org'" not in text  # the good address is not blamed


def test_config_check_says_clearly_when_there_is_no_config_file(cli):
    result = cli("config", "check")
    assert result.exit_code == 0
    assert result.stderr.startswith("No config file: ")
    assert "does not exist, so every setting is a default" in result.stderr


def test_the_readme_keyring_advice_matches_this_keyring(monkeypatch):
    """Headless (no desktop keyring), `keyring` has no backend; the README says what to
    install, and that is the package keyring's own error names."""
    import keyring
    from keyring.backends import fail

    monkeypatch.setattr(keyring.core, "_keyring_backend", fail.Keyring())
    with pytest.raises(keyring.errors.NoKeyringError, match=r"keyrings\.alt"):
        keyring.set_password("yagmail", "ada@example.org", "x")
    readme = (__import__("pathlib").Path(__file__).parent.parent / "README.md").read_text()
    assert "pip install keyrings.alt" in readme


def test_the_new_schema_keeps_foreign_keys_whole(data_dir):
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert {"rules", "forgotten_papers"} <= tables


def test_config_check_blames_the_environment_for_a_bad_address(cli, tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('[smtp]\nsender = "digest@example.org"\n')
    monkeypatch.setenv("PAPERDIGEST_SMTP__SENDER", "digest at example.org")
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code == 2
    assert ("smtp.sender: 'digest at example.org' is not an email address (from the "
            "environment variable PAPERDIGEST_SMTP__SENDER)") in result.stderr


def test_install_completion_writes_the_script_for_the_shell(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    result = cli("--install-completion", "bash")
    assert result.exit_code == 0, result.output
    script = tmp_path / ".bash_completions" / "paperdigest.sh"
    assert "_PAPERDIGEST_COMPLETE" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
