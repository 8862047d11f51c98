"""Parser for JSON Lines paper files: one object per line with
`id, title, abstract, authors, published, url` (all but title optional)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from paperdigest.ids import normalise_arxiv_id
from paperdigest.models import PaperRecord, ParseResult, Problem
from paperdigest.parsers.text import clean, iso_date


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


@dataclass(frozen=True)
class LineTooLong:
    """Stands for a line the reader would not hold in memory."""

    limit: int


Line = bytes | LineTooLong
# The most array text read back to say what a JSON array file holds.
_ARRAY_PEEK_BYTES = 64 * 1024 * 1024


def parse_jsonl(data: bytes, name: str) -> ParseResult:
    """A whole JSON Lines file held in memory (see `parse_jsonl_lines`)."""
    return parse_jsonl_lines(enumerate(data.split(b"\n"), start=1), name)


def _decode_line(line: bytes) -> str | None:
    """The line's text, or None: a NUL byte or bytes that are not UTF-8."""
    if b"\x00" in line:
        return None
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _why_undecodable(line: bytes) -> str:
    if b"\x00" in line:
        return "a NUL byte in the line; skipped"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (byte {exc.start + 1}); skipped"
    return "unreadable; skipped"


def parse_jsonl_lines(lines: Iterable[tuple[int, Line]], name: str) -> ParseResult:
    """Parse numbered lines of a JSON Lines file, each decoded on its own: a bad byte, a
    NUL, bad JSON or an object that is not a paper costs its line, never the file."""
    records: list[PaperRecord] = []
    problems: list[Problem] = []
    first = True
    lines = iter(lines)  # an array message reads on from where the loop is
    for number, line in lines:
        where = f"{name}:{number}"
        if isinstance(line, LineTooLong):
            problems.append(Problem(where, f"line longer than {line.limit // 2**20} MiB; skipped"))
            first = False
            continue
        if first:
            line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
        if not line.strip():
            continue
        if first and line.lstrip().startswith(b"["):
            return ParseResult(problems=[Problem(name, _array_message(line, lines))])
        text = _decode_line(line)
        if text is None and first and not line.lstrip().startswith(b"{"):
            # Not one bad line in a JSON Lines file: binary from the first byte on.
            return ParseResult(problems=[Problem(name, "not a UTF-8 text file; skipped")])
        first = False
        if text is None:
            problems.append(Problem(where, _why_undecodable(line)))
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(where, f"invalid JSON ({exc.msg}); skipped"))
            continue
        except RecursionError:
            problems.append(Problem(where, "JSON nested too deeply; skipped"))
            continue
        parsed = parse_record(obj, where)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            records.append(parsed)
    if not records and not problems:
        problems.append(Problem(name, "no papers found (empty file?)"))
    return ParseResult(records=records, problems=problems)


def _array_message(first: bytes, rest: Iterable[tuple[int, Line]]) -> str:
    """One message for a file that is one JSON array (a saved API response, say),
    instead of an "invalid JSON" line for each of its lines."""
    chunks = [first]
    size = len(first)
    for _, line in rest:
        if isinstance(line, LineTooLong) or size > _ARRAY_PEEK_BYTES:
            break
        chunks.append(line)
        size += len(line)
    base = "a JSON array, not JSON Lines (one object per line); skipped"
    try:
        items = json.loads(b"\n".join(chunks))
    except (ValueError, RecursionError):
        return base
    if not isinstance(items, list):
        return base
    papers = sum(
        1
        for item in items
        if isinstance(item, dict)
        and (isinstance(item.get("title"), str) or isinstance(item.get("paper"), dict))
    )
    if not papers:
        return base
    return (
        f"a JSON array of {papers} paper objects, not JSON Lines; write one object per line "
        "(for example with `jq -c '.[]'`) and ingest that; skipped"
    )
