"""`paperdigest import` and `paperdigest profile` through the real CLI and SQLite store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from paperdigest.library_import import import_library, read_library_file
from paperdigest.models import PaperRecord
from paperdigest.store import DB_NAME, Store

FIXTURES = Path(__file__).parent / "fixtures" / "library"
EXPORTS = ["better-biblatex.bib", "better-bibtex.bib", "zotero.bib", "google-scholar.bib",
           "zotero.csv", "better-csl.json", "zotero.ris"]


def dump(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def library_store(cli, data_dir: Path) -> Path:
    """The seed corpus plus four real arXiv papers that carry their arXiv ids."""
    result = cli("ingest", str(FIXTURES / "arxiv-sample.jsonl"))
    assert result.exit_code == 0, result.output
    return data_dir


def run_import(cli, *args: str) -> dict:
    result = cli("import", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def star_titles(cli, *args: str) -> set[str]:
    return {s["title"] for s in json.loads(cli("stars", "--json", *args).stdout)}


def test_better_biblatex_import_matches_adds_and_stars(cli, library_store) -> None:
    summary = run_import(cli, str(FIXTURES / "better-biblatex.bib"))
    assert summary["read"] == 5
    # Once-for-All and Random Pruning are seed papers (title), the sensor paper is an
    # arXiv paper (eprint); Attention Is All You Need is in neither, so it is added.
    assert (summary["matched"], summary["added"]) == (3, 1)
    assert (summary["starred"], summary["already_starred"]) == (4, 0)
    assert summary["skipped"] == []
    assert summary["duplicates"] == [{
        "where": f"{FIXTURES / 'better-biblatex.bib'}: entry "
                 "IndustrialGradeSensorSimulation2025a (line 39)",
        "reason": f"same paper as {FIXTURES / 'better-biblatex.bib'}: entry "
                  "IndustrialGradeSensorSimulation2025 (line 29)",
    }]
    assert star_titles(cli) == {
        "Once-for-All: Train One Network and Specialize it for Efficient Deployment",
        "The Unreasonable Effectiveness of Random Pruning: Return of the Most Naive "
        "Baseline for Sparse Training",
        "Industrial-Grade Sensor Simulation via Gaussian Splatting: A Modular Framework "
        "for Scalable Editing and Full-Stack Validation",
        "Attention Is All You Need",
    }


def test_an_added_paper_keeps_its_abstract_doi_and_date_and_is_searchable(
    cli, library_store
) -> None:
    run_import(cli, str(FIXTURES / "better-biblatex.bib"))
    hits = json.loads(cli("search", "sequence transduction attention", "--json").stdout)
    assert hits[0]["title"] == "Attention Is All You Need"
    with Store.open(library_store) as store:
        row = store.conn.execute(
            "SELECT arxiv_id, doi, published, listed, authors FROM papers "
            "WHERE title = 'Attention Is All You Need'"
        ).fetchone()
    assert row["arxiv_id"] == "1706.03762"
    assert row["doi"] == "10.48550/arxiv.1706.03762"
    # A library paper is old news: listed on its own date, never as "new today".
    assert row["published"] == row["listed"] == "2023-08-01"
    assert json.loads(row["authors"])[0] == "Ashish Vaswani"


def test_importing_twice_changes_nothing(cli, library_store) -> None:
    paths = [str(FIXTURES / name) for name in EXPORTS]
    first = run_import(cli, *paths)
    assert first["added"] > 0 and first["starred"] > 0
    before = dump(library_store)
    again = run_import(cli, *paths)
    assert dump(library_store) == before
    assert (again["added"], again["starred"]) == (0, 0)
    assert again["already_starred"] == first["starred"]
    assert again["read"] == first["read"]


def test_every_export_together_names_each_paper_once(cli, library_store) -> None:
    summary = run_import(cli, *(str(FIXTURES / name) for name in EXPORTS))
    counted = (summary["matched"] + summary["added"] + len(summary["duplicates"])
               + len(summary["skipped"]))
    assert counted == summary["read"]
    assert summary["starred"] + summary["already_starred"] == (
        summary["matched"] + summary["added"]
    )
    titles = [s["title"] for s in json.loads(cli("stars", "--json").stdout)]
    assert len(titles) == len(set(titles)) == summary["starred"]
    # The seed paper whose title has an odd space before its colon is found by title.
    assert "MIMO Is All You Need : A Strong Multi-In-Multi-Out Baseline for Video Prediction" \
        in titles
    # Deep learning comes from three files (CSV, RIS, Scholar) but is one paper.
    assert titles.count("Deep learning") == 1
    skipped = {s["where"].split("/")[-1]: s["reason"] for s in summary["skipped"]}
    assert skipped["zotero.bib: entry noauthor_nodate (line 47)"] == "no title, arXiv id or DOI"


def test_a_reading_list_matches_by_arxiv_id_and_doi(cli, library_store) -> None:
    run_import(cli, str(FIXTURES / "zotero.csv"))  # adds "Deep learning" with its DOI
    summary = run_import(cli, "--profile", "default", str(FIXTURES / "reading-list.txt"))
    where = {s["where"].split("/")[-1]: s["reason"] for s in summary["skipped"]}
    # 1908.09791 is Once-for-All, stored from the seed dump without its arXiv id, and the
    # line gives no title to find or add it by.
    assert "not in the store" in where["reading-list.txt: line 4"]
    assert "is not an arXiv id" in where["reading-list.txt: line 8"]
    assert summary["matched"] == 4  # two arXiv ids, one DOI, one arXiv DOI
    assert summary["already_starred"] == 2  # Deep learning and E-SAM, from the CSV
    assert "Safe Vision-Language Models via Unsafe Weights Manipulation" in star_titles(cli)


def test_dry_run_shows_the_summary_and_changes_nothing(cli, library_store) -> None:
    before = dump(library_store)
    result = cli("import", "--dry-run", str(FIXTURES / "google-scholar.bib"))
    assert result.exit_code == 0, result.output
    assert dump(library_store) == before
    assert ("5 entries read: 2 matched, 3 would be added, 0 duplicates, 0 skipped; "
            "5 would be starred, 0 already starred.") in result.stdout
    assert "nothing was changed" in result.stdout
    real = run_import(cli, str(FIXTURES / "google-scholar.bib"))
    assert (real["matched"], real["added"], real["starred"]) == (2, 3, 5)


def test_plain_output_says_what_to_do_next_and_lists_skips(cli, library_store) -> None:
    result = cli("import", str(FIXTURES / "zotero.bib"))
    assert result.exit_code == 0, result.output
    assert "zotero.bib: BibTeX, 4 entries" in result.stdout
    assert ("5 entries read: 2 matched, 2 added, 0 duplicates, 1 skipped; 4 starred, "
            "0 already starred.") in result.stdout
    assert "paperdigest recommend" in result.stdout
    assert "entry noauthor_nodate (line 47): no title, arXiv id or DOI" in result.stderr


def test_bad_files_are_reported_and_the_good_ones_still_import(
    cli, library_store, tmp_path
) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("call Bob\nbuy milk\nfinish the draft\nreview paper\n")
    result = cli("import", str(junk), str(FIXTURES / "zotero.ris"))
    assert result.exit_code == 1
    assert "not a library file" in result.stderr
    assert f"Error: no entries could be read from {junk}" in result.stderr
    assert "Deep learning" in star_titles(cli)
    assert "Traceback" not in result.output
    missing = cli("import", str(tmp_path / "nope.bib"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr


def test_a_thousand_entries_import_and_report_progress(cli, library_store, tmp_path) -> None:
    lines = [
        f"@article{{key{n},\n  title = {{Synthetic study number {n} of sparse training}},\n"
        f"  author = {{Doe, Jane and M{{\\\"u}}ller, Jos\\'e}},\n  year = {{2020}},\n"
        f"  journal = {{arXiv preprint arXiv:2001.{n:05d}}},\n}}\n"
        for n in range(1000)
    ]
    path = tmp_path / "big.bib"
    path.write_text("\n".join(lines), encoding="utf-8")
    result = cli("import", "--json", str(path))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["read"], summary["added"], summary["starred"]) == (1000, 1000, 1000)
    with Store.open(library_store) as store:
        authors = store.conn.execute(
            "SELECT authors FROM papers WHERE arxiv_id = '2001.00999'"
        ).fetchone()[0]
        assert json.loads(authors) == ["Jane Doe", "José Müller"]
        # The progress bar covers twice the entries (matched, then starred) and fills once.
        steps: list[int] = []
        again = import_library(store, "default", [(str(path), read_library_file(path))],
                               advance=steps.append)
    assert again.already_starred == 1000
    assert sum(steps) == 2000 and len(steps) > 2


def test_import_into_an_unknown_profile_suggests_the_near_name(cli, library_store) -> None:
    before = dump(library_store)
    result = cli("import", "--profile", "defualt", str(FIXTURES / "zotero.ris"))
    assert result.exit_code == 1
    assert "no profile named 'defualt'; did you mean 'default'?" in result.stderr
    assert dump(library_store) == before


# -- profiles -------------------------------------------------------------------------


def test_star_into_a_typo_profile_is_refused_not_created(cli, data_dir) -> None:
    result = cli("star", "--profile", "defualt", "Once-for-All: Train One Network")
    assert result.exit_code == 1
    assert "did you mean 'default'?" in result.stderr
    assert "paperdigest profile add defualt" in result.stderr
    for command in (["stars"], ["recommend"], ["preview"], ["dismiss", "x"]):
        refused = cli(*command, "--profile", "defualt")
        assert refused.exit_code == 1, command
        assert "no profile named 'defualt'" in refused.stderr
    assert json.loads(cli("profile", "list", "--json").stdout)[0]["name"] == "default"


def test_profile_add_then_use_then_list(cli, data_dir) -> None:
    assert cli("profile", "add", "alice").exit_code == 0
    again = cli("profile", "add", "alice")
    assert "already exists" in again.stdout
    assert cli("star", "--profile", "alice", "Once-for-All: Train One Network").exit_code == 0
    assert cli("import", "--profile", "alice", str(FIXTURES / "zotero.ris")).exit_code == 0
    rows = {row["name"]: row for row in json.loads(cli("profile", "list", "--json").stdout)}
    assert set(rows) == {"alice", "default"}
    assert rows["alice"]["stars"] == 4
    assert rows["default"]["stars"] == 0
    table = cli("profile", "list")
    assert "alice" in table.stdout and "default" in table.stdout
    bad = cli("profile", "add", "no spaces please")
    assert bad.exit_code == 1 and "invalid profile name" in bad.stderr


def test_a_configured_profile_exists_without_profile_add(cli, data_dir, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[profiles]]\nname = "bob"\nemail = "bob@example.com"\n')
    result = cli("--config", str(config), "star", "--profile", "bob",
                 "Once-for-All: Train One Network")
    assert result.exit_code == 0, result.output
    rows = json.loads(cli("--config", str(config), "profile", "list", "--json").stdout)
    assert {"name": "bob", "configured": True, "email": ["bob@example.com"], "stars": 1,
            "dismissals": 0} in rows


def test_profile_rm_asks_first_then_deletes_everything_the_profile_owns(
    cli, data_dir
) -> None:
    cli("profile", "add", "carol")
    cli("star", "--profile", "carol", "Once-for-All: Train One Network")
    cli("dismiss", "--profile", "carol", "The Unreasonable Effectiveness of Random Pruning")
    assert cli("follow", "author", "Yann LeCun", "--profile", "carol").exit_code == 0
    cli("follow", "author", "Yann LeCun")  # the default profile's own rule stays
    cli("star", "Once-for-All: Train One Network")  # the default profile's own star stays
    with Store.open(data_dir) as store:
        pk = store.conn.execute("SELECT pk FROM papers LIMIT 1").fetchone()[0]
        store.conn.execute(
            "INSERT INTO digests(id, profile, digest_date, status, created_at) "
            "VALUES (900, 'carol', '2026-01-05', 'sent', '2026-01-05T07:00:00')"
        )
        store.conn.execute(
            "INSERT INTO digest_items VALUES (900, ?, 1, 1.0, 'new')", (pk,)
        )

    kept = cli("profile", "rm", "carol", input="n\n")
    assert kept.exit_code == 1 and "nothing deleted" in kept.stderr
    assert "1 stars, 1 dismissals" in kept.stderr
    no_answer = cli("profile", "rm", "carol", input="")  # stdin closed: not a yes
    assert no_answer.exit_code == 1 and "Error: nothing deleted" in no_answer.stderr
    assert len(star_titles(cli, "--profile", "carol")) == 1

    gone = cli("profile", "rm", "carol", input="y\n")
    assert gone.exit_code == 0, gone.output
    with Store.open(data_dir) as store:
        for table in ("stars", "dismissals", "digests", "rules"):
            count = store.conn.execute(
                f"SELECT count(*) FROM {table} WHERE profile = 'carol'"
            ).fetchone()[0]
            assert count == 0, table
        assert store.conn.execute(
            "SELECT count(*) FROM digest_items WHERE digest_id = 900"
        ).fetchone()[0] == 0
    assert "carol" not in {r["name"] for r in json.loads(cli("profile", "list", "--json").stdout)}
    assert cli("stars", "--profile", "carol").exit_code == 1
    assert len(star_titles(cli)) == 1
    assert len(json.loads(cli("follows", "--json").stdout)) == 1


def test_profile_rm_yes_skips_the_question_and_typos_are_caught(cli, data_dir) -> None:
    cli("profile", "add", "dave")
    typo = cli("profile", "rm", "--yes", "dvae")
    assert typo.exit_code == 1 and "did you mean 'dave'?" in typo.stderr
    assert cli("profile", "rm", "--yes", "dave").exit_code == 0
    assert "dave" not in cli("profile", "list").stdout


def test_terminal_escapes_in_a_file_never_reach_the_terminal(
    cli, library_store, tmp_path
) -> None:
    path = tmp_path / "evil.bib"
    path.write_text(
        "@misc{a\x1b[2Jb, title = {Red \x1b[31malert\x1b[0m paper}}\n"
        "@misc{c\x1b]0;pwned\x07d, author = {Nobody}}\n",
        encoding="utf-8",
    )
    result = cli("import", str(path))
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "Red [31malert[0m paper" in star_titles(cli)


def test_a_doi_matches_whatever_its_case(cli, library_store, tmp_path) -> None:
    # arXiv's Atom feed gives DOIs as publishers write them; DOIs ignore case.
    with Store.open(library_store) as store:
        store.ingest([PaperRecord(
            title="Cosmological constraints from the SDSS luminous red galaxies",
            abstract="We measure the large-scale real-space power spectrum.",
            arxiv_id="astro-ph/0608632", doi="10.1103/PhysRevD.74.123507",
        )])
    path = tmp_path / "dois.txt"
    path.write_text("https://doi.org/10.1103/physrevd.74.123507\n")
    summary = run_import(cli, str(path))
    assert (summary["matched"], summary["starred"]) == (1, 1)
    assert star_titles(cli) == {"Cosmological constraints from the SDSS luminous red galaxies"}


def test_profile_removal_reaches_tables_added_later(data_dir) -> None:
    # Per-profile tables come with other features: any table with a `profile` column,
    # or pointing at the profile's digests, is the profile's.
    with Store.open(data_dir) as store:
        store.conn.executescript(
            "CREATE TABLE notes (profile TEXT NOT NULL, kind TEXT NOT NULL);"
            "CREATE TABLE copies (digest_id INTEGER NOT NULL REFERENCES digests(id));"
            "INSERT INTO notes VALUES ('erin', 'follow'), ('default', 'mute');"
            "INSERT INTO digests(id, profile, digest_date, status, created_at) VALUES "
            "(7, 'erin', '2026-01-05', 'sent', '2026-01-05T07:00:00');"
            "INSERT INTO copies VALUES (7);"
        )
        store.add_profile("erin")
        deleted = store.remove_profile("erin")
        assert deleted["notes"] == deleted["copies"] == deleted["digests"] == 1
        assert [r[0] for r in store.conn.execute("SELECT profile FROM notes")] == ["default"]
        assert "erin" not in store.profiles()


def test_an_undated_library_paper_is_never_new_today(cli, data_dir, tmp_path) -> None:
    path = tmp_path / "undated.bib"
    path.write_text("@misc{x, title = {Notes on Sparse Training Without a Date}}\n")
    assert run_import(cli, str(path))["added"] == 1
    cli("profile", "add", "bob")
    newest = json.loads(cli("recommend", "--profile", "bob", "--json", "-n", "50").stdout)
    assert "Notes on Sparse Training Without a Date" not in {p["title"] for p in newest}
    with Store.open(data_dir) as store:
        listed = store.conn.execute(
            "SELECT listed FROM papers WHERE title LIKE 'Notes on Sparse%'"
        ).fetchone()[0]
    assert listed == "1970-01-01"
