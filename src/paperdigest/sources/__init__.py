"""Live sources: the network shell around the pure parsers. Each yields one Batch per
response, so the caller can store every good page even when a later request fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from paperdigest.models import PaperRecord, ParseResult, Problem


@dataclass(frozen=True)
class Batch:
    where: str  # the request, for warnings: URL and parameters
    result: ParseResult
    # False on all but the last page of a step the progress bar counts (a Daily Papers day).
    completes: bool = True
    # New versions of papers: they update a stored paper and never add one.
    revisions: tuple[PaperRecord, ...] = ()
    # What the user should hear that is not a problem ("no announcement that day").
    notes: tuple[str, ...] = ()
    # The announcement day the batch lists (arXiv's feed), when it lists one.
    day: date | None = None


def problem_batch(where: str, message: str) -> Batch:
    return Batch(where, ParseResult(problems=[Problem(where, message)]))
