"""Refreshing the corpus before a digest is built.

The daily job calls `refresh_sources` first; `paperdigest fetch` calls it too. Each
source runs on its own: one failing (down, timing out, answering garbage) is logged and
recorded in the fetch log, and never stops the other or the digest that follows.
Every good response is stored as it arrives, so a later failure keeps what came before.
A `stop` event (the daemon's SIGTERM) ends a refresh at its next request or backoff sleep,
so stopping never waits out retries; a stopped source is not logged as fetched, so the
next refresh covers its days again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import httpx

from paperdigest.config import Settings
from paperdigest.errors import PaperdigestError
from paperdigest.sources import Batch
from paperdigest.sources.arxiv import ArxivQuery, Throttle, fetch_arxiv
from paperdigest.sources.arxiv_feed import fetch_arxiv_feed, missed_note
from paperdigest.sources.hf import fetch_hf
from paperdigest.sources.http import HostUnreachable, RetryPolicy, make_client
from paperdigest.store import FetchEntry, Store

log = logging.getLogger(__name__)


class RefreshStopped(Exception):
    """The stop event was set: the refresh ends between two requests."""


def _stoppable(sleep: Callable[[float], None], stop: threading.Event | None):
    """A sleep that ends, raising RefreshStopped, as soon as `stop` is set."""
    if stop is None:
        return sleep

    def wait(seconds: float) -> None:
        if stop.wait(seconds):
            raise RefreshStopped("stopping")

    return wait

SOURCES = ("hf", "arxiv")
# With no date given, catch up from the last successful fetch, but never further back.
MAX_CATCHUP_DAYS = 7
# A range given by hand may reach back a year: a Daily Papers day is one or two requests,
# and arXiv stops at `max_results` per category whatever the range.
MAX_RANGE_DAYS = 366
# Marks the log record of a source's failure: `fetch` prints it in its result line instead.
SOURCE_FAILED = "paperdigest_source_failed"
LAST_ANNOUNCEMENT_KEY = "arxiv.last_announcement"  # meta: the latest arXiv feed day read


@dataclass(frozen=True)
class SourceResult:
    source: str
    ok: bool
    new: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None
    unchanged: int = 0
    problems: tuple[str, ...] = ()  # what was skipped, and where
    notes: tuple[str, ...] = ()  # worth saying, not a problem ("no announcement that day")


# (source, batches done, batches expected or None when unknown)
ProgressCallback = Callable[[str, int, int | None], None]


def days_between(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def fetch_window(
    store: Store, source: str, today: date, since: date | None, until: date | None
) -> tuple[date, date]:
    """The days to fetch: as given, or from the last good fetch (or yesterday) to today."""
    until = until or today
    if since is None:
        last = store.last_fetch(source, ok_only=True)
        since = last.started_at.astimezone(UTC).date() if last else today - timedelta(days=1)
        since = max(since, until - timedelta(days=MAX_CATCHUP_DAYS))
    if since > until:
        raise PaperdigestError(f"--since {since} is after {until}")
    if (until - since).days >= MAX_RANGE_DAYS:
        raise PaperdigestError(
            f"fetch at most {MAX_RANGE_DAYS} days at a time (--since with --until)"
        )
    return min(since, until), until


def _batches(
    source: str,
    settings: Settings,
    client: httpx.Client,
    window: tuple[date, date] | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> tuple[Iterator[Batch], int | None]:
    """The source's responses; for arXiv, `window=None` means today's announcement feed."""
    conf = settings.sources
    if source == "hf":
        assert window is not None
        days = days_between(*window)
        policy = RetryPolicy(conf.retries, conf.backoff, sleep=sleep)
        return fetch_hf(client, conf.hf.base_url, days, policy), len(days)
    arxiv = conf.arxiv
    if not arxiv.categories:
        raise PaperdigestError(
            "no arXiv categories to follow: set sources.arxiv.categories, e.g. "
            '["cs.LG", "cs.CL"] (`paperdigest config init` writes a config that explains how)'
        )
    # A retry is a request too: never back off for less than arXiv's request interval.
    policy = RetryPolicy(conf.retries, max(conf.backoff, arxiv.request_delay), sleep=sleep)
    throttle = Throttle(arxiv.request_delay, sleep=sleep, clock=clock)
    if window is None:
        feed = fetch_arxiv_feed(
            client, arxiv.feed_url, arxiv.categories, policy, throttle,
            include_revisions=arxiv.include_revisions,
        )
        return feed, None
    query = ArxivQuery(
        categories=arxiv.categories,
        max_results=arxiv.max_results,
        page_size=arxiv.page_size,
        since=window[0],
        until=window[1],
        include_revisions=arxiv.include_revisions,
    )
    return fetch_arxiv(client, arxiv.base_url, query, policy, throttle), None


def _run_source(
    store: Store,
    source: str,
    settings: Settings,
    client: httpx.Client,
    window: tuple[date, date] | None,
    today: date,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    on_progress: ProgressCallback | None,
    stop: threading.Event | None = None,
) -> SourceResult:
    new = updated = unchanged = 0
    problems: list[str] = []
    notes: list[str] = []
    announced: date | None = None  # the arXiv announcement day read, if any
    done = 0
    error: str | None = None
    try:
        batches, expected = _batches(source, settings, client, window, sleep, clock)
        if on_progress:
            on_progress(source, 0, expected)
        for batch in batches:
            for problem in batch.result.problems:
                log.warning("%s: %s", source, problem)
                problems.append(str(problem))
            notes += batch.notes
            if batch.day is not None:
                announced = max(announced or batch.day, batch.day)
            if batch.result.records:
                stats = store.ingest(batch.result.records, today=today)
                for warning in stats.warnings:
                    log.warning("%s: %s", source, warning)
                new, updated = new + stats.new, updated + stats.updated
                unchanged += stats.unchanged
            if batch.revisions:  # new versions: they update stored papers, never add one
                stats = store.update_existing(batch.revisions, today=today)
                updated, unchanged = updated + stats.updated, unchanged + stats.unchanged
            if batch.completes:  # a page of a day: the bar moves once the day is read
                done += 1
                if on_progress:
                    on_progress(source, done, expected)
            # Checked before the generator makes its next request.
            if stop is not None and stop.is_set():
                raise RefreshStopped("stopping")
    except RefreshStopped:
        raise
    except HostUnreachable as exc:
        error = f"{exc}; {how_to_disable(source)}"
        log.warning("%s failed: %s", source, error, extra={SOURCE_FAILED: True})
    except Exception as exc:  # one source failing, for any reason, must not stop the others
        error = str(exc) if isinstance(exc, PaperdigestError) else f"{type(exc).__name__}: {exc}"
        log.warning("%s failed: %s", source, error, exc_info=not isinstance(exc, PaperdigestError),
                    extra={SOURCE_FAILED: True})
    if announced is not None:
        note = _record_announcement(store, announced)
        if note:
            log.info("%s: %s", source, note)
            notes.append(note)
    return SourceResult(
        source=source,
        ok=error is None,
        new=new,
        updated=updated,
        skipped=len(problems),
        error=error,
        unchanged=unchanged,
        problems=tuple(problems),
        notes=tuple(notes),
    )


def how_to_disable(source: str) -> str:
    return (
        f"to turn this source off, set enabled = false under [sources.{source}] "
        f"or PAPERDIGEST_SOURCES__{source.upper()}__ENABLED=false"
    )


def _record_announcement(store: Store, day: date) -> str | None:
    """Remember the latest arXiv announcement read; say so if some were missed since."""
    last = store.get_meta(LAST_ANNOUNCEMENT_KEY)
    if last is not None and date.fromisoformat(last) >= day:
        return None
    store.set_meta(LAST_ANNOUNCEMENT_KEY, day.isoformat())
    return missed_note(date.fromisoformat(last), day) if last is not None else None


def _record_backfill(store: Store, window: tuple[date, date]) -> None:
    """A backfill of submissions from the last announcement read on fills the gap up to
    the announcement of the day after its last day."""
    last = store.get_meta(LAST_ANNOUNCEMENT_KEY)
    covered = window[1] + timedelta(days=1)
    if last is not None and (window[0] > date.fromisoformat(last) or last >= covered.isoformat()):
        return  # it leaves a gap before it, or adds nothing
    store.set_meta(LAST_ANNOUNCEMENT_KEY, covered.isoformat())


def enabled_sources(settings: Settings) -> list[str]:
    return [s for s in SOURCES if getattr(settings.sources, s).enabled]


def refresh_sources(
    store: Store,
    settings: Settings,
    *,
    sources: Sequence[str] | None = None,
    since: date | None = None,
    until: date | None = None,
    today: date | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> list[SourceResult]:
    """Fetch sources into the store; one failing never stops the others.

    `sources=None` means every enabled source; naming one runs it even if disabled.
    Without `since` or `until`, arXiv reads its latest announcement feed; with either, it
    backfills those days through the search API. Every run is recorded in the fetch log,
    which `paperdigest status` shows.
    Setting `stop` ends the refresh at the next request or backoff sleep (what was
    stored stays; the stopped source is not logged, so the next fetch covers it again).
    """
    sleep = _stoppable(sleep, stop)
    backfill = since is not None or until is not None
    today = today or date.today()
    chosen = list(sources) if sources is not None else enabled_sources(settings)
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown:
        raise PaperdigestError(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCES)}")
    owned = client is None
    http = client or make_client(settings.sources.timeout)
    results: list[SourceResult] = []
    try:
        for source in chosen:
            if stop is not None and stop.is_set():
                break
            started = datetime.now(UTC)
            window = None  # arXiv's feed: whatever arXiv announced last
            if source != "arxiv" or backfill:
                window = fetch_window(store, source, today, since, until)
            try:
                result = _run_source(store, source, settings, http, window, today, sleep,
                                     clock, on_progress, stop)
            except RefreshStopped:
                log.warning("%s: refresh stopped", source)
                break
            if source == "arxiv" and window is not None and result.ok and not result.problems:
                _record_backfill(store, window)
            store.log_fetch(
                FetchEntry(
                    source=source,
                    started_at=started,
                    finished_at=datetime.now(UTC),
                    ok=result.ok,
                    new=result.new,
                    updated=result.updated,
                    skipped=result.skipped,
                    error=result.error,
                )
            )
            results.append(result)
    finally:
        if owned:
            http.close()
    return results
