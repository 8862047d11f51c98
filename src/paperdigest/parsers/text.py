"""Decoding untrusted bytes into text, and making text from any source safe (pure)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from paperdigest.models import PaperRecord
from paperdigest.window import latest_real_day

# Caps on what one paper may bring in: a 10 MB title once made a 20 MB email that the
# server refused every day.
MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 20_000
MAX_AUTHOR_CHARS = 300
MAX_AUTHORS = 1_000  # large collaborations list a few thousand; the digest shows four
MAX_SHORT_CHARS = 200  # labels, categories, keywords, an organization, a DOI
MAX_COMMENT_CHARS = 1_000  # an arXiv author comment, a journal reference
MAX_URL_CHARS = 2_000  # a longer link is dropped, never cut (a cut link is a wrong link)
MAX_CATEGORIES = 100

# C0 and C1 control characters except tab and newline, and DEL. A Python str holding a
# UTF-16 surrogate at all holds a lone one (json.loads gives them for "\ud800").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# For one-line output: newline and tab go too.
_CONTROL_ANY = re.compile("[\x00-\x1f\x7f-\x9f]")


def decode_text(data: bytes) -> str | None:
    """UTF-8 text, or None when the bytes are clearly not a text file."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def safe_text(text: str) -> str:
    """Lone surrogates become U+FFFD; control characters other than newline and tab go."""
    return _CONTROL.sub("", _SURROGATE.sub("\ufffd", text))


def terminal_text(text: str, *, lines: bool = False) -> str:
    """Text that cannot steer a terminal: every control character (ESC included) shown as
    U+FFFD, so a stored title like "\\x1b]0;owned\\x07" prints as harmless characters.
    With `lines`, newline and tab are kept."""
    pattern = _CONTROL if lines else _CONTROL_ANY
    return pattern.sub("\ufffd", _SURROGATE.sub("\ufffd", text))


def capped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clean(text: str) -> str:
    """Collapse runs of white space, including newlines, into single spaces."""
    return " ".join(text.split())


def iso_date(value: Any) -> date | None:
    """The date of an ISO 8601 date or timestamp string; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _short(value: str | None, limit: int = MAX_SHORT_CHARS) -> str | None:
    if value is None:
        return None
    text = clean(safe_text(value))
    return capped(text, limit) if text else None


def _link(value: str | None) -> str | None:
    if value is None:
        return None
    text = safe_text(value).strip()
    return text if text and len(text) <= MAX_URL_CHARS and not any(c.isspace() for c in text) \
        else None


def _names(values: tuple[str, ...], each: int, most: int) -> tuple[str, ...]:
    names = (_short(v, each) for v in values[:most])
    return tuple(n for n in names if n)


def safe_record(record: PaperRecord) -> PaperRecord:
    """The record with every string made safe and capped: the one choke point every
    source's records pass through on their way into the store (`Store.ingest`)."""
    return replace(
        record,
        title=capped(clean(safe_text(record.title)), MAX_TITLE_CHARS),
        abstract=capped(safe_text(record.abstract).strip(), MAX_ABSTRACT_CHARS),
        authors=_names(record.authors, MAX_AUTHOR_CHARS, MAX_AUTHORS),
        categories=_names(record.categories, MAX_SHORT_CHARS, MAX_CATEGORIES),
        primary_category=_short(record.primary_category),
        listed_label=_short(record.listed_label),
        url=_link(record.url),
        github=_link(record.github),
        project_page=_link(record.project_page),
        ai_summary=(
            capped(safe_text(record.ai_summary).strip(), MAX_ABSTRACT_CHARS) or None
            if record.ai_summary is not None
            else None
        ),
        arxiv_id=_short(record.arxiv_id, 64),
        hf_page=_link(record.hf_page),
        organization=_short(record.organization),
        ai_keywords=_names(record.ai_keywords, MAX_SHORT_CHARS, MAX_CATEGORIES),
        arxiv_comment=_short(record.arxiv_comment, MAX_COMMENT_CHARS),
        doi=_short(record.doi),
        journal_ref=_short(record.journal_ref, MAX_COMMENT_CHARS),
        license=_link(record.license),
    )


def clamp_dates(record: PaperRecord, today: date) -> tuple[PaperRecord, str | None]:
    """Dates after `latest_real_day(today)` (the day the record is seen, plus a day for
    time zones) become `today`; the second value says what was clamped, naming the paper,
    or is None. One paper dated 9999-12-31 once cut every later digest to one paper."""
    horizon = latest_real_day(today)
    late = {
        name: value
        for name in ("published", "listed", "updated", "announced")
        if (value := getattr(record, name)) is not None and value > horizon
    }
    if not late:
        return record, None
    who = record.arxiv_id or capped(record.title, 60)
    dates = ", ".join(f"{name} {value.isoformat()}" for name, value in late.items())
    message = f"{who!r}: dated in the future ({dates}); counted as {today.isoformat()}"
    return replace(record, **{name: today for name in late}), message
