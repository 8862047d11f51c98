"""The persisted TF-IDF index: reuse, incremental appends, corruption, and equal results."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from paperdigest import corpus_index
from paperdigest.corpus_index import MANIFEST, build_index, index_dir, open_index
from paperdigest.features import make_vectorizer, paper_text
from paperdigest.models import PaperRecord
from paperdigest.service import select_picks
from paperdigest.store import Store


def _fresh(store: Store) -> Store:
    """The same database through a new connection, with the in-process memo forgotten."""
    corpus_index._MEMO.clear()
    return Store.open(store.path.parent)


def _no_full_build(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the vocabulary was refitted")

    monkeypatch.setattr(corpus_index, "_full_build", refuse)


def _star_some(store: Store, n: int = 3) -> None:
    rows = store.conn.execute("SELECT pk FROM papers ORDER BY pk LIMIT ?", (n,)).fetchall()
    for (pk,) in rows:
        store.star("default", store.papers([pk])[0])


def _new_records(n: int, day: date, first: int = 0) -> list[PaperRecord]:
    return [
        PaperRecord(
            title=f"Sparse retrieval with learned graph transformers number {i}",
            abstract="We study transformers for language model retrieval and graph attention. "
            f"Variant {i} improves attention over sparse graphs.",
            arxiv_id=f"2611.{10000 + i}",
            published=day,
        )
        for i in range(first, first + n)
    ]


def _dense(index: corpus_index.CorpusIndex) -> np.ndarray:
    return index.matrix.toarray()


def test_the_cache_is_written_and_reused_across_opens(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_index(store)
    assert (index_dir(store) / MANIFEST).is_file()
    assert first.n_rows == store.count_papers()
    _no_full_build(monkeypatch)
    with _fresh(store) as again:
        second = open_index(again)
    np.testing.assert_array_equal(first.pks, second.pks)
    np.testing.assert_array_equal(first.feature_names, second.feature_names)
    np.testing.assert_array_equal(_dense(first), _dense(second))
    assert first.term_embedding is not None
    np.testing.assert_array_equal(first.term_embedding, second.term_embedding)


def test_the_cached_index_equals_a_fresh_build(store: Store) -> None:
    cached = open_index(store)
    fresh = build_index(store)
    np.testing.assert_array_equal(cached.feature_names, fresh.feature_names)
    np.testing.assert_allclose(_dense(cached), _dense(fresh))
    assert fresh.term_embedding is not None
    np.testing.assert_allclose(cached.term_embedding, fresh.term_embedding)


def test_a_sampled_fit_streamed_to_disk_equals_one_built_in_memory(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = store.count_papers()
    monkeypatch.setattr(corpus_index, "FIT_SAMPLE", max(2, n // 2))  # the sampled-fit path
    monkeypatch.setattr(corpus_index, "CHUNK", 7)  # several chunks, a ragged last one
    monkeypatch.setattr(corpus_index, "COPY_BLOCK", 5)  # several copy blocks per file
    cached = open_index(store)
    assert not cached.segments[0].data.flags.owndata  # a view of the memory-mapped file
    assert not list(index_dir(store).glob(".*.raw"))
    fresh = build_index(store)
    np.testing.assert_array_equal(cached.pks, fresh.pks)
    np.testing.assert_array_equal(cached.listed_days, fresh.listed_days)
    np.testing.assert_array_equal(cached.feature_names, fresh.feature_names)
    np.testing.assert_array_equal(_dense(cached), _dense(fresh))
    with _fresh(store) as again:
        np.testing.assert_array_equal(_dense(open_index(again)), _dense(fresh))


def test_new_papers_are_appended_with_the_same_vocabulary(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = open_index(store)
    newest = store.conn.execute("SELECT max(listed) FROM papers").fetchone()[0]
    records = _new_records(5, date.fromisoformat(newest))
    store.ingest(records)
    _no_full_build(monkeypatch)
    with _fresh(store) as again:
        after = open_index(again)
        new_pks = [again.resolve(r.arxiv_id).pk for r in records]
    np.testing.assert_array_equal(before.feature_names, after.feature_names)
    assert after.n_rows == before.n_rows + 5
    expected = before.vectorizer.transform([paper_text(r.title, r.abstract) for r in records])
    got = after.take(after.rows_of(new_pks))
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-6)
    # The old rows are untouched.
    np.testing.assert_array_equal(after.take(np.arange(before.n_rows)).toarray(), _dense(before))
    assert after.listed_days[after.rows_of(new_pks)].tolist() == [
        date.fromisoformat(newest).toordinal()
    ] * 5


def _assert_vectors_kept(index: corpus_index.CorpusIndex, store: Store | None = None) -> None:
    """The kept paper vectors are what the term vectors make of the kept rows, and the kept
    title n-grams what the title vectorizer makes of the papers' current titles."""
    assert index.term_vectors is not None and index.vector_segments is not None
    rows = np.arange(index.n_rows)
    np.testing.assert_allclose(
        index.take_vectors(rows), index.term_vectors.embed(index.take(rows)), atol=1e-6
    )
    if store is not None:
        assert index.title_vectorizer is not None
        titles = {p.pk: p.title for p in store.papers([int(pk) for pk in index.pks])}
        expected = index.title_vectorizer.transform([titles[int(pk)] for pk in index.pks])
        kept = index.take_titles(rows)
        assert kept is not None and kept.shape == expected.shape
        np.testing.assert_allclose(kept.toarray(), expected.toarray(), rtol=1e-6)


