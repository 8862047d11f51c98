"""Parser for Hugging Face papers page dumps (the seed corpus format).

Two layouts occur: blank-line separated paragraphs with header lines and a date line
(`Mar 11`), and one record per pair of lines with `Subscribe` glued to the first title.
Both reduce to: drop page furniture, then read title, abstract, title, abstract...
"""

from __future__ import annotations

import re
from datetime import date

from paperdigest.models import PaperRecord, ParseResult, Problem
from paperdigest.parsers.text import clean, decode_text

_FURNITURE = {
    "new",
    "subscribe",
    "byak and the research community",
    "get trending papers in your email inbox!",
    "get trending papers in your email inbox once a day!",
}
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_DATE_LINE = re.compile(
    rf"^(?P<month>{_MONTHS})[a-z]*\.?\s+(?P<day>\d{{1,2}})(?:,\s*(?P<year>\d{{4}}))?$"
)
# Titles are short; abstracts are paragraphs. The longest seed title is under 200
# characters and the shortest abstract over 450.
_MAX_TITLE_CHARS = 300


def _is_abstract(line: str) -> bool:
    return len(line) > _MAX_TITLE_CHARS or line.count(". ") >= 2


def _date_of(match: re.Match[str]) -> tuple[str, date | None]:
    label = f"{match['month']} {int(match['day'])}"
    if match["year"] is None:
        return label, None
    month = _MONTHS.split("|").index(match["month"]) + 1
    try:
        return label, date(int(match["year"]), month, int(match["day"]))
    except ValueError:
        return label, None


def _decode_lines(data: bytes, name: str, problems: list[Problem]) -> str:
    """Decode line by line: a line that is not UTF-8 costs that line, not the file."""
    lines: list[str] = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append(Problem(f"{name}:{number}", f"not UTF-8 text (byte {exc.start + 1}); "
                                    "skipped"))
            lines.append("")
    return "\n".join(lines)


def parse_seed_dump(data: bytes, name: str) -> ParseResult:
    """Parse one dump. Records keep the most recent date line seen above them."""
    records: list[PaperRecord] = []
    problems: list[Problem] = []
    text = decode_text(data)
    if text is None:
        if b"\x00" in data[:8192]:
            return ParseResult(problems=[Problem(name, "not a UTF-8 text file; skipped")])
        text = _decode_lines(data, name, problems)
    label: str | None = None
    published: date | None = None
    pending_title: tuple[int, str] | None = None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = clean(raw)
        if line.startswith("Subscribe") and line.lower() != "subscribe":
            line = line.removeprefix("Subscribe").strip()
        if not line or line.lower() in _FURNITURE:
            continue
        date_match = _DATE_LINE.match(line)
        if date_match:
            label, published = _date_of(date_match)
            continue
        if _is_abstract(line):
            if pending_title is None:
                problems.append(Problem(f"{name}:{number}", "abstract with no title; skipped"))
                continue
            records.append(
                PaperRecord(
                    title=pending_title[1],
                    abstract=line,
                    published=published,
                    listed_label=label,
                    source="seed",
                )
            )
            pending_title = None
        else:
            if pending_title is not None:
                problems.append(
                    Problem(f"{name}:{pending_title[0]}", "title with no abstract; skipped")
                )
            pending_title = (number, line)

    if pending_title is not None:
        problems.append(Problem(f"{name}:{pending_title[0]}", "title with no abstract; skipped"))
    if not records and not problems:
        problems.append(Problem(name, "no papers found (empty file?)"))
    return ParseResult(records=records, problems=problems)
