"""Reading reference-library exports (pure): bytes in, entries and problems out.

One module per format (BibTeX/BibLaTeX, RIS, CSL-JSON, Zotero CSV, a list of ids), and a
detector that tells them apart by content. Matching entries to stored papers and starring
them is the shell's job (`paperdigest.library_import`).
"""

from __future__ import annotations

from collections.abc import Callable

from paperdigest.library.bibtex import parse_bibtex
from paperdigest.library.csl_json import parse_csl_json
from paperdigest.library.detect import Format, detect_format
from paperdigest.library.entry import LibraryEntry, LibraryFile, merge_duplicates
from paperdigest.library.id_list import parse_id_list
from paperdigest.library.ris import parse_ris
from paperdigest.library.zotero_csv import parse_zotero_csv
from paperdigest.models import Problem

# BibTeX is read by `parse_bibtex`, which also reports progress.
_PARSERS: dict[Format, Callable[[str, str], LibraryFile]] = {
    Format.RIS: parse_ris,
    Format.CSL_JSON: parse_csl_json,
    Format.CSV: parse_zotero_csv,
    Format.ID_LIST: parse_id_list,
}


def decode_library(data: bytes) -> str | None:
    """Text with any byte-order mark and CRLF line endings gone; None for a binary file.

    Exports are UTF-8 nearly always; an old Latin-1 .bib still reads rather than failing.
    """
    if b"\x00" in data[:8192]:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_library(
    data: bytes, name: str, on_entry: Callable[[], None] | None = None
) -> LibraryFile:
    """Every entry of one export file, with what could not be read.

    `on_entry()`, if given, is called as BibTeX entries are decoded (the slow format).
    """
    text = decode_library(data)
    if text is None:
        return LibraryFile("binary", problems=[Problem(name, "a binary file, not a library")])
    if not text.strip():
        return LibraryFile("empty", problems=[Problem(name, "the file is empty")])
    kind = detect_format(text)
    found = parse_bibtex(text, name, on_entry) if kind == Format.BIBTEX else _PARSERS[kind](
        text, name
    )
    if not found.entries and found.format == Format.ID_LIST and len(found.problems) > 3:
        # Nothing on any line: not a list of ids gone wrong but some other kind of file.
        return LibraryFile(found.format, problems=[Problem(
            name,
            "not a library file: expected BibTeX, RIS, CSL-JSON, Zotero CSV, "
            "or one arXiv id, arXiv URL or DOI per line",
        )])
    return found


__all__ = [
    "Format",
    "LibraryEntry",
    "LibraryFile",
    "detect_format",
    "merge_duplicates",
    "parse_library",
]
