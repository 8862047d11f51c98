"""Importing a reference library: each entry matched to a stored paper (arXiv id, then
DOI, then normalised title), the rest added as papers, and all of them starred.

Reading a file is the core's job (`paperdigest.library`); this module touches the store.
Importing the same files twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paperdigest.ingest import MAX_FILE_BYTES
from paperdigest.library import LibraryEntry, LibraryFile, merge_duplicates, parse_library
from paperdigest.models import Problem
from paperdigest.store import Store

# Entries looked up at once: a few indexed queries per chunk, not per entry.
MATCH_CHUNK = 500


@dataclass
class ImportSummary:
    """What an import did (or, in a dry run, would do).

    matched + added + duplicates + skipped == read, and
    starred + already_starred == matched + added.
    """

    profile: str
    dry_run: bool
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (path, format, entries)
    read: int = 0
    matched: int = 0
    added: int = 0
    starred: int = 0
    already_starred: int = 0
    # The same paper again (under another key, in another file): merged, starred once.
    duplicates: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "profile": self.profile,
            "dry_run": self.dry_run,
            "files": [{"path": p, "format": f, "entries": n} for p, f, n in self.files],
            "read": self.read,
            "matched": self.matched,
            "added": self.added,
            "starred": self.starred,
            "already_starred": self.already_starred,
            "duplicates": [{"where": p.where, "reason": p.message} for p in self.duplicates],
            "skipped": [{"where": p.where, "reason": p.message} for p in self.skipped],
        }


def read_library_file(path: Path, on_entry: Callable[[], None] | None = None) -> LibraryFile:
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return LibraryFile("too large", problems=[Problem(name, "larger than 512 MiB")])
        data = path.read_bytes()
    except OSError as exc:
        problem = Problem(name, f"cannot read: {exc.strerror or exc}")
        return LibraryFile("unreadable", problems=[problem])
    return parse_library(data, name, on_entry)


class _Matcher:
    """Stored papers by arXiv id, DOI and normalised title, for a batch of entries."""

    def __init__(self, store: Store, entries: Sequence[LibraryEntry]) -> None:
        rows = store.match_keys(
            (e.arxiv_id for e in entries if e.arxiv_id),
            (e.doi for e in entries if e.doi),
            (e.norm_title for e in entries if e.norm_title),
        )
        self.by_arxiv: dict[str, int] = {}
        self.by_doi: dict[str, list[tuple[int, str | None]]] = {}
        self.by_title: dict[str, list[tuple[int, str | None]]] = {}
        for pk, arxiv_id, doi, norm_title in rows:  # in pk order: the oldest paper wins
            if arxiv_id:
                self.by_arxiv.setdefault(arxiv_id, pk)
            if doi:
                self.by_doi.setdefault(doi, []).append((pk, arxiv_id))
            self.by_title.setdefault(norm_title, []).append((pk, arxiv_id))

    def match(self, entry: LibraryEntry) -> int | None:
        if entry.arxiv_id and entry.arxiv_id in self.by_arxiv:
            return self.by_arxiv[entry.arxiv_id]
        for table, key in ((self.by_doi, entry.doi), (self.by_title, entry.norm_title)):
            for pk, arxiv_id in table.get(key, ()) if key else ():
                # Different arXiv ids are different papers, whatever the title says.
                if entry.arxiv_id is None or arxiv_id is None:
                    return pk
        return None


def _match_all(
    store: Store, entries: Sequence[LibraryEntry], advance: Callable[[int], None]
) -> list[int | None]:
    found: list[int | None] = []
    for start in range(0, len(entries), MATCH_CHUNK):
        chunk = entries[start : start + MATCH_CHUNK]
        matcher = _Matcher(store, chunk)
        found.extend(matcher.match(entry) for entry in chunk)
        advance(len(chunk))
    return found


def import_library(
    store: Store,
    profile: str,
    files: Sequence[tuple[str, LibraryFile]],
    *,
    dry_run: bool = False,
    advance: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    """Match, add and star every entry of `files` (name, what it held) for `profile`.

    `advance(n)` is called as entries are dealt with, twice per entry in all (matched,
    then starred), so a progress bar over twice the entries fills once.
    """
    summary = ImportSummary(profile=profile, dry_run=dry_run)
    entries: list[LibraryEntry] = []
    for name, library in files:
        summary.files.append((name, library.format, len(library.entries)))
        entries.extend(library.entries)
        summary.skipped.extend(library.problems)
    summary.read = len(entries) + len(summary.skipped)
    entries, merged = merge_duplicates(entries)
    summary.duplicates.extend(merged)
    advance(len(merged) * 2)

    pks = _match_all(store, entries, advance)
    new = [e for e, pk in zip(entries, pks, strict=True) if pk is None and e.title]
    new_ids = {id(entry) for entry in new}
    if new and not dry_run:
        store.ingest([entry.record() for entry in new])
        again = iter(_match_all(store, new, lambda _: None))
        pks = [next(again) if id(e) in new_ids else pk for e, pk in zip(entries, pks, strict=True)]

    chosen: dict[int, LibraryEntry] = {}
    dois: dict[int, str] = {}
    for entry, pk in zip(entries, pks, strict=True):
        is_new = id(entry) in new_ids
        if pk is None and not (dry_run and is_new):
            reason = (
                "could not be added" if entry.title
                else "not in the store, and the file gives no title to add it with"
            )
            summary.skipped.append(Problem(entry.where, reason))
            continue
        if pk is not None:
            if pk in chosen:
                # Entries the file keeps apart (one by title, one by DOI) name one paper.
                summary.duplicates.append(
                    Problem(entry.where, f"same paper as {chosen[pk].where}")
                )
                continue
            chosen[pk] = entry
            if entry.doi:
                dois[pk] = entry.doi
        if is_new:
            summary.added += 1
        else:
            summary.matched += 1
    summary.already_starred = len(store.starred_pks(profile) & chosen.keys())
    summary.starred = summary.matched + summary.added - summary.already_starred
    if not dry_run:
        store.fill_dois(dois)
        store.star_many(profile, chosen)
    advance(len(entries))
    return summary
