"""The TF-IDF view of the store's corpus: fitted vectorizer, matrix and row mapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from paperdigest.ranking import make_vectorizer, paper_text
from paperdigest.store import Store


@dataclass(frozen=True)
class CorpusIndex:
    pks: np.ndarray  # pk of each matrix row
    matrix: sparse.csr_matrix
    feature_names: np.ndarray

    def rows_of(self, pks: list[int]) -> list[int]:
        positions = np.searchsorted(self.pks, pks)
        return [
            int(p) for p, pk in zip(positions, pks, strict=True)
            if p < len(self.pks) and self.pks[p] == pk
        ]


def build_index(store: Store) -> CorpusIndex:
    pks, titles, abstracts = store.texts()
    if not pks:
        return CorpusIndex(np.zeros(0, dtype=np.int64), sparse.csr_matrix((0, 0)), np.array([]))
    vectorizer = make_vectorizer(len(pks))
    matrix = vectorizer.fit_transform(
        paper_text(title, abstract) for title, abstract in zip(titles, abstracts, strict=True)
    )
    return CorpusIndex(
        np.asarray(pks, dtype=np.int64),
        sparse.csr_matrix(matrix),
        vectorizer.get_feature_names_out(),
    )
