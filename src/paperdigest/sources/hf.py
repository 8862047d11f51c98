"""Hugging Face Daily Papers: one request per day, `GET {base}/api/daily_papers?date=`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date

import httpx

from paperdigest.parsers.hf import parse_hf_daily
from paperdigest.sources import Batch, problem_batch
from paperdigest.sources.http import ResponseTooLarge, RetryPolicy, get_bytes


def daily_papers_url(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/api/daily_papers"


def fetch_hf(
    client: httpx.Client, base_url: str, days: Iterable[date], policy: RetryPolicy
) -> Iterator[Batch]:
    """One Batch per day. A FetchError (server down) propagates and ends the source."""
    url = daily_papers_url(base_url)
    for day in days:
        where = f"{url}?date={day.isoformat()}"
        try:
            data = get_bytes(client, url, {"date": day.isoformat()}, policy=policy)
        except ResponseTooLarge as exc:
            yield problem_batch(where, f"{exc}; skipped")
            continue
        yield Batch(where, parse_hf_daily(data, where))
