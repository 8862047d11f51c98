"""Rank candidate papers against a user's starred papers (pure: no I/O, no clock, no state).

The shell fits one vectorizer (``features.make_vectorizer``) on the corpus, transforms the
user's starred / dismissed papers and today's candidates, then calls ``Ranker.fit`` /
``score`` / ``explain`` and ``select``. NumPy and SciPy only: no scikit-learn import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from paperdigest.term_embedding import TermVectors, unit_rows

# Rows of candidates scored at once: bounds the dense (rows x stars) block to a few MB
# even when the shell scores a million candidates.
_CHUNK = 65536
# Up to this many cells (64 MB of float32), stars / dismissals are densified for scoring.
_DENSE_LIMIT = 16_000_000
# Marks prefix-stem features; the token pattern never produces it, so they never collide
# with real words, and explain() can hide them from users.
STEM_MARK = "~"


@dataclass(frozen=True)
class Reason:
    star: int | None  # row index into the `stars` matrix given to fit; None without stars
    terms: tuple[str, ...]  # up to 3 vocabulary terms that contributed most to the match


def _l2_rows(x: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ x, dtype=np.float32)


def _sims(cand: sp.csr_matrix, rows: sp.csr_matrix) -> np.ndarray:
    """Dense cand @ rows.T; sparse x dense beats sparse x sparse (1.3x on 1M rows)."""
    if rows.shape[0] * rows.shape[1] <= _DENSE_LIMIT:
        return np.asarray(cand @ rows.T.toarray())
    return (cand @ rows.T).toarray()


def _empty_rows(n_features: int) -> sp.csr_matrix:
    return sp.csr_matrix((0, n_features), dtype=np.float32)


class Ranker:
    """Interest-balanced mean similarity to the stars, standardised per candidate.

    The stars are grouped into interests (connected components of star pairs with cosine
    >= ``interest_threshold``); each star's weight is size**(interest_power - 1), so an
    interest of n stars weighs n**interest_power instead of n and a minority interest is
    not drowned by a big one.

    rel(c)   = sum_j w_j cos(c, star_j) / sum_j w_j
               + knn_weight * mean of the top ``knn`` cos(c, star_j)
               - dismissed_weight * max(0, max_d cos(c, dismissed_d) - max_j cos(c, star_j))
    score(c) = (rel(c) - hub_weight * mu(c)) / sd(c)

    mu(c) and sd(c) are the mean and standard deviation of cos(c, b) over the background
    papers b (sd from per-term variances, so it costs O(nnz) per candidate). Dividing by
    sd(c) demotes "hub" candidates made of common words that look similar to everyone;
    on CiteULike-a it is worth +0.023 recall@100 and +0.012 nDCG@10 over the plain centroid
    with a 2,000-row background (bench/README.md). With ``whiten_prior`` > 0 the profile
    minus hub_weight * background mean is also divided per term by (background variance +
    whiten_prior) (a diagonal LDA direction): +0.004 nDCG@10. Without a background (or with
    fewer than ``min_background`` rows) score(c) = rel(c).

    With ``term_embedding`` (``fit_term_embedding``'s table or a ``TermVectors``), papers
    are also projected through term vectors, so papers that share related words rather than
    the same words still meet: dense(c) = cosine of the projected c to the weighted mean of
    the projected stars, minus dismissed_weight x how much nearer it is to the nearest
    projected dismissal than to the nearest projected star. The final score adds both
    halves, each standardised over the background:
    z(score) + ``dense_weight`` x z(dense); +0.035 recall@100 on CiteULike-a.

    A caller that keeps the papers' vectors (``TermVectors.embed`` of the same rows, as the
    corpus index does) may pass them to ``fit`` / ``score`` / ``explain`` instead of having
    them recomputed; the scores are the same.

    Given the rows' title n-grams (``make_title_vectorizer``; ``star_titles`` and so on), a
    second, word-less Ranker scores them with the same interests, and ``title_weight`` x
    its standardised score is added: +0.007 recall@100 on CiteULike-a.
    """

    _PARAMS = (
        "interest_threshold", "interest_power", "hub_weight", "var_prior", "dismissed_weight",
        "knn", "knn_weight", "whiten_prior", "min_background",
    )

    def __init__(
        self,
        interest_threshold: float = 0.2,
        interest_power: float = 0.75,
        hub_weight: float = 1.5,
        var_prior: float = 3e-4,
        dismissed_weight: float = 1.0,
        knn: int = 1,
        knn_weight: float = 0.0,
        whiten_prior: float = 1e-3,
        min_background: int = 50,
        term_embedding: np.ndarray | TermVectors | None = None,
        dense_weight: float = 1.0,
        title_weight: float = 0.5,
    ) -> None:
        self.interest_threshold = interest_threshold
        self.interest_power = interest_power
        self.hub_weight = hub_weight
        self.var_prior = var_prior
        self.dismissed_weight = dismissed_weight
        self.knn = knn
        self.knn_weight = knn_weight
        self.whiten_prior = whiten_prior
        self.min_background = min_background
        self.term_embedding = term_embedding
        self.dense_weight = dense_weight
        self.title_weight = title_weight

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        stars: sp.csr_matrix,
        dismissed: sp.csr_matrix | None = None,
        background: sp.csr_matrix | None = None,
        star_weights: np.ndarray | None = None,
        *,
        star_vectors: np.ndarray | None = None,
        dismissed_vectors: np.ndarray | None = None,
        background_vectors: np.ndarray | None = None,
        star_titles: sp.csr_matrix | None = None,
        dismissed_titles: sp.csr_matrix | None = None,
        background_titles: sp.csr_matrix | None = None,
        interests: np.ndarray | None = None,
    ) -> Ranker:
        """Learn the profile.

        ``*_vectors``: the same rows' ``TermVectors.embed``, if kept. ``*_titles``: the same
        rows' title n-grams, for the title channel. ``interests``: each star's interest
        label, instead of grouping the stars here.
        """
        n_features = stars.shape[1]
        self.stars_ = _l2_rows(stars)
        n_stars = self.stars_.shape[0]
        w = np.ones(n_stars, np.float32) if star_weights is None else star_weights
        w = np.asarray(w, dtype=np.float32).ravel()
        if w.shape[0] != n_stars:
            raise ValueError(f"star_weights has {w.shape[0]} entries for {n_stars} stars")
        if n_stars and (not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0):
            raise ValueError("star_weights must be finite, non-negative and not all zero")
        self.star_weights_ = w / w.max() if n_stars else w
        if interests is None:
            self.interest_ = self._interests(self.stars_)
        else:
            self.interest_ = np.unique(np.asarray(interests), return_inverse=True)[1].ravel()
            if self.interest_.shape[0] != n_stars:
                raise ValueError(
                    f"interests has {self.interest_.shape[0]} labels for {n_stars} stars"
                )
        # profile . c is the weighted mean cosine to the stars, each interest damped by size.
        if n_stars:
            sizes = np.bincount(self.interest_).astype(np.float32)
            pw = w * sizes[self.interest_] ** (float(self.interest_power) - 1.0)
            pw = pw / pw.sum()
            self.profile_ = np.asarray(self.stars_.T @ pw, np.float32).ravel()
        else:
            pw = np.zeros(0, np.float32)
            self.profile_ = np.zeros(n_features, np.float32)
        self.dismissed_ = _empty_rows(n_features) if dismissed is None else _l2_rows(dismissed)
        # Background term statistics for the per-candidate standardisation.
        bg = None if background is None else _l2_rows(background)
        if bg is not None and bg.shape[0] >= self.min_background:
            mean = np.asarray(bg.mean(axis=0), dtype=np.float64).ravel()
            sq = np.asarray(bg.multiply(bg).mean(axis=0), dtype=np.float64).ravel()
            # The prior stops terms unseen in a small sample from getting zero variance.
            var = np.maximum(sq - mean**2, 0.0)
            self.bg_mean_ = mean.astype(np.float32)
            self.bg_var_ = (var + self.var_prior).astype(np.float32)
        else:
            self.bg_mean_ = None
            self.bg_var_ = None
        # What score() dots the candidates with, and how much of mu(c) it still subtracts.
        self.term_weights_ = self.profile_
        self.mu_weight_ = float(self.hub_weight)
        if self.bg_var_ is not None and self.whiten_prior > 0 and n_stars:
            # Terms common in the background vary a lot from paper to paper, so matching
            # them is weak evidence: the per-term division down-weights them.
            shrink = self.whiten_prior / (var + self.whiten_prior)
            centred = self.profile_ - self.hub_weight * mean
            self.term_weights_ = (centred * shrink).astype(np.float32)
            self.mu_weight_ = 0.0  # already folded into term_weights_
        self.n_features_in_ = n_features
        # Each channel's score is standardised over the background before they are added.
        self.lex_scale_: tuple[float, float] | None = None
        if self.bg_var_ is not None and n_stars:
            lexical = self._lexical_score(bg)
            self.lex_scale_ = (float(lexical.mean()), _spread(lexical))
        self._fit_dense(pw, bg, star_vectors, dismissed_vectors, background_vectors)
        self.titles_: Ranker | None = None
        if (
            star_titles is not None
            and background_titles is not None
            and self.title_weight > 0
            and self.lex_scale_ is not None
        ):
            titles = Ranker(
                **{name: getattr(self, name) for name in self._PARAMS}, title_weight=0.0
            ).fit(
                star_titles,
                dismissed_titles,
                background=background_titles,
                star_weights=star_weights,
                interests=self.interest_,
            )
            self.titles_ = titles if titles.lex_scale_ is not None else None
        return self

    def standardised(self, candidates: sp.csr_matrix) -> np.ndarray:
        """The lexical score put on the background's scale (mean 0, spread 1)."""
        lexical = self._lexical_score(sp.csr_matrix(candidates))
        if self.lex_scale_ is None:
            return lexical
        mean, sd = self.lex_scale_
        return (lexical - mean) / sd

    def _fit_dense(
        self,
        pw: np.ndarray,
        bg: sp.csr_matrix | None,
        star_vectors: np.ndarray | None,
        dismissed_vectors: np.ndarray | None,
        background_vectors: np.ndarray | None,
    ) -> None:
        """The term-vector half of the score, and how both halves are put on one scale.

        Each half is standardised by its mean and spread over the background papers, so
        ``dense_weight`` means the same for every user and a paper's score does not depend
        on which other papers are candidates today.
        """
        vectors = self.term_embedding
        if vectors is not None and not isinstance(vectors, TermVectors):
            table = np.asarray(vectors, np.float32)
            if table.ndim != 2 or table.shape[0] != self.stars_.shape[1]:
                raise ValueError(
                    f"term_embedding has shape {table.shape}; "
                    f"expected ({self.stars_.shape[1]}, dim)"
                )
            vectors = TermVectors(table)
        if vectors is not None and vectors.n_features != self.stars_.shape[1]:
            raise ValueError(
                f"term_embedding has {vectors.n_features} features; "
                f"expected {self.stars_.shape[1]}"
            )
        self.dense_on_ = bool(
            vectors is not None
            and self.dense_weight > 0
            and bg is not None
            and self.bg_var_ is not None
            and self.stars_.shape[0]
        )
        if not self.dense_on_:
            return
        self.term_vectors_ = vectors
        # Centring removes the direction every paper shares, which would make all cosines
        # high; what is left says which topic a paper is about.
        bg_dense = self._embedded(bg, background_vectors)
        self.dense_center_ = bg_dense.mean(axis=0)
        bg_dense = unit_rows(bg_dense - self.dense_center_)
        self.dense_stars_ = self._project(self.stars_, star_vectors)
        self.dense_profile_ = (pw @ self.dense_stars_).astype(np.float32)
        self.dense_dismissed_ = self._project(self.dismissed_, dismissed_vectors)
        dense = self._dense_rel(bg_dense)
        self.dense_scale_ = (float(dense.mean()), _spread(dense))

    def _embedded(self, rows: sp.csr_matrix, vectors: np.ndarray | None) -> np.ndarray:
        """The rows' paper vectors: the caller's, when given, else computed."""
        if vectors is None:
            return self.term_vectors_.embed(rows)
        vectors = np.asarray(vectors, np.float32)
        if vectors.shape != (rows.shape[0], self.term_vectors_.dim):
            raise ValueError(
                f"paper vectors have shape {vectors.shape}; "
                f"expected ({rows.shape[0]}, {self.term_vectors_.dim})"
            )
        return vectors

    def _project(self, rows: sp.csr_matrix, vectors: np.ndarray | None = None) -> np.ndarray:
        """Embedded rows centred on the background, unit length again."""
        return unit_rows(self._embedded(rows, vectors) - self.dense_center_)

    def _dense_rel(self, projected: np.ndarray) -> np.ndarray:
        """Cosine to the stars' projected profile, pushed away from the nearest dismissal
        as the lexical half is."""
        score = np.asarray(projected @ self.dense_profile_, np.float64)
        if self.dense_dismissed_.shape[0] and self.dismissed_weight:
            score -= self.dismissed_weight * _excess(
                projected @ self.dense_dismissed_.T, projected @ self.dense_stars_.T
            )
        return score

    def _dense_score(self, cand: sp.csr_matrix, vectors: np.ndarray | None) -> np.ndarray:
        if vectors is not None:
            self._embedded(cand, vectors)  # checks the shape once
        out = np.empty(cand.shape[0], np.float64)
        for i in range(0, cand.shape[0], _CHUNK):  # bounded dense blocks for 1M candidates
            block = None if vectors is None else vectors[i : i + _CHUNK]
            out[i : i + _CHUNK] = self._dense_rel(self._project(cand[i : i + _CHUNK], block))
        return out

    def _interests(self, stars: sp.csr_matrix) -> np.ndarray:
        """Interest label of each star: connected components of the similar-pairs graph."""
        n = stars.shape[0]
        if n == 0:
            return np.zeros(0, np.intp)
        linked = sp.csr_matrix(linked_stars(stars, self.interest_threshold))
        _, labels = connected_components(linked, directed=False)
        return labels.astype(np.intp)

    # -- scoring ---------------------------------------------------------------------------
    def _star_sims(self, cand: sp.csr_matrix) -> np.ndarray:
        """Dense (candidates x stars) cosines, each star's column scaled by its weight."""
        sims = _sims(cand, self.stars_)
        return sims * self.star_weights_[None, :]

    def _max_sims(self, cand: sp.csr_matrix, norms: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per candidate: mean of the top-``knn`` star cosines, and how much nearer it is to
        a dismissal than to any star (``_excess``)."""
        n = cand.shape[0]
        knn, near = np.zeros(n, np.float64), np.zeros(n, np.float64)
        n_stars = self.stars_.shape[0]
        for i in range(0, n, _CHUNK):  # bounded dense blocks even for 1M candidates
            block, scale = cand[i : i + _CHUNK], norms[i : i + _CHUNK, None]
            if n_stars and self.knn_weight:
                sims = self._star_sims(block) / scale
                m = min(max(int(self.knn), 1), n_stars)
                top = -np.partition(-sims, m - 1, axis=1)[:, :m] if m < n_stars else sims
                knn[i : i + _CHUNK] = top.mean(axis=1)
            if self.dismissed_.shape[0] and self.dismissed_weight:
                to_stars = _sims(block, self.stars_) / scale if n_stars else None
                near[i : i + _CHUNK] = _excess(_sims(block, self.dismissed_) / scale, to_stars)
        return knn, near

    def score(
        self,
        candidates: sp.csr_matrix,
        vectors: np.ndarray | None = None,
        titles: sp.csr_matrix | None = None,
    ) -> np.ndarray:
        """Higher is better. ``vectors``: the candidates' ``TermVectors.embed``, if kept;
        ``titles``: their title n-grams, required when the ranker was fitted with titles."""
        cand = sp.csr_matrix(candidates)  # no copy for CSR input: 1M rows must stay cheap
        if cand.dtype not in (np.float32, np.float64):
            cand = cand.astype(np.float32)
        if self.titles_ is not None and (titles is None or titles.shape[0] != cand.shape[0]):
            raise ValueError("this ranker was fitted with titles: pass the candidates' titles")
        if cand.shape[0] == 0:
            return np.zeros(0, np.float64)
        if not self.dense_on_ and self.titles_ is None:
            return self._lexical_score(cand)
        total = self.standardised(cand)
        if self.dense_on_:
            dense_mean, dense_sd = self.dense_scale_
            total += self.dense_weight * (self._dense_score(cand, vectors) - dense_mean) / dense_sd
        if self.titles_ is not None:
            total += self.title_weight * self.titles_.standardised(titles)
        return total

    def _lexical_score(self, cand: sp.csr_matrix) -> np.ndarray:
        n_features = cand.shape[1]
        # Every term is linear in the candidate row, so score raw rows and divide by their
        # norms instead of building a normalised copy: two sparse x dense(2 cols) products.
        squared = sp.csr_matrix((np.square(cand.data), cand.indices, cand.indptr), cand.shape)
        lin = np.zeros((n_features, 2), cand.dtype)
        quad = np.ones((n_features, 2), cand.dtype)
        lin[:, 0] = self.term_weights_
        if self.bg_var_ is not None:
            lin[:, 1] = self.bg_mean_
            quad[:, 1] = self.bg_var_
        dots = np.asarray(cand @ lin, np.float64)
        sqs = np.asarray(squared @ quad, np.float64)
        norms = np.sqrt(sqs[:, 0])
        norms[norms == 0] = 1.0
        rel = dots[:, 0] / norms
        if (self.stars_.shape[0] and self.knn_weight) or (
            self.dismissed_.shape[0] and self.dismissed_weight
        ):
            knn, near = self._max_sims(cand, norms)
            rel += self.knn_weight * knn - self.dismissed_weight * near
        if self.bg_var_ is None or not self.stars_.shape[0]:
            return rel
        mu = dots[:, 1] / norms
        # Floor: an empty candidate (no known terms) has sd 0; it scores 0, not nan.
        sd = np.maximum(np.sqrt(sqs[:, 1]) / norms, np.sqrt(self.var_prior) * 1e-3)
        return (rel - self.mu_weight_ * mu) / sd

    def explain(
        self,
        candidates: sp.csr_matrix,
        feature_names: np.ndarray,
        n_terms: int = 3,
        vectors: np.ndarray | None = None,
    ) -> list[Reason]:
        cand = _l2_rows(candidates)
        n = cand.shape[0]
        if self.stars_.shape[0] == 0:
            return [Reason(star=None, terms=()) for _ in range(n)]
        reasons: list[Reason] = []
        for start in range(0, n, _CHUNK):
            block = cand[start : start + _CHUNK]
            sims = self._star_sims(block)
            if self.dense_on_:  # a paper may match a star through related words only
                given = None if vectors is None else vectors[start : start + _CHUNK]
                dense = self._project(block, given) @ self.dense_stars_.T
                sims += self.dense_weight * dense * self.star_weights_[None, :]
            nearest = np.argmax(sims, axis=1)  # first max: lowest index
            for i in range(block.shape[0]):
                j = int(nearest[i])
                # Per-term contribution to the cosine: product of the two tf-idf weights.
                contrib = block[i].multiply(self.stars_[j]).tocoo()
                terms: list[str] = []
                for k in np.lexsort((contrib.col, -contrib.data)):
                    name = str(feature_names[contrib.col[k]])
                    if len(terms) >= n_terms or contrib.data[k] <= 0:
                        break
                    # Stems are not words a user would recognise.
                    if not name.startswith(STEM_MARK):
                        _add_distinct(terms, name)
                reasons.append(Reason(star=j, terms=tuple(terms)))
        return reasons


def _excess(to_dismissed: np.ndarray, to_stars: np.ndarray | None) -> np.ndarray:
    """How much nearer each row is to its nearest dismissal than to its nearest star (>= 0).

    A dismissal says "not this, nor its near twins", not "drop the whole topic": a paper
    as close to a star as to the dismissal keeps its score, so dismissing one paper at the
    heart of an interest does not empty the digest of that interest.
    """
    excess = np.asarray(to_dismissed.max(axis=1), np.float64)
    if to_stars is not None and to_stars.shape[1]:
        excess -= to_stars.max(axis=1)
    return np.maximum(excess, 0.0)


def _spread(values: np.ndarray) -> float:
    """Standard deviation, floored so a constant score divides by 1, not 0."""
    sd = float(np.std(values))
    return sd if sd > 1e-12 else 1.0


def _add_distinct(terms: list[str], name: str) -> None:
    """Add a term unless it repeats a word already shown: "fine tuning" stands in for
    "fine" (the phrase says more), and "tuning" after "fine tuning" adds nothing."""
    words = set(name.split())
    for i, shown in enumerate(terms):
        shown_words = set(shown.split())
        if words & shown_words:
            if shown_words < words:
                terms[i] = name
            return
    terms.append(name)


def _top_order(scores: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` best indices, best first, ties by index; O(n) before a sort of ~m items."""
    n = scores.shape[0]
    if m < n:
        kth = np.partition(scores, n - m)[n - m]
        idx = np.flatnonzero(scores >= kth)  # keeps every tie at the cut, so ties stay fair
    else:
        idx = np.arange(n)
    return idx[np.lexsort((idx, -scores[idx]))][:m].astype(np.intp)


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
    mmr_on = diversity > 0 and k > 1
    # MMR only reshuffles near the top; a bounded pool keeps it cheap on 1M candidates.
    m = min(n, max(10 * k, 100)) if mmr_on else k
    order = _top_order(scores, m)
    if not mmr_on:
        return order
    pool = order
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


def linked_stars(
    stars: sp.csr_matrix,
    threshold: float,
    terms_at: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """(stars x stars) booleans: which pairs of (L2-normalised) stars have a cosine of at
    least `threshold`. A few stars are multiplied densely on their own terms, which costs
    a tenth of the sparse product; both rankers call this, so they link the same pairs."""
    n = stars.shape[0]
    terms, at = terms_at or unique_inverse(stars.indices)  # given: the caller's own
    if n * len(terms) > _DENSE_LIMIT:
        return np.asarray((stars @ stars.T).toarray()) >= threshold
    dense = np.zeros((n, len(terms)), np.float64)
    dense[np.repeat(np.arange(n), np.diff(stars.indptr)), at] = stars.data
    return (dense @ dense.T) >= threshold


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: NumPy 2's hash-based unique is several times slower on the
    few thousand term ids of a profile."""
    values = np.sort(values, kind="stable")
    if len(values) < 2:
        return values
    keep = np.empty(len(values), bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True), the same arrays."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.empty(len(ordered), bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(values), np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse
