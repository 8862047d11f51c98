"""Rank candidate papers against a user's starred papers (pure: no I/O, no clock, no state).

The shell fits one vectorizer (``make_vectorizer``) on the corpus, transforms the user's
starred / dismissed papers and today's candidates, then calls ``Ranker.fit`` / ``score`` /
``explain`` and ``select``.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    TfidfVectorizer,
    strip_accents_unicode,
)
from sklearn.utils.validation import check_is_fitted

from paperdigest.term_embedding import TermVectors, unit_rows

# Rows of candidates scored at once: bounds the dense (rows x stars) block to a few MB
# even when the shell scores a million candidates.
_CHUNK = 65536
_EMPTY_TERM = "<empty>"
# Up to this many cells (64 MB of float32), stars / dismissals are densified for scoring.
_DENSE_LIMIT = 16_000_000


def paper_text(title: str, abstract: str) -> str:
    """Text fed to the vectorizer; the title goes in once, as in arxiv-sanity-lite."""
    title = (title or "").strip()
    abstract = (abstract or "").strip()
    return f"{title}. {abstract}" if abstract else title


_TOKEN = re.compile(r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b")
# On ASCII text, _TOKEN's matches are exactly the runs of these characters that are at
# least two long and do not start with a digit; splitting finds runs 2.5x faster.
_SPACE_OUT = str.maketrans(
    {c: " " for c in map(chr, range(128)) if c not in string.ascii_letters + string.digits + "_"}
)


def _runs(text: str) -> list[str]:
    """_TOKEN's matches in ``text``, plus, on ASCII text, runs ``_is_token`` rejects."""
    return text.translate(_SPACE_OUT).split() if text.isascii() else _TOKEN.findall(text)


def _is_token(run: str) -> bool:
    return len(run) > 1 and not run[0].isdigit()


def _normalise(doc: str) -> str:
    return strip_accents_unicode(doc.lower())

# Marks prefix-stem features; the token pattern never produces it, so they never collide
# with real words, and explain() can hide them from users.
STEM_MARK = "~"


class PaperAnalyzer:
    """Words, word bigrams and a crude stem (first ``stem_len`` letters) of every word.

    Most CiteULike papers are a title only, so "network"/"networks"/"networked" must meet;
    the prefix stems add +0.02 recall@100 over words alone (bench/README.md). A class, not
    a closure, so a fitted vectorizer pickles.
    """

    def __init__(self, stem_len: int = 5) -> None:
        self.stem_len = stem_len

    def words(self, doc: str) -> list[str]:
        return [
            w
            for w in _runs(_normalise(doc))
            if len(w) > 1 and not w[0].isdigit() and w not in ENGLISH_STOP_WORDS
        ]

    def __call__(self, doc: str) -> list[str]:
        words = self.words(doc)
        feats = list(words)
        if self.stem_len:
            feats += [STEM_MARK + w[: self.stem_len] for w in words]
        feats += [f"{a} {b}" for a, b in pairwise(words)]
        return feats

    def __repr__(self) -> str:
        return f"PaperAnalyzer(stem_len={self.stem_len})"


_WORDS = PaperAnalyzer()
_STOP = ENGLISH_STOP_WORDS
_PAIR_SHIFT = 32  # a word pair's key: first word's code << 32 | second word's code


