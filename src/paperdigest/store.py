"""SQLite storage: papers, per-profile stars and dismissals, and what each digest showed.

One file in the data directory. WAL mode and a busy timeout let two commands run at
once; the schema is versioned with `PRAGMA user_version` and migrated on open.
Stars, dismissals and history point at `papers.pk`, so they follow a paper whose public
id changes (a seed paper that later gains its arXiv id).
"""

from __future__ import annotations

import json
import re
import sqlite3
from bisect import insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from paperdigest.errors import AmbiguousError, NotFoundError, PaperdigestError
from paperdigest.follows import Action, Field, Rule, keyword_words, normalise_rule_value
from paperdigest.ids import TITLE_HASH_LENGTH, normalise_arxiv_id, normalise_title, title_hash
from paperdigest.merge import merged_columns, record_columns
from paperdigest.models import Paper, PaperRecord
from paperdigest.parsers.text import clamp_dates, safe_record
from paperdigest.validate import profile_name_problem
from paperdigest.window import latest_real_day, window_end

DB_NAME = "paperdigest.sqlite3"
# Written beside the database when it is created: if the database is later found empty
# (truncated to 0 bytes, replaced), this says data existed and is gone.
MARKER_NAME = ".paperdigest-created"
# The index cache directory (corpus_index.INDEX_DIR): its manifest is the same sign for a
# data directory made before the marker existed.
_INDEX_MANIFEST = ("index", "manifest.json")
BUSY_TIMEOUT_MS = 30_000
INGEST_PROGRESS_EVERY = 5_000
# Records looked up at once by `Store.ingest`.
INGEST_CHUNK = 5_000
# The score `search` gives a paper named by its id: above any full-text match.
EXACT_ID_SCORE = 1000.0

