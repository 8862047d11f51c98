"""Reading paper files into the store: seed dumps and JSON Lines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from paperdigest.models import ParseResult, Problem
from paperdigest.parsers import parse_jsonl, parse_seed_dump
from paperdigest.paths import bundled_seed_files
from paperdigest.store import IngestStats, Store

SEEDED_KEY = "seeded"
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class IngestReport:
    stats: IngestStats = field(default_factory=IngestStats)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0


def parse_file(path: Path) -> ParseResult:
    """Parse one file by its kind: JSON Lines (.jsonl, .jsonl.gz) or a seed text dump."""
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return ParseResult(problems=[Problem(name, "larger than 512 MiB; skipped")])
        data = path.read_bytes()
    except OSError as exc:
        return ParseResult(problems=[Problem(name, f"cannot read: {exc.strerror or exc}")])
    if path.suffix == ".gz":
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            return ParseResult(problems=[Problem(name, f"not a valid gzip file ({exc})")])
        path = path.with_suffix("")
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        return parse_jsonl(data, name)
    return parse_seed_dump(data, name)


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
