"""The TF-IDF view of the store's corpus: fitted vectorizers, term vectors, matrices, row mapping.

`open_index(store)` keeps a persisted index in `<data dir>/index/` next to the database and
updates it incrementally:

* papers added since the last build (pk above the highest indexed pk) and papers whose
  title, abstract or listing date changed (the `paper_changes` log a trigger keeps) are
  transformed with the existing vocabulary and appended as a new segment;
* the vocabulary (and the term vectors learnt with it, `term_embedding`) is refitted, and
  everything re-transformed, only when the corpus has grown by more than `REFIT_GROWTH`
  since the last fit, when a paper was deleted, or when the cache was written by another
  format / vectorizer / scikit-learn version;
* every file is written under a fresh name and published by atomically replacing
  `manifest.json`, so a concurrent reader sees the old index or the new one, never half of
  one. A missing, corrupt or mismatched cache is treated as absent and rebuilt.

Only the cache files are written; the database is read, never changed.

Matrices are float32 CSR segments stored as plain `.npy` files and memory-mapped on load, so
opening a million-paper index costs little more than reading its row mapping; a digest only
touches the rows it ranks (`CorpusIndex.take`). Each segment also keeps its papers' dense
vectors (`TermVectors.embed`, computed once when the segment is written), so a digest reads
them (`CorpusIndex.take_vectors`) instead of recomputing them for every candidate, and its
papers' title character n-grams (`make_title_vectorizer`, `CorpusIndex.take_titles`) for the
ranker's title channel.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import numbers
import os
import pickle
import sqlite3
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from paperdigest.errors import describe_os_error
from paperdigest.recommend import eligible_day_rows
from paperdigest.store import Store
from paperdigest.term_embedding import (
    EMBED_DOCS,
    MIN_DOCS,
    TermVectors,
    fit_term_embedding,
)

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

# paperdigest.features (and scikit-learn, ~1 s to import) is imported only where text is
# fitted or transformed: a digest from an up-to-date index needs neither.

FORMAT_VERSION = 4
INDEX_DIR = "index"
MANIFEST = "manifest.json"
# Refit the vocabulary once the corpus has grown by this fraction since the last fit.
REFIT_GROWTH = 0.25
# The vocabulary and idf are fitted on at most this many papers, evenly spaced by pk.
FIT_SAMPLE = 100_000
# From this many papers on, fit with a counting pass that never holds every distinct
# n-gram as a Python string (scikit-learn's own fit needs ~1.7 GB at 75k papers).
LEAN_FIT_MIN = 20_000
# Documents counted between merges of the term counts in the lean fit.
MERGE_EVERY = 8_000
# Papers read from SQLite and transformed at once.
CHUNK = 20_000
# Values copied at once when a streamed segment's raw files become .npy files.
COPY_BLOCK = 4_000_000
# With more segments than this, the two neighbouring ones with the fewest rows are merged.
MAX_SEGMENTS = 12
# Files no manifest references are deleted only when older than this (a concurrent writer
# may be about to publish them).
STALE_SECONDS = 120

Progress = Callable[[str], None]


class CorpusIndex:
    """Rows are papers in pk order; the matrix is kept as segments and gathered on demand."""

    def __init__(
        self,
        pks: np.ndarray,
        listed_days: np.ndarray,
        feature_names: np.ndarray,
        segments: list[sparse.csr_matrix],
        seg_of: np.ndarray | None = None,
        local_row: np.ndarray | None = None,
        vectorizers: Callable[[], _Vectorizers] | None = None,
        term_embedding: np.ndarray | None = None,
        vector_segments: list[np.ndarray] | None = None,
        title_segments: list[sparse.csr_matrix] | None = None,
        term_vectors: TermVectors | None = None,
        n_title_features: int | None = None,
    ) -> None:
        self.pks = np.asarray(pks, dtype=np.int64)
        self.listed_days = np.asarray(listed_days, dtype=np.int32)  # date.toordinal()
        self.feature_names = feature_names
        self.segments = segments
        n = len(self.pks)
        self.seg_of = np.zeros(n, np.int32) if seg_of is None else seg_of
        self.local_row = np.arange(n, dtype=np.int64) if local_row is None else local_row
        # Gives the fitted vectorizers (loading them from the cache on first use).
        self._vectorizers = vectorizers
        # (n_features x dim) term vectors fitted with the vocabulary; None on tiny corpora.
        self.term_embedding = term_embedding
        # Ready to embed papers; a caller that has one for this table passes it along.
        if term_vectors is None and term_embedding is not None:
            term_vectors = TermVectors(term_embedding)
        self.term_vectors = term_vectors
        # Per segment, its rows' TermVectors.embed; None: computed on demand.
        self.vector_segments = vector_segments
        # Title character n-grams (`make_title_vectorizer`), segment for segment.
        self.title_segments = title_segments
        self.n_title_features = n_title_features
        self._matrix: sparse.csr_matrix | None = None

    @property
    def vectorizer(self) -> TfidfVectorizer | None:
        """The fitted word vectorizer (loaded from the cache on first use)."""
        return None if self._vectorizers is None else self._vectorizers().words

    @property
    def title_vectorizer(self) -> TfidfVectorizer | None:
        """The fitted title n-gram vectorizer (loaded from the cache on first use)."""
        return None if self._vectorizers is None else self._vectorizers().titles

    @property
    def n_rows(self) -> int:
        return len(self.pks)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def matrix(self) -> sparse.csr_matrix:
        """The whole matrix in row order (materialised on first use; prefer `take`)."""
        if self._matrix is None:
            self._matrix = self.take(np.arange(self.n_rows))
        return self._matrix

    def rows_of(self, pks: Sequence[int]) -> list[int]:
        """Rows of the given pks, in their order; pks not indexed are left out."""
        wanted = np.asarray(pks, dtype=np.int64)
        if len(wanted) == 0 or self.n_rows == 0:
            return []
        positions = np.searchsorted(self.pks, wanted)
        inside = positions < self.n_rows
        hit = np.zeros(len(wanted), bool)
        hit[inside] = self.pks[positions[inside]] == wanted[inside]
        return [int(p) for p in positions[hit]]

    def take(self, rows: Sequence[int] | np.ndarray) -> sparse.csr_matrix:
        """float32 CSR of the given rows, in the given order."""
        return self._gather(self.segments, rows, self.n_features)

    def take_titles(self, rows: Sequence[int] | np.ndarray) -> sparse.csr_matrix | None:
        """The given rows' title n-grams, or None when the index has none."""
        if self.title_segments is None or self.n_title_features is None:
            return None
        return self._gather(self.title_segments, rows, self.n_title_features)

    def _gather(
        self,
        segments: list[sparse.csr_matrix],
        rows: Sequence[int] | np.ndarray,
        n_features: int,
    ) -> sparse.csr_matrix:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return sparse.csr_matrix((0, n_features), dtype=np.float32)
        gathered = self._gather_rows(segments, rows)
        _check_rows(gathered, "index rows")
        return gathered

    def _gather_rows(
        self, segments: list[sparse.csr_matrix], rows: np.ndarray
    ) -> sparse.csr_matrix:
        if len(segments) == 1:
            return _owned(segments[0][self.local_row[rows]])
        pieces: list[sparse.csr_matrix] = []
        where: list[np.ndarray] = []
        for s, mask, locals_ in self._by_segment(rows):
            pieces.append(segments[s][locals_])
            where.append(np.flatnonzero(mask))
        stacked = sparse.vstack(pieces, format="csr", dtype=np.float32)
        segs = self.seg_of[rows]
        if bool(np.all(segs[1:] >= segs[:-1])):
            return _owned(stacked)  # rows asked in segment order: already in place
        order = np.concatenate(where)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return _owned(stacked[inverse])

    def take_vectors(self, rows: Sequence[int] | np.ndarray) -> np.ndarray | None:
        """The given rows' paper vectors (`TermVectors.embed`), or None without term vectors."""
        if self.term_vectors is None:
            return None
        rows = np.asarray(rows, dtype=np.int64)
        if self.vector_segments is None:
            return self.term_vectors.embed(self.take(rows))
        out = np.empty((len(rows), self.term_vectors.dim), np.float32)
        for s, mask, locals_ in self._by_segment(rows):
            out[mask] = self.vector_segments[s][locals_]
        _check_vectors(out)
        return out

    def _by_segment(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Per segment holding some of `rows`: its number, which of `rows` it holds, and
        their row numbers inside it."""
        segs = self.seg_of[rows]
        locals_ = self.local_row[rows]
        for s in np.unique(segs):
            mask = segs == s
            yield int(s), mask, locals_[mask]

    def eligible(
        self, excluded_rows: Sequence[int], window_days: int, today: date
    ) -> np.ndarray:
        """Rows listed within the `window_days` up to `today` and not excluded."""
        return eligible_day_rows(
            self.listed_days, excluded_rows, window_days, today.toordinal()
        )


def _owned(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    out = sparse.csr_matrix(matrix, dtype=np.float32)
    out.sort_indices()
    return out


def _empty_index() -> CorpusIndex:
    return CorpusIndex(
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
        np.array([], dtype=object),
        [sparse.csr_matrix((0, 0), dtype=np.float32)],
    )


# -- reading the corpus ------------------------------------------------------------------


def _rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Iterator[list[Any]]:
    cursor = conn.execute(sql, args)
    while True:
        batch = cursor.fetchmany(CHUNK)
        if not batch:
            return
        yield batch


def _day(listed: str) -> int:
    return date.fromisoformat(listed).toordinal()


def _texts_by_pk(conn: sqlite3.Connection, pks: Sequence[int]) -> Iterator[list[Any]]:
    """(pk, title, abstract, listed) rows of the given pks, in pk order, in chunks."""
    ordered = sorted(set(int(pk) for pk in pks))
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        yield conn.execute(
            "SELECT pk, title, abstract, listed FROM papers "
            "WHERE pk IN (SELECT value FROM json_each(?)) ORDER BY pk",
            (json.dumps(chunk),),
        ).fetchall()


class _Segment:
    """A transformed block of rows as it is built, before it is written."""

    def __init__(
        self,
        matrix: sparse.csr_matrix,
        pks: np.ndarray,
        days: np.ndarray,
        entry: dict[str, Any] | None = None,
        vectors: np.ndarray | None = None,
        titles: sparse.csr_matrix | None = None,
    ) -> None:
        self.matrix = matrix
        self.titles = titles  # the rows' title n-grams
        self.pks = pks
        self.days = days
        self.entry = entry  # its manifest entry once its files are written
        self.vectors = vectors  # its rows' TermVectors.embed, when the index has term vectors


@dataclass(frozen=True)
class _Vectorizers:
    """The fitted vocabularies: words of title + abstract, and title character n-grams."""

    words: TfidfVectorizer
    titles: TfidfVectorizer

    @property
    def n_words(self) -> int:
        return len(self.words.vocabulary_)

    @property
    def n_titles(self) -> int:
        return len(self.titles.vocabulary_)

    def transform(self, batch: list[Any]) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """(pk, title, abstract, listed) rows -> their word and title n-gram matrices."""
        from paperdigest.features import paper_text

        words = self.words.transform([paper_text(r[1], r[2]) for r in batch])
        titles = self.titles.transform([r[1] or "" for r in batch])
        return _owned(words), _owned(titles)


def _transform(
    vectorizers: _Vectorizers, batches: Iterator[list[Any]], progress: Progress | None
) -> _Segment:
    words: list[sparse.csr_matrix] = []
    titles: list[sparse.csr_matrix] = []
    pks: list[np.ndarray] = []
    days: list[np.ndarray] = []
    done = 0
    for batch in batches:
        w, t = vectorizers.transform(batch)
        words.append(w)
        titles.append(t)
        pks.append(np.fromiter((r[0] for r in batch), np.int64, len(batch)))
        days.append(np.fromiter((_day(r[3]) for r in batch), np.int32, len(batch)))
        done += len(batch)
        if progress is not None:
            progress(f"transformed {done:,} papers")
    if not words:
        return _Segment(
            sparse.csr_matrix((0, vectorizers.n_words), dtype=np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            titles=sparse.csr_matrix((0, vectorizers.n_titles), dtype=np.float32),
        )
    return _Segment(
        _stack_rows(words), np.concatenate(pks), np.concatenate(days), titles=_stack_rows(titles)
    )


def _stack_rows(mats: list[sparse.csr_matrix]) -> sparse.csr_matrix:
    if len(mats) == 1:
        return mats[0]
    return _owned(sparse.vstack(mats, format="csr", dtype=np.float32))


def _npy_header(out: Any, dtype: type, shape: tuple[int, ...]) -> None:
    """The header of an .npy file whose data the caller then writes a block at a time."""
    np.lib.format.write_array_header_1_0(
        out,
        {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
         "shape": shape},
    )


def _copy_to_npy(out: Any, raw: Path, src: type, dtype: type, count: int) -> None:
    """Write `count` values of a raw `src` file as an .npy array of `dtype`, a block at a time."""
    _npy_header(out, dtype, (count,))
    with open(raw, "rb") as handle:
        while True:
            block = np.fromfile(handle, dtype=src, count=COPY_BLOCK)
            if len(block) == 0:
                return
            out.write(block.astype(dtype, copy=False).tobytes())


class _CsrSink:
    """One CSR matrix written a chunk of rows at a time, then published as `.npy` parts."""

    def __init__(self, directory: Path, name: str, prefix: str) -> None:
        self.directory, self.name, self.prefix = directory, name, prefix
        # Dot-prefixed: a crash leaves files `_publish` deletes once they are stale.
        self.raw = {
            part: directory / f".{name}.{prefix}{part}.raw" for part in ("data", "indices")
        }
        self.data_out = open(self.raw["data"], "wb")  # noqa: SIM115 (closed in finish/discard)
        self.indices_out = open(self.raw["indices"], "wb")  # noqa: SIM115
        self.offsets: list[np.ndarray] = [np.zeros(1, np.int64)]
        self.nnz = 0

    def add(self, m: sparse.csr_matrix) -> None:
        self.data_out.write(m.data.astype(np.float32, copy=False).tobytes())
        # Column numbers are below the vocabulary size, so int32 always holds them.
        self.indices_out.write(m.indices.astype(np.int32, copy=False).tobytes())
        self.offsets.append(m.indptr[1:].astype(np.int64) + self.nnz)
        self.nnz += m.nnz

    def finish(self) -> None:
        self.data_out.close()
        self.indices_out.close()
        nnz = self.nnz
        index_dtype = np.int32 if nnz < 2**31 - 1 else np.int64
        for part, src, dtype in (
            ("data", np.float32, np.float32),
            ("indices", np.int32, index_dtype),
        ):
            _atomic_write(
                self.directory / f"{self.name}.{self.prefix}{part}.npy",
                lambda h, p=part, s=src, d=dtype: _copy_to_npy(h, self.raw[p], s, d, nnz),
            )
        indptr = np.concatenate(self.offsets).astype(index_dtype)
        self.indptr_crc = _crc(indptr)
        _atomic_write(
            self.directory / f"{self.name}.{self.prefix}indptr.npy",
            lambda h: np.save(h, indptr),
        )

    def discard(self) -> None:
        self.data_out.close()
        self.indices_out.close()
        for path in self.raw.values():
            path.unlink(missing_ok=True)


def _transform_to_disk(
    directory: Path,
    vectorizers: _Vectorizers,
    batches: Iterator[list[Any]],
    progress: Progress | None,
) -> _Segment:
    """`_transform`, but each chunk goes straight to the segment's files.

    The whole matrix is never in memory (a million papers is over a gigabyte of CSR, and
    stacking the chunks held it twice): the returned segment is memory-mapped from disk.
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = f"seg-{uuid.uuid4().hex[:12]}"
    sinks = {"words": _CsrSink(directory, name, ""), "titles": _CsrSink(directory, name, "t")}
    pks: list[np.ndarray] = []
    days: list[np.ndarray] = []
    done = 0
    try:
        for batch in batches:
            w, t = vectorizers.transform(batch)
            sinks["words"].add(w)
            sinks["titles"].add(t)
            pks.append(np.fromiter((r[0] for r in batch), np.int64, len(batch)))
            days.append(np.fromiter((_day(r[3]) for r in batch), np.int32, len(batch)))
            done += len(batch)
            del w, t
            if progress is not None:
                progress(f"transformed {done:,} papers")
        for sink in sinks.values():
            sink.finish()
    finally:
        for sink in sinks.values():
            sink.discard()
    crc = {"indptr": sinks["words"].indptr_crc, "tindptr": sinks["titles"].indptr_crc}
    for part, array in (
        ("pks", np.concatenate(pks) if pks else np.zeros(0, np.int64)),
        ("days", np.concatenate(days) if days else np.zeros(0, np.int32)),
    ):
        _atomic_write(directory / f"{name}.{part}.npy", lambda h, a=array: np.save(h, a))
        crc[part] = _crc(array)
    entry = {"name": name, "rows": done, "nnz": sinks["words"].nnz,
             "title_nnz": sinks["titles"].nnz, "crc": crc}
    segment = _read_segment(directory, entry, vectorizers.n_words, vectorizers.n_titles)
    segment.entry = entry
    return segment


# -- fitting -----------------------------------------------------------------------------


def _doc_count(limit: float, n_docs: int) -> float:
    return limit if isinstance(limit, numbers.Integral) else limit * n_docs


def _lean_vocabulary(vectorizer: TfidfVectorizer, docs: list[str]) -> dict[str, int] | None:
    """The vocabulary `vectorizer.fit(docs)` would choose, counted by term hash."""
    fitted = _lean_fit(vectorizer, docs)
    return None if fitted is None else fitted[0]


def _lean_fit(
    vectorizer: TfidfVectorizer, docs: list[str]
) -> tuple[dict[str, int], np.ndarray] | None:
    """The vocabulary `vectorizer.fit(docs)` would choose, counted by term hash, and each
    vocabulary term's document frequency (in vocabulary order).

    Same document-frequency pruning and `max_features` cut (by total count) as
    scikit-learn; ties at the cut go to the alphabetically first terms. None when the
    settings are ones this does not handle (then the caller fits the plain way).
    """
    if vectorizer.vocabulary is not None:
        return None
    analyzer = vectorizer.build_analyzer()
    n = len(docs)
    max_count = _doc_count(vectorizer.max_df, n)
    min_count = _doc_count(vectorizer.min_df, n)
    if max_count < min_count:
        return None
    totals: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    hashes: list[np.ndarray] = []
    counts: list[np.ndarray] = []

    def merge() -> None:
        # Fold the pending documents' counts into the sorted totals in place, inserting only
        # unseen terms: never more than one extra copy of the totals (np.unique over all of
        # them held several, the fit's peak memory).
        nonlocal totals
        if not hashes:
            return
        h = np.concatenate(hashes)
        c = np.concatenate(counts)
        hashes.clear()
        counts.clear()
        if len(h) == 0:
            return
        order = np.argsort(h)
        h, c = h[order], c[order]
        del order
        starts = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
        keys = h[starts]
        df = np.diff(np.r_[starts, len(h)]).astype(np.int32)
        tf = np.add.reduceat(c, starts).astype(np.int32)
        del h, c, starts
        if totals is None:
            totals = (keys, df, tf)
            return
        old_keys, old_df, old_tf = totals
        pos = np.searchsorted(old_keys, keys)
        hit = pos < len(old_keys)
        hit[hit] = old_keys[pos[hit]] == keys[hit]
        old_df[pos[hit]] += df[hit]  # keys are distinct, so no position repeats
        old_tf[pos[hit]] += tf[hit]
        miss = ~hit
        at = pos[miss]
        totals = (
            np.insert(old_keys, at, keys[miss]),
            np.insert(old_df, at, df[miss]),
            np.insert(old_tf, at, tf[miss]),
        )

    for i, doc in enumerate(docs, start=1):
        c = Counter(analyzer(doc))
        hashes.append(np.fromiter(map(hash, c.keys()), np.int64, len(c)))
        counts.append(np.fromiter(c.values(), np.int32, len(c)))
        if i % MERGE_EVERY == 0:
            merge()
    merge()
    if totals is None:
        return None
    keys, df, tf = totals
    totals = None
    keep = (df >= min_count) & (df <= max_count)
    keys, tf, df = keys[keep], tf[keep], df[keep]
    if len(keys) == 0:
        return None
    limit = vectorizer.max_features
    wanted = keys
    cut_tf = None
    if limit is not None and len(keys) > limit:
        cut_tf = np.sort(tf)[::-1][limit - 1]  # every term above it is in; ties decide
        wanted = keys[tf >= cut_tf]
    # Second pass: the strings of the wanted hashes (all found long before the end, mostly).
    wanted_tf = tf if cut_tf is None else tf[tf >= cut_tf]
    wanted_df = df if cut_tf is None else df[tf >= cut_tf]
    del keys, tf, df, totals
    wanted_set = set(wanted.tolist())
    tf_of = dict(zip(wanted.tolist(), wanted_tf.tolist(), strict=True))
    df_of = dict(zip(wanted.tolist(), wanted_df.tolist(), strict=True))
    found: dict[int, str] = {}
    for doc in docs:
        for term in analyzer(doc):
            h = hash(term)
            if h in wanted_set and h not in found:
                found[h] = term
        if len(found) == len(wanted_set):
            break
    terms = sorted(found.items(), key=lambda item: (-tf_of[item[0]], item[1]))
    if limit is not None:
        terms = terms[:limit]
    terms.sort(key=lambda item: item[1])
    vocabulary = {term: i for i, (_, term) in enumerate(terms)}
    return vocabulary, np.array([df_of[h] for h, _ in terms], dtype=np.int64)


def _set_idf(vectorizer: TfidfVectorizer, df: np.ndarray, n_docs: int) -> None:
    """Set the idf `TfidfTransformer.fit` would compute from these document frequencies
    (the same operations in the same dtype, so the same bits)."""
    dtype = vectorizer.idf_.dtype
    df = df.astype(dtype)
    df += float(vectorizer.smooth_idf)
    n_docs += int(vectorizer.smooth_idf)
    idf = np.full_like(df, fill_value=n_docs, dtype=dtype)
    idf /= df
    np.log(idf, out=idf)
    idf += 1.0
    vectorizer.idf_ = idf


def _fit(docs: list[str]) -> TfidfVectorizer:
    """Fit the ranking vectorizer on `docs` (transforming them is left to the caller)."""
    from paperdigest.features import make_vectorizer

    vectorizer = make_vectorizer(len(docs))
    if len(docs) >= LEAN_FIT_MIN and vectorizer.use_idf:
        fitted = _lean_fit(vectorizer, docs)
        if fitted is not None:
            vocabulary, df = fitted
            # The lean pass already counted document frequencies: fit on one document for
            # the fitted state, then set the idf, instead of counting every document again
            # into a matrix (hundreds of MB at 75k papers).
            vectorizer.set_params(vocabulary=vocabulary)
            vectorizer.fit(docs[:1])
            _set_idf(vectorizer, df, len(docs))
            return vectorizer
    vectorizer.fit(docs)
    # Every pruned term: large, and only kept for introspection (sklearn says to drop it).
    vectorizer.stop_words_ = None
    return vectorizer


def _fit_titles(titles: list[str]) -> TfidfVectorizer:
    """Fit the title n-gram vectorizer (titles are short: scikit-learn's own fit will do)."""
    from paperdigest.features import make_title_vectorizer

    vectorizer = make_title_vectorizer(len(titles))
    vectorizer.fit(titles)
    vectorizer.stop_words_ = None
    return vectorizer


def _settings_key() -> str:
    """What the cache must agree with: its format, the scikit-learn version, and the code
    that turns text into features and term vectors (hashed as source, so checking it
    imports no scikit-learn, and any change to an analyzer or a setting counts)."""
    return json.dumps(
        {
            "format": FORMAT_VERSION,
            "sklearn": _sklearn_version(),
            "code": _source_digest(),
            "fit_sample": FIT_SAMPLE,
            "lean_fit_min": LEAN_FIT_MIN,
        },
        sort_keys=True,
    )


@functools.cache
def _sklearn_version() -> str:
    return importlib.metadata.version("scikit-learn")


@functools.cache
def _source_digest() -> str:
    digest = hashlib.sha256()
    for module in ("paperdigest.features", "paperdigest.term_embedding"):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"cannot find the source of {module}")
        digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()[:16]


