"""Use cases that join the store, the ranker and the digest: what the CLI and the daily
job call. The store is read, never written, here (the TF-IDF index cache next to it is
brought up to date: see corpus_index)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np

from paperdigest.corpus_index import CorpusIndex, open_index
from paperdigest.digest import Digest, assemble_digest, item_from
from paperdigest.models import Pick
from paperdigest.ranking import Ranker
from paperdigest.recommend import RankedRow, background_rows, rank_rows
from paperdigest.store import Store


@dataclass(frozen=True)
class Selection:
    picks: list[Pick]
    personalised: bool  # False: no stars, so these are simply the newest papers


def select_picks(
    store: Store,
    profile: str,
    limit: int,
    window_days: int = 7,
    index: CorpusIndex | None = None,
    progress: Callable[[str], None] | None = None,
) -> Selection:
    """The profile's best unseen papers, or the newest ones when it has no stars."""
    starred = [paper for paper, _ in store.starred(profile)]
    dismissed = store.dismissed_pks(profile)
    seen = {p.pk for p in starred} | set(dismissed) | store.shown_pks(profile)
    if not starred:
        return Selection([Pick(paper=p, score=0.0) for p in store.newest(limit, seen)], False)

    index = index if index is not None else open_index(store, progress)
    excluded = index.rows_of(sorted(seen))
    candidates = index.eligible(excluded, window_days)
    star_rows = index.rows_of([p.pk for p in starred])
    dismissed_rows = index.rows_of(sorted(dismissed))
    background = background_rows(index.n_rows, set(star_rows) | set(dismissed_rows))
    # Only the rows the ranker reads are gathered from the (memory-mapped) matrix.
    needed = np.unique(
        np.concatenate(
            [np.asarray(r, dtype=np.int64) for r in (star_rows, dismissed_rows, background,
                                                     candidates)]
        )
    )

    def local(rows: object) -> np.ndarray:
        return np.searchsorted(needed, np.asarray(rows, dtype=np.int64))

    ranked = [
        RankedRow(
            row=int(needed[r.row]),
            score=r.score,
            star_row=int(needed[r.star_row]) if r.star_row is not None else None,
            terms=r.terms,
        )
        for r in rank_rows(
            index.take(needed),
            index.feature_names,
            local(star_rows).tolist(),
            local(dismissed_rows).tolist(),
            local(candidates),
            limit,
            ranker=Ranker(term_embedding=index.term_vectors),
            background=local(background),
            vectors=index.take_vectors(needed),
            titles=index.take_titles(needed),
        )
    ]
    # The starred papers are loaded already; only the picks need reading.
    papers = {p.pk: p for p in starred}
    papers.update((p.pk, p) for p in store.papers([int(index.pks[r.row]) for r in ranked]))
    picks = [
        Pick(
            paper=papers[int(index.pks[r.row])],
            score=r.score,
            because_of=papers.get(int(index.pks[r.star_row])) if r.star_row is not None else None,
            terms=r.terms,
        )
        for r in ranked
    ]
    return Selection(picks, True)


def build_digest(
    store: Store,
    profile: str,
    day: date,
    picks: int,
    window_days: int,
    trending: int,
    progress: Callable[[str], None] | None = None,
) -> Digest:
    selection = select_picks(store, profile, picks, window_days, progress=progress)
    return assemble_digest(
        day,
        profile,
        [item_from(pick) for pick in selection.picks],
        trending=store.trending(trending, window_days) if trending > 0 else [],
        personalised=selection.personalised,
    )

