"""`forget`: delete papers that were ingested by mistake."""

from __future__ import annotations

from typing import Annotated

import typer

from paperdigest.cli.common import app, app_context, clean_errors, err, out


@app.command()
@clean_errors
def forget(
    ctx: typer.Context,
    refs: Annotated[
        list[str],
        typer.Argument(help="Paper ids, arXiv ids, or title words that name exactly one "
                       "paper.", metavar="REF...", show_default=False),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Delete papers ingested by mistake, with their stars and dismissals.

    Every profile's history keeps a note of each one (its id, title and where it was).
    Ingesting the paper again brings it back as a new paper.
    """
    with app_context(ctx).store() as store:
        papers = [store.resolve(ref) for ref in refs]  # one typo changes nothing
        papers = list({paper.pk: paper for paper in papers}.values())
        for paper in papers:
            out.print(f"{paper.id}  {paper.title}", markup=False)
        if not yes:
            what = "this paper" if len(papers) == 1 else f"these {len(papers)} papers"
            if not typer.confirm(f"Forget {what}?", default=False, err=True):
                err.print("Nothing forgotten.", markup=False)
                raise typer.Exit(1)
        for paper in papers:
            notes = store.forget(paper)
            out.print(f"forgot: {paper.id}", markup=False)
            for note in notes:
                out.print(f"  it was {note}; the history keeps a note of it", markup=False)
