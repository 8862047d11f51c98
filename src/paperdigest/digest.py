"""Assembling a digest from picks (pure: no clock, no disk, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, quote_plus

from paperdigest.ids import arxiv_url
from paperdigest.models import Paper, Pick

SNIPPET_CHARS = 320
KEYWORDS_SHOWN = 5
DETAILS_WIDTH = 76  # the plain-text details line wraps between facts, never inside a link
# A broad follow rule ("llm") could match hundreds of papers a day: the digest shows this
# many, newest first, and says how many more `recommend` lists.
FOLLOWED_LIMIT = 30
DEFAULT_SUBJECT = "paperdigest {date}: {papers} for you"
ARXIV_TITLE_SEARCH = "https://arxiv.org/search/?searchtype=title&query="


@dataclass(frozen=True)
class Fact:
    """One short piece of a digest item's details line, with a link when it has one."""

    text: str
    link: str | None = None

    @property
    def plain(self) -> str:
        return f"{self.text} <{self.link}>" if self.link else self.text


@dataclass(frozen=True)
class DigestItem:
    pk: int  # the store's key, so a sent digest can record exactly what it showed
    id: str
    title: str
    authors: str
    link: str
    snippet: str
    score: float
    reason: str
    upvotes: int | None = None
    # The compact line under an item: organization, code, Hugging Face page, venue, DOI...
    facts: tuple[Fact, ...] = ()

    @property
    def facts_lines(self) -> list[str]:
        """The facts as plain-text lines, " · " between them, wrapped at DETAILS_WIDTH
        between words but never inside a link."""
        lines = [""]
        for number, fact in enumerate(self.facts):
            words = [fact.plain] if fact.link else fact.text.split()
            for index, word in enumerate(words):
                gap = " · " if index == 0 and number > 0 else " " if index > 0 else ""
                if lines[-1] and len(lines[-1]) + len(gap) + len(word) > DETAILS_WIDTH:
                    lines[-1] += gap.rstrip()
                    lines.append(word)
                else:
                    lines[-1] += gap + word
        return [line for line in lines if line]


@dataclass(frozen=True)
class Digest:
    date: date
    profile: str
    items: tuple[DigestItem, ...]
    trending: tuple[DigestItem, ...] = ()
    personalised: bool = True  # False when there are no stars yet: newest papers instead
    # Papers a follow rule matched, shown above the picks whatever their score.
    followed: tuple[DigestItem, ...] = ()
    followed_more: int = 0  # matches beyond FOLLOWED_LIMIT, not shown
    # One line when nothing was listed in the window, so these papers are older.
    window_note: str = ""

    @property
    def count(self) -> int:
        return len(self.items) + len(self.followed)

    @property
    def shown(self) -> tuple[DigestItem, ...]:
        """Everything a sent digest records as shown, followed papers first."""
        return self.followed + self.items

    @property
    def papers(self) -> str:
        return plural(self.count, "paper")

    def subject(self, template: str = DEFAULT_SUBJECT) -> str:
        """One line: user-controlled parts can never add a header line."""
        text = template.format(
            date=self.date.isoformat(), count=self.count, papers=self.papers,
            profile=self.profile,
        )
        return " ".join(text.split())


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + "…"


def format_authors(authors: Sequence[str], limit: int = 4) -> str:
    if len(authors) <= limit:
        return ", ".join(authors)
    return ", ".join(authors[:limit]) + f" and {len(authors) - limit} more"


def _web(link: str | None) -> str | None:
    # Only web links: a stored link comes from an untrusted source (think "javascript:").
    return link if link and link.lower().startswith(("https://", "http://")) else None


def paper_facts(paper: Paper) -> tuple[Fact, ...]:
    """What a reader values beside the abstract, from whichever source knew it."""
    facts: list[Fact] = []
    if paper.organization:
        facts.append(Fact(paper.organization))
    if github := _web(paper.github):
        stars = f" ★{paper.github_stars}" if paper.github_stars else ""
        facts.append(Fact(f"code{stars}", github))
    if project := _web(paper.project_page):
        facts.append(Fact("project page", project))
    if hf_page := _web(paper.hf_page):
        facts.append(Fact("Hugging Face", hf_page))
    if paper.journal_ref:
        facts.append(Fact(paper.journal_ref))
    if paper.doi:
        facts.append(Fact("DOI", "https://doi.org/" + quote(paper.doi, safe="/")))
    if paper.arxiv_comment:
        facts.append(Fact(paper.arxiv_comment))
    if paper.ai_keywords:
        facts.append(Fact(", ".join(paper.ai_keywords[:KEYWORDS_SHOWN])))
    return tuple(facts)


def paper_link(paper: Paper) -> str:
    """Its arXiv page, else the page its source gave (Hugging Face), else an arXiv title
    search: seed papers have neither, and a reader must always be able to open the paper."""
    if paper.arxiv_id:
        return arxiv_url(paper.arxiv_id)
    if link := _web(paper.hf_page) or _web(paper.url):
        return link
    return ARXIV_TITLE_SEARCH + quote_plus(" ".join(paper.title.split()))


def item_for(paper: Paper, score: float, reason: str) -> DigestItem:
    return DigestItem(
        pk=paper.pk,
        id=paper.id,
        title=paper.title,
        authors=format_authors(paper.authors),
        link=paper_link(paper),
        snippet=snippet(paper.abstract),
        score=round(score, 4),
        reason=reason,
        upvotes=paper.upvotes,
        facts=paper_facts(paper),
    )


FOLLOWED_PREFIX = "follows "


def is_followed_reason(reason: str) -> bool:
    """A stored digest line's reason tells a followed paper from a pick."""
    return reason.startswith(FOLLOWED_PREFIX)


def item_from(pick: Pick) -> DigestItem:
    return item_for(pick.paper, pick.score, pick.reason)


def assemble_digest(
    day: date,
    profile: str,
    items: Sequence[DigestItem],
    trending: Sequence[Paper] = (),
    personalised: bool = True,
    followed: Sequence[DigestItem] = (),
    window_note: str = "",
) -> Digest:
    """Followed papers (at most FOLLOWED_LIMIT), items in rank order, then what is trending
    that was not already shown."""
    more = max(0, len(followed) - FOLLOWED_LIMIT)
    followed = list(followed)[:FOLLOWED_LIMIT]
    picked = {item.pk for item in items} | {item.pk for item in followed}
    trend = [
        item_for(p, float(p.upvotes or 0), "trending")
        for p in trending
        if p.pk not in picked and p.upvotes
    ]
    return Digest(
        date=day,
        profile=profile,
        items=tuple(items),
        trending=tuple(trend),
        personalised=personalised,
        followed=tuple(followed),
        followed_more=more,
        window_note=window_note,
    )
