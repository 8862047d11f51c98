"""`paperdigest import`: star a whole reference library at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paperdigest.cli.common import (
    ProfileOption,
    app,
    app_context,
    clean_errors,
    err,
    out,
    print_json,
    progress,
    resolve_profile,
)
from paperdigest.errors import PaperdigestError
from paperdigest.library.entry import CONTROL
from paperdigest.library_import import ImportSummary, import_library, read_library_file

SKIPPED_SHOWN = 20


@app.command("import")
@clean_errors
def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Library exports: BibTeX/BibLaTeX, RIS, CSL-JSON, Zotero CSV, or one arXiv "
            "id, arXiv URL or DOI per line. The format is read from the content.",
            show_default=False,
            metavar="FILE",
        ),
    ],
    profile: ProfileOption = "default",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Star every paper of a reference library (Zotero, BibTeX, ...). Papers not stored yet
    are added first. Importing the same file twice changes nothing."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise PaperdigestError(f"no such file: {', '.join(missing)}")
    context = app_context(ctx)
    with context.store() as store:
        name = resolve_profile(context, store, profile)
        with progress() as bar:
            files = []
            for path in paths:
                # Reading a BibTeX file (LaTeX decoding) takes most of the time: count its
                # entries as they are decoded.
                reading = bar.add_task(f"Reading {path.name}", total=None)
                files.append((str(path), read_library_file(
                    path, on_entry=lambda task=reading: bar.advance(task)
                )))
                bar.remove_task(reading)
            total = sum(len(library.entries) for _, library in files)
            task = bar.add_task("Importing", total=2 * total)
            summary = import_library(
                store, name, files, dry_run=dry_run,
                advance=lambda n: bar.advance(task, n),
            )
    if as_json:
        print_json(summary.as_json())
    else:
        _print_summary(summary)
    unreadable = [path for path, library in files if not library.entries]
    if unreadable:
        # The other files went in; still, a script must learn that one held nothing.
        raise PaperdigestError(f"no entries could be read from {', '.join(unreadable)}")


def _print_summary(summary: ImportSummary) -> None:
    for path, kind, count in summary.files:
        out.print(f"{path}: {kind}, {count} entries", markup=False, soft_wrap=True)
    if summary.skipped:
        err.print(f"Skipped {len(summary.skipped)}:", markup=False, soft_wrap=True)
        for problem in summary.skipped[:SKIPPED_SHOWN]:
            # Keys and lines come from the file: no terminal escapes from them.
            err.print(f"  {CONTROL.sub('?', str(problem))}", markup=False, soft_wrap=True)
        if len(summary.skipped) > SKIPPED_SHOWN:
            err.print(f"  … and {len(summary.skipped) - SKIPPED_SHOWN} more (--json lists "
                      "them all)", markup=False, soft_wrap=True)
    would = "would be " if summary.dry_run else ""
    out.print(
        f"{summary.read} entries read: {summary.matched} matched, {summary.added} {would}added, "
        f"{len(summary.duplicates)} duplicates, {len(summary.skipped)} skipped; "
        f"{summary.starred} {would}starred, {summary.already_starred} already starred.",
        markup=False,
        soft_wrap=True,
    )
    if summary.dry_run:
        out.print("Dry run: nothing was changed. Run again without --dry-run to import.",
                  markup=False, soft_wrap=True)
    elif summary.matched or summary.added:
        flag = "" if summary.profile == "default" else f" --profile {summary.profile}"
        out.print(f"Next: `paperdigest recommend{flag}` shows what your library picks out.",
                  markup=False, soft_wrap=True)
