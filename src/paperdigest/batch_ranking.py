"""Ranking many profiles at once against one day's shared candidates (pure: arrays in, rows out).

``Ranker`` fits one profile: it reads the 5,000-row background sample, standardises each
channel over it and scores every candidate, ~60 ms a profile. Almost all of that is the
same for every reader. ``BatchRanker`` computes the shared part once (background sums,
candidate norms and projections) and then scores a block of profiles with a few sparse
and dense matrix products; a profile's own part is a sparse vector of its star terms.

It gives the scores of ``Ranker`` (up to float rounding) and so the same picks and
reasons. The one subtlety: ``Ranker`` leaves a profile's own stars and dismissals out of
its background sample, so the background statistics differ a little per profile. Every
statistic is a sum over the background, so the sums of the whole sample are computed
once, the left-out rows' sums subtracted per profile, and what changes is carried as a
sparse correction on the terms of those rows (see ``_LexicalChannel``).

Memory is bounded by the block of profiles given to ``rank``, never by their number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from paperdigest.ranking import (
    STEM_MARK,
    Ranker,
    _add_distinct,
    _excess,
    _l2_rows,
    _top_order,
    linked_stars,
    sorted_unique,
    unique_inverse,
)
from paperdigest.recommend import RankedRow
from paperdigest.term_embedding import TermVectors, unit_rows


@dataclass(frozen=True)
class Rows:
    """Some papers' features, row for row: words, title n-grams, kept term vectors."""

    words: sp.csr_matrix
    titles: sp.csr_matrix | None = None
    vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return self.words.shape[0]


@dataclass(frozen=True)
class ProfileRows:
    """One profile, as positions: its stars and dismissals in the block's ``marked`` rows,
    and which background and candidate rows it leaves out (its own stars and dismissals;
    everything it has seen)."""

    stars: np.ndarray
    dismissed: np.ndarray
    background_out: np.ndarray
    candidates_out: np.ndarray


# Term weights of a block of profiles are densified up to this many cells (64 MB).
_DENSE_WEIGHTS = 16_000_000
# Up to this many stars, interests are found by squaring a dense reachability table.
_SMALL_GRAPH = 64
# Profiles whose picks' cosines to their stars are computed in one product.
_SIMS_GROUP = 16


class BatchUnsupported(ValueError):
    """The ranker's settings need the one-profile path (``Ranker``)."""


