"""Decoding untrusted bytes into text, shared by the parsers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def decode_text(data: bytes) -> str | None:
    """UTF-8 text, or None when the bytes are clearly not a text file."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


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
