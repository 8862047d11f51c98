"""Term vectors from co-occurrence, and the Ranker matching papers through them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from paperdigest.features import paper_text
from paperdigest.ranking import Ranker, select
from paperdigest.term_embedding import TermVectors, fit_term_embedding
from tests.test_ranking import corpus, rank_of, vectorize


def _vector(embedding: np.ndarray, names: np.ndarray, word: str) -> np.ndarray:
    v = embedding[int(np.flatnonzero(names == word)[0])]
    return v / np.linalg.norm(v)


def test_words_that_appear_together_get_close_vectors() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    x, names = vectorize(texts)
    embedding = fit_term_embedding(x, names)
    assert embedding is not None and embedding.shape[0] == len(names)
    galaxy, redshift, protein, enzyme = (
        _vector(embedding, names, w) for w in ("galaxy", "redshift", "protein", "enzyme")
    )
    # Words of one topic are closer to each other than to the words of another topic.
    assert galaxy @ redshift > galaxy @ protein + 0.15
    assert protein @ enzyme > protein @ redshift + 0.05


def test_word_pairs_get_no_vector_and_small_corpora_get_none() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    x, names = vectorize(texts)
    embedding = fit_term_embedding(x, names)
    assert embedding is not None
    bigrams = np.array([" " in n for n in names])
    assert bigrams.any() and not np.abs(embedding[bigrams]).any()
    assert fit_term_embedding(x[:50], names) is None  # too few papers to learn from
    assert fit_term_embedding(sp.csr_matrix(x.shape, dtype=np.float32), names) is None


def test_a_paper_sharing_only_related_words_with_the_stars_ranks_first() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    texts += [
        paper_text("Galaxy cluster cosmology", "Dark matter."),  # star
        paper_text("Redshift survey", "Telescope halo."),  # astro words, none in the star
        paper_text("Yeast fermentation", "Brewing beer."),  # unrelated, equally unmatched
    ]
    x, names = vectorize(texts)
    star, cands = x[[-3]], x[[-2, -1]]
    plain = Ranker().fit(star, background=x[:-3]).score(cands)
    assert plain[0] <= plain[1]  # no shared word: words alone do not favour the astro paper
    ranker = Ranker(term_embedding=fit_term_embedding(x, names)).fit(star, background=x[:-3])
    scores = ranker.score(cands)
    assert scores[0] > scores[1]
    # The reason names the star even though no word is shared.
    assert ranker.explain(cands[[0]], names)[0].star == 0


def test_a_dismissal_pushes_similar_papers_down_with_term_vectors() -> None:
    texts, labels = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    x, names = vectorize(texts)
    embedding = fit_term_embedding(x, names)
    stars, dismissed = [0, 1, 60], [120]  # graphs and astro liked, one bio paper dismissed
    cand_rows = [i for i in range(len(texts)) if i not in stars + dismissed]
    cands = x[cand_rows]
    bio = [i for i, row in enumerate(cand_rows) if labels[row] == "bio"]
    plain = Ranker(term_embedding=embedding).fit(x[stars], background=x).score(cands)
    pushed = Ranker(term_embedding=embedding).fit(
        x[stars], dismissed=x[dismissed], background=x
    ).score(cands)
    assert np.mean([rank_of(pushed, i) for i in bio]) > np.mean([rank_of(plain, i) for i in bio])
    assert {labels[cand_rows[i]] for i in select(pushed, cands, 10)} <= {"graphs", "astro"}


def test_scores_with_term_vectors_are_deterministic_and_independent_of_the_pool() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    x, names = vectorize(texts)
    runs = [
        Ranker(term_embedding=fit_term_embedding(x, names))
        .fit(x[[0, 60]], dismissed=x[[120]], background=x)
        .score(x)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    ranker = Ranker(term_embedding=fit_term_embedding(x, names)).fit(x[[0, 60]], background=x)
    # A paper's score does not depend on which other papers are candidates today.
    np.testing.assert_allclose(ranker.score(x[5:6]), ranker.score(x)[5:6], rtol=1e-5)


def test_two_interests_both_reach_the_top_ten_with_term_vectors() -> None:
    texts, labels = corpus([("graphs", 120), ("astro", 30), ("bio", 60), ("speech", 60)])
    x, names = vectorize(texts)
    star_rows = [0, 1, 2, 3, 4, 5, 120, 121]  # six graph stars, two astronomy stars
    cand_rows = [i for i in range(len(texts)) if i not in star_rows]
    ranker = Ranker(term_embedding=fit_term_embedding(x, names)).fit(
        x[star_rows], background=x
    )
    cands = x[cand_rows]
    topics = [labels[cand_rows[i]] for i in select(ranker.score(cands), cands, 10)]
    assert topics.count("astro") >= 2 and set(topics) == {"graphs", "astro"}


def test_term_vectors_of_the_wrong_shape_are_refused() -> None:
    texts, _ = corpus([("graphs", 3), ("astro", 3)])
    x, _ = vectorize(texts)
    with pytest.raises(ValueError, match="term_embedding"):
        Ranker(term_embedding=np.zeros((x.shape[1] + 1, 4))).fit(x[:1], background=x)


def test_kept_paper_vectors_give_the_same_scores_and_reasons() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    x, names = vectorize(texts)
    vectors = TermVectors(fit_term_embedding(x, names))
    stars, dismissed, background = [0, 60], [120], list(range(0, 240, 2))
    computed = Ranker(term_embedding=vectors).fit(
        x[stars], dismissed=x[dismissed], background=x[background]
    )
    kept = Ranker(term_embedding=vectors).fit(
        x[stars],
        dismissed=x[dismissed],
        background=x[background],
        star_vectors=vectors.embed(x[stars]),
        dismissed_vectors=vectors.embed(x[dismissed]),
        background_vectors=vectors.embed(x[background]),
    )
    everything = vectors.embed(x)
    np.testing.assert_allclose(kept.score(x, everything), computed.score(x), rtol=1e-5)
    assert kept.explain(x[:20], names, vectors=everything[:20]) == computed.explain(
        x[:20], names
    )
    with pytest.raises(ValueError, match="paper vectors"):
        kept.score(x, everything[:-1])


def test_paper_vectors_are_unit_length_and_zero_without_known_terms() -> None:
    texts, _ = corpus([("graphs", 60), ("astro", 60), ("bio", 60), ("speech", 60)])
    x, names = vectorize(texts)
    vectors = TermVectors(fit_term_embedding(x, names))
    embedded = vectors.embed(sp.vstack([x[:5], sp.csr_matrix((1, x.shape[1]))]))
    np.testing.assert_allclose(np.linalg.norm(embedded[:5], axis=1), 1.0, rtol=1e-5)
    assert not embedded[5].any()
    with pytest.raises(ValueError, match="features"):
        vectors.embed(x[:, :-1])
