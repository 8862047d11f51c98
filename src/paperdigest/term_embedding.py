"""Term vectors learnt from which words appear together in the corpus (pure: arrays in and out).

Most papers are short (a title, an abstract at best), so two papers on one topic often share
no word at all: "transformer" and "attention", "galaxy" and "redshift". Positive pointwise
mutual information of document co-occurrence, reduced by a truncated SVD (Levy & Goldberg's
PPMI-SVD), gives each word a dense vector so that such papers still meet. The Ranker sums
the vectors of each paper's terms (``Ranker(term_embedding=...)``); on CiteULike-a it is
worth +0.035 recall@100 (bench/README.md).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# Only the most frequent single words and stems get vectors: their co-occurrence counts are
# reliable, and the term x term matrix stays small on a million-paper corpus.
EMBED_TERMS = 10_000
EMBED_DIM = 128
# Co-occurrence is counted on at most this many documents, evenly spaced.
EMBED_DOCS = 30_000
# Pairs seen together in fewer documents are noise.
MIN_PAIR_COUNT = 2
# How steeply rare words outweigh common ones in a paper's vector (see the end of
# fit_term_embedding): on 677 CiteULike-a users, idf**0 / 1 / 2 / 4 / 6 give recall@100
# 0.587 / 0.596 / 0.602 / 0.611 / 0.612 (bench/README.md).
IDF_POWER = 4.0
# Terms whose pair counts are computed at once.
_PAIR_BLOCK = 500
# Below this many documents, co-occurrence statistics say nothing: no embedding.
MIN_DOCS = 200


def fit_term_embedding(
    docs: sp.spmatrix,
    feature_names: np.ndarray,
    n_terms: int = EMBED_TERMS,
    dim: int = EMBED_DIM,
    max_docs: int = EMBED_DOCS,
    min_docs: int = MIN_DOCS,
    idf_power: float = IDF_POWER,
    seed: int = 0,
) -> np.ndarray | None:
    """A (n_features x dim) float32 matrix of term vectors; rows of other terms are zero.

    ``docs`` is any (documents x features) matrix of the corpus (only which entries are
    non-zero matters); word pairs ("graph neural") get no vector of their own. Returns
    None when the corpus is too small to learn from.
    """
    docs = sp.csr_matrix(docs)
    n_docs, n_features = docs.shape
    if n_docs < min_docs:
        return None
    if n_docs > max_docs:
        docs = docs[np.unique(np.linspace(0, n_docs - 1, max_docs).astype(np.int64))]
        n_docs = docs.shape[0]
    is_single = np.fromiter((" " not in str(n) for n in feature_names), bool, n_features)
    df = np.diff(sp.csc_matrix(docs).indptr)
    ranked = np.lexsort((np.arange(n_features), -np.where(is_single, df, 0)))
    terms = np.sort(ranked[: min(n_terms, int(np.count_nonzero(is_single & (df > 0))))])
    # Without the singular values, vectors from a near-full-rank SVD are near-orthogonal:
    # on a small vocabulary, keep the reduction a real one.
    dim = min(dim, len(terms) // 4)
    if dim < 2:
        return None
    binary = docs[:, terms]
    binary.data[:] = 1.0
    binary = sp.csc_matrix(binary, dtype=np.float32)
    counts = np.asarray(binary.sum(axis=0), np.float32).ravel()
    ppmi = _ppmi(binary, counts, n_docs)
    if ppmi.nnz == 0:
        return None
    # Imported here: scikit-learn takes ~1 s to import, and only fitting needs it.
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits

    # The dense steps are small (terms x ~dim); BLAS threads only fight each other over
    # them, 3x slower on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        u, _, _ = randomized_svd(ppmi, dim, n_iter=4, random_state=seed)
    # Rare words say more about a paper's topic than common ones: a paper's vector is the
    # plain sum of its terms' vectors, so each vector carries its weight, idf**idf_power.
    # Singular values are left out (Levy et al.'s eigenvalue weighting p = 0).
    idf = np.log(n_docs / counts.astype(np.float64))
    vectors = np.zeros((n_features, dim), np.float32)
    vectors[terms] = u * (idf**idf_power)[:, None]
    return vectors


class TermVectors:
    """Fitted term vectors, ready to turn papers into dense vectors (``embed``).

    Built once from ``fit_term_embedding``'s table and shared by every Ranker fitted on the
    same vocabulary: only the terms that have a vector are kept, in a compact table that
    is faster to read than the full one (most of a paper's features, word pairs and rare
    words, have none).
    """

    def __init__(self, table: np.ndarray) -> None:
        table = np.asarray(table, np.float32)
        if table.ndim != 2:
            raise ValueError(f"term vectors must be a 2-d table, not shape {table.shape}")
        used = np.flatnonzero(np.any(table != 0, axis=1))
        self.n_features, self.dim = table.shape
        self.vectors = np.ascontiguousarray(table[used])
        self.slot = np.full(self.n_features, -1, np.int64)
        self.slot[used] = np.arange(len(used))

    def embed(self, rows: sp.spmatrix) -> np.ndarray:
        """(n_rows x dim) float32: each row's sum of term vectors, unit length.

        Which terms a paper has counts, not how often: the term vectors carry their own
        weights. A paper with no such term gets a zero vector.
        """
        rows = sp.csr_matrix(rows)
        if rows.shape[1] != self.n_features:
            raise ValueError(
                f"rows have {rows.shape[1]} features; the term vectors have {self.n_features}"
            )
        slot = self.slot[rows.indices]
        has_vector = slot >= 0
        # Kept entries before each row start are the new row starts.
        indptr = np.concatenate([[0], np.cumsum(has_vector)])[rows.indptr]
        present = sp.csr_matrix(
            (np.ones(int(has_vector.sum()), np.float32), slot[has_vector], indptr),
            shape=(rows.shape[0], self.vectors.shape[0]),
        )
        return unit_rows(np.asarray(present @ self.vectors, np.float32))


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def _ppmi(binary: sp.csc_matrix, counts: np.ndarray, n_docs: int) -> sp.csr_matrix:
    """Positive PMI of term pairs seen together in at least MIN_PAIR_COUNT documents.

    Counted a block of terms at a time: the full count matrix of 30,000 arXiv abstracts
    holds tens of millions of pairs, most of them dropped here.
    """
    n_terms = binary.shape[1]
    by_term = sp.csr_matrix(binary.T)
    blocks: list[sp.csr_matrix] = []
    for start in range(0, n_terms, _PAIR_BLOCK):
        pairs = sp.csr_matrix(by_term[start : start + _PAIR_BLOCK] @ binary)
        n_rows = pairs.shape[0]
        rows = np.repeat(np.arange(n_rows), np.diff(pairs.indptr))
        cols = pairs.indices
        pmi = np.log(pairs.data * np.float32(n_docs) / (counts[rows + start] * counts[cols]))
        keep = (pairs.data >= MIN_PAIR_COUNT) & (rows + start != cols) & (pmi > 0)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=n_rows))])
        # Fresh arrays, not views: a view would keep the whole unfiltered block alive.
        blocks.append(
            sp.csr_matrix(
                (pmi[keep].astype(np.float32), cols[keep].copy(), indptr),
                shape=(n_rows, n_terms),
            )
        )
        del pairs, rows, cols, pmi, keep
    return _stack(blocks, n_terms)


def _stack(blocks: list[sp.csr_matrix], n_cols: int) -> sp.csr_matrix:
    """vstack that frees each block as it is copied: peak memory is the result, not twice."""
    nnz = sum(b.nnz for b in blocks)
    data = np.empty(nnz, np.float32)
    indices = np.empty(nnz, np.int32 if n_cols < 2**31 else np.int64)
    counts = [np.diff(b.indptr) for b in blocks]
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    at = 0
    while blocks:
        block = blocks.pop(0)
        data[at : at + block.nnz] = block.data
        indices[at : at + block.nnz] = block.indices
        at += block.nnz
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_cols))
