"""How a freshly parsed record updates a stored paper (pure).

Ingesting the same record twice must change nothing, so every rule here is idempotent:
fill what is missing, prefer the richer value, never blank out what is stored.
"""

from __future__ import annotations

import json
from typing import Any

from paperdigest.models import PaperRecord


def record_columns(record: PaperRecord) -> dict[str, Any]:
    """The store columns a record speaks for; None means "this source does not say"."""
    return {
        "title": record.title,
        "abstract": record.abstract or None,
        "arxiv_id": record.arxiv_id,
        "authors": json.dumps(list(record.authors)) if record.authors else None,
        "url": record.url,
        "published": record.published.isoformat() if record.published else None,
        "listed_label": record.listed_label,
        "categories": json.dumps(list(record.categories)) if record.categories else None,
        "primary_category": record.primary_category,
        "version": record.version,
        "upvotes": record.upvotes,
    }


def merged_columns(stored: dict[str, Any], record: PaperRecord) -> dict[str, Any]:
    """The columns that change when `record` meets the stored row; empty if none do."""
    incoming = record_columns(record)
    changes: dict[str, Any] = {}
    for column, new in incoming.items():
        old = stored.get(column)
        if new is None or new == old:
            continue
        if column == "abstract":
            if old and len(old) >= len(new):
                continue  # keep the fuller abstract
        elif column in ("upvotes", "version"):
            if old is not None and old >= new:
                continue  # counts only grow; a new version supersedes an old one
        elif column in ("title", "listed_label", "published") and old:
            continue  # the first source to date or title a paper keeps it
        elif (
            column in ("authors", "categories")
            and old
            and len(json.loads(old)) >= len(json.loads(new))
        ):
            continue
        changes[column] = new
    return changes