# -- building ----------------------------------------------------------------------------


class _Snapshot:
    """What the papers table holds, read inside one read transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.max_pk: int = conn.execute("SELECT coalesce(max(pk), 0) FROM papers").fetchone()[0]
        try:
            self.max_seq: int = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM paper_changes"
            ).fetchone()[0]
            self.has_log = True
        except sqlite3.OperationalError:  # a schema without the change log
            self.max_seq, self.has_log = 0, False

    @functools.cached_property
    def count(self) -> int:
        # A full scan (~60 ms at a million papers): read only when something changed.
        return int(self.conn.execute("SELECT count(*) FROM papers").fetchone()[0])

    @property
    def empty(self) -> bool:
        return self.max_pk == 0  # pks start at 1

    def matches(self, manifest: dict[str, Any]) -> bool:
        """The papers the manifest was written from. With the change log, an insert
        raises max(pk) and a deletion or edit max(seq), so the count need not be read."""
        if (manifest["max_pk"], manifest["max_seq"]) != (self.max_pk, self.max_seq):
            return False
        return self.has_log or manifest["count"] == self.count


class _read_snapshot:
    """A read transaction, so every query sees the same state of the database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.began = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
            self.began = True
        return self.conn

    def __exit__(self, *exc: object) -> None:
        if self.began and self.conn.in_transaction:
            self.conn.execute("COMMIT")


