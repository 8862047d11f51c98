"""Rank candidate papers against a user's starred papers (pure: no I/O, no clock, no state).

The shell fits one vectorizer (``make_vectorizer``) on the corpus, transforms the user's
starred / dismissed papers and today's candidates, then calls ``Ranker.fit`` / ``score`` /
``explain`` and ``select``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

# Rows of candidates scored at once: bounds the dense (rows x stars) block to a few MB
# even when the shell scores a million candidates.
_CHUNK = 65536
_EMPTY_TERM = "<empty>"


def paper_text(title: str, abstract: str) -> str:
    """Text fed to the vectorizer; the title goes in once, as in arxiv-sanity-lite."""
    title = (title or "").strip()
    abstract = (abstract or "").strip()
    return f"{title}. {abstract}" if abstract else title


class _SafeTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer that degrades instead of raising on tiny or degenerate corpora.

    A 1-paper corpus trips "max_df corresponds to < documents than min_df", and a corpus of
    stop words only trips "empty vocabulary"; the shell must still produce a digest.
    """

    def fit(self, raw_documents: Iterable[str], y: object = None) -> _SafeTfidfVectorizer:
        self.fit_transform(raw_documents)
        return self

    def fit_transform(self, raw_documents: Iterable[str], y: object = None) -> sp.csr_matrix:
        docs = list(raw_documents)
        try:
            return super().fit_transform(docs)
        except ValueError as err:
            if "max_df" not in str(err) and "empty vocabulary" not in str(err):
                raise
        # Pruning removed every term: keep them all.
        self.set_params(min_df=1, max_df=1.0, max_features=None)
        try:
            return super().fit_transform(docs)
        except ValueError as err:
            if "empty vocabulary" not in str(err):
                raise
        # Nothing tokenisable at all: a placeholder term keeps transform() working (all zeros).
        self.set_params(vocabulary={_EMPTY_TERM: 0})
        return super().fit_transform(docs)


def make_vectorizer(n_docs: int | None = None) -> TfidfVectorizer:
    """The TF-IDF settings the Ranker was tuned with; pruning relaxes for small corpora."""
    if n_docs is not None and n_docs < 50:
        # Document-frequency pruning is meaningless on a handful of papers.
        min_df: int = 1
        max_df: float = 1.0
    elif n_docs is not None and n_docs < 2000:
        min_df, max_df = 2, 0.5
    else:
        min_df, max_df = 2, 0.1
    return _SafeTfidfVectorizer(
        strip_accents="unicode",
        lowercase=True,
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, 2),
        max_features=50000,
        sublinear_tf=True,
        min_df=min_df,
        max_df=max_df,
        dtype=np.float32,
    )


@dataclass(frozen=True)
class Reason:
    star: int | None  # row index into the `stars` matrix given to fit; None without stars
    terms: tuple[str, ...]  # up to 3 vocabulary terms that contributed most to the match


def _l2_rows(x: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ x, dtype=np.float32)


def _empty_rows(n_features: int) -> sp.csr_matrix:
    return sp.csr_matrix((0, n_features), dtype=np.float32)


