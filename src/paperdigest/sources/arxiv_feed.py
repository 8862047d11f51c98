"""arXiv's daily announcement feed: `GET {feed_url}/rss/{cat1}+{cat2}+...`.

One request for all categories. arXiv cuts a feed at 2,000 items, so a combined feed that
comes back that full is fetched again one category at a time; a single category that
still fills it is reported, as it may be cut.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
            day = f" ({feed.day.isoformat()})" if feed.day else ""
            notes = (f"{NO_ANNOUNCEMENT}{day}: {url} is empty",)
        yield Batch(url, result, revisions=tuple(feed.revised), notes=notes)