def _take(x: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """x[rows]; an empty selection without scipy's indexing machinery (most profiles
    have no dismissals)."""
    if len(rows) == 0:
        return sp.csr_matrix((0, x.shape[1]), dtype=x.dtype)
    return x[rows]


def _sq(x: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix((np.square(x.data), x.indices, x.indptr), x.shape)


def _row_norms(x: sp.csr_matrix) -> np.ndarray:
    norms = np.sqrt(np.asarray(_sq(x).sum(axis=1), np.float64).ravel())
    norms[norms == 0] = 1.0
    return norms


def _columns(values: list[tuple[np.ndarray, np.ndarray]], n_rows: int) -> sp.csc_matrix:
    """A sparse (n_rows x len(values)) matrix from (indices, data) per column."""
    indptr = np.zeros(len(values) + 1, np.int64)
    indptr[1:] = np.cumsum([len(idx) for idx, _ in values])
    indices = np.concatenate([idx for idx, _ in values]) if values else np.zeros(0, np.int64)
    data = np.concatenate([d for _, d in values]) if values else np.zeros(0, np.float32)
    return sp.csc_matrix(
        (data.astype(np.float32), indices.astype(np.int32), indptr), shape=(n_rows, len(values))
    )


def _masked_scale(values: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """Mean and spread (as ``ranking._spread``) of ``values`` without the rows ``out``."""
    if len(out):
        keep = np.ones(values.shape[0], bool)
        keep[out] = False
        values = values[keep]
    sd = float(np.std(values))
    return float(values.mean()), (sd if sd > 1e-12 else 1.0)


class _LexicalChannel:
    """One TF-IDF channel (words or title n-grams) of ``Ranker._lexical_score``, batched.

    For a profile whose background leaves out k rows, every background statistic is the
    whole sample's sum minus those rows', over n0 - k. Outside the terms of the left-out
    rows it depends on k alone: those "base" vectors are computed once per k. The
    profile's term weights are then  base(k) + a sparse vector on its star terms and on
    the left-out rows' terms, and a candidate's score is two products.
    """

    def __init__(self, ranker: Ranker, background: sp.csr_matrix) -> None:
        self.r = ranker
        self.bg = _l2_rows(background)
        self.n0 = self.bg.shape[0]
        self.s1 = np.asarray(self.bg.sum(axis=0), np.float64).ravel()
        self.s2 = np.asarray(_sq(self.bg).sum(axis=0), np.float64).ravel()
        self._bases: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _stats(self, s1: np.ndarray, s2: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
        """(mean, bg_var_, shrink) as ``Ranker.fit`` computes them from sums."""
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0.0)
        shrink = self.r.whiten_prior / (var + self.r.whiten_prior)
        return mean, (var + self.r.var_prior).astype(np.float32), shrink

    def base(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For a background of n0 - k rows, away from the left-out rows' terms: the term
        weights of an empty profile (-hub * mean * shrink) and bg_var_."""
        if k not in self._bases:
            mean, bg_var, shrink = self._stats(self.s1, self.s2, self.n0 - k)
            weights = (-self.r.hub_weight * mean * shrink).astype(np.float32)
            self._bases[k] = (weights, bg_var)
        return self._bases[k]

    def profile_columns(
        self,
        stars: sp.csr_matrix,
        pw: np.ndarray,
        background_out: np.ndarray,
        terms_at: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """A profile's corrections to base(k): term weights and bg_var_, as sparse columns.
        Only its own terms are touched: nothing here is as long as the vocabulary."""
        k = len(background_out)
        owner = np.repeat(np.arange(stars.shape[0]), np.diff(stars.indptr))
        star_terms, at = terms_at or unique_inverse(stars.indices)
        profile = np.bincount(at, weights=stars.data * pw[owner]).astype(np.float32)
        if k:
            out_rows = self.bg[background_out]
            out_terms, out_at = unique_inverse(out_rows.indices)
            terms = sorted_unique(np.concatenate([star_terms, out_terms]))
        else:  # most profiles: none of their stars is in the background sample
            out_terms, terms = np.zeros(0, np.int64), star_terms
        s1, s2 = self.s1[terms].copy(), self.s2[terms].copy()
        where_out = np.searchsorted(terms, out_terms)
        if k:
            data = out_rows.data.astype(np.float64)
            s1[where_out] -= np.bincount(out_at, weights=data, minlength=len(out_terms))
            s2[where_out] -= np.bincount(out_at, weights=data**2, minlength=len(out_terms))
        mean, bg_var, shrink = self._stats(s1, s2, self.n0 - k)
        own = np.zeros(len(terms), np.float32)
        own[np.searchsorted(terms, star_terms)] = profile
        weights = ((own - self.r.hub_weight * mean) * shrink).astype(np.float32)
        base_w, base_var = self.base(k)
        return (terms, weights - base_w[terms]), (out_terms, bg_var[where_out] - base_var[
            out_terms])


def _block_columns(
    channel: _LexicalChannel, cols: list[tuple]
) -> tuple[np.ndarray | sp.csc_matrix, sp.csc_matrix]:
    """A block's term-weight corrections (dense when they fit in _DENSE_WEIGHTS cells: a
    sparse matrix times a dense one is ~1.5x faster than two sparse ones, and adds the
    same products in the same order) and its variance corrections (few: sparse)."""
    n_features = channel.bg.shape[1]
    weights: np.ndarray | sp.csc_matrix = _columns([c[0] for c in cols], n_features)
    if n_features * len(cols) <= _DENSE_WEIGHTS:
        weights = weights.toarray(order="C")  # row-major: the product reads a term's row
    return weights, _columns([c[1] for c in cols], n_features)


class BatchRanker:
    """``Ranker``'s scores for many profiles on one day's candidates.

    Built once a day from the ranker's settings, the background sample and the candidate
    rows; ``rank`` then takes blocks of profiles.
    """

    def __init__(self, ranker: Ranker, background: Rows, candidates: Rows) -> None:
        if ranker.whiten_prior <= 0 or ranker.knn_weight:
            raise BatchUnsupported("the batch path needs whiten_prior > 0 and knn_weight 0")
        self.r = ranker
        self.background = background
        self.candidates = candidates
        self.words = _LexicalChannel(ranker, background.words)
        self.titles = (
            _LexicalChannel(ranker, background.titles)
            if background.titles is not None and candidates.titles is not None
            and ranker.title_weight > 0
            else None
        )
        self.cand_words = sp.csr_matrix(candidates.words, dtype=np.float32)
        self.cand_norms = _row_norms(self.cand_words)
        self.cand_l2 = _l2_rows(self.cand_words)  # for explain
        self.cand_sq = _sq(self.cand_words)
        if self.titles is not None:
            assert candidates.titles is not None
            self.cand_titles = sp.csr_matrix(candidates.titles, dtype=np.float32)
            self.cand_title_norms = _row_norms(self.cand_titles)
            self.cand_title_sq = _sq(self.cand_titles)
        self.bg_norms = _row_norms(self.words.bg)
        self.bg_sq = _sq(self.words.bg)
        if self.titles is not None:
            self.bg_title_norms = _row_norms(self.titles.bg)
            self.bg_title_sq = _sq(self.titles.bg)
        self._init_dense()

    def _init_dense(self) -> None:
        te = self.r.term_embedding
        self.term_vectors: TermVectors | None
        if te is None or self.r.dense_weight <= 0:
            self.term_vectors = None
            return
        self.term_vectors = te if isinstance(te, TermVectors) else TermVectors(te)
        tv = self.term_vectors
        bg_vec = self.background.vectors
        if bg_vec is None:
            bg_vec = tv.embed(self.words.bg)
        cand_vec = self.candidates.vectors
        if cand_vec is None:
            cand_vec = tv.embed(self.cand_words)
        self.bg_vec = np.asarray(bg_vec, np.float32)
        self.cand_vec = np.asarray(cand_vec, np.float32)
        self.bg_vec_sum = self.bg_vec.astype(np.float64).sum(axis=0)
        self.bg_vec_sq = np.einsum("ij,ij->i", self.bg_vec, self.bg_vec).astype(np.float64)
        self.cand_vec_sq = np.einsum("ij,ij->i", self.cand_vec, self.cand_vec).astype(np.float64)

    # -- fitting a profile (the parts that are its own) -----------------------------------

    def _interests(
        self, stars: sp.csr_matrix, terms: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Each star's weight pw, as ``Ranker.fit`` makes it from its interests."""
        n = stars.shape[0]
        linked = linked_stars(stars, self.r.interest_threshold, terms)
        if n <= _SMALL_GRAPH:  # each star's interest size from the transitive closure
            reach = (linked | np.eye(n, dtype=bool)).astype(np.float32)
            while True:
                wider = ((reach @ reach) > 0).astype(np.float32)
                if np.array_equal(wider, reach):
                    break
                reach = wider
            size_of = reach.sum(axis=1).astype(np.float32)
        else:
            _, labels = connected_components(linked, directed=False)
            size_of = np.bincount(labels).astype(np.float32)[labels]
        pw = np.ones(n, np.float32) * size_of ** (float(self.r.interest_power) - 1.0)
        return pw / pw.sum()

    # -- scoring --------------------------------------------------------------------------

    def rank(
        self,
        marked: Rows,
        profiles: Sequence[ProfileRows],
        limit: int,
        feature_names: np.ndarray,
    ) -> list[list[RankedRow] | None]:
        """Per profile, its picks (``RankedRow.row``: a candidate position; ``star_row``:
        a position in ``marked``), or None when only ``Ranker`` can rank it (a background
        too small once its own rows are left out)."""
        results: list[list[RankedRow] | None] = [None] * len(profiles)
        todo = [
            i for i, p in enumerate(profiles)
            if len(p.stars) and self.words.n0 - len(p.background_out) >= self.r.min_background
        ]
        for i, p in enumerate(profiles):
            if not len(p.stars) or limit <= 0 or len(self.candidates) == 0:
                results[i] = []
        todo = [i for i in todo if results[i] is None]
        if not todo:
            return results
        words = _l2_rows(marked.words)
        titles = None if marked.titles is None else _l2_rows(marked.titles)
        fits = [self._fit(words, titles, marked.vectors, profiles[i]) for i in todo]
        # The block's term weights, built once for the background and the candidates.
        block = {"words": _block_columns(self.words, [f.word_cols for f in fits])}
        if self.titles is not None and all(f.title_cols is not None for f in fits):
            block["titles"] = _block_columns(self.titles, [f.title_cols for f in fits])
        # Each channel's scale over each profile's own background, then today's scores.
        self._fit_scales(fits, block)
        scores = self._score(fits, block, self.cand_words, self.cand_norms, self.cand_sq,
                             self._cand_titles(), self._cand_dense())
        picks: list[np.ndarray] = []
        for col, i in enumerate(todo):
            keep = np.ones(scores.shape[0], bool)
            keep[profiles[i].candidates_out] = False
            positions = np.flatnonzero(keep)
            total = scores[positions, col]
            picks.append(positions[_top_order(total, min(limit, len(positions)))])
        star_sims = self._pick_star_sims([f.stars for f in fits], picks)
        for col, i in enumerate(todo):
            p, fit, chosen = profiles[i], fits[col], picks[col]
            reasons = self._explain(fit, chosen, star_sims[col], feature_names)
            results[i] = [
                RankedRow(row=int(c), score=float(scores[c, col]),
                          star_row=int(p.stars[star]), terms=terms)
                for c, (star, terms) in zip(chosen, reasons, strict=True)
            ]
        return results

    def _pick_star_sims(
        self, stars: list[sp.csr_matrix], picks: list[np.ndarray]
    ) -> list[np.ndarray]:
        """Each profile's picks' cosines to its own stars. One product per group of
        _SIMS_GROUP profiles: one per profile costs scipy's overhead 256 times, one for
        the block computes every pick against every star of the block, nearly all of it
        unused. Each entry adds the same terms in the same order either way."""
        out: list[np.ndarray] = []
        for start in range(0, len(picks), _SIMS_GROUP):
            group_picks = picks[start : start + _SIMS_GROUP]
            group_stars = stars[start : start + _SIMS_GROUP]
            rows = sorted_unique(np.concatenate(group_picks))
            firsts = np.cumsum([0] + [s.shape[0] for s in group_stars])
            sims = np.asarray(
                (self.cand_l2[rows] @ sp.vstack(group_stars, format="csr").T).toarray()
            )
            out.extend(
                sims[np.searchsorted(rows, chosen), firsts[k] : firsts[k + 1]]
                for k, chosen in enumerate(group_picks)
            )
        return out

    def _cand_titles(self) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix] | None:
        if self.titles is None:
            return None
        return self.cand_titles, self.cand_title_norms, self.cand_title_sq

    def _cand_dense(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.term_vectors is None:
            return None
        return self.cand_vec, self.cand_vec_sq

    def _fit(
        self,
        words: sp.csr_matrix,
        titles: sp.csr_matrix | None,
        vectors: np.ndarray | None,
        p: ProfileRows,
    ) -> _Fit:
        stars = _take(words, p.stars)
        terms = unique_inverse(stars.indices)  # the stars' terms, for both uses below
        pw = self._interests(stars, terms)
        out = np.asarray(p.background_out, np.int64)
        k = len(out)
        fit = _Fit(k=k, out=out, stars=stars, pw=pw, dismissed=_take(words, p.dismissed))
        fit.word_cols = self.words.profile_columns(stars, pw, out, terms)
        if self.titles is not None and titles is not None:
            fit.title_stars = _take(titles, p.stars)
            fit.title_dismissed = _take(titles, p.dismissed)
            fit.title_cols = self.titles.profile_columns(fit.title_stars, pw, out)
        if self.term_vectors is not None:
            tv = self.term_vectors
            star_vec = tv.embed(stars) if vectors is None else vectors[p.stars]
            dis_vec = tv.embed(fit.dismissed) if vectors is None else vectors[p.dismissed]
            n = self.words.n0 - k
            center = self.bg_vec_sum.copy()
            if k:
                center -= self.bg_vec[out].astype(np.float64).sum(axis=0)
            fit.center = (center / n).astype(np.float32)
            fit.dense_stars = unit_rows(np.asarray(star_vec, np.float32) - fit.center)
            fit.dense_profile = (pw @ fit.dense_stars).astype(np.float32)
            fit.dense_dismissed = unit_rows(np.asarray(dis_vec, np.float32) - fit.center)
        return fit

    def _fit_scales(self, fits: list[_Fit], block: dict[str, tuple]) -> None:
        bg_titles = None
        if self.titles is not None:
            bg_titles = (self.titles.bg, self.bg_title_norms, self.bg_title_sq)
        dense = None if self.term_vectors is None else (self.bg_vec, self.bg_vec_sq)
        parts = self._channels(fits, block, self.words.bg, self.bg_norms, self.bg_sq,
                               bg_titles, dense)
        for col, fit in enumerate(fits):
            fit.lex_scale = _masked_scale(parts["words"][:, col], fit.out)
            if "titles" in parts:
                fit.title_scale = _masked_scale(parts["titles"][:, col], fit.out)
            if "dense" in parts:
                fit.dense_scale = _masked_scale(parts["dense"][:, col], fit.out)

    def _score(self, fits, block, words, norms, sq, titles, dense) -> np.ndarray:
        parts = self._channels(fits, block, words, norms, sq, titles, dense)
        if len(parts) == 1:
            return parts["words"]  # Ranker.score: one channel is not standardised
        total = np.empty_like(parts["words"])
        for col, fit in enumerate(fits):
            mean, sd = fit.lex_scale
            total[:, col] = (parts["words"][:, col] - mean) / sd
            if "dense" in parts:
                mean, sd = fit.dense_scale
                total[:, col] += self.r.dense_weight * (parts["dense"][:, col] - mean) / sd
            if "titles" in parts:
                mean, sd = fit.title_scale
                total[:, col] += self.r.title_weight * (parts["titles"][:, col] - mean) / sd
        return total

    def _channels(self, fits, block, words, norms, sq, titles, dense) -> dict[str, np.ndarray]:
        """Per channel, the (rows x profiles) raw channel score of ``Ranker``."""
        parts = {
            "words": self._lexical(
                self.words, words, norms, sq, block["words"],
                [f.stars for f in fits], [f.dismissed for f in fits], fits,
            )
        }
        if titles is not None and "titles" in block:
            t_words, t_norms, t_sq = titles
            assert self.titles is not None
            parts["titles"] = self._lexical(
                self.titles, t_words, t_norms, t_sq, block["titles"],
                [f.title_stars for f in fits], [f.title_dismissed for f in fits], fits,
            )
        if dense is not None:
            parts["dense"] = self._dense(fits, *dense)
        return parts

    def _lexical(self, channel, rows, norms, sq, block, stars, dismissed, fits) -> np.ndarray:
        weights, variances = block
        ks = sorted({f.k for f in fits})
        base_w = np.stack([channel.base(k)[0] for k in ks], axis=1)
        base_v = np.stack([channel.base(k)[1] for k in ks], axis=1)
        which = np.searchsorted(ks, [f.k for f in fits])
        dots = rows @ weights
        dots = np.asarray(dots.toarray() if sp.issparse(dots) else dots, np.float64)
        dots += np.asarray(rows @ base_w, np.float64)[:, which]
        sds = np.asarray((sq @ variances).toarray(), np.float64)
        sds += np.asarray(sq @ base_v, np.float64)[:, which]
        rel = dots / norms[:, None]
        if self.r.dismissed_weight:
            for col in range(len(fits)):
                if dismissed[col].shape[0]:
                    to_d = np.asarray((rows @ dismissed[col].T).toarray()) / norms[:, None]
                    to_s = np.asarray((rows @ stars[col].T).toarray()) / norms[:, None]
                    rel[:, col] -= self.r.dismissed_weight * _excess(to_d, to_s)
        sd = np.maximum(np.sqrt(np.maximum(sds, 0.0)) / norms[:, None],
                        np.sqrt(self.r.var_prior) * 1e-3)
        return rel / sd

    def _dense(self, fits, vec: np.ndarray, vec_sq: np.ndarray) -> np.ndarray:
        """``Ranker._dense_rel`` of unit(v - center) without forming it per profile:
        (v - c).z = v.z - c.z and |v - c|^2 = |v|^2 - 2 v.c + |c|^2."""
        centers = np.stack([f.center for f in fits], axis=1)  # dim x P
        profiles = np.stack([f.dense_profile for f in fits], axis=1)
        vc = np.asarray(vec @ centers, np.float64)
        cc = np.einsum("ij,ij->j", centers, centers).astype(np.float64)
        length = np.sqrt(np.maximum(vec_sq[:, None] - 2 * vc + cc[None, :], 0.0))
        length[length == 0] = 1.0
        cz = np.einsum("ij,ij->j", centers, profiles).astype(np.float64)
        score = (np.asarray(vec @ profiles, np.float64) - cz[None, :]) / length
        if self.r.dismissed_weight:
            for col, f in enumerate(fits):
                if f.dense_dismissed.shape[0]:
                    c = f.center.astype(np.float64)
                    scale = length[:, col : col + 1]
                    to_d = (vec @ f.dense_dismissed.T - c @ f.dense_dismissed.T) / scale
                    to_s = (vec @ f.dense_stars.T - c @ f.dense_stars.T) / scale
                    score[:, col] -= self.r.dismissed_weight * _excess(to_d, to_s)
        return score

    def _explain(
        self,
        fit: _Fit,
        chosen: np.ndarray,
        sims: np.ndarray,
        feature_names: np.ndarray,
        n_terms: int = 3,
    ) -> list[tuple[int, tuple[str, ...]]]:
        """``Ranker.explain`` for the chosen candidates, given their cosines to the stars:
        (star position, terms) each."""
        block = self.cand_l2
        if self.term_vectors is not None:
            given = self.cand_vec[chosen]
            dense = unit_rows(given - fit.center) @ fit.dense_stars.T
            sims = sims + self.r.dense_weight * dense
        nearest = np.argmax(sims, axis=1)
        # Per-term contribution to the cosine: product of the two tf-idf weights, for every
        # pick and its nearest star at once (the terms they share, in term order).
        shared = _take(block, np.asarray(chosen)).multiply(_take(fit.stars, nearest)).tocsr()
        out: list[tuple[int, tuple[str, ...]]] = []
        for i in range(len(chosen)):
            j = int(nearest[i])
            row = slice(shared.indptr[i], shared.indptr[i + 1])
            cols, contrib = shared.indices[row], shared.data[row]
            terms: list[str] = []
            for t in np.lexsort((cols, -contrib)):
                name = str(feature_names[cols[t]])
                if len(terms) >= n_terms or contrib[t] <= 0:
                    break
                if not name.startswith(STEM_MARK):
                    _add_distinct(terms, name)
            out.append((j, tuple(terms)))
        return out


@dataclass
class _Fit:
    k: int
    out: np.ndarray
    stars: sp.csr_matrix
    pw: np.ndarray
    dismissed: sp.csr_matrix
    word_cols: tuple = ()
    title_cols: tuple | None = None
    title_stars: sp.csr_matrix | None = None
    title_dismissed: sp.csr_matrix | None = None
    center: np.ndarray | None = None
    dense_stars: np.ndarray | None = None
    dense_profile: np.ndarray | None = None
    dense_dismissed: np.ndarray | None = None
    lex_scale: tuple[float, float] = (0.0, 1.0)
    title_scale: tuple[float, float] = (0.0, 1.0)
    dense_scale: tuple[float, float] = (0.0, 1.0)
