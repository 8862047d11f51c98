"""Parser for JSON Lines paper files: one object per line with
`id, title, abstract, authors, published, url` (all but title optional)."""

from __future__ import annotations

import json
from typing import Any

from paperdigest.ids import normalise_arxiv_id
from paperdigest.models import PaperRecord, ParseResult, Problem
from paperdigest.parsers.text import clean, decode_text, iso_date


def _as_authors(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(a.strip() for a in value.split(",") if a.strip())
    if isinstance(value, list):
        names = [a.get("name") if isinstance(a, dict) else a for a in value]
        if all(isinstance(n, str) for n in names):
            return tuple(clean(n) for n in names if n.strip())
    return None


def _as_strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def parse_record(obj: Any, where: str) -> PaperRecord | Problem:
    """One JSON object to a record, or the reason it cannot be one."""
    if not isinstance(obj, dict):
        return Problem(where, "not a JSON object; skipped")
    title = obj.get("title")
    if not isinstance(title, str) or not clean(title):
        return Problem(where, "missing or empty 'title'; skipped")
    abstract = obj.get("abstract", "")
    if abstract is None:
        abstract = ""
    if not isinstance(abstract, str):
        return Problem(where, "'abstract' is not a string; skipped")
    authors = _as_authors(obj.get("authors"))
    if authors is None:
        return Problem(where, "'authors' is not a list of names; skipped")
    raw_id = obj.get("id")
    arxiv_id = normalise_arxiv_id(str(raw_id)) if raw_id not in (None, "") else None
    url = obj.get("url") if isinstance(obj.get("url"), str) else None
    primary = obj.get("primary")
    return PaperRecord(
        title=clean(title),
        abstract=clean(abstract),
        arxiv_id=arxiv_id,
        authors=authors,
        url=url,
        published=iso_date(obj.get("published") or obj.get("listing_date")),
        categories=_as_strings(obj.get("categories")),
        primary_category=primary if isinstance(primary, str) else None,
        source="file",
    )


def parse_jsonl(data: bytes, name: str) -> ParseResult:
    text = decode_text(data)
    if text is None:
        return ParseResult(problems=[Problem(name, "not a UTF-8 text file; skipped")])
    records: list[PaperRecord] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"invalid JSON ({exc.msg}); skipped"))
            continue
        parsed = parse_record(obj, where)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            records.append(parsed)
    if not records and not problems:
        problems.append(Problem(name, "no papers found (empty file?)"))
    return ParseResult(records=records, problems=problems)