class Ranker:
    """Scores candidates by similarity to the stars, minus similarity to dismissals.

    score = centroid_weight * cos(candidate, star centroid)
          + (1 - centroid_weight) * mean of the top ``knn`` cosines to individual stars
          - dismissed_weight * max cosine to a dismissed paper
          - background_weight * cos(candidate, background centroid)

    The per-star term keeps separate interests alive (a centroid of two topics matches
    neither); the centroid term smooths over noisy single stars.
    """

    def __init__(
        self,
        centroid_weight: float = 0.5,
        knn: int = 1,
        dismissed_weight: float = 0.5,
        background_weight: float = 0.0,
    ) -> None:
        self.centroid_weight = centroid_weight
        self.knn = knn
        self.dismissed_weight = dismissed_weight
        self.background_weight = background_weight

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        stars: sp.csr_matrix,
        dismissed: sp.csr_matrix | None = None,
        background: sp.csr_matrix | None = None,
        star_weights: np.ndarray | None = None,
    ) -> Ranker:
        n_features = stars.shape[1]
        self.stars_ = _l2_rows(stars)
        n_stars = self.stars_.shape[0]
        w = np.ones(n_stars, np.float32) if star_weights is None else star_weights
        w = np.asarray(w, dtype=np.float32).ravel()
        if w.shape[0] != n_stars:
            raise ValueError(f"star_weights has {w.shape[0]} entries for {n_stars} stars")
        self.star_weights_ = w
        self.centroid_ = self._centroid(self.stars_, w)
        self.dismissed_ = _empty_rows(n_features) if dismissed is None else _l2_rows(dismissed)
        bg = _empty_rows(n_features) if background is None else _l2_rows(background)
        self.background_centroid_ = self._centroid(bg, np.ones(bg.shape[0], np.float32))
        self.n_features_in_ = n_features
        return self

    @staticmethod
    def _centroid(rows: sp.csr_matrix, weights: np.ndarray) -> np.ndarray:
        c = np.asarray(rows.T @ weights, dtype=np.float32).ravel()
        norm = float(np.linalg.norm(c))
        return c / norm if norm > 0 else c

    # -- scoring ---------------------------------------------------------------------------
    def _star_sims(self, cand: sp.csr_matrix) -> np.ndarray:
        """Dense (candidates x stars) cosines, each star's column scaled by its weight."""
        sims = (cand @ self.stars_.T).toarray()
        return sims * self.star_weights_[None, :]

    def _score_chunk(self, cand: sp.csr_matrix) -> np.ndarray:
        n = cand.shape[0]
        out = np.zeros(n, np.float64)
        if self.stars_.shape[0]:
            sims = self._star_sims(cand)
            m = min(max(int(self.knn), 1), sims.shape[1])
            top = -np.partition(-sims, m - 1, axis=1)[:, :m] if m < sims.shape[1] else sims
            knn = top.mean(axis=1) if m > 1 else top.max(axis=1)
            cw = float(self.centroid_weight)
            out += cw * (cand @ self.centroid_) + (1.0 - cw) * knn
        if self.dismissed_.shape[0] and self.dismissed_weight:
            out -= self.dismissed_weight * (cand @ self.dismissed_.T).max(axis=1).toarray().ravel()
        if self.background_weight:
            out -= self.background_weight * (cand @ self.background_centroid_)
        return out

    def score(self, candidates: sp.csr_matrix) -> np.ndarray:
        cand = _l2_rows(candidates)
        n = cand.shape[0]
        if n == 0:
            return np.zeros(0, np.float64)
        parts = [self._score_chunk(cand[i : i + _CHUNK]) for i in range(0, n, _CHUNK)]
        return np.concatenate(parts)

    def explain(
        self, candidates: sp.csr_matrix, feature_names: np.ndarray, n_terms: int = 3
    ) -> list[Reason]:
        cand = _l2_rows(candidates)
        n = cand.shape[0]
        if self.stars_.shape[0] == 0:
            return [Reason(star=None, terms=()) for _ in range(n)]
        reasons: list[Reason] = []
        for start in range(0, n, _CHUNK):
            block = cand[start : start + _CHUNK]
            nearest = np.argmax(self._star_sims(block), axis=1)
            for i in range(block.shape[0]):
                j = int(nearest[i])
                # Per-term contribution to the cosine: product of the two tf-idf weights.
                contrib = block[i].multiply(self.stars_[j]).tocoo()
                order = np.lexsort((contrib.col, -contrib.data))[: max(n_terms, 0)]
                terms = tuple(
                    str(feature_names[contrib.col[k]]) for k in order if contrib.data[k] > 0
                )
                reasons.append(Reason(star=j, terms=terms))
        return reasons


def select(
    scores: np.ndarray, candidates: sp.csr_matrix, k: int, diversity: float = 0.0
) -> np.ndarray:
    """Indices of the top ``k`` candidates, best first; ties go to the lower index.

    With ``diversity`` > 0, maximal marginal relevance: each pick maximises
    (1 - diversity) * relevance - diversity * max cosine to the papers already picked.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n = scores.shape[0]
    k = min(int(k), n)
    if k <= 0:
        return np.zeros(0, dtype=np.intp)
    order = np.lexsort((np.arange(n), -scores))  # stable: ties by index
    if diversity <= 0 or k == 1:
        return order[:k].astype(np.intp)
    # MMR only reshuffles near the top; a bounded pool keeps it cheap on 1M candidates.
    pool = order[: min(n, max(10 * k, 100))]
    rel = scores[pool]
    span = float(rel.max() - rel.min())
    rel = (rel - rel.min()) / span if span > 0 else np.zeros_like(rel)
    vecs = _l2_rows(candidates[pool])
    max_sim = np.zeros(pool.shape[0], np.float64)
    taken = np.zeros(pool.shape[0], bool)
    picked: list[int] = []
    for _ in range(k):
        mmr = (1.0 - diversity) * rel - diversity * max_sim
        mmr[taken] = -np.inf
        best = int(np.argmax(mmr))  # argmax returns the first maximum: pool order breaks ties
        taken[best] = True
        picked.append(int(pool[best]))
        sim = (vecs @ vecs[best].T).toarray().ravel()
        np.maximum(max_sim, sim, out=max_sim)
    return np.asarray(picked, dtype=np.intp)
