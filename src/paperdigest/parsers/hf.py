"""Parser for the Hugging Face Daily Papers API (`/api/daily_papers?date=YYYY-MM-DD`).

The response is a JSON list (one page of a day). Each item has `title`, `publishedAt`,
`numComments`, `submittedBy`, often `submitterOrganization` ({name, fullname}), and a
`paper` object with `id` (the arXiv id), `title`, `summary`, `authors` ([{name, hidden,
user, ...}]), `publishedAt` (the arXiv time), `upvotes`, `submittedOnDailyAt` (when it
joined Daily Papers), and sometimes `githubRepo`, `githubStars`, `projectPage`,
`ai_summary` and `ai_keywords`.
A bad item is skipped with a Problem naming its index and id; the others still count.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from paperdigest.ids import arxiv_url, parse_arxiv_id
from paperdigest.models import PaperRecord, ParseResult, Problem
from paperdigest.parsers.text import clean, decode_text, iso_date


def _count(value: Any) -> int | None:
    # bool is an int in Python; a JSON true is not a count.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


HF_PAPER_PAGE = "https://huggingface.co/papers/{}"


def _link(value: Any) -> str | None:
    # Real projectPage values come with leading spaces: strip before checking the scheme.
    link = value.strip() if isinstance(value, str) else ""
    return link if link.lower().startswith(("https://", "http://")) else None


def _organization(item: dict[str, Any], paper: dict[str, Any]) -> str | None:
    for value in (paper.get("organization"), item.get("organization"),
                  item.get("submitterOrganization")):
        if isinstance(value, dict):
            for key in ("fullname", "name"):
                name = value.get(key)
                if isinstance(name, str) and clean(name):
                    return clean(name)
    return None


def _keywords(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    words = (clean(word) for word in value if isinstance(word, str))
    return tuple(dict.fromkeys(word for word in words if word))


def listing_day(item: dict[str, Any], paper: dict[str, Any], requested: date | None) -> date | None:
    """The day the paper was on Daily Papers.

    `paper.submittedOnDailyAt` says it; failing that the day asked for; failing that the
    top-level `publishedAt` (which was the listing time in 2024, but since 2025-03 is the
    arXiv time minus a few hours, so it is only a last resort).
    """
    return (
        iso_date(paper.get("submittedOnDailyAt"))
        or requested
        or iso_date(item.get("publishedAt"))
    )


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


def parse_hf_item(
    item: Any, where: str, requested: date | None = None
) -> PaperRecord | Problem:
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
    github = _link(paper.get("githubRepo"))
    return PaperRecord(
        title=clean(title),
        abstract=clean(summary),
        arxiv_id=arxiv_id,
        authors=authors,
        url=arxiv_url(arxiv_id),
        published=iso_date(paper.get("publishedAt")) or iso_date(item.get("publishedAt")),
        # The day it was on Daily Papers: news to a reader even when the arXiv paper is
        # years old, and new again when it is featured again.
        listed=listing_day(item, paper, requested),
        upvotes=_count(upvotes),
        source="hf",
        comments=_count(item.get("numComments")),
        github=github,
        project_page=_link(paper.get("projectPage")),
        ai_summary=clean(ai_summary) or None if isinstance(ai_summary, str) else None,
        hf_page=HF_PAPER_PAGE.format(arxiv_id),
        github_stars=_count(paper.get("githubStars")) if github else None,
        organization=_organization(item, paper),
        ai_keywords=_keywords(paper.get("ai_keywords")),
    )


def parse_hf_items(data: bytes, where: str) -> list[Any] | Problem:
    """The JSON list of one response, or the Problem that makes it unusable."""
    text = decode_text(data)
    if text is None:
        return Problem(where, "response is not UTF-8 text; skipped")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        return Problem(
            where, f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); skipped"
        )
    except RecursionError:
        return Problem(where, "JSON nested too deeply; skipped")
    if not isinstance(items, list):
        return Problem(where, f"expected a JSON list, got {type(items).__name__}; skipped")
    return items


def parse_hf_daily(data: bytes, where: str, requested: date | None = None) -> ParseResult:
    """One response (a day, or one page of it). `where` names it in problems, e.g. the
    request URL; `requested` is the day asked for, the listing day when items lack one."""
    items = parse_hf_items(data, where)
    if isinstance(items, Problem):
        return ParseResult(problems=[items])
    return parse_hf_list(items, where, requested)


def parse_hf_list(items: list[Any], where: str, requested: date | None = None) -> ParseResult:
    records: list[PaperRecord] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        parsed = parse_hf_item(item, f"{where} item {index}", requested)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            records.append(parsed)
    return ParseResult(records=records, problems=problems)