class _BatchCounter:
    """Counts a batch of papers' words, stems and word pairs against a fitted vocabulary.

    Python only splits each paper into tokens and looks each token's code up; the rest is
    NumPy over the whole batch. Each distinct token gets a code, and per code its word and
    stem feature ids and whether it is a stop word (dropped before pairs are formed, as in
    ``PaperAnalyzer``); a pair of codes is looked up as one integer key. On 9,269 arXiv
    abstracts this takes 0.73 s against 1.16 s for the per-paper lookups it replaced and
    ~1.8 s for scikit-learn's own transform; it is most of a daily append's cost at a
    million papers (bench/README.md).
    """

    def __init__(self, stem_len: int, vocabulary: dict[str, int]) -> None:
        self.vocabulary = vocabulary
        self.stem_len = stem_len
        self.n_features = len(vocabulary)
        self.code_of = _Codes(self._learn)
        self.word_id: list[int] = []
        self.stem_id: list[int] = []
        self.dropped: list[bool] = []  # stop words, and runs that are not tokens
        self.stems: dict[str, int] = {}
        self.words: dict[str, int] = {}
        pairs: list[tuple[str, str, int]] = []
        for name, j in vocabulary.items():
            if " " in name:
                first, second = name.split(" ")
                pairs.append((first, second, int(j)))
            elif name.startswith(STEM_MARK):
                self.stems[name] = int(j)
            else:
                self.words[name] = int(j)
        code = self.code_of
        keys = np.array([(code[a] << _PAIR_SHIFT) | code[b] for a, b, _ in pairs], np.int64)
        # Words of known pairs have the first codes: a pair with a later code is not known.
        self.n_pair_words = len(code)
        order = np.argsort(keys, kind="stable")
        self.pair_keys = keys[order]
        self.pair_ids = np.array([j for _, _, j in pairs], np.int64)[order]

    def fresh(self) -> _BatchCounter:
        """A counter sharing this one's vocabulary tables but none of the words it learnt
        since, so a long-lived vectorizer does not grow with every word it ever saw."""
        counter = copy.copy(self)
        counter.code_of = _Codes(counter._learn, self.code_of)
        counter.word_id, counter.stem_id = list(self.word_id), list(self.stem_id)
        counter.dropped = list(self.dropped)
        return counter

    def _learn(self, word: str) -> int:
        """A new word's code, with its word and stem ids noted."""
        stem = STEM_MARK + word[: self.stem_len] if self.stem_len else None
        self.word_id.append(self.words.get(word, -1))
        self.stem_id.append(self.stems.get(stem, -1) if stem else -1)
        self.dropped.append(word in _STOP or not _is_token(word))
        return len(self.dropped) - 1

    def counts(self, docs: Iterable[str], dtype: type) -> sp.csr_matrix:
        tokens: list[str] = []
        lengths: list[int] = []
        for doc in docs:
            found = _runs(_normalise(doc))
            tokens += found
            lengths.append(len(found))
        n_docs = len(lengths)
        codes = np.fromiter(map(self.code_of.__getitem__, tokens), np.int64, len(tokens))
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        kept = ~np.asarray(self.dropped, bool)[codes]
        codes, doc_of = codes[kept], doc_of[kept]
        rows, cols = [], []
        for table in (self.word_id, self.stem_id):
            ids = np.asarray(table, np.int64)[codes]
            found = ids >= 0
            rows.append(doc_of[found])
            cols.append(ids[found])
        if len(self.pair_keys) and len(codes) > 1:
            first, second = codes[:-1], codes[1:]
            maybe = np.flatnonzero(
                (first < self.n_pair_words)
                & (second < self.n_pair_words)
                & (doc_of[:-1] == doc_of[1:])
            )
            keys = (first[maybe] << _PAIR_SHIFT) | second[maybe]
            at = np.minimum(np.searchsorted(self.pair_keys, keys), len(self.pair_keys) - 1)
            found = self.pair_keys[at] == keys
            rows.append(doc_of[maybe[found]])
            cols.append(self.pair_ids[at[found]])
        row, col = np.concatenate(rows), np.concatenate(cols)
        counts = sp.csr_matrix(
            (np.ones(len(row), dtype), (row, col)), shape=(n_docs, self.n_features)
        )
        counts.sum_duplicates()  # repeated terms become counts; indices end up sorted
        return counts


class _Codes(dict[str, int]):
    """word -> code; a word seen for the first time is given the next code by ``learn``."""

    def __init__(self, learn: Callable[[str], int], known: dict[str, int] | None = None) -> None:
        super().__init__(known or {})
        self.learn = learn

    def __missing__(self, word: str) -> int:
        code = self[word] = self.learn(word)
        return code


def _counts_of_ids(
    docs: Iterable[str], ids: Callable[[str], list[int]], n_features: int, dtype: type
) -> sp.csr_matrix:
    """Count matrix from each doc's feature ids (repeats kept, any order)."""
    indices: list[int] = []
    indptr = [0]
    for doc in docs:
        indices.extend(ids(doc))
        indptr.append(len(indices))
    counts = sp.csr_matrix(
        (np.ones(len(indices), dtype), np.asarray(indices, np.int32), np.asarray(indptr, np.int64)),
        shape=(len(indptr) - 1, n_features),
    )
    counts.sum_duplicates()  # repeated terms become counts; indices end up sorted
    return counts


