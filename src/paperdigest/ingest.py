"""Reading paper files into the store: seed dumps and JSON Lines."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import BinaryIO

from paperdigest.models import ParseResult, Problem
from paperdigest.parsers import parse_seed_dump
from paperdigest.parsers.jsonl import Line, LineTooLong, parse_jsonl_lines
from paperdigest.paths import bundled_seed_files
from paperdigest.store import IngestStats, Store

SEEDED_KEY = "seeded"
MAX_FILE_BYTES = 512 * 1024 * 1024
# What one file may expand to when decompressed: a 2 MB .gz of spaces is 2 GB of text.
MAX_DECOMPRESSED_BYTES = 1024 * 1024 * 1024
# The longest line held in memory (a paper is a few KB; the store caps its text anyway).
MAX_LINE_BYTES = 16 * 1024 * 1024
# A seed dump is parsed whole: a smaller cap (the bundled ones are under 1 MiB).
MAX_SEED_BYTES = 64 * 1024 * 1024
_BLOCK = 1024 * 1024


@dataclass
class IngestReport:
    stats: IngestStats = field(default_factory=IngestStats)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0


class _Lines:
    """Numbered lines of a stream read a block at a time, with blank lines dropped, at most
    `limit` bytes in all and `MAX_LINE_BYTES` a line. A read error or the limit ends the
    lines read so far and is kept in `problem` (what was read before still counts)."""

    def __init__(self, stream: BinaryIO, name: str, limit: int) -> None:
        self.stream, self.name, self.limit = stream, name, limit
        self.problem: Problem | None = None

    def blocks(self) -> Iterator[bytes]:
        total = 0
        while True:
            try:
                # read1: what one read decompresses, so the lines before a damaged
                # part of a .gz still count.
                block = self.stream.read1(_BLOCK)
            except (OSError, EOFError, zlib.error) as exc:
                self.problem = Problem(self.name, f"{_read_error(exc)}; stopped there")
                return
            if not block:
                return
            total += len(block)
            if total > self.limit:
                self.problem = Problem(
                    self.name,
                    f"more than {self.limit // 2**20} MiB of text once decompressed; "
                    "stopped there (the rest of the file is not read)",
                )
                return
            yield block

    def __iter__(self) -> Iterator[tuple[int, Line]]:
        number = 0
        pending = b""
        too_long = False
        for block in self.blocks():
            if not pending and not too_long and not block.strip():
                number += block.count(b"\n")  # runs of blank lines cost no Python loop
                continue
            parts = block.split(b"\n")
            for part in parts[:-1]:
                number += 1
                line, pending = pending + part, b""
                if too_long or len(line) > MAX_LINE_BYTES:
                    too_long = False
                    yield number, LineTooLong(MAX_LINE_BYTES)
                elif line.strip():
                    yield number, line
            if not too_long:
                pending += parts[-1]
                if len(pending) > MAX_LINE_BYTES:
                    pending, too_long = b"", True
        if self.problem is not None:
            return  # the line cut short by the error or the cap is not a line
        if too_long:
            yield number + 1, LineTooLong(MAX_LINE_BYTES)
        elif pending.strip():
            yield number + 1, pending


def _read_error(exc: BaseException) -> str:
    if isinstance(exc, EOFError | zlib.error | gzip.BadGzipFile):
        return f"not a valid gzip file ({exc})"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)


def parse_file(path: Path, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> ParseResult:
    """Parse one file by its kind: JSON Lines (.jsonl, .jsonl.gz) or a seed text dump.

    The file is streamed (a `.gz` is decompressed as it is read) and reading stops at
    `max_bytes` of text, so no file can take more memory than that.
    """
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return ParseResult(problems=[Problem(name, "larger than 512 MiB; skipped")])
        raw = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        return ParseResult(problems=[Problem(name, f"cannot read: {exc.strerror or exc}")])
    kind = path
    stream: BinaryIO = raw
    if path.suffix == ".gz":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        kind = path.with_suffix("")
    is_jsonl = kind.suffix in (".jsonl", ".json", ".ndjson")
    lines = _Lines(stream, name, max_bytes if is_jsonl else min(max_bytes, MAX_SEED_BYTES))
    try:
        if is_jsonl:
            result = parse_jsonl_lines(lines, name)
        else:
            result = parse_seed_dump(b"".join(lines.blocks()), name)
    finally:
        stream.close()
        raw.close()
    if lines.problem is None:
        return result
    problems = [p for p in result.problems if not p.message.startswith("no papers found")]
    return ParseResult(records=result.records, problems=[*problems, lines.problem])


def ingest_files(
    store: Store,
    paths: Sequence[Path],
    on_file: Callable[[Path, ParseResult], None] | None = None,
    today: date | None = None,
    on_progress: Callable[[Path, int, int], None] | None = None,
) -> IngestReport:
    """Parse and store each file; a bad file is reported and never stops the others.

    `on_progress(path, done, total)` reports records stored so far within a file, every
    few thousand records, so a large file shows progress.
    """
    report = IngestReport()
    for path in paths:
        result = parse_file(path)
        report.problems.extend(result.problems)
        if result.records:
            total = len(result.records)
            report.stats.add(
                store.ingest(
                    result.records,
                    today=today,
                    progress=(
                        None
                        if on_progress is None
                        else lambda done, p=path, t=total: on_progress(p, done, t)
                    ),
                )
            )
            report.files += 1
        if on_file is not None:
            on_file(path, result)
    return report


def needs_seeds(store: Store) -> bool:
    """An empty store that was never seeded (one emptied by hand is left alone)."""
    return store.get_meta(SEEDED_KEY) is None and store.count_papers() == 0


def ensure_seeded(
    store: Store, on_file: Callable[[Path, ParseResult], None] | None = None
) -> IngestReport | None:
    """On first use of an empty store, load the bundled seed corpus. Returns None if not needed."""
    if not needs_seeds(store):
        return None
    report = ingest_files(store, bundled_seed_files(), on_file=on_file)
    store.set_meta(SEEDED_KEY, "1")
    return report
