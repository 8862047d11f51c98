"""BibTeX and BibLaTeX (Zotero, Better BibTeX, Google Scholar, JabRef...), read with
bibtexparser 2 and its middleware: LaTeX accents and braces decoded, `@string` and month
macros resolved, co-authors split and written first-name-first (pure)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import bibtexparser
from bibtexparser import middlewares
from bibtexparser.library import Library
from bibtexparser.model import (
    DuplicateBlockKeyBlock,
    DuplicateFieldKeyBlock,
    Entry,
    MiddlewareErrorBlock,
    ParsingFailedBlock,
)

from paperdigest.library.entry import LibraryEntry, LibraryFile, date_in, make_entry
from paperdigest.models import Problem

# bibtexparser logs each block it cannot parse; we report those ourselves, per entry.
logging.getLogger("bibtexparser").addHandler(logging.NullHandler())
logging.getLogger("bibtexparser").propagate = False

_KEY = re.compile(r"@\s*\w+\s*[{(]\s*([^,\s]+)\s*,")
# Fields that are prose. URLs, DOIs and file paths are not LaTeX: decoding would read the
# `%` of `%20` as a comment and `~` as a space.
_PROSE = {"title", "author", "editor", "abstract", "journal", "journaltitle", "booktitle",
          "note", "annote", "annotation", "howpublished", "publisher", "number", "extra"}
_LATEX_MARKUP = re.compile(r"[\\{}$~%&^_#]|--|``|''")
_BARE_PERCENT = re.compile(r"(?<!\\)%")


class _ProseLatexDecoding(middlewares.LatexDecodingMiddleware):
    """bibtexparser's LaTeX decoding, for prose fields only and with a fast path.

    Decoding costs ~8 ms per abstract, so values without any LaTeX markup (most of them)
    skip it. A value the decoder chokes on is kept as written rather than losing the entry.
    It is the slow step of reading a file, so it reports each entry done.
    """

    def __init__(self, on_entry: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.on_entry = on_entry

    def transform_entry(self, entry: Entry, library: Library) -> Entry:
        other = [f for f in entry.fields if f.key.lower() not in _PROSE]
        entry.fields = [f for f in entry.fields if f.key.lower() in _PROSE]
        super().transform_entry(entry, library)
        entry.fields = entry.fields + other
        if self.on_entry is not None:
            self.on_entry()
        return entry

    def _transform_python_value_string(self, python_string: str) -> tuple[str, str]:
        if not _LATEX_MARKUP.search(python_string):
            return python_string, ""
        # A bare % in a field ("by 5% on", as Mendeley writes abstracts) is a percent sign,
        # not a LaTeX comment that would swallow the rest of the line.
        escaped = _BARE_PERCENT.sub(r"\\%", python_string)
        decoded, error = super()._transform_python_value_string(escaped)
        return (python_string if error else decoded), ""


def _parse_stack(on_entry: Callable[[], None] | None = None) -> list[middlewares.Middleware]:
    return [
        *middlewares.default_parse_stack(),
        # Decode LaTeX before splitting names: a braced {Google Research} is one author,
        # and J\'{e}r\'{e}mie must reach the name splitter as Jérémie.
        _ProseLatexDecoding(on_entry),
        middlewares.MonthIntMiddleware(True),
        middlewares.SeparateCoAuthors(),
        middlewares.SplitNameParts(),
        middlewares.MergeNameParts(style="first"),
    ]


def parse_bibtex(text: str, name: str, on_entry: Callable[[], None] | None = None) -> LibraryFile:
    library = bibtexparser.parse_string(text, parse_stack=_parse_stack(on_entry))
    entries: list[LibraryEntry] = []
    problems: list[Problem] = []
    for block in library.blocks:
        if isinstance(block, DuplicateBlockKeyBlock | DuplicateFieldKeyBlock):
            # A key or a field given twice is a slip, not a reason to lose the entry.
            block = _decoded(block.ignore_error_block) or block
        if isinstance(block, Entry):
            found = _entry(block, name)
            (entries if isinstance(found, LibraryEntry) else problems).append(found)
        elif isinstance(block, ParsingFailedBlock | MiddlewareErrorBlock):
            problems.append(_failure(block, name))
    return LibraryFile("BibTeX", entries, problems)


def _decoded(block: object) -> Entry | None:
    """The entry behind a duplicate-key error, run through the same middleware."""
    if not isinstance(block, Entry):
        return None
    library = Library([block])
    for middleware in _parse_stack():
        library = middleware.transform(library)
    found = library.entries
    return found[0] if found else None


def _where(name: str, key: str | None, line: int | None) -> str:
    where = f"{name}: entry {key}" if key else f"{name}: entry"
    return f"{where} (line {line + 1})" if line is not None else where


def _failure(block: ParsingFailedBlock, name: str) -> Problem:
    match = _KEY.match(block.raw or "")
    error = " ".join(str(block.error or "").split())
    if isinstance(block, MiddlewareErrorBlock):
        reason = f"cannot be read: {error}"
    elif "Was still looking" in error:
        reason = "a brace or quote is not closed"
    elif error:
        reason = f"cannot be parsed: {error}"
    else:
        reason = "cannot be parsed (a brace or quote not closed?)"
    return Problem(_where(name, match.group(1) if match else None, block.start_line), reason)


def _text(fields: dict[str, object], *names: str) -> str:
    for key in names:
        value = fields.get(key)
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _entry(block: Entry, name: str) -> LibraryEntry | Problem:
    fields = {f.key.lower(): f.value for f in block.fields}
    where = _where(name, block.key, block.start_line)
    eprint_type = _text(fields, "eprinttype", "archiveprefix").lower()
    eprint = _text(fields, "eprint", "arxivid")  # Mendeley writes arxivId
    authors = fields.get("author")
    year = _text(fields, "year")
    month = fields.get("month")
    published = date_in(_text(fields, "date")) or (
        date_in(f"{year}-{month}" if isinstance(month, int) else year) if year else None
    )
    return make_entry(
        where,
        title=_text(fields, "title"),
        abstract=_text(fields, "abstract"),
        authors=authors if isinstance(authors, list) else (),
        doi=_text(fields, "doi"),
        url=_text(fields, "url"),
        published=published,
        # An eprint without a type is usually arXiv's (Google Scholar, older Zotero).
        arxiv_id=eprint if eprint and eprint_type in ("", "arxiv") else None,
        id_texts=[
            _text(fields, key)
            for key in ("journal", "journaltitle", "note", "number", "howpublished",
                        "eprint", "extra", "annote", "publisher", "volume")
        ],
    )
