"""Zotero's CSV export ("Key","Item Type","Publication Year","Author","Title",...), and any
CSV with a Title, DOI or Url column (pure)."""

from __future__ import annotations

import csv
import io

from paperdigest.library.entry import LibraryEntry, LibraryFile, date_in, make_entry
from paperdigest.models import Problem

# Columns that mark a file as a reference list (Zotero's names; matched case-insensitively).
ID_COLUMNS = {"title", "doi", "url"}


def looks_like_csv_header(first_line: str) -> bool:
    try:
        header = next(csv.reader([first_line]))
    except (csv.Error, StopIteration):
        return False
    names = {column.strip().lower() for column in header}
    return len(header) >= 2 and bool(names & ID_COLUMNS) and ("title" in names or "key" in names)


def parse_zotero_csv(text: str, name: str) -> LibraryFile:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    entries: list[LibraryEntry] = []
    problems: list[Problem] = []
    try:
        for row in reader:
            fields = {(k or "").strip().lower(): (v or "") for k, v in row.items()
                      if isinstance(v, str)}
            where = f"{name}: line {reader.line_num}"
            if fields.get("key"):
                where += f" ({fields['key']})"
            found = make_entry(
                where,
                title=fields.get("title"),
                abstract=fields.get("abstract note") or fields.get("abstract"),
                authors=[a for a in (fields.get("author") or "").split(";")],
                doi=fields.get("doi"),
                url=fields.get("url"),
                published=date_in(fields.get("date"), fields.get("publication year")),
                id_texts=[fields.get(k) for k in ("extra", "publication title", "number",
                                                  "archive location", "notes", "url")],
            )
            (entries if isinstance(found, LibraryEntry) else problems).append(found)
    except csv.Error as exc:
        problems.append(Problem(f"{name}: line {reader.line_num}", f"not valid CSV ({exc})"))
    return LibraryFile("Zotero CSV", entries, problems)