def _full_build(
    conn: sqlite3.Connection, progress: Progress | None, directory: Path | None = None
) -> tuple[_Vectorizers, np.ndarray | None, _Segment, _Snapshot] | None:
    """Fit and transform the whole corpus. With `directory`, the matrix is written there
    as it is built and the segment returned is memory-mapped (its `entry` is set)."""
    snap = _Snapshot(conn)
    if snap.count == 0:
        return None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    from paperdigest.features import paper_text

    if snap.count <= FIT_SAMPLE:
        rows = conn.execute("SELECT title, abstract FROM papers ORDER BY pk").fetchall()
        docs = [paper_text(r[0], r[1]) for r in rows]
        titles = [r[0] or "" for r in rows]
        del rows
    else:
        all_pks = np.fromiter(
            (r[0] for r in conn.execute("SELECT pk FROM papers ORDER BY pk")),
            np.int64,
            snap.count,
        )
        sample = all_pks[np.unique(np.linspace(0, snap.count - 1, FIT_SAMPLE).astype(np.int64))]
        del all_pks
        docs, titles = [], []
        for batch in _texts_by_pk(conn, sample):
            docs += [paper_text(r[1], r[2]) for r in batch]
            titles += [r[1] or "" for r in batch]
    if progress is not None:
        progress(f"fitting the vocabulary on {len(docs):,} of {snap.count:,} papers")
    vectorizers = _Vectorizers(_fit(docs), _fit_titles(titles))
    del docs, titles
    # Then every paper, a chunk at a time (the fit's own matrix is never built or kept).
    batches = _rows(conn, "SELECT pk, title, abstract, listed FROM papers ORDER BY pk", ())
    if directory is not None:
        segment = _transform_to_disk(directory, vectorizers, batches, progress)
    else:
        segment = _transform(vectorizers, batches, progress)
    if progress is not None and segment.matrix.shape[0] >= MIN_DOCS:
        n = min(segment.matrix.shape[0], EMBED_DOCS)
        progress(f"learning which words go together from {n:,} papers")
    embedding = fit_term_embedding(segment.matrix, vectorizers.words.get_feature_names_out())
    if embedding is not None:
        term_vectors = TermVectors(embedding)
        if progress is not None:
            progress(f"embedding {segment.matrix.shape[0]:,} papers")
        if segment.entry is None:
            segment.vectors = term_vectors.embed(segment.matrix)
        else:
            segment.vectors = _write_vectors(directory, segment, term_vectors)
    return vectorizers, embedding, segment, snap