def test_paper_vectors_and_titles_are_kept_through_appends_changes_and_merges(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_index, "CHUNK", 7)  # the first segment embedded in chunks
    monkeypatch.setattr(corpus_index, "MAX_SEGMENTS", 2)  # the third append merges
    _assert_vectors_kept(open_index(store), store)
    newest = date.fromisoformat(store.conn.execute("SELECT max(listed) FROM papers").fetchone()[0])
    _no_full_build(monkeypatch)
    for round_ in range(3):
        store.ingest(_new_records(4, newest, first=4 * round_))
        pk = int(store.conn.execute("SELECT min(pk) FROM papers").fetchone()[0])
        store.conn.execute(
            "UPDATE papers SET abstract = abstract || ?, title = title || ? WHERE pk = ?",
            (f" Galaxy redshift survey {round_}.", f" revisited {round_}", pk),
        )
        with _fresh(store) as again:
            index = open_index(again)
            _assert_vectors_kept(index, again)
            assert index.n_rows == again.count_papers()
    assert len(index.segments) == 2  # merged, vectors and all


def test_merges_join_the_smallest_neighbours_and_never_the_first_segment() -> None:
    assert corpus_index._merge_point([50_000, 900, 4_000, 100, 300]) == 3
    assert corpus_index._merge_point([50_000, 900, 4_000]) == 1
    assert corpus_index._merge_point([10, 900, 4_000, 100, 300]) == 3  # the first stays
    assert corpus_index._merge_point([50_000, 5, 5, 5]) == 1  # ties: the older pair
    with pytest.raises(ValueError):
        corpus_index._merge_point([50_000, 900])


def test_many_appends_keep_few_segments_and_every_row(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_index, "MAX_SEGMENTS", 3)
    open_index(store)

    def segment_names() -> list[str]:
        manifest = json.loads((index_dir(store) / MANIFEST).read_text())
        return [entry["name"] for entry in manifest["segments"]]

    full_build = segment_names()[0]
    newest = date.fromisoformat(store.conn.execute("SELECT max(listed) FROM papers").fetchone()[0])
    _no_full_build(monkeypatch)
    for round_, size in enumerate([5, 1, 3, 1, 1, 4]):
        store.ingest(_new_records(size, newest, first=10 * round_))
        with _fresh(store) as again:
            index = open_index(again)
            assert len(segment_names()) <= 3 and segment_names()[0] == full_build
            assert sorted(index.pks.tolist()) == sorted(again.texts()[0])
            _assert_vectors_kept(index, again)


