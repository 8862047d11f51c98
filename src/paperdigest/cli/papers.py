"""Commands over the local corpus: search, star, dismiss, recommend, preview, ingest."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from paperdigest.cli.common import (
    JsonOption,
    ProfileOption,
    app,
    app_context,
    clean_errors,
    err,
    index_progress,
    out,
    print_json,
    progress,
    resolve_profile,
    shown,
)
from paperdigest.config import Settings
from paperdigest.digest import paper_link
from paperdigest.errors import PaperdigestError
from paperdigest.ingest import parse_file
from paperdigest.models import Paper
from paperdigest.parsers.text import terminal_text
from paperdigest.render import make_environment, render_digest

LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many.")]


def _paper_json(paper: Paper, **extra: object) -> dict[str, object]:
    # Every key always present (null or [] when no source said), so `jq` paths are stable.
    return {
        "id": paper.id,
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "authors": list(paper.authors),
        "url": paper_link(paper),  # a web link only: a stored url is untrusted
        "listed": paper.listed.isoformat(),
        "published": paper.published.isoformat() if paper.published else None,
        **extra,
        "hf_page": paper.hf_page,
        "github": paper.github,
        "github_stars": paper.github_stars,
        "project_page": paper.project_page,
        "organization": paper.organization,
        "ai_keywords": list(paper.ai_keywords),
        "arxiv_comment": paper.arxiv_comment,
        "doi": paper.doi,
        "journal_ref": paper.journal_ref,
    }


def _id_width(rows: Sequence[tuple[Paper, object]]) -> int:
    return max((len(paper.id) for paper, _ in rows), default=8)


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class _Rows:
    """A table that fits the terminal (80 columns and up): the title column gets a fixed
    width and each title at most two lines of it, cut with "…"; a "why" column takes the
    rest and wraps; every other column stays on one line."""

    def __init__(self, *columns: str, narrow: dict[str, int]) -> None:
        self.table = Table(box=None, header_style="bold", pad_edge=True)
        padding = 2 * len(columns)
        rest = max(20, out.width - sum(narrow.values()) - padding)
        # Beside a "why" column the title takes 45% of what is left, else all of it.
        self.title_width = rest * 45 // 100 if "why" in columns else rest
        for name in columns:
            if name == "title":
                self.table.add_column(name, width=self.title_width, no_wrap=True,
                                      overflow="ellipsis")
            elif name == "why":
                self.table.add_column(name, ratio=1, overflow="fold")
            else:
                self.table.add_column(name, no_wrap=True, min_width=narrow.get(name))

    def title(self, text: str) -> Text:
        # Control characters shown as U+FFFD before wrapping (see `shown`).
        lines = textwrap.wrap(" ".join(terminal_text(text).split()), self.title_width) or [""]
        if len(lines) > 2:
            second = lines[1][: self.title_width - 1].rstrip()
            lines = [lines[0], second + "…"]
        return Text("\n".join(lines))


@app.command()
@clean_errors
def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="Words to look for in titles and abstracts.")],
    limit: LimitOption = 20,
    as_json: JsonOption = False,
) -> None:
    """Full-text search of the stored papers."""
    with app_context(ctx).store() as store:
        hits = store.search(query, limit)
    if as_json:
        print_json([_paper_json(p, score=round(s, 4)) for p, s in hits])
        return
    if not hits:
        err.print(shown(f"No paper matches {query!r}."))
        return
    rows = _Rows("id", "title", "listed", narrow={"id": _id_width(hits), "listed": 10})
    for paper, _ in hits:
        rows.table.add_row(shown(paper.id), rows.title(paper.title), paper.listed.isoformat())
    out.print(rows.table)


def _change_each(
    ctx: typer.Context, refs: list[str], profile: str, action: str, done: str, noop: str
) -> int:
    """Resolve every ref first, so one typo changes nothing at all. Returns how many
    papers changed."""
    changed_count = 0
    context = app_context(ctx)
    with context.store() as store:
        name = resolve_profile(context, store, profile)
        papers = [store.resolve(ref) for ref in refs]
        # Starring and dismissing undo each other: say so when that happens.
        undone = {"star": store.dismissed_pks, "dismiss": lambda n: [
            p.pk for p, _ in store.starred(n)]}.get(action)
        other = set(undone(name)) if undone else set()
        for paper in papers:
            changed = getattr(store, action)(name, paper)
            changed_count += changed
            label = done if changed else noop
            note = ""
            if changed and paper.pk in other:
                note = "  (its star is removed)" if action == "dismiss" else (
                    "  (no longer dismissed)")
            out.print(shown(f"{label}: {paper.id}  {_short(paper.title, 60)}{note}"))
    return changed_count


RefsArgument = Annotated[
    list[str],
    typer.Argument(help="Paper ids, arXiv ids, or title words that name exactly one paper."),
]


@app.command()
@clean_errors
def star(ctx: typer.Context, refs: RefsArgument, profile: ProfileOption = "default") -> None:
    """Star papers you like: the profile learns from them."""
    if _change_each(ctx, refs, profile, "star", "starred", "already starred"):
        flag = "" if profile == "default" else f" --profile {profile}"
        out.print(f"Next: `paperdigest recommend{flag}` ranks new papers like these.",
                  markup=False)


@app.command()
@clean_errors
def unstar(ctx: typer.Context, refs: RefsArgument, profile: ProfileOption = "default") -> None:
    """Remove stars."""
    _change_each(ctx, refs, profile, "unstar", "unstarred", "was not starred")


@app.command()
@clean_errors
def dismiss(ctx: typer.Context, refs: RefsArgument, profile: ProfileOption = "default") -> None:
    """Mark papers as not for you: never shown again, and similar papers rank lower.

    Dismissing a starred paper removes its star.
    """
    _change_each(ctx, refs, profile, "dismiss", "dismissed", "already dismissed")


@app.command()
@clean_errors
def undismiss(ctx: typer.Context, refs: RefsArgument, profile: ProfileOption = "default") -> None:
    """Take back a dismissal."""
    _change_each(ctx, refs, profile, "undismiss", "undismissed", "was not dismissed")


@app.command()
@clean_errors
def stars(
    ctx: typer.Context, profile: ProfileOption = "default", as_json: JsonOption = False
) -> None:
    """List the papers a profile has starred."""
    context = app_context(ctx)
    with context.store() as store:
        starred = store.starred(resolve_profile(context, store, profile))
    if as_json:
        print_json([_paper_json(p, starred_at=when.isoformat()) for p, when in starred])
        return
    if not starred:
        err.print("No stars yet. Find papers with `paperdigest search WORDS`, then "
                  "`paperdigest star ID`.", markup=False)
        return
    rows = _Rows("id", "title", "starred", narrow={"id": _id_width(starred), "starred": 10})
    for paper, when in starred:
        rows.table.add_row(shown(paper.id), rows.title(paper.title), when.date().isoformat())
    out.print(rows.table)


@app.command()
@clean_errors
def recommend(
    ctx: typer.Context,
    limit: LimitOption = 15,
    profile: ProfileOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Rank the papers you have not seen yet, with the reason for each.

    Papers you follow come first; papers you muted are left out.
    """
    from paperdigest.service import select_picks, window_note

    context = app_context(ctx)
    window = context.settings.digest.window_days
    with context.store() as store:
        selection = select_picks(
            store, resolve_profile(context, store, profile), limit, window,
            progress=index_progress,
        )
        note = window_note(store, window, date.today())
    if as_json:
        print_json(
            [_paper_json(paper, score=None, reason=reason, followed=True)
             for paper, reason in selection.followed]
            + [_paper_json(p.paper, score=round(p.score, 4), reason=p.reason, followed=False)
               for p in selection.picks]
        )
        return
    if note:
        err.print(note, markup=False)
    if not selection.personalised:
        err.print("No stars yet, so these are the newest papers. "
                  "Star some with `paperdigest star ID`.", markup=False)
    listed = [(p, None) for p, _ in selection.followed] + [(p.paper, p) for p in selection.picks]
    rows = _Rows("score", "id", "title", "why", narrow={"score": 7, "id": _id_width(listed)})
    for paper, reason in selection.followed:
        rows.table.add_row("follow", shown(paper.id), rows.title(paper.title), shown(reason))
    for pick in selection.picks:
        rows.table.add_row(f"{pick.score:.3f}", shown(pick.paper.id),
                           rows.title(pick.paper.title), shown(pick.reason))
    out.print(rows.table)


