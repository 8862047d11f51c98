"""Plain data shared by the core and the shell."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class PaperRecord:
    """One paper as a source describes it, before it meets the store."""

    title: str
    abstract: str
    arxiv_id: str | None = None
    authors: tuple[str, ...] = ()
    url: str | None = None
    published: date | None = None
    # The day a source announced the paper as new (a Hugging Face Daily Papers day), when
    # that differs from its publication; a later listing makes an unsent paper new again.
    listed: date | None = None
    # A date shown on a listing page without a year, such as "Mar 11".
    listed_label: str | None = None
    categories: tuple[str, ...] = ()
    primary_category: str | None = None
    version: int | None = None
    upvotes: int | None = None
    source: str = "file"
    # Richer fields only live sources know (arXiv Atom, Hugging Face Daily Papers).
    updated: date | None = None
    comments: int | None = None
    github: str | None = None
    project_page: str | None = None
    ai_summary: str | None = None
    # What readers value from each source (issue 11): Hugging Face's paper page, the
    # GitHub repository's stars, the submitting organization and its AI keywords; arXiv's
    # author comment ("12 pages, ICLR 2026"), DOI and journal reference.
    hf_page: str | None = None
    github_stars: int | None = None
    organization: str | None = None
    ai_keywords: tuple[str, ...] = ()
    arxiv_comment: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    # From arXiv's announcement feed: the licence URL, and the day arXiv announced the
    # paper as new (its listing day, which a later source's publication date never moves).
    license: str | None = None
    announced: date | None = None


@dataclass(frozen=True)
class Problem:
    """Input that was skipped, with where it was found."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class ParseResult:
    records: list[PaperRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Paper:
    """A stored paper."""

    pk: int
    id: str
    title: str
    abstract: str
    authors: tuple[str, ...]
    url: str | None
    listed: date
    listed_label: str | None = None
    upvotes: int | None = None
    arxiv_id: str | None = None
    hf_page: str | None = None
    github: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    organization: str | None = None
    ai_keywords: tuple[str, ...] = ()
    arxiv_comment: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    published: date | None = None


@dataclass(frozen=True)
class Pick:
    """A ranked paper with the evidence for it."""

    paper: Paper
    score: float
    because_of: Paper | None = None  # the starred paper it is closest to
    terms: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        if self.because_of is None:
            return "new"
        text = f"like “{_shorten(self.because_of.title, 60)}”"
        terms = distinct_terms(self.terms)
        if terms:
            text += " · " + ", ".join(terms)
        return text


def _shorten(text: str, width: int) -> str:
    """At most `width` characters, cut between words (one overlong word is cut)."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if text[width - 1] != " " and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-\u2013\u2014") + "…"


def _word_key(word: str) -> str:
    # "dnn" and "dnns" say the same thing in a reason line.
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def distinct_terms(terms: tuple[str, ...]) -> list[str]:
    """The terms minus any whose words another term already says ("training" beside
    "sparse training", "dnn" beside "dnns"), first one kept."""
    keys = [frozenset(_word_key(w) for w in term.split()) for term in terms]
    kept: list[str] = []
    for i, (term, key) in enumerate(zip(terms, keys, strict=True)):
        covered = any(
            key < other or (key == other and j < i) for j, other in enumerate(keys) if j != i
        )
        if not covered:
            kept.append(term)
    return kept