class TitleGramAnalyzer:
    """Character n-grams of a title's words (stop words dropped), each word padded by spaces.

    "Graph transformers" -> " gr", "gra", "rap", ..., "ers", "rs ". Titles that name one
    thing differently ("microRNA" / "miRNA", "self-supervised" / "supervision") still share
    grams; on CiteULike-a this channel adds +0.007 recall@100 (bench/README.md).
    """

    def __init__(self, sizes: tuple[int, ...] = (3,)) -> None:
        self.sizes = sizes

    def grams(self, word: str) -> list[str]:
        padded = f" {word} "
        return [padded[i : i + n] for n in self.sizes for i in range(max(len(padded) - n + 1, 1))]

    def __call__(self, title: str) -> list[str]:
        return [g for w in _WORDS.words(title) for g in self.grams(w)]

    def feature_ids(self, vocabulary: dict[str, int]) -> Callable[[str], list[int]]:
        """title -> vocabulary ids of its grams, repeats kept (each word's grams once)."""
        lookup = {name: int(i) for name, i in vocabulary.items()}.get
        of_word: dict[str, list[int]] = {}

        def ids(title: str) -> list[int]:
            out: list[int] = []
            for w in _WORDS.words(title):
                known = of_word.get(w)
                if known is None:
                    known = of_word[w] = [i for i in map(lookup, self.grams(w)) if i is not None]
                out += known
            return out

        return ids

    def __repr__(self) -> str:
        return f"TitleGramAnalyzer(sizes={self.sizes})"


class _SafeTfidfVectorizer(TfidfVectorizer):
    """TfidfVectorizer that degrades instead of raising on tiny or degenerate corpora.

    A 1-paper corpus trips "max_df corresponds to < documents than min_df", and a corpus of
    stop words only trips "empty vocabulary"; the shell must still produce a digest.

    ``transform`` gives scikit-learn's matrix, bit for bit, in about a third of the time
    for ``PaperAnalyzer`` (``_BatchCounter``: no feature strings are built, and no KeyError
    is caught for each of a paper's word pairs missing from the vocabulary). The daily
    append of new papers to the index is mostly this.
    """

    def transform(self, raw_documents: Iterable[str]) -> sp.csr_matrix:
        if isinstance(raw_documents, str):
            raise ValueError("Iterable over raw text documents expected, string object received.")
        check_is_fitted(self, "idf_")
        if isinstance(self.analyzer, PaperAnalyzer):
            counts = self._paper_counter().counts(raw_documents, self.dtype)
        else:
            if isinstance(self.analyzer, TitleGramAnalyzer):
                ids = self.analyzer.feature_ids(self.vocabulary_)
            else:
                analyze = self.build_analyzer()
                lookup = {name: int(i) for name, i in self.vocabulary_.items()}.get

                def ids(doc: str) -> list[int]:
                    return [i for i in map(lookup, analyze(doc)) if i is not None]

            counts = _counts_of_ids(raw_documents, ids, len(self.vocabulary_), self.dtype)
        return self._tfidf.transform(counts, copy=False)

    def _paper_counter(self) -> _BatchCounter:
        # The vocabulary's lookup tables take ~50 ms to build at 50,000 features: built
        # once per fitted vocabulary, kept out of the pickle.
        counter = self.__dict__.get("_counter")
        if counter is None or counter.vocabulary is not self.vocabulary_:
            counter = _BatchCounter(self.analyzer.stem_len, self.vocabulary_)
            self.__dict__["_counter"] = counter
        return counter.fresh()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_counter", None)
        return state

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
        analyzer=PaperAnalyzer(),  # lowercases, strips accents, drops English stop words
        token_pattern=None,
        max_features=50000,
        sublinear_tf=False,  # raw tf: +0.005 nDCG@10 on CiteULike-a (bench/README.md)
        min_df=min_df,
        max_df=max_df,
        dtype=np.float32,
    )


TITLE_GRAMS = (3,)


def make_title_vectorizer(n_docs: int | None = None) -> TfidfVectorizer:
    """TF-IDF of titles' character 3-grams (``TitleGramAnalyzer``), for the title channel."""
    small = n_docs is not None and n_docs < 50
    return _SafeTfidfVectorizer(
        analyzer=TitleGramAnalyzer(TITLE_GRAMS),
        token_pattern=None,
        min_df=1 if small else 2,
        max_df=1.0 if small else 0.5,
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
        linked = sp.csr_matrix((stars @ stars.T) >= self.interest_threshold)
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