@app.command()
@clean_errors
def preview(
    ctx: typer.Context,
    profile: ProfileOption = "default",
    out_file: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Also write the HTML digest to this file.",
                     dir_okay=False),
    ] = None,
    picks: Annotated[
        int | None, typer.Option("--picks", min=1, max=100, help="How many picks.")
    ] = None,
) -> None:
    """Show today's digest as plain text, without sending it or changing anything.

    Once today's digest was sent, shows the digest that was sent."""
    from paperdigest.archive import sent_copy
    from paperdigest.service import build_digest
    from paperdigest.web.links import email_links

    context = app_context(ctx)
    settings = context.settings.digest
    env = make_environment(settings.templates_dir)
    with context.store() as store:
        name = resolve_profile(context, store, profile)
        day = _today_for(context.settings, name)
        sent = sent_copy(store, name, day)
        if sent is None:
            digest = build_digest(
                store,
                name,
                day,
                picks or settings.picks,
                settings.window_days,
                settings.trending,
                progress=index_progress,
                min_score=context.settings.min_score(name),
            )
    if sent is not None:
        if sent.status == "sent":
            when = f" at {sent.sent_at:%H:%M} UTC" if sent.sent_at else ""
            note = f"Today's digest for {name} was sent{when}; this is what was sent."
        else:
            note = (f"Today's digest for {name} may have been delivered (the server did not "
                    "confirm); this is what was sent.")
        err.print(note, markup=False)
        html, text = sent.html, sent.text
    else:
        links = email_links(context.settings, context.data_dir, name, day)
        rendered = render_digest(digest, env, settings.subject, links=links)
        html, text = rendered.html, rendered.text
    if out_file is not None:
        try:
            out_file.write_text(html, encoding="utf-8")
        except OSError as exc:
            raise PaperdigestError(f"cannot write {out_file}: {exc.strerror or exc}") from None
        err.print(f"Wrote the HTML digest to {out_file}.", markup=False)
    typer.echo(terminal_text(text, lines=True), nl=False)