def build_index(store: Store, progress: Progress | None = None) -> CorpusIndex:
    """A fresh index of the whole corpus, neither read from nor written to the cache."""
    with _read_snapshot(store.conn) as conn:
        built = _full_build(conn, progress)
    if built is None:
        return _empty_index()
    vectorizers, embedding, segment, _ = built
    return CorpusIndex(
        segment.pks,
        segment.days,
        vectorizers.words.get_feature_names_out(),
        [segment.matrix],
        vectorizers=lambda: vectorizers,
        term_embedding=embedding,
        vector_segments=None if segment.vectors is None else [segment.vectors],
        title_segments=[segment.titles] if segment.titles is not None else None,
        n_title_features=vectorizers.n_titles,
    )


# -- the cache ---------------------------------------------------------------------------


class _CacheError(Exception):
    pass


class DamagedIndexError(Exception):
    """Rows gathered from the cached index break its invariants (bytes damaged on disk):
    the caller rebuilds the index (`open_index(..., rebuild=True)`) and tries again."""


# A row of a TF-IDF matrix, and a paper vector, has unit length (or no terms at all).
_NORM_TOLERANCE = 1e-3
_MAX_DAY = date.max.toordinal()


def _crc(array: np.ndarray) -> int:
    """A checksum of an array's bytes, kept in the manifest for the arrays read whole on
    every load (pks, days, row pointers, the vocabulary, the term vectors)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def _check_crc(entry: dict[str, Any], part: str, array: np.ndarray, what: str) -> None:
    expected = entry.get("crc", {}).get(part)
    if expected is not None and _crc(array) != expected:
        raise _CacheError(f"{what}: {part} is damaged (checksum)")


def _check_rows(matrix: sparse.csr_matrix, what: str) -> None:
    """Gathered rows: column numbers inside the vocabulary, values in (0, 1] (NaN fails
    too), each non-empty row of unit length. Checked before any arithmetic touches them
    (a column number out of bounds made SciPy read outside its arrays and segfault)."""
    indices, data = matrix.indices, matrix.data
    if len(indices) == 0:
        return
    if int(indices.min()) < 0 or int(indices.max()) >= matrix.shape[1]:
        raise DamagedIndexError(f"{what}: a column number is out of bounds")
    if not (float(data.min()) > 0 and float(data.max()) <= 1 + _NORM_TOLERANCE):
        raise DamagedIndexError(f"{what}: a value is outside (0, 1]")
    starts = matrix.indptr[:-1][np.diff(matrix.indptr) > 0]
    # float32 sums: a few hundred terms a row err by ~1e-6, far inside the tolerance.
    squares = np.add.reduceat(np.square(data), starts)
    if float(np.abs(squares - 1).max()) > 2 * _NORM_TOLERANCE:
        raise DamagedIndexError(f"{what}: a row is not of unit length")


def _check_vectors(vectors: np.ndarray) -> None:
    """Gathered paper vectors: each of unit length or all zeros (NaN fails too)."""
    squares = np.einsum("ij,ij->i", vectors, vectors)
    if len(squares) and not float(np.minimum(np.abs(squares - 1), squares).max()) <= (
        2 * _NORM_TOLERANCE
    ):
        raise DamagedIndexError("paper vectors: a row is not of unit length")


def index_dir(store: Store) -> Path:
    return store.path.parent / INDEX_DIR


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _csr_parts(prefix: str, m: sparse.csr_matrix) -> list[tuple[str, np.ndarray]]:
    # One index dtype for both, so scipy never copies them to reconcile on load.
    index_dtype = np.int32 if m.nnz < 2**31 - 1 else np.int64
    return [
        (f"{prefix}data", m.data.astype(np.float32, copy=False)),
        (f"{prefix}indices", m.indices.astype(index_dtype, copy=False)),
        (f"{prefix}indptr", m.indptr.astype(index_dtype, copy=False)),
    ]


def _write_segment(directory: Path, segment: _Segment) -> dict[str, Any]:
    name = f"seg-{uuid.uuid4().hex[:12]}"
    m, t = segment.matrix, segment.titles
    assert t is not None
    parts = [*_csr_parts("", m), *_csr_parts("t", t), ("pks", segment.pks), ("days", segment.days)]
    if segment.vectors is not None:
        parts.append(("vectors", np.asarray(segment.vectors, np.float32)))
    crc: dict[str, int] = {}
    for part, array in parts:
        _atomic_write(directory / f"{name}.{part}.npy", lambda h, a=array: np.save(h, a))
        if part in _CHECKSUMMED:
            crc[part] = _crc(array)
    dim = 0 if segment.vectors is None else int(segment.vectors.shape[1])
    return {"name": name, "rows": int(m.shape[0]), "nnz": int(m.nnz), "dim": dim,
            "title_nnz": int(t.nnz), "crc": crc}


# The parts of a segment read whole on every load (the others are read a row at a time
# and checked as they are gathered: `_check_rows`, `_check_vectors`).
_CHECKSUMMED = ("pks", "days", "indptr", "tindptr")


def _write_vectors(directory: Path, segment: _Segment, term_vectors: TermVectors) -> np.ndarray:
    """Embed a written (memory-mapped) segment a chunk at a time into its vectors file."""
    assert segment.entry is not None
    rows = segment.matrix.shape[0]

    def write(handle: Any) -> None:
        _npy_header(handle, np.float32, (rows, term_vectors.dim))
        for start in range(0, rows, CHUNK):
            block = term_vectors.embed(segment.matrix[start : start + CHUNK])
            handle.write(np.ascontiguousarray(block, np.float32).tobytes())

    name = segment.entry["name"]
    _atomic_write(directory / f"{name}.vectors.npy", write)
    segment.entry["dim"] = term_vectors.dim
    return np.load(directory / f"{name}.vectors.npy", mmap_mode="r", allow_pickle=False)


def _read_segment(
    directory: Path, entry: dict[str, Any], n_features: int, n_title_features: int
) -> _Segment:
    name = entry["name"]

    def load(part: str) -> np.ndarray:
        return np.load(directory / f"{name}.{part}.npy", mmap_mode="r", allow_pickle=False)

    rows = int(entry["rows"])

    def csr(prefix: str, n_cols: int) -> sparse.csr_matrix:
        data, indices = load(f"{prefix}data"), load(f"{prefix}indices")
        indptr = np.asarray(load(f"{prefix}indptr"))
        _check_crc(entry, f"{prefix}indptr", indptr, f"segment {name}")
        if (
            indptr.ndim != 1
            or data.ndim != 1
            or indices.ndim != 1
            or len(indptr) != rows + 1
            or int(indptr[0]) != 0
            or int(indptr[-1]) != len(data)
            or len(data) != len(indices)
            or data.dtype != np.float32
            or indices.dtype.kind != "i"
            or indptr.dtype.kind != "i"
            # Row pointers never go back: out of order, SciPy reads outside its arrays.
            or (rows and not bool((indptr[1:] >= indptr[:-1]).all()))
        ):
            raise _CacheError(f"segment {name} is inconsistent")
        return sparse.csr_matrix((data, indices, indptr), shape=(rows, n_cols), copy=False)

    pks, days = np.asarray(load("pks")), np.asarray(load("days"))
    _check_crc(entry, "pks", pks, f"segment {name}")
    _check_crc(entry, "days", days, f"segment {name}")
    if (
        pks.shape != (rows,)
        or days.shape != (rows,)
        or pks.dtype.kind != "i"
        or days.dtype.kind != "i"
        # A merged segment may hold a re-transformed paper twice: pks need not be sorted.
        or (rows and int(pks.min()) < 1)
        or (rows and not (int(days.min()) >= 1 and int(days.max()) <= _MAX_DAY))
    ):
        raise _CacheError(f"segment {name} is inconsistent")
    matrix = csr("", n_features)
    titles = csr("t", n_title_features)
    vectors = None
    if entry.get("dim"):
        vectors = load("vectors")
        if vectors.shape != (rows, int(entry["dim"])) or vectors.dtype != np.float32:
            raise _CacheError(f"segment {name}'s paper vectors are inconsistent")
    return _Segment(matrix, pks, days, vectors=vectors, titles=titles)


class _Cache:
    """What manifest.json describes, loaded."""

    def __init__(
        self,
        manifest: dict[str, Any],
        vectorizers: Callable[[], _Vectorizers],
        segments: list[_Segment],
        feature_names: np.ndarray,
        term_embedding: np.ndarray | None,
        term_vectors: TermVectors | None = None,
    ) -> None:
        self.manifest = manifest
        # Gives the fitted vectorizers, loaded once (only appending new papers needs them);
        # shared with every index and appended cache made from this one.
        self.load_vectorizers = vectorizers
        self.segments = segments
        self.feature_names = feature_names
        self.term_embedding = term_embedding
        # Built once per table and handed on to every index and appended cache made from it.
        if term_vectors is None and term_embedding is not None:
            term_vectors = TermVectors(term_embedding)
        self.term_vectors = term_vectors

    def index(self) -> CorpusIndex:
        vectors = [s.vectors for s in self.segments]
        pks = np.concatenate([s.pks for s in self.segments])
        days = np.concatenate([s.days for s in self.segments])
        seg_of = np.concatenate(
            [np.full(len(s.pks), i, np.int32) for i, s in enumerate(self.segments)]
        )
        local = np.concatenate([np.arange(len(s.pks), dtype=np.int64) for s in self.segments])
        if len(pks) > 1 and not bool(np.all(pks[1:] > pks[:-1])):
            # A paper re-transformed later (its text changed) is served by its newest row.
            order = np.lexsort((seg_of, pks))
            pks, days, seg_of, local = pks[order], days[order], seg_of[order], local[order]
            last = np.ones(len(pks), bool)
            last[:-1] = pks[1:] != pks[:-1]
            pks, days, seg_of, local = pks[last], days[last], seg_of[last], local[last]
        if len(pks) != int(self.manifest["count"]) or (
            len(pks) and int(pks[-1]) > int(self.manifest["max_pk"])
        ):
            # The manifest's count is the store's when it was written, and open_index only
            # serves a manifest that matches the store: so this is the row count checked
            # against the store, without counting the papers table.
            raise _CacheError("its rows do not match the papers stored")
        return CorpusIndex(
            pks,
            days,
            self.feature_names,
            [s.matrix for s in self.segments],
            seg_of,
            local,
            vectorizers=self.load_vectorizers,
            term_embedding=self.term_embedding,
            vector_segments=vectors if all(v is not None for v in vectors) else None,
            title_segments=[s.titles for s in self.segments],  # type: ignore[misc]
            term_vectors=self.term_vectors,
            n_title_features=int(self.manifest["n_titles"]),
        )


def _read_cache(directory: Path) -> _Cache:
    """The cache manifest.json describes. The vectorizers are only unpickled (importing
    scikit-learn) when new papers must be transformed."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("settings") != _settings_key():
            raise _CacheError("written with other settings")
        vec_name = manifest["vectorizer"]
        feature_names = np.load(directory / f"{vec_name}.names.npy", allow_pickle=False)
        _check_crc(manifest, "names", feature_names, "the vocabulary")
        n_features, n_titles = len(feature_names), int(manifest["n_titles"])
        embedding = None
        if manifest.get("embedding"):
            embedding = np.load(directory / f"{vec_name}.embedding.npy", allow_pickle=False)
            _check_crc(manifest, "embedding", embedding, "the term vectors")
            if embedding.ndim != 2 or embedding.shape[0] != n_features:
                raise _CacheError("term vectors do not match the vocabulary")
        segments = [_read_segment(directory, e, n_features, n_titles) for e in manifest["segments"]]
        dim = None if embedding is None else embedding.shape[1]
        if any(e.get("dim", 0) != (dim or 0) for e in manifest["segments"]):
            raise _CacheError("paper vectors do not match the term vectors")
        loader = functools.cache(
            functools.partial(_load_vectorizers, directory / vec_name, n_features, n_titles)
        )
        return _Cache(manifest, loader, segments, feature_names, embedding)
    except _CacheError:
        raise
    except Exception as exc:  # missing, truncated, mismatched: all mean "no cache"
        raise _CacheError(str(exc)) from exc


