"""CSL-JSON (Zotero's and Better BibTeX's "CSL JSON" export, citeproc tools) (pure)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from paperdigest.library.entry import LibraryEntry, LibraryFile, date_in, make_entry
from paperdigest.models import Problem


def parse_csl_json(text: str, name: str) -> LibraryFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = Problem(f"{name}: line {exc.lineno}", f"not valid JSON ({exc.msg})")
        return LibraryFile("CSL-JSON", problems=[problem])
    if isinstance(data, dict):
        data = data.get("items", [data])  # one item, or a wrapper holding the list
    if not isinstance(data, list):
        return LibraryFile("CSL-JSON", problems=[Problem(name, "not a list of CSL items")])
    entries: list[LibraryEntry] = []
    problems: list[Problem] = []
    for number, item in enumerate(data, 1):
        found = _entry(item, f"{name}: item {number}")
        (entries if isinstance(found, LibraryEntry) else problems).append(found)
    return LibraryFile("CSL-JSON", entries, problems)


def _name(person: Any) -> str:
    if not isinstance(person, dict):
        return ""
    if isinstance(person.get("literal"), str):
        return person["literal"]
    parts = (person.get("given"), person.get("non-dropping-particle"), person.get("family"))
    return " ".join(p for p in parts if isinstance(p, str) and p.strip())


def _issued(value: Any) -> date | None:
    if not isinstance(value, dict):
        return None
    parts = value.get("date-parts")
    if isinstance(parts, list) and parts and isinstance(parts[0], list) and parts[0]:
        numbers = [str(p) for p in parts[0][:3] if isinstance(p, int | str)]
        return date_in("-".join(numbers))
    return date_in(value.get("raw"), value.get("literal"))


def _entry(item: Any, where: str) -> LibraryEntry | Problem:
    if not isinstance(item, dict):
        return Problem(where, "not a JSON object")
    key = item.get("citation-key") or item.get("id")
    if isinstance(key, str | int) and str(key).strip():
        where = f"{where} ({key})"
    authors = item.get("author")
    return make_entry(
        where,
        title=item.get("title"),
        abstract=item.get("abstract"),
        authors=[_name(a) for a in authors] if isinstance(authors, list) else (),
        doi=item.get("DOI"),
        url=item.get("URL"),
        published=_issued(item.get("issued")),
        id_texts=[item.get(k) for k in ("number", "container-title", "note", "archive_location",
                                        "publisher", "collection-title")],
    )