def test_a_changed_abstract_is_re_transformed(store: Store) -> None:
    before = open_index(store)
    pk = int(before.pks[0])
    paper = store.papers([pk])[0]
    longer = paper.abstract + " Quantum entanglement of neural retrieval transformers."
    store.conn.execute("UPDATE papers SET abstract = ? WHERE pk = ?", (longer, pk))
    with _fresh(store) as again:
        after = open_index(again)
    expected = before.vectorizer.transform([paper_text(paper.title, longer)]).toarray()
    np.testing.assert_allclose(after.take(after.rows_of([pk])).toarray(), expected, rtol=1e-6)
    assert after.n_rows == before.n_rows


def test_a_grown_corpus_refits_the_vocabulary(store: Store) -> None:
    open_index(store)
    fit_count = json.loads((index_dir(store) / MANIFEST).read_text())["fit_count"]
    grow = int(fit_count * corpus_index.REFIT_GROWTH) + 2
    store.ingest(_new_records(grow, date(2030, 1, 1)))
    with _fresh(store) as again:
        after = open_index(again)
        assert after.n_rows == again.count_papers()
    manifest = json.loads((index_dir(store) / MANIFEST).read_text())
    assert manifest["fit_count"] == fit_count + grow


@pytest.mark.parametrize(
    "victim", ["manifest", "vectorizer", "segment", "vectors", "titles", "settings"]
)
def test_a_corrupt_cache_is_rebuilt(store: Store, victim: str) -> None:
    # Read before the damage: the built index is memory-mapped from the very files damaged
    # in place below (the cache itself only ever writes new files).
    before = _dense(open_index(store))
    directory = index_dir(store)
    manifest = json.loads((directory / MANIFEST).read_text())
    if victim == "manifest":
        (directory / MANIFEST).write_text("{not json")
    elif victim == "vectorizer":
        (directory / manifest["vectorizer"]).write_bytes(b"\x80garbage")
    elif victim in ("segment", "vectors", "titles"):
        part = {"segment": "data", "vectors": "vectors", "titles": "tindptr"}[victim]
        path = directory / f"{manifest['segments'][0]['name']}.{part}.npy"
        path.write_bytes(path.read_bytes()[:100])
    else:
        manifest["settings"] = "another version"
        (directory / MANIFEST).write_text(json.dumps(manifest))
    with _fresh(store) as again:
        after = open_index(again)
    np.testing.assert_allclose(_dense(after), before)
    _assert_vectors_kept(after)
    assert json.loads((directory / MANIFEST).read_text())["settings"] != "another version"


def test_an_unreadable_vectorizer_is_rebuilt_when_new_papers_need_it(
    store: Store,
) -> None:
    open_index(store)
    directory = index_dir(store)
    manifest = json.loads((directory / MANIFEST).read_text())
    (directory / manifest["vectorizer"]).write_bytes(b"\x80garbage")
    newest = date.fromisoformat(store.conn.execute("SELECT max(listed) FROM papers").fetchone()[0])
    store.ingest(_new_records(3, newest))
    with _fresh(store) as again:
        after = open_index(again)
        assert after.n_rows == again.count_papers()
        _assert_vectors_kept(after, again)
    assert json.loads((directory / MANIFEST).read_text())["vectorizer"] != manifest["vectorizer"]


