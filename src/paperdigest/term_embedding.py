"""Term vectors learnt from which words appear together in the corpus (pure: arrays in and out).

Most papers are short (a title, an abstract at best), so two papers on one topic often share
no word at all: "transformer" and "attention", "galaxy" and "redshift". Positive pointwise
mutual information of document co-occurrence, reduced by a truncated SVD (Levy & Goldberg's
PPMI-SVD), gives each word a dense vector so that such papers still meet. The Ranker projects
TF-IDF rows through these vectors (``Ranker(term_embedding=...)``); on CiteULike-a it is
worth +0.02 recall@100 (bench/README.md).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd
from threadpoolctl import threadpool_limits

# Only the most frequent single words and stems get vectors: their co-occurrence counts are
# reliable, and the term x term matrix stays small on a million-paper corpus.
EMBED_TERMS = 10_000
EMBED_DIM = 128
# Co-occurrence is counted on at most this many documents, evenly spaced.
EMBED_DOCS = 30_000
# Pairs seen together in fewer documents are noise.
MIN_PAIR_COUNT = 2
# Below this many documents, co-occurrence statistics say nothing: no embedding.
MIN_DOCS = 200


def fit_term_embedding(
    docs: sp.spmatrix,
    feature_names: np.ndarray,
    n_terms: int = EMBED_TERMS,
    dim: int = EMBED_DIM,
    max_docs: int = EMBED_DOCS,
    min_docs: int = MIN_DOCS,
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
    dim = min(dim, len(terms) - 1)
    if dim < 2:
        return None
    binary = docs[:, terms]
    binary.data[:] = 1.0
    binary = binary.astype(np.float32)
    pairs = (binary.T @ binary).tocoo()
    counts = np.asarray(binary.sum(axis=0)).ravel()
    keep = (pairs.data >= MIN_PAIR_COUNT) & (pairs.row != pairs.col)
    rows, cols, both = pairs.row[keep], pairs.col[keep], pairs.data[keep]
    pmi = np.log(both * n_docs / (counts[rows] * counts[cols]))
    positive = pmi > 0
    ppmi = sp.csr_matrix(
        (pmi[positive].astype(np.float32), (rows[positive], cols[positive])),
        shape=(len(terms), len(terms)),
    )
    if ppmi.nnz == 0:
        return None
    # The dense steps are small (terms x ~dim); BLAS threads only fight each other over
    # them, 3x slower on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        u, s, _ = randomized_svd(ppmi, dim, n_iter=4, random_state=seed)
    vectors = np.zeros((n_features, dim), np.float32)
    vectors[terms] = u * np.sqrt(s)  # split the singular values between words and contexts
    return vectors