def _load_vectorizers(path: Path, n_words: int, n_titles: int) -> _Vectorizers:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer

        with open(path, "rb") as handle:
            words, titles = pickle.load(handle)
        if not isinstance(words, TfidfVectorizer) or not isinstance(titles, TfidfVectorizer):
            raise _CacheError("not a vectorizer")
        vectorizers = _Vectorizers(words, titles)
        if (vectorizers.n_words, vectorizers.n_titles) != (n_words, n_titles):
            raise _CacheError("the vectorizers do not match the index")
        return vectorizers
    except _CacheError:
        raise
    except Exception as exc:  # missing, truncated, unpicklable
        raise _CacheError(f"the vectorizers cannot be read ({exc})") from exc


def _publish(directory: Path, manifest: dict[str, Any], previous: dict[str, Any] | None) -> None:
    data = json.dumps(manifest, indent=1).encode("utf-8")
    _atomic_write(directory / MANIFEST, lambda h: h.write(data))
    keep = _files_of(manifest) | (_files_of(previous) if previous else set())
    now = time.time()
    for path in directory.iterdir():
        name = path.name
        if name == MANIFEST or name in keep or not name.startswith(("seg-", "vec-", ".")):
            continue
        try:
            if now - path.stat().st_mtime > STALE_SECONDS:
                path.unlink()
        except OSError:
            pass