# Each entry upgrades the schema by one version. Append; never edit a shipped entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE papers (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        arxiv_id TEXT UNIQUE,
        norm_title TEXT NOT NULL,
        title TEXT NOT NULL,
        abstract TEXT NOT NULL DEFAULT '',
        authors TEXT NOT NULL DEFAULT '[]',
        url TEXT,
        published TEXT,
        listed TEXT NOT NULL,
        listed_label TEXT,
        categories TEXT NOT NULL DEFAULT '[]',
        primary_category TEXT,
        version INTEGER,
        upvotes INTEGER,
        added_at TEXT NOT NULL
    );
    CREATE INDEX papers_norm_title ON papers(norm_title);
    CREATE INDEX papers_listed ON papers(listed);
    CREATE VIRTUAL TABLE papers_fts USING fts5(
        title, abstract, content='papers', content_rowid='pk'
    );
    CREATE TRIGGER papers_ai AFTER INSERT ON papers BEGIN
        INSERT INTO papers_fts(rowid, title, abstract)
        VALUES (new.pk, new.title, new.abstract);
    END;
    CREATE TRIGGER papers_ad AFTER DELETE ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract)
        VALUES ('delete', old.pk, old.title, old.abstract);
    END;
    CREATE TRIGGER papers_au AFTER UPDATE OF title, abstract ON papers BEGIN
        INSERT INTO papers_fts(papers_fts, rowid, title, abstract)
        VALUES ('delete', old.pk, old.title, old.abstract);
        INSERT INTO papers_fts(rowid, title, abstract)
        VALUES (new.pk, new.title, new.abstract);
    END;
    CREATE TABLE stars (
        profile TEXT NOT NULL,
        paper_pk INTEGER NOT NULL REFERENCES papers(pk),
        starred_at TEXT NOT NULL,
        PRIMARY KEY (profile, paper_pk)
    );
    CREATE TABLE dismissals (
        profile TEXT NOT NULL,
        paper_pk INTEGER NOT NULL REFERENCES papers(pk),
        dismissed_at TEXT NOT NULL,
        PRIMARY KEY (profile, paper_pk)
    );
    CREATE TABLE digests (
        id INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        digest_date TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        message_id TEXT,
        error TEXT
    );
    CREATE INDEX digests_profile_date ON digests(profile, digest_date);
    CREATE TABLE digest_items (
        digest_id INTEGER NOT NULL REFERENCES digests(id),
        paper_pk INTEGER NOT NULL REFERENCES papers(pk),
        rank INTEGER NOT NULL,
        score REAL NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (digest_id, paper_pk)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # Live sources (issue 4): richer paper fields, and one row per source per fetch.
    """
    ALTER TABLE papers ADD COLUMN updated TEXT;
    ALTER TABLE papers ADD COLUMN comments INTEGER;
    ALTER TABLE papers ADD COLUMN github TEXT;
    ALTER TABLE papers ADD COLUMN project_page TEXT;
    ALTER TABLE papers ADD COLUMN ai_summary TEXT;
    CREATE TABLE fetch_log (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        new INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX fetch_log_source ON fetch_log(source, id);
    """,
    # Speed (issue 5): papers whose indexed text or listing date changed, or that were
    # deleted, so the TF-IDF index cache re-transforms only those.
    """
    CREATE TABLE paper_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, pk INTEGER NOT NULL);
    CREATE TRIGGER papers_changes_au AFTER UPDATE OF title, abstract, listed ON papers
    WHEN old.title IS NOT new.title OR old.abstract IS NOT new.abstract
        OR old.listed IS NOT new.listed
    BEGIN
        INSERT INTO paper_changes(pk) VALUES (new.pk);
    END;
    CREATE TRIGGER papers_changes_ad AFTER DELETE ON papers BEGIN
        INSERT INTO paper_changes(pk) VALUES (old.pk);
    END;
    """,
    # Live sources on real data (issue 11): what readers value from each source.
    """
    ALTER TABLE papers ADD COLUMN hf_page TEXT;
    ALTER TABLE papers ADD COLUMN github_stars INTEGER;
    ALTER TABLE papers ADD COLUMN organization TEXT;
    ALTER TABLE papers ADD COLUMN ai_keywords TEXT;
    ALTER TABLE papers ADD COLUMN arxiv_comment TEXT;
    ALTER TABLE papers ADD COLUMN doi TEXT;
    ALTER TABLE papers ADD COLUMN journal_ref TEXT;
    """,
    # Exactly once (issue 12): who holds a claim, and whether its message may be out.
    # in_flight: the payload was being sent when the row was last written;
    # maybe_count: attempts that may have been delivered (see ledger.py).
    """
    ALTER TABLE digests ADD COLUMN claimed_at TEXT;
    ALTER TABLE digests ADD COLUMN holder_pid INTEGER;
    ALTER TABLE digests ADD COLUMN holder_host TEXT;
    ALTER TABLE digests ADD COLUMN holder_start TEXT;
    ALTER TABLE digests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE digests ADD COLUMN data_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE digests ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE digests ADD COLUMN maybe_count INTEGER NOT NULL DEFAULT 0;
    """,
    # Follow and mute (issue 14): a profile's rules, and a note of each paper deleted by
    # `forget` (its stars, dismissals and digest lines go; the note says where it was).
    """
    CREATE TABLE rules (
        id INTEGER PRIMARY KEY,
        profile TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('follow', 'mute')),
        field TEXT NOT NULL CHECK (field IN ('author', 'keyword')),
        value TEXT NOT NULL,
        norm TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (profile, action, field, norm)
    );
    CREATE TABLE forgotten_papers (
        id INTEGER PRIMARY KEY,
        paper_pk INTEGER NOT NULL,
        paper_id TEXT NOT NULL,
        arxiv_id TEXT,
        title TEXT NOT NULL,
        forgotten_at TEXT NOT NULL,
        history TEXT NOT NULL DEFAULT '[]'
    );
    """,
    # arXiv's announcement feed (issue 16): the licence, and the announcement day.
    """
    ALTER TABLE papers ADD COLUMN license TEXT;
    ALTER TABLE papers ADD COLUMN announced TEXT;
    """,
    # Library import and profiles (issue 14): an index to match imported entries by DOI
    # (the column came with issue 11; DOIs ignore case, so the index is on its lower case),
    # and profiles created by name before they have any stars.
    """
    CREATE INDEX papers_doi_lower ON papers(lower(doi));
    CREATE TABLE profiles (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
    """,
    # Feedback from the email (issue 13): what each digest looked like when sent, for
    # "view in browser" and a preview after the send; and who stopped the mail.
    """
    CREATE TABLE digest_copies (
        digest_id INTEGER PRIMARY KEY REFERENCES digests(id),
        subject TEXT NOT NULL,
        html TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE TABLE unsubscribed (
        profile TEXT PRIMARY KEY,
        since TEXT NOT NULL,
        via TEXT NOT NULL
    );
    """,
    # Hostile input (issue 12): a paper stored with a date in the future (9999-12-31 cut
    # every later digest to one paper) counts from the day it was stored, as ingest now does
    # (a day ahead is a time zone, not the future: window.SOURCE_DAY_AHEAD).
    """
    UPDATE papers SET listed = substr(added_at, 1, 10)
    WHERE listed > date(added_at, '+1 day');
    UPDATE papers SET published = substr(added_at, 1, 10)
    WHERE published > date(added_at, '+1 day');
    UPDATE papers SET updated = substr(added_at, 1, 10)
    WHERE updated > date(added_at, '+1 day');
    UPDATE papers SET announced = substr(added_at, 1, 10)
    WHERE announced > date(added_at, '+1 day');
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
# Per-profile tables that hold delivery promises: the ledger and an unsubscribe.
_LEDGER_TABLES = frozenset({"digests", "unsubscribed"})


@dataclass(frozen=True)
class FetchEntry:
    """One source's fetch, as the fetch log keeps it."""

    source: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    new: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None


# A digest's papers count as shown once it went out, may have gone out, or is on its way.
_SHOWN = "(digests.status IN ('sent', 'maybe') OR digests.in_flight)"


def _rule(row: sqlite3.Row) -> Rule:
    return Rule(Action(row["action"]), Field(row["field"]), row["value"])


@dataclass
class ProfileMarks:
    """A profile's stars, dismissals, papers shown to it and rules, as paper pks."""

    starred: list[int] = field(default_factory=list)
    dismissed: list[int] = field(default_factory=list)
    shown: set[int] = field(default_factory=set)
    rules: list[Rule] = field(default_factory=list)


@dataclass
class IngestStats:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    # Records that were changed or skipped on the way in (a date in the future, a title
    # with nothing printable), one line each naming the paper.
    warnings: list[str] = field(default_factory=list)

    def add(self, other: IngestStats) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.warnings.extend(other.warnings)


def check_profile_name(name: str) -> str:
    problem = profile_name_problem(name)
    if problem is not None:
        raise PaperdigestError(problem)
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fts_query(text: str) -> str:
    # Quote every word so user input is never read as FTS5 syntax.
    words = re.findall(r"\w+", text)
    return " ".join(f'"{w}"' for w in words)


class Store:
    """A connection to one paperdigest database. Use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # Set by `open` when the database was found empty where one with data had been.
        self.started_afresh: str | None = None

    @classmethod
    def open(cls, data_dir: Path) -> Store:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PaperdigestError(f"cannot create data directory {data_dir}: {exc}") from exc
        path = data_dir / DB_NAME
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(conn, path)
            fresh = store._is_blank()
            store._migrate()
        except sqlite3.DatabaseError as exc:
            raise PaperdigestError(f"cannot open the database {path}: {exc}") from exc
        if fresh:
            store._note_creation(data_dir)
        return store

    def _is_blank(self) -> bool:
        """No schema at all: a new database, or one emptied behind our back."""
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        tables = self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        return version == 0 and tables == 0

    def _note_creation(self, data_dir: Path) -> None:
        marker = data_dir / MARKER_NAME
        if marker.exists() or data_dir.joinpath(*_INDEX_MANIFEST).exists():
            try:
                since = marker.read_text(encoding="utf-8").strip() or "earlier"
            except OSError:
                since = "earlier"
            self.started_afresh = (
                f"the database {self.path} was empty (truncated or replaced), though this "
                f"data directory held one since {since}: started afresh, and its stars, "
                "dismissals and digest history are gone (restore a backup of the file to "
                "get them back)"
            )
        with suppress(OSError):  # only a hint for later; never a reason to fail
            marker.write_text(_now() + "\n", encoding="utf-8")


    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front so concurrent writers queue."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            # SQLite may have rolled back already (a full disk does): a second ROLLBACK
            # would raise "cannot rollback" and hide the real error.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise PaperdigestError(
                f"{self.path} was written by a newer paperdigest (schema {version}); upgrade"
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction() as conn:
            # Re-read under the lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                for statement in _split_sql(MIGRATIONS[number]):
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- papers -------------------------------------------------------------------------

    def count_papers(self) -> int:
        return self.conn.execute("SELECT count(*) FROM papers").fetchone()[0]

    def ingest(
        self,
        records: Iterable[PaperRecord],
        today: date | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> IngestStats:
        """Insert or merge records in one transaction. Idempotent.

        Every record is first made safe here, whatever its source (`safe_record`: control
        characters, lone surrogates, lengths), and its dates after `today` are clamped to
        `today` and reported in `IngestStats.warnings`.
        Records are merged in order, exactly as one at a time, but looked up in chunks of
        `INGEST_CHUNK` (two indexed queries a chunk instead of two a record).
        `progress`, if given, is called with the number of records done so far after every
        `INGEST_PROGRESS_EVERY` records and once at the end.
        """
        stats = IngestStats()
        today = today or date.today()
        listed_default = today.isoformat()
        added_at = _now()
        done = 0
        source = _safe_records(records, today, stats.warnings)
        with self.transaction() as conn:
            while chunk := list(islice(source, INGEST_CHUNK)):
                self._ingest_chunk(conn, chunk, listed_default, added_at, stats)
                if progress is not None:
                    first = (done // INGEST_PROGRESS_EVERY + 1) * INGEST_PROGRESS_EVERY
                    for step in range(first, done + len(chunk) + 1, INGEST_PROGRESS_EVERY):
                        progress(step)
                done += len(chunk)
        if progress is not None:
            progress(done)
        return stats

    def _ingest_chunk(
        self,
        conn: sqlite3.Connection,
        chunk: list[PaperRecord],
        listed_default: str,
        added_at: str,
        stats: IngestStats,
    ) -> None:
        """Merge `chunk` in order against what the store holds, as sequential ingest would."""
        titles = [normalise_title(record.title) for record in chunk]
        known = _ChunkRows(conn, {r.arxiv_id for r in chunk if r.arxiv_id}, set(titles))
        for record, norm_title in zip(chunk, titles, strict=True):
            pk = known.match(record.arxiv_id, norm_title)
            if pk is None:
                columns = self._insert(conn, record, norm_title, listed_default, added_at)
                known.inserted(columns)
                stats.new += 1
                continue
            row = known.row(pk)
            changes = merged_columns(row, record)
            if record.arxiv_id and not row["arxiv_id"]:
                changes["id"] = record.arxiv_id  # the paper's public id becomes its arXiv id
            if "published" in changes and "listed" not in changes and not row["announced"]:
                # First dated by a source: it is listed when that source listed it, not on
                # the day it was loaded from a dump (nor moved off its arXiv announcement).
                changes["listed"] = record.listed.isoformat() if record.listed else changes[
                    "published"
                ]
            elif "announced" in changes and not (row["published"] or row["announced"]):
                changes["listed"] = changes["announced"]  # a dump's paper, now announced
            if changes:
                if "title" in changes:
                    changes["norm_title"] = normalise_title(changes["title"])
                assignments = ", ".join(f"{column} = ?" for column in changes)
                conn.execute(
                    f"UPDATE papers SET {assignments} WHERE pk = ?", (*changes.values(), pk)
                )
                known.updated(pk, changes)
                stats.updated += 1
            else:
                stats.unchanged += 1

    def update_existing(
        self, records: Sequence[PaperRecord], today: date | None = None
    ) -> IngestStats:
        """Merge records into the papers they name by arXiv id; never add a paper."""
        ids = sorted({r.arxiv_id for r in records if r.arxiv_id})
        known = {
            arxiv_id
            for (arxiv_id,) in self.conn.execute(
                "SELECT arxiv_id FROM papers WHERE arxiv_id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            )
        }
        return self.ingest([r for r in records if r.arxiv_id in known], today=today)

    def _new_id(self, record: PaperRecord) -> str:
        if record.arxiv_id:
            return record.arxiv_id
        paper_id = title_hash(record.title)
        taken = self.conn.execute("SELECT 1 FROM papers WHERE id = ?", (paper_id,)).fetchone()
        # Two different titles with the same short hash: keep both, the later one longer.
        return title_hash(record.title, TITLE_HASH_LENGTH + 4) if taken else paper_id

    def _insert(
        self,
        conn: sqlite3.Connection,
        record: PaperRecord,
        norm_title: str,
        listed: str,
        added_at: str,
    ) -> dict[str, Any]:
        """Insert a new paper; returns its columns, pk included."""
        columns: dict[str, Any] = {
            k: v for k, v in record_columns(record).items() if v is not None
        }
        columns.update(
            id=self._new_id(record),
            norm_title=norm_title,
            listed=columns.get("listed") or columns.get("published", listed),
            added_at=added_at,
        )
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        cursor = conn.execute(
            f"INSERT INTO papers ({names}) VALUES ({marks})", tuple(columns.values())
        )
        columns["pk"] = cursor.lastrowid
        return columns

    def papers(self, pks: Sequence[int]) -> list[Paper]:
        """Papers in the order of `pks`."""
        found: dict[int, Paper] = {}
        for start in range(0, len(pks), 500):
            chunk = list(pks[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            for row in self.conn.execute(f"SELECT * FROM papers WHERE pk IN ({marks})", chunk):
                found[row["pk"]] = _paper(row)
        return [found[pk] for pk in pks if pk in found]

    def texts(self) -> tuple[list[int], list[str], list[str]]:
        """Every paper's pk, title and abstract, in pk order, for vectorising."""
        pks: list[int] = []
        titles: list[str] = []
        abstracts: list[str] = []
        for pk, title, abstract in self.conn.execute(
            "SELECT pk, title, abstract FROM papers ORDER BY pk"
        ):
            pks.append(pk)
            titles.append(title)
            abstracts.append(abstract)
        return pks, titles, abstracts

    def newest(
        self, limit: int, exclude: set[int], keep: Callable[[Paper], bool] | None = None
    ) -> list[Paper]:
        rows = self.conn.execute("SELECT * FROM papers ORDER BY listed DESC, pk DESC")
        result: list[Paper] = []
        for row in rows:
            if row["pk"] in exclude:
                continue
            paper = _paper(row)
            if keep is not None and not keep(paper):
                continue
            result.append(paper)
            if len(result) == limit:
                break
        return result

    def window_first_day(self, window_days: int, today: date | None = None) -> str:
        """The first listing day (ISO) of the candidate window of `window_days` up to
        `today` (window.py says when it ends earlier); "" (every day) for no window."""
        if window_days <= 0:
            return ""
        day = today or date.today()
        end = window_end(self.newest_listed(day), window_days, day)
        return (end - timedelta(days=window_days)).isoformat()

    def trending(self, limit: int, window_days: int, today: date | None = None) -> list[Paper]:
        """Most upvoted papers listed within the candidate window up to `today`."""
        rows = self.conn.execute(
            "SELECT * FROM papers WHERE upvotes > 0 AND listed >= ? "
            "ORDER BY upvotes DESC, pk LIMIT ?",
            (self.window_first_day(window_days, today), limit),
        ).fetchall()
        return [_paper(row) for row in rows]

    def search(self, text: str, limit: int = 20) -> list[tuple[Paper, float]]:
        """Full-text search over titles and abstracts, best match first; a paper whose id
        or arXiv id (in any spelling) is the text comes first of all."""
        exact = self._by_id(text.strip())
        hits = [(exact, EXACT_ID_SCORE)] if exact is not None else []
        query = _fts_query(text)
        if not query:
            return hits
        rows = self.conn.execute(
            "SELECT papers.*, bm25(papers_fts, 5.0, 1.0) AS rank FROM papers_fts "
            "JOIN papers ON papers.pk = papers_fts.rowid "
            "WHERE papers_fts MATCH ? ORDER BY rank, papers.pk LIMIT ?",
            (query, limit),
        ).fetchall()
        hits += [(_paper(row), -row["rank"]) for row in rows
                 if exact is None or row["pk"] != exact.pk]
        return hits[:limit]

    def _by_id(self, ref: str) -> Paper | None:
        """The paper whose id, or arXiv id in any spelling, is `ref`."""
        for column, value in (("id", ref), ("arxiv_id", normalise_arxiv_id(ref))):
            if not value:
                continue
            row = self.conn.execute(
                f"SELECT * FROM papers WHERE {column} = ?", (value,)
            ).fetchone()
            if row is not None:
                return _paper(row)
        return None

    def resolve(self, ref: str) -> Paper:
        """A paper from an id, an arXiv id in any spelling, or title words naming one paper."""
        ref = ref.strip()
        if not ref:
            raise NotFoundError("give a paper id or some words of its title")
        found = self._by_id(ref)
        if found is not None:
            return found
        rows = self.conn.execute(
            "SELECT * FROM papers WHERE norm_title = ? ORDER BY pk", (normalise_title(ref),)
        ).fetchall()
        if not rows:
            words = re.findall(r"\w+", ref)
            if words:
                phrase = '"' + " ".join(words) + '"'
                for query in (f"title : {phrase}", "title : " + _fts_query(ref)):
                    rows = self.conn.execute(
                        "SELECT papers.* FROM papers_fts JOIN papers "
                        "ON papers.pk = papers_fts.rowid WHERE papers_fts MATCH ? "
                        "ORDER BY papers.pk LIMIT 6",
                        (query,),
                    ).fetchall()
                    if rows:
                        break
        if not rows:
            raise NotFoundError(
                f"no paper matches {ref!r}; try `paperdigest search {ref!r}` to find its id"
            )
        if len(rows) > 1:
            shown = "; ".join(f"{r['id']} {r['title'][:50]}" for r in rows[:5])
            more = " …" if len(rows) > 5 else ""
            raise AmbiguousError(
                f"{ref!r} matches several papers ({shown}{more}); use the id instead"
            )
        return _paper(rows[0])

    # -- stars and dismissals -----------------------------------------------------------

    def star(self, profile: str, paper: Paper) -> bool:
        """Star a paper; a starred paper is no longer dismissed. False if already starred."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM dismissals WHERE profile = ? AND paper_pk = ?", (profile, paper.pk)
            )
            cursor = conn.execute(
                "INSERT OR IGNORE INTO stars(profile, paper_pk, starred_at) VALUES (?, ?, ?)",
                (profile, paper.pk, _now()),
            )
        return cursor.rowcount == 1

    def unstar(self, profile: str, paper: Paper) -> bool:
        cursor = self.conn.execute(
            "DELETE FROM stars WHERE profile = ? AND paper_pk = ?", (profile, paper.pk)
        )
        return cursor.rowcount == 1

    def dismiss(self, profile: str, paper: Paper) -> bool:
        """Dismiss a paper; a dismissed paper is no longer starred. False if already so."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM stars WHERE profile = ? AND paper_pk = ?", (profile, paper.pk)
            )
            cursor = conn.execute(
                "INSERT OR IGNORE INTO dismissals(profile, paper_pk, dismissed_at) "
                "VALUES (?, ?, ?)",
                (profile, paper.pk, _now()),
            )
        return cursor.rowcount == 1

    def undismiss(self, profile: str, paper: Paper) -> bool:
        cursor = self.conn.execute(
            "DELETE FROM dismissals WHERE profile = ? AND paper_pk = ?", (profile, paper.pk)
        )
        return cursor.rowcount == 1

    def marks_of(self, profiles: Sequence[str]) -> dict[str, ProfileMarks]:
        """What ranking needs of many profiles, in four queries: starred pks (in the order
        of `starred`), dismissed pks (sorted), shown pks (as `shown_pks`) and rules."""
        marks = {name: ProfileMarks() for name in profiles}
        if not marks:
            return marks
        names = list(marks)
        places = ",".join("?" * len(names))
        for profile, pk in self.conn.execute(
            f"SELECT profile, paper_pk FROM stars WHERE profile IN ({places}) "
            "ORDER BY profile, starred_at, paper_pk", names,
        ):
            marks[profile].starred.append(pk)
        for profile, pk in self.conn.execute(
            f"SELECT profile, paper_pk FROM dismissals WHERE profile IN ({places}) "
            "ORDER BY profile, paper_pk", names,
        ):
            marks[profile].dismissed.append(pk)
        for profile, pk in self.conn.execute(
            "SELECT digests.profile, digest_items.paper_pk FROM digest_items JOIN digests "
            f"ON digests.id = digest_items.digest_id WHERE digests.profile IN ({places}) "
            f"AND {_SHOWN}", names,
        ):
            marks[profile].shown.add(pk)
        for row in self.conn.execute(
            f"SELECT profile, action, field, value FROM rules WHERE profile IN ({places}) "
            "ORDER BY id", names,
        ):
            marks[row["profile"]].rules.append(_rule(row))
        return marks

    def starred(self, profile: str) -> list[tuple[Paper, datetime]]:
        rows = self.conn.execute(
            "SELECT papers.*, stars.starred_at FROM stars JOIN papers "
            "ON papers.pk = stars.paper_pk WHERE profile = ? ORDER BY stars.starred_at, papers.pk",
            (profile,),
        ).fetchall()
        return [(_paper(row), datetime.fromisoformat(row["starred_at"])) for row in rows]

    def dismissed_pks(self, profile: str) -> list[int]:
        return [
            pk
            for (pk,) in self.conn.execute(
                "SELECT paper_pk FROM dismissals WHERE profile = ? ORDER BY paper_pk", (profile,)
            )
        ]

    def shown_pks(self, profile: str) -> set[int]:
        """Papers that went out, or may have gone out, in a digest to this profile."""
        return {
            pk
            for (pk,) in self.conn.execute(
                "SELECT digest_items.paper_pk FROM digest_items JOIN digests "
                "ON digests.id = digest_items.digest_id "
                f"WHERE digests.profile = ? AND {_SHOWN}",
                (profile,),
            )
        }

    def profiles(self) -> list[str]:
        """Profiles created by name, and any that has stars, dismissals or digests."""
        rows = self.conn.execute(
            "SELECT name FROM profiles UNION SELECT profile FROM stars "
            "UNION SELECT profile FROM dismissals UNION SELECT profile FROM digests "
            "UNION SELECT profile FROM rules ORDER BY 1"
        )
        return [row[0] for row in rows]

    # -- follow and mute rules ----------------------------------------------------------

    def add_rule(self, profile: str, rule: Rule) -> Rule | None:
        """Add a rule; returns the profile's rule that already says the same, if any."""
        with self.transaction() as conn:
            existing = next((r for r in self.rules(profile) if r.same_as(rule)), None)
            if existing is None:
                conn.execute(
                    "INSERT OR IGNORE INTO rules(profile, action, field, value, norm, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (profile, rule.action.value, rule.field.value, rule.value,
                     normalise_rule_value(rule.field, rule.value), _now()),
                )
        return existing

    def remove_rule(self, profile: str, rule: Rule) -> list[Rule]:
        """Remove every rule of the profile that says the same; returns them."""
        with self.transaction() as conn:
            gone = [r for r in self.rules(profile) if r.same_as(rule)]
            for old in gone:
                conn.execute(
                    "DELETE FROM rules WHERE profile = ? AND action = ? AND field = ? "
                    "AND value = ?",
                    (profile, old.action.value, old.field.value, old.value),
                )
        return gone

    def rules(self, profile: str) -> list[Rule]:
        """The profile's rules, oldest first."""
        return [
            _rule(row)
            for row in self.conn.execute(
                "SELECT action, field, value FROM rules WHERE profile = ? ORDER BY id",
                (profile,),
            )
        ]

    def window_papers(
        self,
        window_days: int,
        since: date | None = None,
        rules: Sequence[Rule] = (),
        today: date | None = None,
    ) -> list[Paper]:
        """Papers listed within the candidate window of `window_days` up to `today` (see
        window.py) and on or after `since`, newest first.
        Given rules, only those that may match one of them: a superset found with the
        full-text index and the authors column, which the exact matching (follows.py) then
        sorts, so a large window is not read whole."""
        args: list[Any] = [self.window_first_day(window_days, today)]
        sql = "SELECT * FROM papers WHERE listed >= ?"
        if since is not None:
            sql += " AND listed >= ?"
            args.append(since.isoformat())
        if rules:
            maybe, more = _rule_prefilter(rules)
            sql += f" AND ({maybe})"
            args += more
        rows = self.conn.execute(sql + " ORDER BY listed DESC, pk DESC", args)
        return [_paper(row) for row in rows]

    def newest_listed(self, today: date | None = None) -> date | None:
        """The newest listing day up to `latest_real_day(today)` (a paper dated further in
        the future is not news)."""
        value = self.conn.execute(
            "SELECT max(listed) FROM papers WHERE listed <= ?",
            (latest_real_day(today or date.today()).isoformat(),),
        ).fetchone()[0]
        return date.fromisoformat(value) if value else None

    # -- forgetting a paper -------------------------------------------------------------

    def forget(self, paper: Paper) -> list[str]:
        """Delete a paper and everything pointing at it; a note keeps where it was.

        Returns one line per profile mark or digest line that went with it.
        """
        with self.transaction() as conn:
            history: list[dict[str, Any]] = []
            for table, stamp in (("stars", "starred_at"), ("dismissals", "dismissed_at")):
                for profile, when in conn.execute(
                    f"SELECT profile, {stamp} FROM {table} WHERE paper_pk = ?", (paper.pk,)
                ):
                    history.append({"profile": profile, "what": table, "at": when})
            for profile, day, rank, reason in conn.execute(
                "SELECT digests.profile, digests.digest_date, digest_items.rank, "
                "digest_items.reason FROM digest_items JOIN digests "
                "ON digests.id = digest_items.digest_id WHERE digest_items.paper_pk = ? "
                "ORDER BY digests.id",
                (paper.pk,),
            ):
                history.append(
                    {"profile": profile, "what": "digest", "at": day, "rank": rank,
                     "reason": reason}
                )
            for table in ("stars", "dismissals", "digest_items"):
                conn.execute(f"DELETE FROM {table} WHERE paper_pk = ?", (paper.pk,))
            conn.execute("DELETE FROM papers WHERE pk = ?", (paper.pk,))
            conn.execute(
                "INSERT INTO forgotten_papers(paper_pk, paper_id, arxiv_id, title, "
                "forgotten_at, history) VALUES (?, ?, ?, ?, ?, ?)",
                (paper.pk, paper.id, paper.arxiv_id, paper.title, _now(),
                 json.dumps(history, ensure_ascii=False)),
            )
        def line(h: dict[str, Any]) -> str:
            day = str(h["at"])[:10]
            if h["what"] == "digest":
                return f"in {h['profile']}'s digest of {day}"
            verb = "starred" if h["what"] == "stars" else "dismissed"
            return f"{verb} by {h['profile']} on {day}"

        return [line(h) for h in history]

    def forgotten(self) -> list[tuple[str, str, str, list[dict[str, Any]]]]:
        """(paper id, title, forgotten at, history) of every forgotten paper."""
        return [
            (row["paper_id"], row["title"], row["forgotten_at"], json.loads(row["history"]))
            for row in self.conn.execute("SELECT * FROM forgotten_papers ORDER BY id")
        ]

    def add_profile(self, name: str) -> bool:
        """Create a profile by name; False if the store already knows it."""
        with self.transaction() as conn:
            if name in self.profiles():
                return False
            conn.execute(
                "INSERT INTO profiles(name, created_at) VALUES (?, ?)", (name, _now())
            )
        return True

    def remove_profile(self, name: str, *, keep_ledger: bool = False) -> dict[str, int]:
        """Delete everything a profile owns; rows deleted per table.

        Every table with a `profile` column is the profile's (stars, dismissals, digests,
        and any later per-profile table such as follow or mute rules), and so are the rows
        of any table that points at one of its digests (digest_items), so none is missed.
        With `keep_ledger` (the profile is still mailed, from the config), the ledger rows
        (`digests`: which day went out, under which Message-ID) and an unsubscribe stay, so
        removing a profile never sends a second digest today, nor mail it asked not to get.
        """
        deleted: dict[str, int] = {}
        with self.transaction() as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name"
                )
            ]
            owned = []
            for table in tables:
                for key in conn.execute(f'PRAGMA foreign_key_list("{table}")'):
                    if key["table"] == "digests":
                        deleted[table] = conn.execute(
                            f'DELETE FROM "{table}" WHERE "{key["from"]}" IN '
                            "(SELECT id FROM digests WHERE profile = ?)",
                            (name,),
                        ).rowcount
                if any(row[1] == "profile" for row in conn.execute(
                    f'PRAGMA table_info("{table}")'
                )):
                    owned.append(table)
            for table in owned:
                if keep_ledger and table in _LEDGER_TABLES:
                    continue
                deleted[table] = conn.execute(
                    f'DELETE FROM "{table}" WHERE profile = ?', (name,)
                ).rowcount
            deleted["profiles"] = conn.execute(
                "DELETE FROM profiles WHERE name = ?", (name,)
            ).rowcount
        return deleted

    # -- library import -----------------------------------------------------------------

    def match_keys(
        self, arxiv_ids: Iterable[str], dois: Iterable[str], titles: Iterable[str]
    ) -> list[tuple[int, str | None, str | None, str]]:
        """(pk, arxiv_id, DOI in lower case, norm_title) of every paper with one of these
        keys; `dois` match whatever their case."""
        rows: dict[int, tuple[int, str | None, str | None, str]] = {}
        keys = (("arxiv_id", arxiv_ids), ("lower(doi)", (d.lower() for d in dois)),
                ("norm_title", titles))
        for column, values in keys:
            wanted = sorted(set(values))
            if not wanted:
                continue
            # json_each: one parameter however many keys; the IN still uses the index.
            for row in self.conn.execute(
                "SELECT pk, arxiv_id, lower(doi), norm_title FROM papers "
                f"WHERE {column} IN (SELECT value FROM json_each(?)) ORDER BY pk",
                (json.dumps(wanted),),
            ):
                rows[row[0]] = tuple(row)
        return [rows[pk] for pk in sorted(rows)]

    def fill_dois(self, dois: dict[int, str]) -> int:
        """Give papers that have no DOI yet the one an import found; papers changed."""
        with self.transaction() as conn:
            return sum(
                conn.execute(
                    "UPDATE papers SET doi = ? WHERE pk = ? AND doi IS NULL", (doi, pk)
                ).rowcount
                for pk, doi in dois.items()
            )

    def starred_pks(self, profile: str) -> set[int]:
        return {
            pk
            for (pk,) in self.conn.execute(
                "SELECT paper_pk FROM stars WHERE profile = ?", (profile,)
            )
        }

    def star_many(self, profile: str, pks: Iterable[int]) -> int:
        """Star papers in one transaction, as `star` does each; how many were new stars."""
        added = 0
        now = _now()
        with self.transaction() as conn:
            for pk in pks:
                conn.execute(
                    "DELETE FROM dismissals WHERE profile = ? AND paper_pk = ?", (profile, pk)
                )
                added += conn.execute(
                    "INSERT OR IGNORE INTO stars(profile, paper_pk, starred_at) VALUES (?, ?, ?)",
                    (profile, pk, now),
                ).rowcount
        return added

    # -- fetch log and status (live sources) --------------------------------------------

    def log_fetch(self, entry: FetchEntry) -> None:
        self.conn.execute(
            "INSERT INTO fetch_log(source, started_at, finished_at, ok, new, updated, skipped, "
            "error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.source,
                entry.started_at.isoformat(timespec="seconds"),
                entry.finished_at.isoformat(timespec="seconds"),
                int(entry.ok),
                entry.new,
                entry.updated,
                entry.skipped,
                entry.error,
            ),
        )

    def last_fetch(self, source: str, *, ok_only: bool = False) -> FetchEntry | None:
        where = "source = ?" + (" AND ok = 1" if ok_only else "")
        row = self.conn.execute(
            f"SELECT * FROM fetch_log WHERE {where} ORDER BY id DESC LIMIT 1", (source,)
        ).fetchone()
        if row is None:
            return None
        return FetchEntry(
            source=row["source"],
            started_at=datetime.fromisoformat(row["started_at"]),
            finished_at=datetime.fromisoformat(row["finished_at"]),
            ok=bool(row["ok"]),
            new=row["new"],
            updated=row["updated"],
            skipped=row["skipped"],
            error=row["error"],
        )

    def count_added_since(self, since: datetime) -> int:
        """Dated papers first stored at or after `since` (an aware datetime)."""
        stamp = since.astimezone(UTC).isoformat(timespec="seconds")
        # Undated papers (seed dumps, files without dates) are not news, whenever loaded.
        return self.conn.execute(
            "SELECT count(*) FROM papers WHERE added_at >= ? AND published IS NOT NULL",
            (stamp,),
        ).fetchone()[0]

    def count_marks(self, profile: str) -> tuple[int, int]:
        """(stars, dismissals) of a profile."""
        stars = self.conn.execute(
            "SELECT count(*) FROM stars WHERE profile = ?", (profile,)
        ).fetchone()[0]
        dismissals = self.conn.execute(
            "SELECT count(*) FROM dismissals WHERE profile = ?", (profile,)
        ).fetchone()[0]
        return stars, dismissals

    def last_sent_digest(self, profile: str) -> tuple[date, datetime | None] | None:
        """(digest date, sent at) of the profile's latest sent digest."""
        row = self.conn.execute(
            "SELECT digest_date, sent_at FROM digests WHERE profile = ? AND status = 'sent' "
            "ORDER BY digest_date DESC, id DESC LIMIT 1",
            (profile,),
        ).fetchone()
        if row is None:
            return None
        sent = datetime.fromisoformat(row["sent_at"]) if row["sent_at"] else None
        return date.fromisoformat(row["digest_date"]), sent


