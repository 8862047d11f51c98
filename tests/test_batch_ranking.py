"""The batched ranker (send --all) gives every profile exactly the one-profile path's picks."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from paperdigest.corpus_index import open_index
from paperdigest.ingest import ingest_files
from paperdigest.service import select_picks, select_picks_many
from paperdigest.store import Store

SAMPLE = Path(__file__).parent / "fixtures" / "arxiv_days" / "sample.jsonl.gz"


def _profiles(store: Store, n: int, seed: int) -> list[str]:
    """Profiles with 1, 3 or 20 stars; every third also dismisses papers, every fourth has
    had a digest already (its papers are never shown again)."""
    rng = random.Random(seed)
    pks = [pk for (pk,) in store.conn.execute("SELECT pk FROM papers ORDER BY pk")]
    recent = [
        pk for (pk,) in store.conn.execute(
            "SELECT pk FROM papers WHERE listed >= date((SELECT max(listed) FROM papers), "
            "'-7 days') ORDER BY pk"
        )
    ]
    names = [f"reader{i}" for i in range(n)]
    for i, name in enumerate(names):
        for paper in store.papers(rng.sample(pks, rng.choice([1, 3, 20]))):
            store.star(name, paper)
        if i % 3 == 0:
            for paper in store.papers(rng.sample(recent, 3) + rng.sample(pks, 2)):
                store.dismiss(name, paper)
        if i % 4 == 0:
            with store.transaction() as conn:
                digest = conn.execute(
                    "INSERT INTO digests(profile, digest_date, status, created_at) "
                    "VALUES (?, '2020-01-01', 'sent', '2020-01-01T07:00:00+00:00')", (name,)
                ).lastrowid
                conn.executemany(
                    "INSERT INTO digest_items(digest_id, paper_pk, rank, score, reason) "
                    "VALUES (?, ?, ?, 1.0, 'x')",
                    [(digest, pk, r) for r, pk in enumerate(rng.sample(recent, 5), 1)],
                )
    return names


def _picks(selection) -> list[tuple[int, int | None, tuple[str, ...]]]:
    return [
        (p.paper.pk, p.because_of.pk if p.because_of else None, p.terms)
        for p in selection.picks
    ]


def _assert_same(store: Store, names: list[str], block: int) -> None:
    index = open_index(store)
    batched = dict(select_picks_many(store, [*names, "no-stars"], 10, 7, index=index,
                                     block=block))
    assert set(batched) == {*names, "no-stars"}
    for name in [*names, "no-stars"]:
        single = select_picks(store, name, 10, 7, index=index)
        assert _picks(batched[name]) == _picks(single), name
        assert batched[name].personalised == single.personalised
        for a, b in zip(batched[name].picks, single.picks, strict=True):
            assert a.score == pytest.approx(b.score, rel=1e-4, abs=1e-4)


def test_batch_equals_single_on_the_seed_corpus(store: Store) -> None:
    names = _profiles(store, 24, seed=1)
    _assert_same(store, names, block=7)  # several blocks, the last one short


def test_batch_equals_single_on_real_arxiv_days(tmp_path: Path) -> None:
    with Store.open(tmp_path / "arxiv") as store:
        report = ingest_files(store, [SAMPLE], today=date(2026, 7, 1))
        assert report.stats.new == 900
        names = _profiles(store, 20, seed=2)
        picks = dict(select_picks_many(store, names, 10, 7))
        assert all(len(picks[n].picks) == 10 for n in names)  # real days fill a digest
        _assert_same(store, names, block=8)