def _files_of(manifest: dict[str, Any]) -> set[str]:
    vec_name = str(manifest.get("vectorizer"))
    names = {vec_name, f"{vec_name}.names.npy", f"{vec_name}.embedding.npy"}
    for entry in manifest.get("segments", []):
        for part in ("data", "indices", "indptr", "pks", "days", "tdata", "tindices", "tindptr"):
            names.add(f"{entry['name']}.{part}.npy")
        if entry.get("dim"):
            names.add(f"{entry['name']}.vectors.npy")
    return names


def _write_full(
    directory: Path,
    vectorizers: _Vectorizers,
    embedding: np.ndarray | None,
    segment: _Segment,
    snap: _Snapshot,
    previous: dict[str, Any] | None,
) -> _Cache:
    directory.mkdir(parents=True, exist_ok=True)
    feature_names = vectorizers.words.get_feature_names_out()
    vec_name = f"vec-{uuid.uuid4().hex[:12]}.pkl"
    payload = pickle.dumps((vectorizers.words, vectorizers.titles), pickle.HIGHEST_PROTOCOL)
    _atomic_write(directory / vec_name, lambda h: h.write(payload))
    # Beside the pickle, so a digest reads them without importing scikit-learn.
    names = np.asarray(feature_names, dtype=str)
    _atomic_write(directory / f"{vec_name}.names.npy", lambda h: np.save(h, names))
    crc = {"names": _crc(names)}
    if embedding is not None:
        table = np.asarray(embedding, np.float32)
        _atomic_write(directory / f"{vec_name}.embedding.npy", lambda h: np.save(h, table))
        crc["embedding"] = _crc(table)
    manifest = {
        "settings": _settings_key(),
        "vectorizer": vec_name,
        "n_titles": vectorizers.n_titles,
        "embedding": embedding is not None,
        "fit_count": snap.count,
        "count": snap.count,
        "max_pk": snap.max_pk,
        "max_seq": snap.max_seq,
        "crc": crc,
        "segments": [segment.entry or _write_segment(directory, segment)],
    }
    _publish(directory, manifest, previous)
    return _Cache(manifest, lambda: vectorizers, [segment], feature_names, embedding)


