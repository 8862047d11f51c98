"""Parser for arXiv's daily announcement feed (`rss.arxiv.org/rss/CATS`), read with feedparser.

The feed is RSS 2.0 as info.arxiv.org/help/rss_specifications.html describes it. The
channel's `pubDate` is the announcement; its date in arXiv's time zone (America/New_York)
is the day the papers are listed. Each item has a `title`, a `description` of the form
"arXiv:2501.01234v1 Announce Type: new \\nAbstract: ...", one `category` per category,
`arxiv:announce_type` (new, cross, replace or replace-cross), `dc:creator` (the authors,
comma-separated), `dc:rights` (the licence URL), and maybe `arxiv:DOI` and
`arxiv:journal_reference`. On a day with no announcement (weekends, holidays) the feed
has no items. Item text is untrusted: it is kept as plain text, never as markup.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field, replace
from datetime import date
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import feedparser

from paperdigest.ids import arxiv_url, parse_arxiv_id
from paperdigest.models import PaperRecord, ParseResult, Problem
from paperdigest.parsers.text import clean

ARXIV_TIMEZONE = ZoneInfo("America/New_York")
NEW_TYPES = frozenset({"new", "cross"})
REVISION_TYPES = frozenset({"replace", "replace-cross"})
# feedparser flags these but the items are still sound.
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
_HEAD = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:)?", re.IGNORECASE
)
_AUTHOR_SEPARATOR = re.compile(r",\s*(?:and\s+)?|\s+and\s+")


@dataclass(frozen=True)
class ArxivAnnouncement:
    """One feed: the day it announces, its new papers, and the revised ones."""

    day: date | None = None  # the announcement day in New York; None if the feed lacks it
    new: ParseResult = field(default_factory=ParseResult)  # new and cross-listed papers
    revised: list[PaperRecord] = field(default_factory=list)  # replace and replace-cross
    items: int = 0  # items in the feed, good or bad: arXiv cuts a feed at 2,000


def announcement_day(value: str | None) -> date | None:
    """The New York date of an RFC 822 timestamp such as 'Tue, 30 Jun 2026 00:00:00 -0400'."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return moment.date()  # no zone given: take the date as written
    return moment.astimezone(ARXIV_TIMEZONE).date()


def split_authors(creator: str) -> tuple[str, ...]:
    """'Ada Lovelace, Alan Turing and Grace Hopper' -> the three names."""
    names = (clean(name) for name in _AUTHOR_SEPARATOR.split(creator))
    return tuple(name for name in names if name)


def _text(entry: Any, key: str) -> str:
    value = entry.get(key)
    return clean(value) if isinstance(value, str) else ""


def parse_arxiv_item(
    entry: Any, where: str, day: date | None
) -> tuple[str, PaperRecord] | Problem:
    """(announce type, record) for one item, or the Problem that makes it unusable."""
    description = entry.get("summary") if isinstance(entry.get("summary"), str) else ""
    head = _HEAD.match(description)
    guid = entry.get("id") if isinstance(entry.get("id"), str) else ""
    raw_id = head.group("id") if head else guid.removeprefix("oai:arXiv.org:")
    parsed = parse_arxiv_id(raw_id) if raw_id else None
    if parsed is None:
        return Problem(where, f"item id {raw_id[:60]!r} is not an arXiv id; skipped")
    arxiv_id, version = parsed
    where = f"{where} ({arxiv_id})"
    kind = (_text(entry, "arxiv_announce_type") or (head.group("type") if head else "")).lower()
    if kind not in NEW_TYPES | REVISION_TYPES:
        return Problem(where, f"unknown announce type {kind[:30]!r}; skipped")
    title = _text(entry, "title")
    if not title:
        return Problem(where, "missing or empty <title>; skipped")
    abstract = clean(description[head.end():] if head else description)
    if not abstract:
        return Problem(where, "no abstract in <description>; skipped")
    terms = [clean(tag.get("term") or "") for tag in entry.get("tags", [])]
    record = PaperRecord(
        title=title,
        abstract=abstract,
        arxiv_id=arxiv_id,
        authors=split_authors(_text(entry, "author")),
        url=arxiv_url(arxiv_id),
        categories=tuple(dict.fromkeys(t for t in terms if t)),
        version=version,
        source="arxiv",
        license=_text(entry, "rights") or None,
        doi=_text(entry, "arxiv_doi") or None,
        journal_ref=_text(entry, "arxiv_journal_reference") or None,
    )
    if kind in NEW_TYPES and day is not None:
        record = replace(record, listed=day, announced=day)
    return kind, record


def parse_arxiv_rss(
    data: bytes, where: str, *, include_revisions: bool = False
) -> ArxivAnnouncement:
    """A feed's papers. Revisions are new papers of the day only if `include_revisions`."""
    # A stream, never bytes or str: feedparser would open a str that looks like a URL or
    # path. The description is plain text, not HTML: kept as written (templates escape it).
    feed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    if feed.get("bozo") and not isinstance(feed.get("bozo_exception"), _HARMLESS):
        reason = clean(str(feed.get("bozo_exception")))[:120]
        problem = Problem(where, f"not a well-formed RSS feed ({reason}); feed skipped")
        return ArxivAnnouncement(new=ParseResult(problems=[problem]))
    if not str(feed.get("version", "")).startswith("rss"):
        return ArxivAnnouncement(
            new=ParseResult(problems=[Problem(where, "not an RSS feed; feed skipped")])
        )
    channel = feed.get("feed", {})
    day = announcement_day(channel.get("published") or channel.get("updated"))
    entries = feed.get("entries", [])
    records: list[PaperRecord] = []
    revised: list[PaperRecord] = []
    problems: list[Problem] = []
    for index, entry in enumerate(entries):
        parsed = parse_arxiv_item(entry, f"{where} item {index}", day)
        if isinstance(parsed, Problem):
            problems.append(parsed)
            continue
        kind, record = parsed
        if kind in NEW_TYPES:
            records.append(record)
        elif include_revisions and day is not None:
            records.append(replace(record, listed=day, announced=day))
        else:
            revised.append(record)
    return ArxivAnnouncement(
        day=day, new=ParseResult(records, problems), revised=revised, items=len(entries)
    )
