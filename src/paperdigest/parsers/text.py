"""Decoding untrusted bytes into text, shared by the parsers."""

from __future__ import annotations


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