def _merge_point(sizes: list[int]) -> int:
    """Where to merge two neighbouring segments: the pair with the fewest rows, never the
    first (full-build) segment.

    Merging only the smallest pair keeps each merge small (at most a few days of papers),
    where merging every appended segment at once made one digest in twelve pay for
    rewriting all of them: 0.4-1 s at a million papers.
    """
    if len(sizes) < 3:
        raise ValueError("nothing to merge: the first segment is never merged")
    return min(range(1, len(sizes) - 1), key=lambda i: (sizes[i] + sizes[i + 1], i))


def _append(
    directory: Path,
    cache: _Cache,
    segment: _Segment,
    snap: _Snapshot,
) -> _Cache:
    previous = cache.manifest
    entries = list(previous["segments"])
    segments = list(cache.segments)
    if segment.matrix.shape[0]:
        entries.append(_write_segment(directory, segment))
        segments.append(segment)
    while len(entries) > MAX_SEGMENTS:
        i = _merge_point([s.matrix.shape[0] for s in segments])
        pair = segments[i : i + 2]
        merged = _Segment(
            _stack_rows([s.matrix for s in pair]),
            np.concatenate([s.pks for s in pair]),
            np.concatenate([s.days for s in pair]),
            vectors=None if cache.term_vectors is None else np.concatenate(
                [np.asarray(s.vectors) for s in pair]
            ),
            titles=_stack_rows([s.titles for s in pair]),
        )
        entries[i : i + 2] = [_write_segment(directory, merged)]
        segments[i : i + 2] = [merged]
    manifest = dict(previous, count=snap.count, max_pk=snap.max_pk, max_seq=snap.max_seq,
                    segments=entries)
    _publish(directory, manifest, previous)
    return _Cache(
        manifest,
        cache.load_vectorizers,
        segments,
        cache.feature_names,
        cache.term_embedding,
        cache.term_vectors,
    )


