"""Parser for the Hugging Face Daily Papers API (`/api/daily_papers?date=YYYY-MM-DD`).

The response is a JSON list. Each item has `title`, `publishedAt` (when it was added to
Daily Papers), `numComments`, `submittedBy`, `thumbnail` and a `paper` object with `id`
(the arXiv id), `title`, `summary`, `authors` ([{name, hidden, ...}]), `publishedAt`,
`upvotes`, and sometimes `githubRepo`, `projectPage` and `ai_summary`.
A bad item is skipped with a Problem naming its index and id; the others still count.
"""

from __future__ import annotations

import json
from typing import Any

from paperdigest.ids import arxiv_url, parse_arxiv_id
from paperdigest.models import PaperRecord, ParseResult, Problem
from paperdigest.parsers.text import clean, decode_text, iso_date


def _count(value: Any) -> int | None:
    # bool is an int in Python; a JSON true is not a count.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _link(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")):
        return value.strip()
    return None


def _authors(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    names: list[str] = []
    for author in value:
        name = author.get("name") if isinstance(author, dict) else None
        if not isinstance(name, str):
            return None
        if clean(name):
            names.append(clean(name))
    return tuple(names)


def parse_hf_item(item: Any, where: str) -> PaperRecord | Problem:
    if not isinstance(item, dict):
        return Problem(where, "item is not a JSON object; skipped")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        return Problem(where, "missing or invalid 'paper' object; skipped")
    raw_id = paper.get("id")
    parsed = parse_arxiv_id(raw_id) if isinstance(raw_id, str) else None
    if parsed is None:
        return Problem(where, f"'paper.id' is not an arXiv id ({str(raw_id)[:40]!r}); skipped")
    arxiv_id = parsed[0]
    where = f"{where} ({arxiv_id})"
    title = paper.get("title", item.get("title"))
    if not isinstance(title, str) or not clean(title):
        return Problem(where, "missing or empty 'paper.title'; skipped")
    summary = paper.get("summary")
    if not isinstance(summary, str) or not clean(summary):
        return Problem(where, "missing or empty 'paper.summary'; skipped")
    authors = _authors(paper.get("authors", []))
    if authors is None:
        return Problem(where, "'paper.authors' is not a list of {name}; skipped")
    upvotes = paper.get("upvotes")
    if upvotes is not None and _count(upvotes) is None:
        return Problem(where, "'paper.upvotes' is not a count; skipped")
    ai_summary = paper.get("ai_summary")
    return PaperRecord(
        title=clean(title),
        abstract=clean(summary),
        arxiv_id=arxiv_id,
        authors=authors,
        url=arxiv_url(arxiv_id),
        published=iso_date(paper.get("publishedAt")) or iso_date(item.get("publishedAt")),
        # The top-level publishedAt is the day it joined Daily Papers: news to a reader
        # even when the arXiv paper is years old.
        listed=iso_date(item.get("publishedAt")),
        upvotes=_count(upvotes),
        source="hf",
        comments=_count(item.get("numComments")),
        github=_link(paper.get("githubRepo")),
        project_page=_link(paper.get("projectPage")),
        ai_summary=clean(ai_summary) or None if isinstance(ai_summary, str) else None,
    )


def parse_hf_daily(data: bytes, where: str) -> ParseResult:
    """One day's response. `where` names it in problems, e.g. the request URL."""
    text = decode_text(data)
    if text is None:
        return ParseResult(problems=[Problem(where, "response is not UTF-8 text; skipped")])
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); skipped"
        return ParseResult(problems=[Problem(where, message)])
    if not isinstance(items, list):
        kind = type(items).__name__
        return ParseResult(problems=[Problem(where, f"expected a JSON list, got {kind}; skipped")])
    records: list[PaperRecord] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        parsed = parse_hf_item(item, f"{where} item {index}")
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            records.append(parsed)
    return ParseResult(records=records, problems=problems)