class _ChunkRows:
    """The stored papers one ingest chunk can match, kept in step with the chunk's writes.

    Holds every row whose arxiv_id or norm_title is one of the chunk's, so matching a record
    needs no query. A row the chunk inserted or updated is re-read when matched again, so a
    duplicate within the chunk merges against exactly what sequential ingest would see.
    """

    def __init__(self, conn: sqlite3.Connection, arxiv_ids: set[str], titles: set[str]) -> None:
        self.conn = conn
        self.rows: dict[int, dict[str, Any] | None] = {}
        self.keys: dict[int, tuple[str | None, str]] = {}  # pk -> (arxiv_id, norm_title)
        self.by_arxiv: dict[str, int] = {}
        self.by_title: dict[str, list[int]] = {title: [] for title in titles}
        for column, values in (("arxiv_id", arxiv_ids), ("norm_title", titles)):
            if not values:
                continue
            # json_each: one parameter however large the chunk; the IN still uses the index.
            cursor = conn.execute(
                f"SELECT * FROM papers WHERE {column} IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(values)),),
            )
            for found in cursor:
                pk = found["pk"]
                if pk not in self.rows:
                    self._track(pk, found["arxiv_id"], found["norm_title"], dict(found))
        for pks in self.by_title.values():
            pks.sort()  # the title match takes the lowest pk, as ORDER BY pk LIMIT 1 did

    def _track(
        self, pk: int, arxiv_id: str | None, title: str, row: dict[str, Any] | None
    ) -> None:
        self.rows[pk] = row
        self.keys[pk] = (arxiv_id, title)
        if arxiv_id:
            self.by_arxiv[arxiv_id] = pk
        if title in self.by_title:
            self.by_title[title].append(pk)

    def match(self, arxiv_id: str | None, norm_title: str) -> int | None:
        """The pk sequential ingest would merge the record into, or None for a new paper."""
        if arxiv_id:
            pk = self.by_arxiv.get(arxiv_id)
            if pk is not None:
                return pk
        # A paper without an arXiv id, or one only known by title so far.
        for pk in self.by_title.get(norm_title, ()):
            if arxiv_id is None or self.keys[pk][0] is None:
                return pk
        return None

    def row(self, pk: int) -> dict[str, Any]:
        row = self.rows[pk]
        if row is None:
            row = dict(self.conn.execute("SELECT * FROM papers WHERE pk = ?", (pk,)).fetchone())
            self.rows[pk] = row
        return row

    def inserted(self, columns: dict[str, Any]) -> None:
        # A new pk is the largest, so appending keeps the title lists sorted.
        self._track(columns["pk"], columns.get("arxiv_id"), columns["norm_title"], None)

    def updated(self, pk: int, changes: dict[str, Any]) -> None:
        old_arxiv, old_title = self.keys[pk]
        arxiv_id = changes.get("arxiv_id", old_arxiv)
        title = changes.get("norm_title", old_title)
        self.keys[pk] = (arxiv_id, title)
        self.rows[pk] = None  # re-read if matched again
        if arxiv_id and arxiv_id != old_arxiv:
            self.by_arxiv[arxiv_id] = pk
        if title != old_title:
            if old_title in self.by_title:
                self.by_title[old_title].remove(pk)
            if title in self.by_title:
                insort(self.by_title[title], pk)


