"""Parser for one page of the arXiv Atom API (`/api/query`), read with feedparser.

A page is an Atom feed with `opensearch:totalResults`, `startIndex` and `itemsPerPage`;
each entry has an `id` (http://arxiv.org/abs/XXXXvN), `published` (version 1), `updated`
(this version), `title`, `summary`, `author/name`, `arxiv:primary_category`, `category`
terms, and when the authors gave them `arxiv:comment`, `arxiv:doi` and `arxiv:journal_ref`.
arXiv reports a bad query (with HTTP 400) as a feed whose one entry, with an id under
`/api/errors`, says what is wrong: `arxiv_error_message` reads it. A feed that is not
well-formed (a truncated download) is skipped whole: its last entries cannot be trusted.
A bad entry is skipped with a Problem.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import feedparser

from paperdigest.ids import arxiv_url, parse_arxiv_id
from paperdigest.models import PaperRecord, ParseResult, Problem
from paperdigest.parsers.text import clean

# feedparser flags these but the entries are still sound.
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)


@dataclass(frozen=True)
class ArxivPage:
    result: ParseResult = field(default_factory=ParseResult)
    total: int | None = None  # opensearch:totalResults
    start: int | None = None  # opensearch:startIndex
    entries: int = 0  # entries on this page, good or bad: how far to advance `start`
    oldest: date | None = None  # the earliest first version (published) on the page
    # The earliest latest activity (published or updated): for listings of revisions too.
    oldest_activity: date | None = None


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _date(parsed: Any) -> date | None:
    if isinstance(parsed, time.struct_time):
        return date(parsed.tm_year, parsed.tm_mon, parsed.tm_mday)
    return None


def _text(entry: Any, key: str) -> str | None:
    value = entry.get(key)
    return clean(value) or None if isinstance(value, str) else None


def _is_error(entry: Any) -> bool:
    return "/api/errors" in str(entry.get("id", ""))


def arxiv_error_message(data: bytes) -> str | None:
    """What arXiv's error feed (sent with HTTP 400) says is wrong, or None if it is not one."""
    feed = feedparser.parse(io.BytesIO(data))
    for entry in feed.get("entries", []):
        if _is_error(entry):
            return _text(entry, "summary") or _text(entry, "title") or "unknown error"
    return None


def parse_arxiv_entry(entry: Any, where: str) -> PaperRecord | Problem:
    raw_id = entry.get("id")
    parsed = parse_arxiv_id(raw_id) if isinstance(raw_id, str) else None
    if parsed is None:
        return Problem(where, f"entry id {str(raw_id)[:60]!r} is not an arXiv id; skipped")
    arxiv_id, version = parsed
    where = f"{where} ({arxiv_id})"
    title = clean(entry.get("title") or "")
    if not title:
        return Problem(where, "missing or empty <title>; skipped")
    summary = clean(entry.get("summary") or "")
    if not summary:
        return Problem(where, "missing or empty <summary>; skipped")
    published = _date(entry.get("published_parsed"))
    if published is None:
        return Problem(where, "missing or invalid <published> date; skipped")
    authors = tuple(
        clean(a.get("name", "")) for a in entry.get("authors", []) if clean(a.get("name", ""))
    )
    terms = [clean(t.get("term") or "") for t in entry.get("tags", [])]
    categories = tuple(dict.fromkeys(t for t in terms if t))
    primary = entry.get("arxiv_primary_category", {}).get("term") or None
    return PaperRecord(
        title=title,
        abstract=summary,
        arxiv_id=arxiv_id,
        authors=authors,
        url=arxiv_url(arxiv_id),
        published=published,
        categories=categories,
        primary_category=clean(primary) if isinstance(primary, str) else None,
        version=version,
        source="arxiv",
        updated=_date(entry.get("updated_parsed")),
        arxiv_comment=_text(entry, "arxiv_comment"),
        doi=_text(entry, "arxiv_doi"),
        journal_ref=_text(entry, "arxiv_journal_ref"),
    )


def parse_arxiv_page(data: bytes, where: str) -> ArxivPage:
    # A stream, never bytes or str: feedparser would open a str that looks like a URL or path.
    feed = feedparser.parse(io.BytesIO(data))
    if feed.get("bozo") and not isinstance(feed.get("bozo_exception"), _HARMLESS):
        reason = clean(str(feed.get("bozo_exception")))[:120]
        return ArxivPage(
            ParseResult(problems=[Problem(where, f"not a well-formed Atom feed ({reason}); "
                                                 "page skipped")])
        )
    if feed.get("version") != "atom10":
        return ArxivPage(ParseResult(problems=[Problem(where, "not an Atom feed; page skipped")]))
    entries = feed.get("entries", [])
    records: list[PaperRecord] = []
    problems: list[Problem] = []
    for index, entry in enumerate(entries):
        if _is_error(entry):
            # arXiv reports a bad query as a feed with one "Error" entry.
            message = clean(entry.get("summary") or "unknown error")
            problems.append(Problem(where, f"arXiv reported an error: {message}"))
            continue
        parsed = parse_arxiv_entry(entry, f"{where} entry {index}")
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            records.append(parsed)
    header = feed.get("feed", {})
    firsts = [r.published for r in records if r.published]
    latest = [max(d for d in (r.published, r.updated) if d) for r in records if r.published]
    return ArxivPage(
        result=ParseResult(records=records, problems=problems),
        total=_int(header.get("opensearch_totalresults")),
        start=_int(header.get("opensearch_startindex")),
        entries=len(entries),
        oldest=min(firsts) if firsts else None,
        oldest_activity=min(latest) if latest else None,
    )


def parse_arxiv_feed(data: bytes, where: str) -> ParseResult:
    return parse_arxiv_page(data, where).result
