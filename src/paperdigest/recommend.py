"""Choosing a profile's picks from a vectorised corpus (pure: arrays in, rows out).

The shell hands over the TF-IDF matrix of the whole corpus and which rows are starred,
dismissed and eligible; this module fits the ranker and returns the chosen rows with the
evidence for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy import sparse

from paperdigest.ranking import Ranker, select
from paperdigest.window import latest_real_day, window_end

# The sample that stands in for "every other paper": its per-term variances standardise
# each candidate. 5,000 rows give +0.0016 to +0.0032 recall@100 over 2,000 on CiteULike-a,
# on each of four samples (bench/README.md).
BACKGROUND_ROWS = 5000


@dataclass(frozen=True)
class RankedRow:
    row: int
    score: float
    star_row: int | None  # matrix row of the closest starred paper
    terms: tuple[str, ...]


def eligible_day_rows(
    listed_days: np.ndarray,
    excluded: Sequence[int] | np.ndarray,
    window_days: int,
    today: int,
) -> np.ndarray:
    """Rows listed within the window up to `today` (see window.py), not excluded.

    `listed_days` and `today` are `date.toordinal()` integers; the caller passes today in,
    so this stays free of the clock.
    """
    if len(listed_days) == 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.ones(len(listed_days), bool)
    if window_days > 0:
        day = date.fromordinal(today)
        past = listed_days[listed_days <= latest_real_day(day).toordinal()]
        newest = date.fromordinal(int(past.max())) if len(past) else None
        end = window_end(newest, window_days, day)
        keep &= listed_days >= end.toordinal() - window_days
    excluded = np.asarray(excluded, dtype=np.int64)
    excluded = excluded[(excluded >= 0) & (excluded < len(listed_days))]
    keep[excluded] = False
    return np.flatnonzero(keep).astype(np.int64)


def background_rows(n_rows: int, excluded: set[int], size: int = BACKGROUND_ROWS) -> np.ndarray:
    """A fixed, evenly spaced sample of the corpus to stand in for "everything else"."""
    if n_rows == 0:
        return np.zeros(0, dtype=np.int64)
    step = max(1, n_rows // size)
    rows = np.arange(0, n_rows, step, dtype=np.int64)
    if excluded:
        rows = rows[~np.isin(rows, np.fromiter(excluded, np.int64, len(excluded)))]
    return rows


def rank_rows(
    matrix: sparse.csr_matrix,
    feature_names: np.ndarray,
    star_rows: Sequence[int],
    dismissed_rows: Sequence[int],
    candidate_rows: np.ndarray,
    limit: int,
    star_weights: np.ndarray | None = None,
    ranker: Ranker | None = None,
    background: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    titles: sparse.csr_matrix | None = None,
) -> list[RankedRow]:
    """Fit on the stars (pushed away from dismissals) and return the best candidates.

    `background` overrides the background sample's rows (when `matrix` holds only the
    rows a caller gathered, the sample is chosen over the whole corpus by the caller).
    `vectors`, row for row with `matrix`, are its papers' kept dense vectors
    (`TermVectors.embed`), for a ranker with term vectors; `titles`, also row for row,
    their title n-grams (`make_title_vectorizer`), for the ranker's title channel.
    """
    if limit <= 0 or len(candidate_rows) == 0 or len(star_rows) == 0:
        return []
    stars = list(star_rows)
    excluded = set(stars) | set(dismissed_rows)
    ranker = ranker or Ranker()
    dismissed = list(dismissed_rows)
    if background is None:
        background = background_rows(matrix.shape[0], excluded)

    def kept(rows: Sequence[int] | np.ndarray) -> np.ndarray | None:
        return None if vectors is None else vectors[np.asarray(rows, dtype=np.int64)]

    def title_rows(rows: Sequence[int] | np.ndarray) -> sparse.csr_matrix | None:
        return None if titles is None else titles[np.asarray(rows, dtype=np.int64)]

    ranker.fit(
        matrix[stars],
        matrix[dismissed] if dismissed else None,
        background=matrix[background],
        star_weights=star_weights,
        star_vectors=kept(stars),
        dismissed_vectors=kept(dismissed) if dismissed else None,
        background_vectors=kept(background),
        star_titles=title_rows(stars),
        dismissed_titles=title_rows(dismissed) if dismissed else None,
        background_titles=title_rows(background),
    )
    candidates = matrix[candidate_rows]
    scores = ranker.score(candidates, kept(candidate_rows), title_rows(candidate_rows))
    chosen = select(scores, candidates, limit)
    picked = kept(np.asarray(candidate_rows)[chosen])
    reasons = ranker.explain(candidates[chosen], feature_names, vectors=picked)
    return [
        RankedRow(
            row=int(candidate_rows[i]),
            score=float(scores[i]),
            star_row=stars[reason.star] if reason.star is not None else None,
            terms=reason.terms,
        )
        for i, reason in zip(chosen, reasons, strict=True)
    ]
