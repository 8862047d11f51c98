"""arXiv listings by category through the Atom API, paged and politely throttled.

Results come newest first, so paging goes on, however many pages that takes, until a
page reaches back past `since` or the results end. `max_results` is only a safety stop,
and one that is hit is reported, never silent. A paper is listed (new) on the day of its
first version (sortBy=submittedDate); with `include_revisions`, a new version of an older
paper is listed again on the day it came out (sortBy=lastUpdatedDate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date

import httpx

from paperdigest.models import PaperRecord, ParseResult
from paperdigest.parsers.arxiv import arxiv_error_message, parse_arxiv_page
from paperdigest.sources import Batch, problem_batch
from paperdigest.sources.http import ResponseTooLarge, RetryPolicy, get_bytes


class Throttle:
    """At most one request per `interval` seconds (arXiv asks for one every 3 s)."""

    def __init__(
        self,
        interval: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._sleep = sleep
        self._clock = clock
        self._last: float | None = None

    def wait(self) -> None:
        if self._last is not None:
            remaining = self.interval - (self._clock() - self._last)
            if remaining > 0:
                self._sleep(remaining)
        self._last = self._clock()


@dataclass(frozen=True)
class ArxivQuery:
    categories: Sequence[str]
    max_results: int = 10_000  # per category: a safety stop, reported when hit
    page_size: int = 200
    since: date | None = None  # keep papers first published on or after this day
    until: date | None = None  # ... and on or before this one
    include_revisions: bool = False  # a new version lists the paper again


def _in_window(record: PaperRecord, query: ArxivQuery) -> bool:
    """First published in the window, or revised in it (a new version). Either way the
    store keeps the newest text; whether the paper counts as new is its listed day."""

    def inside(day: date | None) -> bool:
        return (
            day is not None
            and (query.since is None or day >= query.since)
            and (query.until is None or day <= query.until)
        )

    return inside(record.published) or inside(record.updated)


def _as_listed(record: PaperRecord, query: ArxivQuery) -> PaperRecord:
    """With revisions on, a paper is listed on the day of the version fetched, so a new
    version of an old paper is new again (for profiles that were never sent it)."""
    if query.include_revisions and record.updated and record.updated != record.published:
        return replace(record, listed=record.updated)
    return record


def query_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/api/query"


def fetch_arxiv(
    client: httpx.Client,
    base_url: str,
    query: ArxivQuery,
    policy: RetryPolicy,
    throttle: Throttle,
) -> Iterator[Batch]:
    url = query_url(base_url)
    for category in query.categories:
        start = 0
        passed = False  # reached back past `since`, or the end of the results
        while start < query.max_results:
            size = min(query.page_size, query.max_results - start)
            params: dict[str, str | int] = {
                "search_query": f"cat:{category}",
                "sortBy": "lastUpdatedDate" if query.include_revisions else "submittedDate",
                "sortOrder": "descending",
                "start": start,
                "max_results": size,
            }
            where = f"{url}?search_query=cat:{category}&start={start}"
            throttle.wait()
            try:
                data = get_bytes(client, url, params, policy=policy, explain=arxiv_error_message)
            except ResponseTooLarge as exc:
                yield problem_batch(where, f"{exc}; page skipped")
                start += size
                continue
            page = parse_arxiv_page(data, where)
            records = [_as_listed(r, query) for r in page.result.records if _in_window(r, query)]
            yield Batch(where, ParseResult(records, page.result.problems))
            if page.entries == 0:
                if page.result.problems and page.total is None:
                    start += size  # a malformed page: skip it, keep paging
                    continue
                passed = True  # the end of the results
                break
            start += page.entries
            if page.total is not None and start >= page.total:
                passed = True
                break
            oldest = page.oldest_activity if query.include_revisions else page.oldest
            if query.since is not None and oldest is not None and oldest < query.since:
                passed = True
                break
        if not passed:
            back_to = f" before reaching {query.since.isoformat()}" if query.since else ""
            yield problem_batch(
                f"{url}?search_query=cat:{category}",
                f"stopped at sources.arxiv.max_results = {query.max_results} results{back_to}; "
                "older papers were not fetched (raise max_results to read further)",
            )