def test_a_digest_from_an_up_to_date_index_does_not_import_scikit_learn(
    data_dir: Path,
) -> None:
    with Store.open(data_dir) as store:
        _star_some(store)
        open_index(store)
    # A fresh interpreter, as the CLI runs: scikit-learn takes about a second to import.
    script = (
        "import sys; from datetime import date; from pathlib import Path; "
        "from paperdigest.store import Store; from paperdigest.service import build_digest; "
        f"store = Store.open(Path({str(data_dir)!r})); "
        "digest = build_digest(store, 'default', date.today(), 5, 7, 3); "
        "print(digest.count, digest.personalised, 'sklearn' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5", "True", "False"]


def test_select_picks_is_the_same_with_and_without_the_cache(store: Store) -> None:
    _star_some(store)
    without = select_picks(store, "default", 10, index=build_index(store))
    cold = select_picks(store, "default", 10)  # builds and writes the cache
    with _fresh(store) as again:
        warm = select_picks(again, "default", 10)  # reads it
    assert without.personalised and without.picks
    for other in (cold, warm):
        assert [(p.paper.pk, p.terms, p.because_of) for p in other.picks] == [
            (p.paper.pk, p.terms, p.because_of) for p in without.picks
        ]
        assert [p.score for p in other.picks] == pytest.approx(
            [p.score for p in without.picks], abs=1e-6
        )


def test_the_lean_fit_chooses_the_same_vocabulary(store: Store) -> None:
    _pks, titles, abstracts = store.texts()
    docs = [paper_text(t, a) for t, a in zip(titles, abstracts, strict=True)]
    plain = make_vectorizer(len(docs)).fit(docs)
    lean = corpus_index._lean_vocabulary(make_vectorizer(len(docs)), docs)
    assert lean == plain.vocabulary_


@pytest.mark.parametrize("merge_every", [3, 8_000])
def test_the_lean_fit_gives_the_idf_and_matrix_of_a_plain_fit(
    store: Store, monkeypatch: pytest.MonkeyPatch, merge_every: int
) -> None:
    _pks, titles, abstracts = store.texts()
    docs = [paper_text(t, a) for t, a in zip(titles, abstracts, strict=True)]
    monkeypatch.setattr(corpus_index, "LEAN_FIT_MIN", 1)
    monkeypatch.setattr(corpus_index, "MERGE_EVERY", merge_every)  # 3: many merges
    lean = corpus_index._fit(docs)
    plain = make_vectorizer(len(docs))
    expected = plain.fit_transform(docs)
    assert lean.vocabulary_ == plain.vocabulary_
    np.testing.assert_array_equal(lean.idf_, plain.idf_)
    np.testing.assert_array_equal(lean.transform(docs).toarray(), expected.toarray())


def test_the_lean_fit_cuts_at_max_features_by_total_count() -> None:
    docs = [f"alpha beta gamma{i % 3} delta{i % 2} omega" for i in range(40)]
    vectorizer = make_vectorizer(len(docs)).set_params(
        max_features=3, ngram_range=(1, 1), min_df=1, max_df=1.0
    )
    plain = make_vectorizer(len(docs)).set_params(
        max_features=3, ngram_range=(1, 1), min_df=1, max_df=1.0
    ).fit(docs)
    assert corpus_index._lean_vocabulary(vectorizer, docs) == plain.vocabulary_


def test_preview_does_not_change_the_database(data_dir: Path, cli) -> None:
    with Store.open(data_dir) as store:
        _star_some(store)
        before = store.conn.execute("SELECT count(*), max(pk) FROM papers").fetchone()[:]
    corpus_index._MEMO.clear()
    result = cli("--data-dir", str(data_dir), "preview")
    assert result.exit_code == 0, result.output
    assert (data_dir / "index" / MANIFEST).is_file()
    with Store.open(data_dir) as store:
        assert store.conn.execute("SELECT count(*), max(pk) FROM papers").fetchone()[:] == before


def test_an_empty_store_has_an_empty_index(tmp_path: Path) -> None:
    with Store.open(tmp_path / "empty") as store:
        index = open_index(store)
    assert index.n_rows == 0
    assert not (tmp_path / "empty" / "index" / MANIFEST).exists()
