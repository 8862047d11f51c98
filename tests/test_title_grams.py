"""The title channel: character n-grams of titles, scored with the stars' interests."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from paperdigest.features import (
    TitleGramAnalyzer,
    make_title_vectorizer,
    make_vectorizer,
    paper_text,
)
from paperdigest.ranking import Ranker
from tests.test_ranking import corpus


def test_title_grams_are_padded_character_trigrams_of_the_words() -> None:
    grams = TitleGramAnalyzer()("The miRNA Networks")
    # Stop words dropped, lower-cased, each word padded by spaces.
    assert grams[:5] == [" mi", "mir", "irn", "rna", "na "]
    assert " th" not in grams and "net" in grams and "ks " in grams


def test_title_transform_gives_exactly_scikit_learns_matrix() -> None:
    texts, _ = corpus([("graphs", 30), ("astro", 30)])
    titles = [t.split(".")[0] for t in texts]
    vec = make_title_vectorizer(len(titles)).fit(titles)
    new = [*titles[:5], "Galaxy galaxy", "", "Ünïcödé naïve café", "of the and"]
    ours, theirs = vec.transform(new), TfidfVectorizer.transform(vec, new)
    for part in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(ours, part), getattr(theirs, part))


def _channels(texts: list[str]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    titles = [t.split(".")[0] for t in texts]
    words = make_vectorizer(len(texts)).fit_transform(texts)
    grams = make_title_vectorizer(len(titles)).fit_transform(titles)
    return sp.csr_matrix(words), sp.csr_matrix(grams)


def test_a_title_sharing_only_word_parts_with_a_star_ranks_first() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    texts += [
        paper_text("Microrna silencing", "Cells."),  # star
        paper_text("Mirnas knockdown", "Expression."),  # shares no word, only word parts
        paper_text("Volcano seismology", "Eruption."),  # unrelated
    ]
    words, grams = _channels(texts)
    star, cands = [len(texts) - 3], [len(texts) - 2, len(texts) - 1]
    background = list(range(len(texts) - 3))
    plain = Ranker(title_weight=0.0).fit(words[star], background=words[background])
    base = plain.score(words[cands])
    assert base[0] <= base[1] + 1e-9  # the words alone do not tell them apart
    ranker = Ranker().fit(
        words[star],
        background=words[background],
        star_titles=grams[star],
        background_titles=grams[background],
    )
    scores = ranker.score(words[cands], titles=grams[cands])
    assert scores[0] > scores[1]


def test_a_ranker_fitted_with_titles_needs_them_to_score() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60)])
    words, grams = _channels(texts)
    ranker = Ranker().fit(
        words[[0, 1]], background=words, star_titles=grams[[0, 1]], background_titles=grams
    )
    with pytest.raises(ValueError, match="titles"):
        ranker.score(words)
    # Deterministic, and a paper's score does not depend on the other candidates.
    np.testing.assert_array_equal(
        ranker.score(words, titles=grams), ranker.score(words, titles=grams)
    )
    np.testing.assert_allclose(
        ranker.score(words[7:8], titles=grams[7:8]),
        ranker.score(words, titles=grams)[7:8],
        rtol=1e-5,
    )


def test_given_interests_are_used_and_checked() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60)])
    words, _ = _channels(texts)
    ranker = Ranker().fit(words[[0, 1, 60]], background=words, interests=np.array([5, 5, 9]))
    assert ranker.interest_.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="interests"):
        Ranker().fit(words[[0, 1]], background=words, interests=np.array([0]))