# Per-process memo: repeated digests in one process (the daily job, the benchmark) reuse
# the loaded index while manifest.json is unchanged.
_MEMO: dict[Path, tuple[tuple[int, int], _Cache, CorpusIndex]] = {}


def _manifest_stamp(directory: Path) -> tuple[int, int] | None:
    try:
        stat = (directory / MANIFEST).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_ino


def open_index(
    store: Store, progress: Progress | None = None, *, rebuild: bool = False
) -> CorpusIndex:
    """The cached index, brought up to date with the store (writing only the cache).

    A cache that fails its checks is rebuilt; `rebuild` rebuilds it regardless (after a
    `DamagedIndexError`). When the cache cannot be written at all (a full disk, a file
    named `index` in the way), the index is built in memory for this run and `progress`
    says why.
    """
    directory = index_dir(store)
    if rebuild:
        _MEMO.pop(directory, None)
    try:
        return _open_cached(store, directory, progress, rebuild)
    except OSError as exc:
        if progress is not None:
            reason = describe_os_error(exc)
            progress(f"cannot keep the index cache in {directory} ({reason}); "
                     "building it in memory for this run")
        return build_index(store, progress)


def _open_cached(
    store: Store, directory: Path, progress: Progress | None, rebuild: bool
) -> CorpusIndex:
    with _read_snapshot(store.conn) as conn:
        snap = _Snapshot(conn)
        if snap.empty:
            return _empty_index()
        cache: _Cache | None = None
        index: CorpusIndex | None = None
        stamp = _manifest_stamp(directory)
        memo = _MEMO.get(directory)
        if memo is not None and stamp is not None and memo[0] == stamp and not rebuild:
            cache, index = memo[1], memo[2]
            if snap.matches(cache.manifest):
                return index
        if cache is None and stamp is not None and not rebuild:
            try:
                cache = _read_cache(directory)
                if snap.matches(cache.manifest):
                    index = cache.index()  # checks its rows against the store
            except _CacheError as exc:
                if progress is not None:
                    progress(f"rebuilding the index cache ({exc})")
                cache, index = None, None
        elif rebuild and progress is not None:
            progress("rebuilding the index cache (damaged rows found while reading it)")
        updated = _update(conn, directory, cache, snap, progress) if cache else None
        if updated is None:
            built = _full_build(conn, progress, directory)
            if built is None:
                return _empty_index()
            vectorizers, embedding, segment, snap = built
            previous = cache.manifest if cache else None
            updated = _write_full(directory, vectorizers, embedding, segment, snap, previous)
        if updated is not cache or index is None:
            try:
                index = updated.index()
            except _CacheError:
                # Appended onto rows that were wrong: start again from the store.
                _MEMO.pop(directory, None)
                built = _full_build(conn, progress, directory)
                if built is None:
                    return _empty_index()
                vectorizers, embedding, segment, snap = built
                updated = _write_full(directory, vectorizers, embedding, segment, snap, None)
                index = updated.index()
    new_stamp = _manifest_stamp(directory)
    if new_stamp is not None:
        _MEMO[directory] = (new_stamp, updated, index)
    return index


def _update(
    conn: sqlite3.Connection,
    directory: Path,
    cache: _Cache,
    snap: _Snapshot,
    progress: Progress | None,
) -> _Cache | None:
    """The cache with new and changed papers appended; None when it needs a full rebuild."""
    m = cache.manifest
    if snap.matches(m):
        return cache
    if snap.count > m["fit_count"] * (1 + REFIT_GROWTH):
        return None  # grown enough that the vocabulary should be refitted
    if snap.max_pk < m["max_pk"] or snap.max_seq < m["max_seq"]:
        return None  # another database, or history rewritten
    changed = [
        pk
        for (pk,) in conn.execute(
            "SELECT DISTINCT pk FROM paper_changes WHERE seq > ? AND pk <= ?",
            (m["max_seq"], m["max_pk"]),
        )
    ] if snap.max_seq > m["max_seq"] else []
    new_count = conn.execute(
        "SELECT count(*) FROM papers WHERE pk > ?", (m["max_pk"],)
    ).fetchone()[0]
    if m["count"] + new_count != snap.count:
        return None  # papers were deleted (or the cache belongs to another database)

    def batches() -> Iterator[list[Any]]:
        if changed:
            found = 0
            for batch in _texts_by_pk(conn, changed):
                found += len(batch)
                yield batch
            if found != len(set(changed)):
                raise _CacheError("a changed paper is gone")
        yield from _rows(
            conn,
            "SELECT pk, title, abstract, listed FROM papers WHERE pk > ? ORDER BY pk",
            (m["max_pk"],),
        )

    try:
        segment = _transform(cache.load_vectorizers(), batches(), None)
    except _CacheError:
        return None
    if cache.term_vectors is not None:
        segment.vectors = cache.term_vectors.embed(segment.matrix)
    if progress is not None:
        progress(f"appended {segment.matrix.shape[0]:,} papers to the index")
    return _append(directory, cache, segment, snap)
