"""Refreshing the corpus before a digest is built.

The daily job calls `refresh_sources` first. Until live sources exist, the local corpus
is all there is, so there is nothing to fetch.
"""

from __future__ import annotations

from dataclasses import dataclass

from paperdigest.config import Settings
from paperdigest.store import Store


@dataclass(frozen=True)
class SourceResult:
    source: str
    ok: bool
    new: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None


def refresh_sources(store: Store, settings: Settings) -> list[SourceResult]:
    """Fetch every enabled source into the store; one failing never stops the others."""
    return []
