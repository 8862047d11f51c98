"""arXiv's daily announcement feed: `GET {feed_url}/rss/{cat1}+{cat2}+...`.

One request for all categories. arXiv cuts a feed at 2,000 items, so a combined feed that
comes back that full is fetched again one category at a time; a single category that
still fills it is reported, as it may be cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta

import httpx

from paperdigest.models import ParseResult, Problem
from paperdigest.parsers.arxiv_rss import parse_arxiv_rss
from paperdigest.sources import Batch, problem_batch
from paperdigest.sources.arxiv import Throttle
from paperdigest.sources.http import ResponseTooLarge, RetryPolicy, get_bytes

FEED_CAP = 2000  # items arXiv puts in one feed at most
NO_ANNOUNCEMENT = "no arXiv announcement on that day"


def feed_request_url(feed_url: str, categories: Sequence[str]) -> str:
    return f"{feed_url.rstrip('/')}/rss/{'+'.join(categories)}"


def fetch_arxiv_feed(
    client: httpx.Client,
    feed_url: str,
    categories: Sequence[str],
    policy: RetryPolicy,
    throttle: Throttle,
    *,
    include_revisions: bool = False,
    cap: int = FEED_CAP,
) -> Iterator[Batch]:
    """One Batch per feed read. A FetchError (server down) propagates and ends the source."""
    groups = [list(categories)] if categories else []
    while groups:
        group = groups.pop(0)
        url = feed_request_url(feed_url, group)
        throttle.wait()
        try:
            data = get_bytes(client, url, policy=policy)
        except ResponseTooLarge as exc:
            yield problem_batch(url, f"{exc}; skipped")
            continue
        feed = parse_arxiv_rss(data, url, include_revisions=include_revisions)
        if feed.items >= cap and len(group) > 1:
            # Cut short: read each category on its own, and store only those.
            groups[:0] = [[category] for category in group]
            continue
        result = feed.new
        notes: tuple[str, ...] = ()
        if feed.items >= cap:
            warning = (
                f"{feed.items} items, arXiv's limit for one feed: the {group[0]} listing may "
                "be cut; `paperdigest fetch --source arxiv --since DAY` fetches it whole"
            )
            result = ParseResult(result.records, [*result.problems, Problem(url, warning)])
        if feed.items == 0 and not result.problems:
            shown = f" ({feed.day.isoformat()})" if feed.day else ""
            notes = (f"{NO_ANNOUNCEMENT}{shown}: {url} is empty",)
        day = feed.day if feed.items else None
        yield Batch(url, result, revisions=tuple(feed.revised), notes=notes, day=day)


def missed_days(last_read: date, now_read: date) -> list[date]:
    """Weekdays strictly between two announcement days read: announcements maybe missed
    (a holiday among them had none)."""
    days = (last_read + timedelta(days=n) for n in range(1, (now_read - last_read).days))
    return [day for day in days if day.weekday() < 5]


def missed_note(last_read: date, now_read: date) -> str | None:
    """What to run when announcements between two days read were not fetched."""
    missed = missed_days(last_read, now_read)
    if not missed:
        return None
    # Day D lists submissions of the two days before it, so the API goes back one more.
    since = (last_read - timedelta(days=1)).isoformat()
    shown = ", ".join(day.isoformat() for day in missed[:5]) + (" ..." if len(missed) > 5 else "")
    return (
        f"the announcements of {shown} were not read (the last one read was of "
        f"{last_read.isoformat()}); `paperdigest fetch --source arxiv --since {since}` "
        "fetches them"
    )