def _today_for(settings: Settings, profile: str) -> date:
    """The profile's own calendar day when it is configured (as `send` counts days)."""
    from paperdigest.delivery import local_date

    configured = settings.profile(profile)
    if configured is None:
        return date.today()
    return local_date(configured, settings, datetime.now(UTC))


@app.command()
@clean_errors
def ingest(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Seed dumps (.txt) or JSON Lines files (.jsonl, .jsonl.gz)."),
    ],
) -> None:
    """Add papers from files. Ingesting the same file twice changes nothing."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise PaperdigestError(f"no such file: {', '.join(missing)}")
    new = updated = unchanged = skipped = 0
    unreadable: list[str] = []
    with app_context(ctx).store() as store, progress() as bar:
        task = bar.add_task("Ingesting", total=len(paths))
        for path in paths:
            bar.update(task, description=f"Ingesting {path.name}")
            result = parse_file(path)
            for problem in result.problems:
                err.print(shown(f"warning: {problem}"), soft_wrap=True)
            skipped += len(result.problems)
            if not result.records:
                unreadable.append(str(path))
            else:
                # A big file takes minutes: a second bar follows its records.
                records = bar.add_task(f"  {path.name}: records", total=len(result.records))
                stats = store.ingest(
                    result.records,
                    progress=lambda done, t=records: bar.update(t, completed=done),
                )
                bar.remove_task(records)
                for warning in stats.warnings:
                    err.print(shown(f"warning: {path}: {warning}"), soft_wrap=True)
                new, updated, unchanged = (
                    new + stats.new, updated + stats.updated, unchanged + stats.unchanged
                )
            bar.advance(task)
    out.print(f"{new} new, {updated} updated, {unchanged} unchanged, {skipped} skipped.")
    if unreadable:
        # The other files went in; still, a script must learn that one held no papers.
        raise PaperdigestError(f"no papers could be read from {', '.join(unreadable)}")
