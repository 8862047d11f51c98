"""One entry of a reference library, and the field clean-up every format shares (pure).

Exports are untrusted and messy: ids hide in free-text fields, abstracts carry HTML, dates
come as a year, a year and month, or a full date.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date

from markupsafe import Markup

from paperdigest.ids import normalise_arxiv_id, normalise_title
from paperdigest.models import PaperRecord, Problem
from paperdigest.parsers.text import clean

# "arXiv:1706.03762", "arXiv preprint arXiv:1706.03762v5", "arXiv: hep-th/9901001",
# "arxiv.org/abs/1706.03762", "arxiv.org/pdf/1706.03762v2.pdf", DOI "10.48550/arXiv.1706.03762",
# and DBLP's and Semantic Scholar's `journal = {CoRR}, volume = {abs/1706.03762}`.
_ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|arxiv[:.]\s*|arxiv\s+|^abs/)"
    r"(?P<id>\d{4}\.\d{4,5}(?:v\d+)?|[a-z\-]+(?:\.[A-Z]{2})?/\d{7}(?:v\d+)?)",
    re.IGNORECASE,
)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>{}]+)", re.IGNORECASE)
_DATE = re.compile(r"(?P<y>\d{4})(?:[-/](?P<m>\d{1,2})(?:[-/](?P<d>\d{1,2}))?)?")
# Control characters (an ESC starts a terminal escape sequence); white space is kept.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TAG = re.compile(r"</?[a-z][a-z0-9:-]*(?:\s[^>]*)?/?>", re.IGNORECASE)
# An imported paper without any date is old news, not today's: list it long ago so it is
# never a "new" candidate in anyone's digest.
UNDATED = date(1970, 1, 1)


@dataclass(frozen=True)
class LibraryEntry:
    """A paper as a reference manager exports it. `where` names it in messages."""

    where: str
    title: str = ""
    abstract: str = ""
    authors: tuple[str, ...] = ()
    arxiv_id: str | None = None
    doi: str | None = None
    url: str | None = None
    published: date | None = None

    @property
    def norm_title(self) -> str:
        return normalise_title(self.title)

    def record(self) -> PaperRecord:
        """The paper to store when nothing stored matches this entry."""
        return PaperRecord(
            title=self.title,
            abstract=self.abstract,
            arxiv_id=self.arxiv_id,
            doi=self.doi,
            authors=self.authors,
            url=self.url,
            published=self.published,
            listed=self.published or UNDATED,
            source="import",
        )


@dataclass(frozen=True)
class LibraryFile:
    """What one file held: its format, the entries read and what could not be read."""

    format: str
    entries: list[LibraryEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def plain(text: object) -> str:
    """Text with HTML tags and entities removed and white space collapsed."""
    if not isinstance(text, str):
        return ""
    if _TAG.search(text) or "&" in text:
        text = Markup(text).striptags()
    return clean(CONTROL.sub("", text))


def first_name_first(name: str) -> str:
    """`Vaswani, Ashish` as `Ashish Vaswani`, the way arXiv and Hugging Face write names."""
    last, comma, first = name.partition(",")
    if not comma or "," in first or not first.strip():
        return name.strip(" ,")
    return f"{first.strip()} {last.strip()}"


def arxiv_id_in(*texts: object) -> str | None:
    """The first arXiv id named in free text (a note, a journal field, a URL), versionless."""
    for text in texts:
        if not isinstance(text, str):
            continue
        match = _ARXIV_IN_TEXT.search(text)
        if match:
            found = normalise_arxiv_id(match.group("id"))
            if found:
                return found
    return None


def doi_in(text: object) -> str | None:
    """A DOI from `10.1/x`, `doi:10.1/x` or `https://doi.org/10.1/x`, lower-cased (DOIs
    ignore case)."""
    if not isinstance(text, str):
        return None
    match = _DOI.search(text)
    if not match:
        return None
    return match.group(1).rstrip(".,;)]").lower()


def date_in(*texts: object) -> date | None:
    """The first date in `2017-06-12`, `2017/06/12/`, `2017-06` or `2017` (a year or a month
    alone counts from its first day)."""
    for text in texts:
        if isinstance(text, int):
            text = str(text)
        if not isinstance(text, str):
            continue
        match = _DATE.search(text)
        if not match:
            continue
        year = int(match.group("y"))
        month = int(match.group("m") or 1)
        day = int(match.group("d") or 1)
        for candidate in ((year, month, day), (year, month, 1), (year, 1, 1)):
            try:
                return date(*candidate)
            except ValueError:
                continue
    return None


def make_entry(
    where: str,
    *,
    title: object = "",
    abstract: object = "",
    authors: Iterable[object] = (),
    doi: object = None,
    url: object = None,
    published: date | None = None,
    arxiv_id: str | None = None,
    id_texts: Iterable[object] = (),
) -> LibraryEntry | Problem:
    """An entry from raw fields, or the reason it cannot be one.

    The arXiv id is the explicit one, else one found in the DOI (arXiv's own DOIs),
    the URL or any of `id_texts` (journal, note, Extra, container-title...).
    """
    doi_text = doi_in(doi)
    url_text = plain(url) or None
    found = (
        normalise_arxiv_id(arxiv_id) if arxiv_id else None
    ) or arxiv_id_in(doi_text, url_text, *id_texts)
    entry = LibraryEntry(
        where=where,
        title=plain(title),
        abstract=plain(abstract),
        authors=tuple(name for name in (first_name_first(plain(a)) for a in authors) if name),
        arxiv_id=found,
        doi=doi_text,
        url=url_text if url_text and url_text.startswith(("http://", "https://")) else None,
        published=published,
    )
    if not (entry.title or entry.arxiv_id or entry.doi):
        return Problem(where, "no title, arXiv id or DOI")
    return entry


def merge_duplicates(entries: list[LibraryEntry]) -> tuple[list[LibraryEntry], list[Problem]]:
    """One entry per paper: a later entry with the same arXiv id, DOI or title is folded
    into the first (filling its gaps) and reported."""
    kept: list[LibraryEntry] = []
    problems: list[Problem] = []
    index: dict[tuple[str, str], int] = {}
    for entry in entries:
        position = next((index[k] for k in _keys(entry) if k in index), None)
        if position is None:
            position = len(kept)
            kept.append(entry)
        else:
            first = kept[position]
            if _conflicting_ids(first, entry):
                position = len(kept)
                kept.append(entry)
            else:
                kept[position] = _fill(first, entry)
                problems.append(Problem(entry.where, f"same paper as {first.where}"))
        for key in _keys(kept[position]):
            index.setdefault(key, position)
    return kept, problems


def _keys(entry: LibraryEntry) -> list[tuple[str, str]]:
    pairs = (("arxiv", entry.arxiv_id), ("doi", entry.doi), ("title", entry.norm_title))
    return [(kind, value) for kind, value in pairs if value]


def _conflicting_ids(a: LibraryEntry, b: LibraryEntry) -> bool:
    # Two papers may share a title ("Introduction"); different arXiv ids keep them apart.
    return bool(a.arxiv_id and b.arxiv_id and a.arxiv_id != b.arxiv_id)


def _better_title(first: str, other: str) -> str:
    # Google Scholar lower-cases titles ("Deal or no deal? end-to-end learning"): of two
    # spellings of one title, keep the one with its capitals.
    if first and normalise_title(first) == normalise_title(other):
        return max(first, other, key=lambda t: sum(c.isupper() for c in t))
    return first or other


def _fill(first: LibraryEntry, other: LibraryEntry) -> LibraryEntry:
    return replace(
        first,
        title=_better_title(first.title, other.title),
        abstract=first.abstract if len(first.abstract) >= len(other.abstract) else other.abstract,
        authors=first.authors or other.authors,
        arxiv_id=first.arxiv_id or other.arxiv_id,
        doi=first.doi or other.doi,
        url=first.url or other.url,
        published=first.published or other.published,
    )
