"""RIS (Zotero, Mendeley, EndNote, publishers' "export citation"), read with rispy (pure).

Each record is cut out at its `TY  -` line before rispy reads it, so a record that lacks
its closing `ER  -` neither swallows the next one nor is dropped silently, and every
problem names its line.
"""

from __future__ import annotations

import re

import rispy

from paperdigest.library.entry import LibraryEntry, LibraryFile, date_in, make_entry
from paperdigest.models import Problem

_START = re.compile(r"^TY  -", re.MULTILINE)


def _first(record: dict[str, object], *keys: str) -> str:
    for key in keys:
        value = record.get(key)
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str) and v.strip()), None)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _all(record: dict[str, object], *keys: str) -> list[str]:
    values: list[str] = []
    for key in keys:
        value = record.get(key)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, list):
            values.extend(v for v in value if isinstance(v, str))
    return values


def parse_ris(text: str, name: str) -> LibraryFile:
    entries: list[LibraryEntry] = []
    problems: list[Problem] = []
    starts = [m.start() for m in _START.finditer(text)]
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(text)
        chunk = text[start:end]
        line = text.count("\n", 0, start) + 1
        if not re.search(r"^ER  -", chunk, re.MULTILINE):
            chunk += "\nER  - \n"
        try:
            records = rispy.loads(chunk)
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            problems.append(Problem(f"{name}: line {line}", f"cannot be read ({exc})"))
            continue
        for record in records:
            found = _entry(record, f"{name}: line {line}")
            (entries if isinstance(found, LibraryEntry) else problems).append(found)
    return LibraryFile("RIS", entries, problems)


def _entry(record: dict[str, object], where: str) -> LibraryEntry | Problem:
    key = _first(record, "id")
    if key:
        where = f"{where} ({key})"
    urls = _all(record, "urls", "url", "link_to_pdf")
    return make_entry(
        where,
        title=_first(record, "title", "primary_title", "translated_title"),
        abstract=_first(record, "abstract", "notes_abstract"),
        authors=_all(record, "authors", "first_authors"),
        doi=_first(record, "doi"),
        url=next((u for u in urls if u.startswith(("http://", "https://"))), ""),
        published=date_in(_first(record, "date", "year", "publication_year")),
        id_texts=[
            *urls,
            *_all(record, "notes", "journal_name", "secondary_title", "number",
                  "publisher", "alternate_title3", "custom1", "custom2"),
        ],
    )
