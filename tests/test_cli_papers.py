"""The corpus commands driven through the real CLI and the real SQLite store."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from paperdigest.store import DB_NAME, Store

SPARSITY_STARS = [
    "The Unreasonable Effectiveness of Random Pruning",
    "Sparse Iso-FLOP Transformations for Maximizing Training Efficiency",
    "Dynamic Sparse No Training: Training-Free Fine-tuning for Sparse LLMs",
]


def dump(data_dir: Path) -> list[str]:
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def ids_for(cli, query: str) -> list[str]:
    result = cli("search", query, "--json")
    assert result.exit_code == 0, result.output
    return [hit["id"] for hit in json.loads(result.stdout)]


def test_first_use_loads_the_seed_corpus_and_previews_newest_papers(cli, isolated_dirs) -> None:
    result = cli("preview")
    assert result.exit_code == 0, result.output
    assert "Loaded 524 papers from the bundled seed corpus" in result.stderr
    assert "You have not starred any papers yet" in result.stdout
    assert re.search(r"^paperdigest \d{4}-\d\d-\d\d: 10 papers for you$", result.stdout, re.M)
    assert (isolated_dirs / DB_NAME).exists()


def test_search_finds_papers_by_words(cli, data_dir) -> None:
    result = cli("search", "sparse training", "--json")
    hits = json.loads(result.stdout)
    assert hits and all({"id", "title", "score"} <= set(hit) for hit in hits)
    assert "Sparse" in hits[0]["title"] or "sparse" in hits[0]["title"].lower()


def test_search_with_fts_syntax_characters_does_not_crash(cli, data_dir) -> None:
    result = cli("search", 'AND "OR ( NEAR*', "--json")
    assert result.exit_code == 0
    assert isinstance(json.loads(result.stdout), list)


def test_star_by_title_words_then_unstar(cli, data_dir) -> None:
    result = cli("star", "Once-for-All: Train One Network")
    assert result.exit_code == 0, result.output
    assert "starred:" in result.stdout
    stars = json.loads(cli("stars", "--json").stdout)
    assert [s["title"] for s in stars] == [
        "Once-for-All: Train One Network and Specialize it for Efficient Deployment"
    ]
    again = cli("star", stars[0]["id"])
    assert "already starred" in again.stdout
    assert cli("unstar", stars[0]["id"]).exit_code == 0
    assert json.loads(cli("stars", "--json").stdout) == []


def test_star_by_arxiv_style_and_plain_id(cli, data_dir) -> None:
    paper_id = ids_for(cli, "DeepZero zeroth order")[0]
    assert cli("star", paper_id).exit_code == 0
    assert [s["id"] for s in json.loads(cli("stars", "--json").stdout)] == [paper_id]


def test_dismiss_hides_a_paper_and_undismiss_brings_it_back(cli, data_dir) -> None:
    cli("star", "The Unreasonable Effectiveness of Random Pruning")
    top = json.loads(cli("recommend", "--json", "--limit", "5").stdout)
    victim = top[0]["id"]
    assert cli("dismiss", victim).exit_code == 0
    after = [p["id"] for p in json.loads(cli("recommend", "--json", "--limit", "50").stdout)]
    assert victim not in after
    assert cli("undismiss", victim).exit_code == 0
    restored = [p["id"] for p in json.loads(cli("recommend", "--json", "--limit", "5").stdout)]
    assert restored[0] == victim


def test_dismissing_a_starred_paper_unstars_it(cli, data_dir) -> None:
    paper_id = ids_for(cli, "Random Pruning Unreasonable")[0]
    cli("star", paper_id)
    cli("dismiss", paper_id)
    assert json.loads(cli("stars", "--json").stdout) == []


def test_recommend_ranks_sparsity_papers_for_a_sparsity_reader(cli, data_dir) -> None:
    for title in SPARSITY_STARS:
        assert cli("star", title).exit_code == 0
    picks = json.loads(cli("recommend", "--json", "--limit", "10").stdout)
    assert len(picks) == 10
    starred = {s["id"] for s in json.loads(cli("stars", "--json").stdout)}
    assert not starred & {p["id"] for p in picks}
    with Store.open(data_dir) as store:
        texts = [
            (p.title + " " + p.abstract).lower()
            for p in (store.resolve(pick["id"]) for pick in picks)
        ]
    on_topic = [t for t in texts if re.search(r"spars|prun", t)]
    assert len(on_topic) >= 7, picks
    for pick in picks:
        assert pick["reason"].startswith("like “")
        assert pick["score"] > 0


def test_recommend_without_stars_says_how_to_star(cli, data_dir) -> None:
    result = cli("recommend", "--limit", "3")
    assert result.exit_code == 0
    assert "paperdigest star" in result.stderr


def test_preview_changes_nothing_and_is_repeatable(cli, data_dir, tmp_path) -> None:
    for title in SPARSITY_STARS:
        cli("star", title)
    before = dump(data_dir)
    first = cli("preview", "--out", str(tmp_path / "d.html"))
    second = cli("preview")
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.stdout == second.stdout
    assert dump(data_dir) == before
    html = (tmp_path / "d.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "like “" in html


def test_ingest_is_idempotent_and_reports_skips(cli, data_dir, tmp_path) -> None:
    path = tmp_path / "more.jsonl"
    path.write_text(
        json.dumps({"id": "2501.00001", "title": "Brand New Pruning Method",
                    "abstract": "We prune sparse networks.", "authors": ["A. Author"],
                    "published": "2025-01-02"}) + "\n" + "{broken\n",
        encoding="utf-8",
    )
    first = cli("ingest", str(path))
    assert first.exit_code == 0
    assert "1 new, 0 updated, 0 unchanged, 1 skipped" in first.stdout
    assert f"{path}:2: invalid JSON" in first.stderr
    before = dump(data_dir)
    second = cli("ingest", str(path))
    assert "0 new, 0 updated, 1 unchanged" in second.stdout
    assert dump(data_dir) == before
    assert ids_for(cli, "Brand New Pruning") == ["2501.00001"]


def test_a_file_with_no_papers_fails_but_the_others_go_in(cli, data_dir, tmp_path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"title": "A Readable Paper On Pruning"}) + "\n")
    binary = tmp_path / "image.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = cli("ingest", str(binary), str(good))
    assert result.exit_code == 1
    assert "1 new, 0 updated, 0 unchanged, 1 skipped" in result.stdout
    assert f"no papers could be read from {binary}" in result.stderr
    assert ids_for(cli, "Readable Paper Pruning")


def test_ingesting_the_seeds_again_changes_nothing(cli, data_dir) -> None:
    from tests.conftest import SEEDS

    before = dump(data_dir)
    result = cli("ingest", *map(str, sorted(SEEDS.glob("*.txt"))))
    assert "0 new, 0 updated, 575 unchanged, 0 skipped" in result.stdout
    assert dump(data_dir) == before


def test_profiles_keep_separate_stars(cli, data_dir) -> None:
    assert cli("profile", "add", "alice").exit_code == 0
    cli("star", "--profile", "alice", "The Unreasonable Effectiveness of Random Pruning")
    assert json.loads(cli("stars", "--json").stdout) == []
    assert len(json.loads(cli("stars", "--json", "--profile", "alice").stdout)) == 1


def test_template_escapes_script_in_a_title(cli, data_dir, tmp_path) -> None:
    path = tmp_path / "evil.jsonl"
    path.write_text(
        json.dumps({"title": "<script>alert(1)</script> Pruning Sparse Networks",
                    "abstract": "Sparse pruning <b>bold</b> & more.",
                    "url": "javascript:alert(2)"}) + "\n",
        encoding="utf-8",
    )
    cli("ingest", str(path))
    cli("star", "The Unreasonable Effectiveness of Random Pruning")
    cli("preview", "--out", str(tmp_path / "d.html"))
    html = (tmp_path / "d.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Pruning Sparse Networks" in html
    assert "<script>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more." in html
    assert "javascript:" not in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["star", "no-such-paper-xyz"], "no paper matches 'no-such-paper-xyz'"),
        (["star", "pruning"], "'pruning' matches several papers"),
        (["unstar", "zzzzzzzz"], "no paper matches"),
        (["dismiss", ""], "give a paper id"),
        (["ingest", "/nonexistent/file.jsonl"], "no such file: /nonexistent/file.jsonl"),
        (["recommend", "--limit", "0"], "Invalid value for '--limit'"),
        (["recommend", "--limit", "ten"], "Invalid value for '--limit'"),
        (["star", "--profile", "bad name!", "x"], "invalid profile name"),
        (["preview", "--picks", "-3"], "Invalid value for '--picks'"),
    ],
)
def test_errors_are_one_clean_line(cli, data_dir, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_a_typo_in_one_of_several_refs_changes_nothing(cli, data_dir) -> None:
    good = ids_for(cli, "Random Pruning Unreasonable")[0]
    result = cli("star", good, "no-such-thing-at-all")
    assert result.exit_code == 1
    assert json.loads(cli("stars", "--json").stdout) == []


def test_every_command_has_help(cli) -> None:
    for command in ["search", "star", "unstar", "dismiss", "undismiss", "stars",
                    "recommend", "preview", "ingest"]:
        result = cli(command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.stdout


def test_the_command_line_starts_without_loading_the_heavy_libraries() -> None:
    # What only some commands need (NumPy/SciPy, scikit-learn, HTTP, SMTP, the scheduler)
    # is imported when they run: `--help`, `star` or `search` start in well under a second.
    script = (
        "import sys; from paperdigest.cli import app; "
        "print(sorted(m for m in ('numpy', 'scipy', 'sklearn', 'httpx', 'apscheduler', "
        "'yagmail', 'feedparser') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
