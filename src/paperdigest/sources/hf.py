"""Hugging Face Daily Papers: `GET {base}/api/daily_papers?date=D&limit=N&p=P`, every page.

The API returns 50 items unless `limit` is given and pages with `p` (0, 1, ...). A day is
read page by page until a short page, so a busy day is never cut at the first page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import date

import httpx

from paperdigest.models import Problem
from paperdigest.parsers.hf import parse_hf_items, parse_hf_list
from paperdigest.sources import Batch, problem_batch
from paperdigest.sources.http import (
    FetchError,
    RefusedError,
    ResponseTooLarge,
    RetryPolicy,
    get_bytes,
)

log = logging.getLogger(__name__)

# Items per request. Hugging Face documents 100 as the largest `limit`; asking for more
# risks a silently capped page that looks short and ends the day early.
PAGE_LIMIT = 100
# What the API sends when it ignores `limit`: a page this long is never taken as the last.
DEFAULT_PAGE = 50
# A day with more pages than this is a server that ignores `p`: stop rather than loop.
MAX_PAGES = 50


def daily_papers_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/api/daily_papers"


def _full(count: int, limit: int | None) -> bool:
    """Whether a page of `count` items may have more after it.

    A page shorter than asked for is normally the last, but a server that caps `limit`
    below ours (at its default of 50, say) sends full pages that look short.
    """
    return count >= min(limit or DEFAULT_PAGE, DEFAULT_PAGE)


def fetch_hf_day(
    client: httpx.Client,
    url: str,
    day: date,
    policy: RetryPolicy,
    limit: int | None = PAGE_LIMIT,
) -> Iterator[Batch]:
    """One Batch per page of one day, each paper once (a paper never repeats in a day)."""
    seen: set[str] = set()
    read = 0  # items received so far, good or bad
    page = 0
    while page < MAX_PAGES:
        params: dict[str, str | int] = {"date": day.isoformat()}
        if limit is not None:
            params["limit"] = limit
        params["p"] = page
        where = f"{url}?{httpx.QueryParams(params)}"
        try:
            data = get_bytes(client, url, params, policy=policy)
        except ResponseTooLarge as exc:
            yield problem_batch(where, f"{exc}; skipped")
            return
        except FetchError as exc:
            refused = isinstance(exc, RefusedError) and exc.status in (400, 422)
            if page == 0 and limit is not None and refused:
                # A server that will not take our `limit`: its own page size still pages.
                log.warning("%s; reading the day in the server's default pages instead", exc)
                limit = None
                continue
            if page == 0:
                raise
            raise _missing_rest(day, page, read, exc) from None
        items = parse_hf_items(data, where)
        if isinstance(items, Problem):
            yield problem_batch(where, items.message)
            return
        read += len(items)
        result = parse_hf_list(items, where, day)
        fresh = [r for r in result.records if r.arxiv_id not in seen]
        seen.update(r.arxiv_id for r in fresh if r.arxiv_id)
        # A short page is the last; a page of nothing but repeats means `p` is ignored.
        last = not _full(len(items), limit) or bool(result.records and not fresh)
        yield Batch(where, replace(result, records=fresh), completes=last)
        if last:
            return
        page += 1
    yield problem_batch(
        f"{url}?date={day.isoformat()}", f"stopped after {MAX_PAGES} pages of {limit}"
    )


def _missing_rest(day: date, page: int, read: int, exc: FetchError) -> FetchError:
    return FetchError(
        f"{day.isoformat()}: page {page} failed after a full page, so papers past the "
        f"first {read} of that day are missing (the next fetch tries again): {exc}"
    )


def fetch_hf(
    client: httpx.Client,
    base_url: str,
    days: Iterable[date],
    policy: RetryPolicy,
    limit: int = PAGE_LIMIT,
) -> Iterator[Batch]:
    """Every page of every day. A FetchError (server down) propagates and ends the source."""
    url = daily_papers_url(base_url)
    for day in days:
        yield from fetch_hf_day(client, url, day, policy, limit)
