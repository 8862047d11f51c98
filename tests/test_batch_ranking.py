"""The batched ranker (send --all) gives every profile exactly the one-profile path's picks."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from paperdigest.corpus_index import open_index
from paperdigest.follows import Action, Field, Rule
from paperdigest.ingest import ingest_files
from paperdigest.service import Reader, select_picks, select_picks_many
from paperdigest.store import Store

SAMPLE = Path(__file__).parent / "fixtures" / "arxiv_days" / "sample.jsonl.gz"


def _profiles(store: Store, n: int, seed: int) -> list[str]:
    """Profiles with 1, 3 or 20 stars; every third also dismisses papers, every fourth has
    had a digest already (its papers are never shown again), every fifth follows and mutes
    a word of a recent title."""
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
        if i % 5 == 0:
            titles = [p.title for p in store.papers(rng.sample(recent, 2))]
            for action, title in zip((Action.follow, Action.mute), titles, strict=True):
                word = max(title.split(), key=len).strip(".,:;()")
                store.add_rule(name, Rule(action, Field.keyword, word))
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


def _readers(store: Store, names: list[str], index) -> list[Reader]:
    """Readers on the newest listing day (a profile with no stars today): every second one
    since its last digest the day before (a window of its own), every third with a
    min_score that cuts its picks."""
    newest = store.newest_listed()
    assert newest is not None
    readers = [Reader("no-stars", date.today())]
    for i, name in enumerate(names):
        since = newest - timedelta(days=1) if i % 2 else None
        cut = None
        if i % 3 == 0:
            picks = select_picks(store, name, 10, 7, index=index, since=since,
                                 today=newest).picks
            if len(picks) > 1:  # between two picks: the paths' scores differ by rounding
                half = len(picks) // 2
                cut = (picks[half - 1].score + picks[half].score) / 2
        readers.append(Reader(name, newest, since=since, min_score=cut))
    return readers


def _assert_same(
    store: Store, names: list[str], block: int, changed: tuple[str, ...] = ("min_score",)
) -> None:
    index = open_index(store)
    readers = _readers(store, names, index)
    batched = dict(select_picks_many(store, readers, 10, 7, index=index, block=block))
    assert set(batched) == {r.name for r in readers}
    for reader in readers:
        single = _single(store, reader, index)
        got = batched[reader.name]
        assert _picks(got) == _picks(single), reader
        assert got.personalised == single.personalised
        assert got.followed == single.followed
        for a, b in zip(got.picks, single.picks, strict=True):
            assert a.score == pytest.approx(b.score, rel=1e-4, abs=1e-4)
    # The rules, the cuts (and, over several listing days, the narrower windows) change
    # some reader's picks.
    assert any(_single(store, r, index).followed for r in readers)
    for field in changed:
        assert any(
            _picks(_single(store, r, index)) != _picks(_single(store, replace(r, **{field: None}),
                                                               index))
            for r in readers if getattr(r, field) is not None
        ), field


def _single(store: Store, reader: Reader, index):
    return select_picks(store, reader.name, 10, 7, index=index, since=reader.since,
                        min_score=reader.min_score, today=reader.today)


def test_batch_equals_single_on_the_seed_corpus(store: Store) -> None:
    names = _profiles(store, 24, seed=1)
    # One listing day (the seeds are listed on the day they are loaded): `since` narrows
    # nothing here.
    _assert_same(store, names, block=7)  # several blocks, the last one short


def test_batch_equals_single_on_real_arxiv_days(tmp_path: Path) -> None:
    with Store.open(tmp_path / "arxiv") as store:
        report = ingest_files(store, [SAMPLE], today=date(2026, 7, 1))
        assert report.stats.new == 900
        names = _profiles(store, 20, seed=2)
        picks = dict(select_picks_many(store, [Reader(n, date.today()) for n in names], 10, 7))
        assert all(len(picks[n].picks) == 10 for n in names)  # real days fill a digest
        _assert_same(store, names, block=8, changed=("since", "min_score"))
