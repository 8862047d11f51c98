"""Behaviour of paperdigest.ranking on small synthetic corpora."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from paperdigest import features
from paperdigest.features import make_vectorizer, paper_text
from paperdigest.ranking import Ranker, Reason, select

TOPICS = {
    topic: words.split()
    for topic, words in {
        "graphs": "graph neural network message passing node embedding molecule",
        "astro": "galaxy cluster dark matter halo cosmology redshift telescope",
        "bio": "protein folding gene expression enzyme cell sequencing genome",
        "speech": "speech recognition acoustic audio phoneme transcription speaker",
    }.items()
}
FILLER = ["study", "approach", "method", "analysis", "results", "framework", "novel"]


def make_paper(topic: str, rng: random.Random) -> str:
    words = rng.sample(TOPICS[topic], 4) + rng.sample(FILLER, 2)
    return paper_text(" ".join(words[:3]).title(), " ".join(words[3:]) + ".")


def corpus(spec: list[tuple[str, int]], seed: int = 0) -> tuple[list[str], list[str]]:
    """(texts, topic label of each text) with ``n`` papers per topic, in spec order."""
    rng = random.Random(seed)
    texts, labels = [], []
    for topic, n in spec:
        for _ in range(n):
            texts.append(make_paper(topic, rng))
            labels.append(topic)
    return texts, labels


def vectorize(texts: list[str]) -> tuple[sp.csr_matrix, np.ndarray]:
    vec = make_vectorizer(len(texts))
    return sp.csr_matrix(vec.fit_transform(texts)), vec.get_feature_names_out()


def rank_of(scores: np.ndarray, i: int) -> int:
    return int(np.flatnonzero(select(scores, sp.csr_matrix((len(scores), 1)), len(scores)) == i)[0])


# -- vectorizer ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 10])
def test_make_vectorizer_handles_tiny_corpora(n: int) -> None:
    texts, _ = corpus([("graphs", n)])
    for vec in (make_vectorizer(n), make_vectorizer()):  # with and without the size hint
        x = vec.fit_transform(texts)
        assert x.shape[0] == n and x.shape[1] > 0
        assert np.all(np.asarray(x.sum(axis=1)).ravel() > 0), "every paper keeps some terms"


@pytest.mark.parametrize("batch", [2048, 3])
def test_transform_gives_exactly_scikit_learns_matrix(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    monkeypatch.setattr(features, "_COUNT_BATCH", batch)  # 3: papers counted in batches

    texts, _ = corpus([("graphs", 40), ("astro", 40), ("bio", 40)])
    vec = make_vectorizer(len(texts)).fit(texts)
    first, second = next(name.split() for name in vec.vocabulary_ if " " in name)
    new = [
        *texts[:5],
        "Graph graph graph galaxy",  # repeated terms are counted
        "",  # nothing at all
        "the of and",  # stop words only
        "Ünïcödé naïve café protein",  # accents
        "Quantum chromodynamics on lattices",  # no known term
        f"A study of {first}",  # a known pair split across two papers is no pair
        f"{second} and {first} of the {second}; {first}-{second} {first}_{second}",
        # Odd tokens: leading digits, one letter, underscores, Greek letters, a degree sign
        # that becomes "°C", upper case.
        f"3d {first} x {second}2 _{first} \u03b1graph graph_\u03b2 \u2103 {first.upper()}",
        f"{first} {second} " * 3,  # a pair three times
    ]
    ours = vec.transform(new)
    theirs = TfidfVectorizer.transform(vec, new)
    for part in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(ours, part), getattr(theirs, part))
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert ours[5].toarray().max() > 0 and ours[6].nnz == ours[9].nnz == 0
    pair = vec.vocabulary_[f"{first} {second}"]
    assert ours[10, pair] == 0 and ours[11, pair] > 0 and ours[13, pair] > ours[11, pair]
    with pytest.raises(ValueError, match="Iterable"):
        vec.transform("one string, not a list")


def test_make_vectorizer_survives_stop_word_only_corpus() -> None:
    vec = make_vectorizer(2)
    x = vec.fit_transform(["The", "of and"])
    assert x.shape[0] == 2 and x.nnz == 0
    assert vec.transform(["graph neural network"]).shape[0] == 1


def test_paper_text_contains_title_and_abstract() -> None:
    assert paper_text("Graph nets", "We study graphs.") == "Graph nets. We study graphs."
    assert paper_text("Graph nets", "") == "Graph nets"


# -- ranking behaviour ----------------------------------------------------------------------
def test_stars_rank_their_own_topic_first() -> None:
    texts, labels = corpus([("graphs", 8), ("astro", 8), ("bio", 8), ("speech", 8)])
    x, _ = vectorize(texts)
    stars, cands = x[[0, 1, 2]], x[3:]
    scores = Ranker().fit(stars, background=x).score(cands)
    top = select(scores, cands, 5)
    assert [labels[3 + i] for i in top] == ["graphs"] * 5


@pytest.mark.parametrize("with_background", [True, False])
def test_dismissal_pushes_similar_papers_down(with_background: bool) -> None:
    texts = [
        paper_text("Graph neural networks", "Message passing on molecule graphs."),  # star
        paper_text("Protein folding", "Enzyme kinetics of protein folding."),  # star
        paper_text("Protein folding dynamics", "Molecular dynamics simulation."),  # dismissed
        paper_text("Protein folding by molecular dynamics", "A simulation study."),  # cand 0
        paper_text("Graph neural networks for citations", "Node classification."),
        paper_text("Yeast culture growth", "Growth rates of yeast."),  # cand 2: unrelated
    ]
    noise, _ = corpus([("astro", 30), ("speech", 30)])
    x, _ = vectorize(texts + noise)
    bg = x[6:] if with_background else None
    stars, cands = x[[0, 1]], x[[3, 4, 5]]
    plain = Ranker().fit(stars, background=bg).score(cands)
    dismissed = Ranker().fit(stars, dismissed=x[[2]], background=bg).score(cands)
    # Before: the folding-dynamics paper is a top-two pick. After dismissing a near twin of
    # it, it drops to last; the unrelated picks keep their scores.
    assert rank_of(plain, 0) < 2
    assert rank_of(dismissed, 0) == 2
    assert dismissed[0] < plain[0]
    np.testing.assert_allclose(dismissed[1:], plain[1:])


def test_dismissing_one_paper_of_an_interest_keeps_the_interest() -> None:
    texts, labels = corpus([("graphs", 30), ("astro", 30), ("bio", 20), ("speech", 20)])
    x, _ = vectorize(texts)
    # Four graph stars and four astronomy stars; the user dismisses one more graph paper.
    # "Not this one" must not mean "no graphs at all": graph papers as close to a graph
    # star as to the dismissed paper stay, while the dismissed paper's nearest twins drop.
    star_rows, dismissed_row = [0, 1, 2, 3, 30, 31, 32, 33], 4
    cand_rows = [i for i in range(len(texts)) if i not in {*star_rows, dismissed_row}]
    cands = x[cand_rows]
    plain = Ranker().fit(x[star_rows], background=x).score(cands)
    ranker = Ranker().fit(x[star_rows], dismissed=x[[dismissed_row]], background=x)
    scores = ranker.score(cands)
    def graphs_in_top(s: np.ndarray) -> int:
        return [labels[cand_rows[i]] for i in select(s, cands, 10)].count("graphs")

    assert graphs_in_top(scores) >= 2 and graphs_in_top(scores) >= graphs_in_top(plain) - 1
    # The candidates nearer the dismissed paper than any star are the ones pushed down.
    cos = (_unit(cands) @ _unit(x[[dismissed_row]]).T).toarray().ravel()
    to_stars = (_unit(cands) @ _unit(x[star_rows]).T).toarray().max(axis=1)
    twins = np.flatnonzero(cos > to_stars + 0.05)
    assert len(twins) and np.all(scores[twins] < plain[twins])


def _unit(rows: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-12)) @ rows)


@pytest.mark.parametrize("with_background", [True, False])
def test_two_interests_both_reach_the_top_ten(with_background: bool) -> None:
    texts, labels = corpus([("graphs", 30), ("astro", 8), ("bio", 20), ("speech", 20)])
    x, _ = vectorize(texts)
    # Four graph stars, two astronomy stars: the minority interest must not be drowned by
    # the thirty graph papers that each look a bit like several stars.
    star_rows = [0, 1, 2, 3, 30, 31]
    cand_rows = [i for i in range(len(texts)) if i not in star_rows]
    ranker = Ranker().fit(x[star_rows], background=x if with_background else None)
    cands = x[cand_rows]
    top = select(ranker.score(cands), cands, 10)
    topics = {labels[cand_rows[i]] for i in top}
    assert {"graphs", "astro"} <= topics
    assert not topics & {"bio", "speech"}


def test_single_star_interest_keeps_a_share_of_the_top_ten() -> None:
    texts, labels = corpus([("graphs", 30), ("astro", 8), ("bio", 20), ("speech", 20)])
    x, _ = vectorize(texts)
    # Five graph stars and a single astronomy star, with the background the shell passes.
    star_rows = [0, 1, 2, 3, 4, 30]
    cand_rows = [i for i in range(len(texts)) if i not in star_rows]
    cands = x[cand_rows]
    top = select(Ranker().fit(x[star_rows], background=x).score(cands), cands, 10)
    assert sum(labels[cand_rows[i]] == "astro" for i in top) >= 2


def test_scores_are_deterministic() -> None:
    texts, _ = corpus([("graphs", 10), ("astro", 10), ("bio", 10)])
    x, names = vectorize(texts)
    runs = []
    for _ in range(2):
        ranker = Ranker().fit(x[[0, 10]], dismissed=x[[20]], background=x)
        runs.append(
            (
                ranker.score(x),
                select(ranker.score(x), x, 10, diversity=0.3),
                ranker.explain(x, names),
            )
        )
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_zero_stars_scores_zeros_and_explains_nothing() -> None:
    texts, _ = corpus([("graphs", 3), ("astro", 3)])
    x, names = vectorize(texts)
    ranker = Ranker().fit(x[:0], background=x)
    scores = ranker.score(x)
    assert scores.shape == (6,) and np.all(scores == 0)
    assert list(select(scores, x, 3)) == [0, 1, 2]  # ties broken by index
    assert ranker.explain(x[:2], names) == [Reason(None, ()), Reason(None, ())]


def test_empty_candidates_and_one_paper_corpus() -> None:
    x, names = vectorize([paper_text("Graph neural networks", "Message passing on graphs.")])
    ranker = Ranker().fit(x, background=x)
    assert ranker.score(x[:0]).shape == (0,)
    assert select(ranker.score(x[:0]), x[:0], 10).shape == (0,)
    assert ranker.explain(x[:0], names) == []
    assert ranker.score(x).shape == (1,) and np.isfinite(ranker.score(x)).all()
    assert list(select(ranker.score(x), x, 10)) == [0]


def test_empty_corpus_vocabulary_still_ranks() -> None:
    # A corpus whose papers have no usable words: everything is a zero vector.
    vec = make_vectorizer(2)
    x = sp.csr_matrix(vec.fit_transform(["", "the"]))
    ranker = Ranker().fit(x[:1], background=x)
    scores = ranker.score(x)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_explain_names_nearest_star_and_shared_terms() -> None:
    texts = [
        paper_text("Dark matter halos in galaxy clusters", ""),
        paper_text("Protein folding with gene expression data", ""),
        paper_text("Galaxy cluster redshift survey of dark matter", ""),
        paper_text("Enzyme kinetics of proteins folded", ""),  # stems: protein~, fold~
        paper_text("Speech recognition for noisy audio", ""),
    ]
    x, names = vectorize(texts)
    ranker = Ranker().fit(x[[0, 1]])
    reasons = ranker.explain(x[[2, 3]], names)
    assert [r.star for r in reasons] == [0, 1]
    for reason, cand, star in zip(reasons, (2, 3), (0, 1), strict=True):
        assert len(reason.terms) <= 3
        for term in reason.terms:
            assert term in texts[cand].lower() and term in texts[star].lower()
    # Shared stems ("prote", "foldi") drive the match but are not words to show a user.
    assert reasons[1].terms == ()
    assert reasons[0].terms and all(
        t in {"galaxy", "dark", "matter", "dark matter", "cluster", "clusters"}
        for t in reasons[0].terms
    )


def test_explain_never_repeats_a_word_across_terms() -> None:
    texts = [
        paper_text("Efficient fine tuning of sparse language models", "Fine tuning sparse."),
        paper_text("Sparse fine tuning for language models at scale", "Fine tuning, sparse."),
        paper_text("Robot grasping with tactile sensors", ""),
        paper_text("Weather forecasting with graph networks", ""),
    ]
    x, names = vectorize(texts)
    (reason,) = Ranker().fit(x[[0]]).explain(x[[1]], names)
    words = [w for term in reason.terms for w in term.split()]
    assert reason.terms and len(words) == len(set(words)), reason.terms


def test_star_weights_favour_the_heavier_star() -> None:
    texts, _ = corpus([("graphs", 6), ("astro", 6)])
    x, _ = vectorize(texts)
    stars, cands = x[[0, 6]], x[[1, 2, 7, 8]]
    up_graph = Ranker().fit(stars, star_weights=np.array([1.0, 0.1])).score(cands)
    up_astro = Ranker().fit(stars, star_weights=np.array([0.1, 1.0])).score(cands)
    assert up_graph[:2].min() > up_graph[2:].max()
    assert up_astro[2:].min() > up_astro[:2].max()
    with pytest.raises(ValueError):
        Ranker().fit(stars, star_weights=np.array([1.0]))


# -- select ---------------------------------------------------------------------------------
def test_select_ties_by_index_and_bounds() -> None:
    x = sp.identity(5, format="csr")
    assert list(select(np.array([1.0, 2.0, 2.0, 0.0, 2.0]), x, 3)) == [1, 2, 4]
    assert list(select(np.array([1.0, 2.0]), x[:2], 10)) == [1, 0]
    many = np.tile([1.0, 0.0, 2.0], 40)  # long enough for an unstable sort to show
    assert list(select(many, sp.identity(120, format="csr"), 6)) == [2, 5, 8, 11, 14, 17]
    assert select(np.zeros(0), x[:0], 5).shape == (0,)


def test_select_diversity_breaks_up_near_duplicates() -> None:
    texts = [
        "graph neural network message passing",
        "graph neural network message passing",
        "graph neural network message passing",
        "graph neural network embedding",
        "galaxy cluster dark matter graph",
    ]
    x, _ = vectorize(texts)
    scores = np.array([1.0, 0.99, 0.98, 0.9, 0.8])
    assert list(select(scores, x, 3, diversity=0.0)) == [0, 1, 2]
    diverse = list(select(scores, x, 3, diversity=0.5))
    assert diverse[0] == 0 and 1 not in diverse[:2] and 2 not in diverse[:2]


@pytest.mark.parametrize("n", [0, 1, 2, 7, 3000])
def test_the_sorting_unique_gives_numpys_arrays(n: int) -> None:
    from paperdigest.ranking import sorted_unique, unique_inverse

    values = np.random.default_rng(n).integers(0, 40, n).astype(np.int32)
    expected, inverse = np.unique(values, return_inverse=True)
    got, got_inverse = unique_inverse(values)
    assert got.tolist() == expected.tolist() and got.dtype == expected.dtype
    assert got_inverse.tolist() == inverse.ravel().tolist()
    assert sorted_unique(values).tolist() == expected.tolist()
