"""Which format a library file is in, from its content rather than its name (pure)."""

from __future__ import annotations

import re
from enum import StrEnum

from paperdigest.library.zotero_csv import looks_like_csv_header

_BIBTEX_ENTRY = re.compile(r"^\s*@\s*[a-zA-Z]+\s*[{(]", re.MULTILINE)
_RIS_TAG = re.compile(r"^TY  - ", re.MULTILINE)


class Format(StrEnum):
    BIBTEX = "BibTeX"
    RIS = "RIS"
    CSL_JSON = "CSL-JSON"
    CSV = "Zotero CSV"
    ID_LIST = "id list"


def detect_format(text: str) -> Format:
    """Told apart by the first thing each format must have; anything else is an id list."""
    start = text.lstrip()
    if start.startswith(("[", "{")):
        return Format.CSL_JSON
    if _RIS_TAG.search(text) and not _BIBTEX_ENTRY.search(text):
        return Format.RIS
    if _BIBTEX_ENTRY.search(text):
        return Format.BIBTEX
    first_line = start.split("\n", 1)[0]
    if looks_like_csv_header(first_line):
        return Format.CSV
    return Format.ID_LIST
