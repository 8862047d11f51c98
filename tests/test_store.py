"""The SQLite store: migrations, merging, search and concurrent use."""

from __future__ import annotations

import sqlite3
import threading
from datetime import date
from pathlib import Path

import pytest

from paperdigest.errors import AmbiguousError, NotFoundError, PaperdigestError
from paperdigest.models import PaperRecord
from paperdigest.store import DB_NAME, SCHEMA_VERSION, Store


def record(title: str, **fields) -> PaperRecord:
    return PaperRecord(title=title, abstract=fields.pop("abstract", f"About {title}."), **fields)


def test_a_new_store_is_migrated_to_the_current_schema(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(PaperdigestError, match="newer paperdigest"):
        Store.open(tmp_path)


def test_a_corrupt_database_file_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PaperdigestError, match="cannot open the database"):
        Store.open(tmp_path)


def test_the_same_paper_twice_is_one_paper_with_the_fuller_fields(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        first = store.ingest([record("Deep Nets", abstract="Short.", listed_label="Mar 11")])
        second = store.ingest([record("deep  nets", abstract="A much longer abstract here.")])
        assert (first.new, second.updated) == (1, 1)
        (paper,) = store.papers([1])
        assert paper.title == "Deep Nets"
        assert paper.abstract == "A much longer abstract here."
        assert paper.listed_label == "Mar 11"


def test_a_title_only_paper_gains_its_arxiv_id_and_keeps_its_stars(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.ingest([record("Sparse Things")])
        paper = store.resolve("Sparse Things")
        store.star("default", paper)
        store.ingest([record("Sparse things!", arxiv_id="2503.11731", published=date(2025, 3, 18))])
        moved = store.resolve("arXiv:2503.11731v2")
        assert moved.pk == paper.pk and moved.id == "2503.11731"
        assert [p.id for p, _ in store.starred("default")] == ["2503.11731"]
        assert moved.listed == date(2025, 3, 18)


def test_resolve_by_id_phrase_or_words(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.ingest([record("Once-for-All: Train One Network"), record("All for One")])
        assert store.resolve("once for all").title == "Once-for-All: Train One Network"
        with pytest.raises(AmbiguousError):
            store.resolve("one")
        with pytest.raises(NotFoundError):
            store.resolve("quantum gravity")


def test_search_sees_updated_text(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.ingest([record("Plain Title", abstract="nothing")])
        assert store.search("zebra") == []
        store.ingest([record("Plain Title", abstract="a zebra appears in the longer abstract")])
        assert [p.title for p, _ in store.search("zebra")] == ["Plain Title"]


def test_two_writers_at_once_neither_fails_nor_loses_data(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.ingest([record(f"Paper {i}") for i in range(40)])
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            with Store.open(tmp_path) as own:
                papers = own.papers(list(range(1, 41)))
                for paper in papers[offset::2]:
                    own.star("default", paper)
                own.ingest([record(f"Extra {offset} {i}") for i in range(50)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store.open(tmp_path) as store:
        assert len(store.starred("default")) == 40
        assert store.count_papers() == 140
        assert store.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _table(store: Store) -> list[tuple]:
    columns = [r[1] for r in store.conn.execute("PRAGMA table_info(papers)") if r[1] != "added_at"]
    return [tuple(r) for r in store.conn.execute(f"SELECT {', '.join(columns)} FROM papers")]


def _tricky_batch() -> list[PaperRecord]:
    """Duplicates within one batch: by id, by title, title-only then arXiv, versions."""
    return [
        record("Sparse Things", abstract="Short."),
        record("Dense Things", arxiv_id="2501.00001", version=1, abstract="v1 text"),
        record("sparse things!", arxiv_id="2501.00002", published=date(2025, 1, 2)),
        record("Sparse Things", abstract="A longer abstract about sparse things."),
        record("Dense Things Revised", arxiv_id="2501.00001", version=2, abstract="v2 text"),
        record("dense things revised", abstract="The fullest abstract of them all, really."),
        record("Dense Things", arxiv_id="2501.00001", version=1, upvotes=3),
        record("Other", arxiv_id="2501.00003", authors=("A",)),
        record("Other", arxiv_id="2501.00003", authors=("A", "B"), categories=("cs.CL",)),
        record("Untitled Seed"),
        record("Untitled  Seed", arxiv_id="2501.00004"),
        record("Untitled Seed", arxiv_id="2501.00005"),
        record("Untitled Seed"),
        record("Sparse Things, Extended", arxiv_id="2501.00002", upvotes=5),
        record("Renamed Seed", arxiv_id="2501.00004", upvotes=1),
    ]


def test_one_batch_with_duplicates_merges_like_records_one_at_a_time(tmp_path: Path) -> None:
    existing = [record("Sparse Things", abstract="Stored."), record("Kept", arxiv_id="2401.1")]
    batch = _tricky_batch()
    with Store.open(tmp_path / "bulk") as bulk, Store.open(tmp_path / "seq") as seq:
        bulk.ingest(existing, today=date(2025, 1, 1))
        seq.ingest(existing, today=date(2025, 1, 1))
        stats = bulk.ingest(batch, today=date(2025, 1, 3))
        totals = [seq.ingest([r], today=date(2025, 1, 3)) for r in batch]
        assert _table(bulk) == _table(seq)
        assert (stats.new, stats.updated, stats.unchanged) == (
            sum(t.new for t in totals),
            sum(t.updated for t in totals),
            sum(t.unchanged for t in totals),
        )
        # And again: nothing changes.
        again = bulk.ingest(batch, today=date(2025, 1, 3))
        assert (again.new, again.updated) == (0, 0)
        assert _table(bulk) == _table(seq)


def test_batches_span_chunks_and_report_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import paperdigest.store as store_module

    monkeypatch.setattr(store_module, "INGEST_CHUNK", 3)
    monkeypatch.setattr(store_module, "INGEST_PROGRESS_EVERY", 2)
    batch = _tricky_batch()
    seen: list[int] = []
    with Store.open(tmp_path / "bulk") as bulk, Store.open(tmp_path / "seq") as seq:
        bulk.ingest(batch, today=date(2025, 1, 3), progress=seen.append)
        for r in batch:
            seq.ingest([r], today=date(2025, 1, 3))
        assert _table(bulk) == _table(seq)
    assert seen == [2, 4, 6, 8, 10, 12, 14, 15]


def test_a_paper_is_listed_when_a_source_lists_it_and_a_later_listing_renews_it(
    tmp_path: Path,
) -> None:
    old_paper = dict(arxiv_id="1908.09791", published=date(2019, 8, 26))
    with Store.open(tmp_path) as store:
        store.ingest([record("Once for All", **old_paper, listed=date(2025, 3, 18))])
        assert store.resolve("1908.09791").listed == date(2025, 3, 18)
        store.ingest([record("Once for All", **old_paper, listed=date(2025, 3, 20))])
        assert store.resolve("1908.09791").listed == date(2025, 3, 20)
        stats = store.ingest([record("Once for All", **old_paper, listed=date(2025, 3, 18))])
        assert (stats.unchanged, store.resolve("1908.09791").listed) == (1, date(2025, 3, 20))


def test_a_seed_paper_takes_the_listing_day_of_the_first_source_that_dates_it(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path) as store:
        store.ingest([record("Once for All")], today=date(2026, 11, 24))
        assert store.resolve("Once for All").listed == date(2026, 11, 24)
        store.ingest([record("Once for All", arxiv_id="1908.09791",
                             published=date(2019, 8, 26), listed=date(2025, 3, 18))])
        assert store.resolve("1908.09791").listed == date(2025, 3, 18)
