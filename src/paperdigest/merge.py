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
        "listed": record.listed.isoformat() if record.listed else None,
        "listed_label": record.listed_label,
        "categories": json.dumps(list(record.categories)) if record.categories else None,
        "primary_category": record.primary_category,
        "version": record.version,
        "upvotes": record.upvotes,
        "updated": record.updated.isoformat() if record.updated else None,
        "comments": record.comments,
        "github": record.github,
        "project_page": record.project_page,
        "ai_summary": record.ai_summary,
        "hf_page": record.hf_page,
        "github_stars": record.github_stars,
        "organization": record.organization,
        "ai_keywords": json.dumps(list(record.ai_keywords)) if record.ai_keywords else None,
        "arxiv_comment": record.arxiv_comment,
        "doi": record.doi,
        "journal_ref": record.journal_ref,
        "license": record.license,
        "announced": record.announced.isoformat() if record.announced else None,
    }


# A newer arXiv version speaks for these over whatever is stored; an older one only fills gaps.
_VERSIONED = (
    "title", "abstract", "authors", "categories", "primary_category", "updated",
    "arxiv_comment", "doi", "journal_ref", "license",
)


def _version_order(stored: dict[str, Any], record: PaperRecord) -> int:
    """1 if the record is a newer version than the stored paper, -1 if older, else 0."""
    old = stored.get("version")
    if record.version is None or old is None or record.version == old:
        return 0
    return 1 if record.version > old else -1


def merged_columns(stored: dict[str, Any], record: PaperRecord) -> dict[str, Any]:
    """The columns that change when `record` meets the stored row; empty if none do."""
    incoming = record_columns(record)
    order = _version_order(stored, record)
    changes: dict[str, Any] = {}
    for column, new in incoming.items():
        old = stored.get(column)
        if new is None or new == old:
            continue
        if order < 0 and old not in (None, "", "[]"):
            continue  # an older version never overwrites a newer one
        if order > 0 and column in _VERSIONED:
            changes[column] = new  # the new version's text replaces the old one's
            continue
        if column == "abstract":
            if old and len(old) >= len(new):
                continue  # keep the fuller abstract
        elif column in (
            "upvotes", "version", "comments", "updated", "listed", "github_stars", "announced"
        ):
            if old is not None and old >= new:
                continue  # counts only grow; a new version supersedes an old one
        elif column in ("title", "listed_label", "published", "url") and old:
            continue  # the first source to date, title or link a paper keeps it
        elif (
            column in ("authors", "categories", "ai_keywords")
            and old
            and len(json.loads(old)) >= len(json.loads(new))
        ):
            continue
        changes[column] = new
    return changes
