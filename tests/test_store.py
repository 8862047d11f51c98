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
