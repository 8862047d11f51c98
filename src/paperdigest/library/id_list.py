"""Plain text with one arXiv id, arXiv URL or DOI per line (pure). `#` starts a comment."""

from __future__ import annotations

from paperdigest.ids import normalise_arxiv_id
from paperdigest.library.entry import LibraryEntry, LibraryFile, arxiv_id_in, doi_in
from paperdigest.models import Problem


def parse_id_list(text: str, name: str) -> LibraryFile:
    entries: list[LibraryEntry] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name}: line {number}"
        # The first word, so "2503.11731  # read this" works; arXiv DOIs name the id too.
        arxiv_id = normalise_arxiv_id(line.split()[0]) or arxiv_id_in(line)
        doi = doi_in(line)
        if arxiv_id or doi:
            entries.append(LibraryEntry(where, arxiv_id=arxiv_id, doi=doi))
        else:
            shown = line if len(line) <= 60 else line[:59] + "…"
            problems.append(Problem(where, f"{shown!r} is not an arXiv id, arXiv URL or DOI"))
    return LibraryFile("id list", entries, problems)
