"""Stable paper identifiers (pure).

A paper is known by its arXiv id when one is known, otherwise by a short hash of its
normalised title, so the same paper from two dumps collapses into one record.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

TITLE_HASH_LENGTH = 8
# New-style ids (2503.11731) and old-style ones (hep-th/9901001), with an optional version.
_ARXIV_NEW = re.compile(r"(?P<id>\d{4}\.\d{4,5})(?:v(?P<version>\d+))?")
_ARXIV_OLD = re.compile(r"(?P<id>[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v(?P<version>\d+))?")
_ARXIV_PREFIX = re.compile(
    r"^(?:https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/|arxiv:)", re.IGNORECASE
)


def normalise_title(title: str) -> str:
    """Case, accents-as-composed, punctuation and spacing folded away."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return re.sub(r"\W+", " ", folded).strip()


def title_hash(title: str, length: int = TITLE_HASH_LENGTH) -> str:
    digest = hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()
    return digest[:length]


def parse_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """Return (id without version, version) for any common spelling of an arXiv id.

    `2503.11731v2`, `arXiv:2503.11731` and `https://arxiv.org/abs/2503.11731v1` all give
    `2503.11731`. Anything else gives None.
    """
    candidate = _ARXIV_PREFIX.sub("", text.strip())
    candidate = candidate.removesuffix(".pdf").rstrip("/")
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        match = pattern.fullmatch(candidate)
        if match:
            version = match.group("version")
            return match.group("id"), int(version) if version else None
    return None


def normalise_arxiv_id(text: str) -> str | None:
    parsed = parse_arxiv_id(text)
    return parsed[0] if parsed else None


def arxiv_url(arxiv_id: str) -> str:
    return f"https://arxiv.org/abs/{arxiv_id}"