def _safe_records(
    records: Iterable[PaperRecord], today: date, warnings: list[str]
) -> Iterator[PaperRecord]:
    for record in records:
        record, clamped = clamp_dates(safe_record(record), today)
        if clamped:
            warnings.append(clamped)
        if not record.title.strip():
            warnings.append("a paper with no printable title; skipped")
            continue
        yield record


def _paper(row: sqlite3.Row) -> Paper:
    return Paper(
        pk=row["pk"],
        id=row["id"],
        title=row["title"],
        abstract=row["abstract"],
        authors=tuple(json.loads(row["authors"])),
        url=row["url"],
        listed=date.fromisoformat(row["listed"]),
        listed_label=row["listed_label"],
        upvotes=row["upvotes"],
        arxiv_id=row["arxiv_id"],
        hf_page=row["hf_page"],
        github=row["github"],
        github_stars=row["github_stars"],
        project_page=row["project_page"],
        organization=row["organization"],
        ai_keywords=tuple(json.loads(row["ai_keywords"] or "[]")),
        arxiv_comment=row["arxiv_comment"],
        doi=row["doi"],
        journal_ref=row["journal_ref"],
        published=date.fromisoformat(row["published"]) if row["published"] else None,
    )


def _rule_prefilter(rules: Sequence[Rule]) -> tuple[str, list[Any]]:
    """An SQL condition true for every paper a rule can match (and some more)."""
    conditions: list[str] = []
    args: list[Any] = []
    # FTS5 tokens are the folded words; the last one as a prefix covers its plurals.
    phrases = [
        " ".join(f'"{w}"' for w in words) + " *"
        for words in (keyword_words(r.value) for r in rules if r.field is Field.keyword)
        if words
    ]
    if phrases:
        conditions.append("pk IN (SELECT rowid FROM papers_fts WHERE papers_fts MATCH ?)")
        args.append(" OR ".join(f"({phrase})" for phrase in phrases))
    families = {r.family_name for r in rules if r.field is Field.author and r.family_name}
    for family in sorted(families):
        # LIKE ignores ASCII case; a name with an accent is stored JSON-escaped (\u00e9),
        # so those rows are always kept for the exact match to judge.
        conditions.append("authors LIKE ?")
        args.append(f"%{family.split()[-1]}%")
    if families:
        conditions.append("authors LIKE '%\\u%'")
    return " OR ".join(conditions) or "0", args


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; CREATE TRIGGER bodies contain semicolons."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements

