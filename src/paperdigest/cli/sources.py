"""Commands for live sources: `fetch`, and `status` (what the store and the sources hold)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from paperdigest.cli.common import app, app_context, clean_errors, err, out, progress, shown
from paperdigest.config import ProfileSettings, Settings
from paperdigest.errors import PaperdigestError
from paperdigest.store import FetchEntry, Store


class SourceChoice(StrEnum):
    hf = "hf"
    arxiv = "arxiv"
    all = "all"


def _day(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PaperdigestError(f"{flag} {value!r} is not a date as YYYY-MM-DD") from None


class _WarningsToConsole(logging.Handler):
    """Source warnings (retries, skipped items) as one plain line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        from paperdigest.refresh import SOURCE_FAILED

        if getattr(record, SOURCE_FAILED, False):
            return  # the source's result line on stdout says it already
        err.print(shown(f"warning: {record.getMessage()}"), soft_wrap=True)


@contextmanager
def _console_warnings() -> Iterator[None]:
    logger = logging.getLogger("paperdigest")
    handler = _WarningsToConsole(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@app.command()
@clean_errors
def fetch(
    ctx: typer.Context,
    source: Annotated[
        SourceChoice,
        typer.Option("--source", "-s", help="Which source; 'all' means every enabled one."),
    ] = SourceChoice.all,
    day: Annotated[
        str | None, typer.Option("--date", help="Fetch this day only (YYYY-MM-DD).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Fetch from this day (YYYY-MM-DD) through today."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="With --since: stop at this day (YYYY-MM-DD), not today."),
    ] = None,
) -> None:
    """Fetch new papers from Hugging Face Daily Papers and arXiv into the store.

    Without --date or --since, Hugging Face catches up from its last good fetch (a week at
    most) and arXiv reads its latest announcement of your categories. With them, arXiv
    backfills through its search API, back to that day of submission.
    Naming a disabled source with --source runs it anyway.
    """
    if day is not None and since is not None:
        raise PaperdigestError("give --date or --since, not both")
    if until is not None and since is None:
        raise PaperdigestError("--until goes with --since")
    first = _day(day, "--date") or _day(since, "--since")
    last = _day(day, "--date") or _day(until, "--until")
    from paperdigest.refresh import enabled_sources, refresh_sources

    context = app_context(ctx)
    settings = context.settings
    chosen = enabled_sources(settings) if source is SourceChoice.all else [source.value]
    if not chosen:
        raise PaperdigestError(
            "no source is enabled; set enabled = true under [sources.hf] or [sources.arxiv], "
            "or name one with --source"
        )
    with context.store() as store, progress() as bar, _console_warnings():
        tasks = {name: bar.add_task(f"Fetching {name}", total=None) for name in chosen}

        def on_progress(name: str, done: int, expected: int | None) -> None:
            bar.update(tasks[name], completed=done, total=expected or max(done, 1))

        results = refresh_sources(
            store, settings, sources=chosen, since=first, until=last, on_progress=on_progress
        )
    failed = False
    for result in results:
        line = (
            f"{result.source}: {result.new} new, {result.updated} updated, "
            f"{result.skipped} skipped"
        )
        if result.ok:
            out.print(line, markup=False)
            for note in result.notes:
                out.print(f"{result.source}: {note}", markup=False, soft_wrap=True)
        else:
            failed = True
            out.print(shown(f"{line}; failed: {result.error}"), soft_wrap=True)
    if failed:
        raise typer.Exit(1)


# -- status -------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _fetch_line(entry: FetchEntry | None) -> str:
    if entry is None:
        return "never fetched"
    counts = f"{entry.new} new, {entry.updated} updated, {entry.skipped} skipped"
    if entry.ok:
        return f"{_when(entry.finished_at)} ok: {counts}"
    return f"{_when(entry.finished_at)} FAILED: {entry.error} ({counts})"


def _next_send(profile: ProfileSettings, settings: Settings, now: datetime) -> str:
    if not profile.email:
        return "not scheduled (no email)"
    try:
        # Imported here: status must work even when the scheduler cannot be loaded.
        from paperdigest.scheduler import next_send_time
    except ImportError:
        return "not scheduled"
    try:
        moment = next_send_time(profile, settings.digest, now)
        return f"{moment.strftime('%Y-%m-%d %H:%M')} {moment.tzinfo}"
    except Exception:  # a schedule that cannot be computed must not break status
        return "not scheduled"


def _profile_names(settings: Settings, store: Store) -> list[str]:
    names = [p.name for p in settings.profiles]
    names += [n for n in store.profiles() if n not in names]
    return names or ["default"]


@app.command()
@clean_errors
def status(ctx: typer.Context) -> None:
    """Papers stored, stars, dismissals, the last fetch of each source, and digests."""
    from paperdigest.ledger import MAYBE, latest, unconfirmed_note
    from paperdigest.refresh import SOURCES
    from paperdigest.subscriptions import unsubscribed_since

    context = app_context(ctx)
    settings = context.settings
    now = datetime.now(UTC)
    midnight = datetime.combine(date.today(), time()).astimezone()
    with context.store() as store:
        total = store.count_papers()
        new_today = store.count_added_since(midnight)
        fetches = {name: store.last_fetch(name) for name in SOURCES}
        rows = []
        for name in _profile_names(settings, store):
            profile = settings.profile(name) or ProfileSettings(name=name)
            stars, dismissals = store.count_marks(name)
            sent = store.last_sent_digest(name)
            last = "never" if sent is None else (
                f"{sent[0].isoformat()}" + (f" (sent {_when(sent[1])})" if sent[1] else "")
            )
            newest = latest(store, name)
            if newest and newest.status == MAYBE and (sent is None or newest.digest_date > sent[0]):
                last = unconfirmed_note(newest) + ("" if sent is None else f"; before: {last}")
            stopped = unsubscribed_since(store, name)
            upcoming = (f"none: unsubscribed {stopped:%Y-%m-%d}" if stopped
                        else _next_send(profile, settings, now))
            rows.append((name, str(stars), str(dismissals), last, upcoming))
    out.print(f"Papers: {total} stored, {new_today} new today  ({store.path})", markup=False)
    sources = Table("source", "enabled", "last fetch", box=None, header_style="bold")
    for name in SOURCES:
        enabled = "yes" if getattr(settings.sources, name).enabled else "no"
        sources.add_row(name, enabled, shown(_fetch_line(fetches[name])))
    out.print(sources)
    profiles = Table("profile", "stars", "dismissed", "last digest", "next digest", box=None,
                     header_style="bold")
    for row in rows:
        profiles.add_row(*(shown(cell) for cell in row))
    out.print(profiles)
