"""Merge rules for records from live sources: versions, cross-source best-of, idempotence."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from paperdigest.models import PaperRecord
from paperdigest.store import Store

ARXIV_V1 = PaperRecord(
    title="Task-Specific Activation Functions for Neuroevolution",
    abstract="We evolve activation functions with grammatical evolution.",
    arxiv_id="2503.11731",
    authors=("Benjamin David Winter", "William John Teahan"),
    url="https://arxiv.org/abs/2503.11731",
    published=date(2025, 3, 14),
    categories=("cs.NE", "cs.LG"),
    primary_category="cs.NE",
    version=1,
    updated=date(2025, 3, 14),
    source="arxiv",
)
HF = PaperRecord(
    title="Task-Specific Activation Functions for Neuroevolution",
    abstract="We evolve activation functions with grammatical evolution, and it works well.",
    arxiv_id="2503.11731",
    authors=("Benjamin David Winter", "William John Teahan"),
    url="https://arxiv.org/abs/2503.11731",
    published=date(2025, 3, 14),
    upvotes=37,
    comments=2,
    github="https://github.com/example/neuvo",
    ai_summary="Evolved activations beat ReLU.",
    source="hf",
)
ARXIV_V2 = replace(
    ARXIV_V1,
    title="Evolving Task-Specific Activation Functions for Neuroevolution",
    abstract="Revised.",
    version=2,
    updated=date(2025, 3, 19),
    categories=("cs.NE",),
)


def row(store: Store, arxiv_id: str) -> dict:
    query = "SELECT * FROM papers WHERE arxiv_id = ?"
    return dict(store.conn.execute(query, (arxiv_id,)).fetchone())


def test_hf_and_arxiv_merge_into_one_record_with_the_best_of_each(store: Store) -> None:
    before = store.count_papers()
    assert store.ingest([ARXIV_V1]).new == 1
    assert store.ingest([HF]).updated == 1
    assert store.count_papers() == before + 1
    paper = row(store, "2503.11731")
    assert paper["abstract"] == HF.abstract  # the fuller abstract
    assert paper["upvotes"] == 37 and paper["comments"] == 2  # only HF knows these
    assert paper["github"] == HF.github and paper["ai_summary"] == HF.ai_summary
    assert paper["primary_category"] == "cs.NE" and paper["version"] == 1  # only arXiv
    assert paper["url"] == "https://arxiv.org/abs/2503.11731"


def test_ingesting_either_source_again_changes_nothing(store: Store) -> None:
    store.ingest([ARXIV_V1, HF])
    snapshot = row(store, "2503.11731")
    for _ in range(2):
        stats = store.ingest([HF, ARXIV_V1])
        assert (stats.new, stats.updated, stats.unchanged) == (0, 0, 2)
    assert row(store, "2503.11731") == snapshot


def test_a_new_version_replaces_text_in_place_and_an_old_one_never_returns(store: Store) -> None:
    store.ingest([ARXIV_V1, HF])
    pk = row(store, "2503.11731")["pk"]
    assert store.ingest([ARXIV_V2]).updated == 1
    paper = row(store, "2503.11731")
    assert paper["pk"] == pk and paper["id"] == "2503.11731"
    assert paper["title"] == ARXIV_V2.title and paper["abstract"] == "Revised."
    assert paper["version"] == 2 and paper["updated"] == "2025-03-19"
    assert paper["upvotes"] == 37  # what HF said survives the new version
    # A stale listing still serving v1 changes nothing, nor does v2 again.
    stats = store.ingest([ARXIV_V1, ARXIV_V2])
    assert stats.unchanged == 2
    assert row(store, "2503.11731")["title"] == ARXIV_V2.title
    # The new title is searchable under its new words.
    assert store.search("Evolving neuroevolution")[0][0].pk == pk


def test_upvotes_only_grow(store: Store) -> None:
    store.ingest([HF])
    store.ingest([replace(HF, upvotes=12)])
    assert row(store, "2503.11731")["upvotes"] == 37
    store.ingest([replace(HF, upvotes=80)])
    assert row(store, "2503.11731")["upvotes"] == 80


def test_what_readers_value_merges_from_both_sources(store: Store) -> None:
    hf = replace(HF, hf_page="https://huggingface.co/papers/2503.11731", github_stars=12,
                 organization="Bangor University", ai_keywords=("neuroevolution",))
    arxiv = replace(ARXIV_V1, arxiv_comment="8 pages", doi="10.1000/neuvo.1",
                    journal_ref="GECCO 2025")
    store.ingest([hf, arxiv])
    paper = store.resolve("2503.11731")
    assert (paper.hf_page, paper.github_stars, paper.organization) == (
        "https://huggingface.co/papers/2503.11731", 12, "Bangor University")
    assert paper.ai_keywords == ("neuroevolution",)
    assert (paper.arxiv_comment, paper.doi, paper.journal_ref) == (
        "8 pages", "10.1000/neuvo.1", "GECCO 2025")
    # Stars only grow; a later listing with fewer keywords keeps the longer list.
    store.ingest([replace(hf, github_stars=7, ai_keywords=())])
    assert store.resolve("2503.11731").github_stars == 12
    # A new version speaks for its own comment; an older one never brings its back.
    v2 = replace(ARXIV_V2, arxiv_comment="10 pages, camera-ready")
    store.ingest([v2, arxiv])
    assert store.resolve("2503.11731").arxiv_comment == "10 pages, camera-ready"
    store.ingest([hf, v2])
    assert store.ingest([hf, v2]).unchanged == 2
    assert store.resolve("2503.11731").arxiv_comment == "10 pages, camera-ready"
