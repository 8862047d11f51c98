"""Papers' text as TF-IDF features: the analyzers and the vectorizers fitted on the corpus.

Pure (no I/O, no clock): the shell (``corpus_index``) fits ``make_vectorizer`` and
``make_title_vectorizer`` on the corpus and keeps them; ``ranking`` only sees the matrices.
Kept apart from ``ranking`` because scikit-learn takes ~1 s to import, and a digest from a
cached index needs none of it.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Callable, Iterable
from itertools import islice, pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    TfidfVectorizer,
    strip_accents_unicode,
)
from sklearn.utils.validation import check_is_fitted

from paperdigest.ranking import STEM_MARK

_EMPTY_TERM = "<empty>"


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


class PaperAnalyzer:
    """Words, word bigrams and a crude stem (first ``stem_len`` letters) of every word.

    Most CiteULike papers are a title only, so "network"/"networks"/"networked" must meet;
    the prefix stems add +0.02 recall@100 over words alone (bench/README.md). A class, not
    a closure, so a fitted vectorizer pickles.
    """

    def __init__(self, stem_len: int = 5) -> None:
        self.stem_len = stem_len

    def words(self, doc: str) -> list[str]:
        # _is_token inlined: this runs for every word of every paper a fit reads.
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
_PAIR_SHIFT = 32  # a word pair's key: first word's code << 32 | second word's code
_COUNT_BATCH = 2048


class _BatchCounter:
    """Counts a batch of papers' words, stems and word pairs against a fitted vocabulary.

    Python only splits each paper into tokens and looks each token's code up; the rest is
    NumPy over the whole batch. Each distinct token gets a code, and per code its word and
    stem feature ids and whether it is a stop word (dropped before pairs are formed, as in
    ``PaperAnalyzer``); a pair of codes is looked up as one integer key. On 9,269 arXiv
    abstracts this takes 0.62-0.93 s against 1.03-1.16 s for the per-paper lookups it
    replaced and ~1.8 s for scikit-learn's own transform; it is most of a daily append's
    cost at a million papers (bench/README.md).
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
        self.dropped.append(word in ENGLISH_STOP_WORDS or not _is_token(word))
        return len(self.dropped) - 1

    def counts(self, docs: Iterable[str], dtype: type) -> sp.csr_matrix:
        """The docs' count matrix, ``_COUNT_BATCH`` docs at a time (a batch's tokens are
        Python strings: ~60 bytes each, ~200 a paper)."""
        remaining = iter(docs)
        parts = []
        while batch := list(islice(remaining, _COUNT_BATCH)):
            parts.append(self._counts(batch, dtype))
        if not parts:
            return sp.csr_matrix((0, self.n_features), dtype=dtype)
        if len(parts) == 1:
            return parts[0]
        stacked = sp.vstack(parts, format="csr")
        stacked.sort_indices()  # already sorted row by row; this only records it
        return stacked

    def _counts(self, docs: list[str], dtype: type) -> sp.csr_matrix:
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
        elif isinstance(self.analyzer, TitleGramAnalyzer):
            ids = self.analyzer.feature_ids(self.vocabulary_)
            counts = _counts_of_ids(raw_documents, ids, len(self.vocabulary_), self.dtype)
        else:
            return super().transform(raw_documents)
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
