"""arxiv-sanity-lite's published ranking pipeline: the baseline both benchmarks measure.

TF-IDF over title + abstract, then a linear SVM of the stars against every other paper.
"""

from __future__ import annotations

VECTORIZER_PARAMS: dict[str, object] = dict(
    strip_accents="unicode",
    stop_words="english",
    token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
    ngram_range=(1, 2),
    max_features=20000,
    sublinear_tf=True,
    max_df=0.1,
    min_df=5,
)
SVM_PARAMS: dict[str, object] = dict(C=0.01, class_weight="balanced", tol=1e-6)
