"""`paperdigest profile list|add|rm`: whose stars, dismissals and digests these are."""

from __future__ import annotations

from typing import Annotated

import click
import typer
from rich.table import Table

from paperdigest.cli.common import (
    JsonOption,
    app,
    app_context,
    clean_errors,
    err,
    known_profiles,
    out,
    print_json,
    resolve_profile,
)
from paperdigest.errors import PaperdigestError
from paperdigest.store import check_profile_name

profile_app = typer.Typer(
    name="profile",
    help="List, add and remove profiles (one per person or interest).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(profile_app, name="profile")

NameArgument = Annotated[
    str, typer.Argument(help="The profile's name.", metavar="NAME", show_default=False)
]


@profile_app.command("list")
@clean_errors
def list_profiles(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every profile, from the config and the database, with its stars and dismissals."""
    context = app_context(ctx)
    settings = context.settings
    rows = []
    with context.store() as store:
        for name in known_profiles(settings, store):
            stars, dismissals = store.count_marks(name)
            configured = settings.profile(name)
            rows.append({
                "name": name,
                "configured": configured is not None,
                "email": list(configured.email) if configured else [],
                "stars": stars,
                "dismissals": dismissals,
            })
    if as_json:
        print_json(rows)
        return
    table = Table("profile", "stars", "dismissed", "email", box=None, header_style="bold")
    for row in rows:
        email = ", ".join(row["email"]) or ("(in config)" if row["configured"] else "-")
        table.add_row(row["name"], str(row["stars"]), str(row["dismissals"]), email)
    out.print(table)


@profile_app.command("add")
@clean_errors
def add_profile(ctx: typer.Context, name: NameArgument) -> None:
    """Create a profile, so `--profile NAME` can star, dismiss and import into it."""
    check_profile_name(name)
    context = app_context(ctx)
    with context.store() as store:
        if name in known_profiles(context.settings, store):
            out.print(f"Profile {name!r} already exists.", markup=False)
            return
        store.add_profile(name)
    out.print(f"Added profile {name!r}. Star papers for it with "
              f"`paperdigest star --profile {name} ID` or `paperdigest import --profile "
              f"{name} FILE`.", markup=False, soft_wrap=True)


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False, err=True)
    except (click.Abort, typer.Abort):  # no answer at all (stdin closed): not a yes
        err.print("", markup=False)
        return False


@profile_app.command("rm")
@clean_errors
def remove_profile(
    ctx: typer.Context,
    name: NameArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a profile's stars, dismissals, rules and digest history."""
    context = app_context(ctx)
    with context.store() as store:
        name = resolve_profile(context, store, name)
        stars, dismissals = store.count_marks(name)
        if not yes and not _confirmed(
            f"Delete profile {name!r} with its {stars} stars, {dismissals} dismissals, "
            "rules and digest history?"
        ):
            raise PaperdigestError("nothing deleted")
        # Still in the config, it is still mailed: its ledger keeps today's digest single.
        store.remove_profile(name, keep_ledger=context.settings.profile(name) is not None)
    out.print(f"Deleted profile {name!r}: {stars} stars, {dismissals} dismissals.",
              markup=False, soft_wrap=True)
    if context.settings.profile(name) is not None:
        err.print(f"{name!r} is still a [[profiles]] entry in the config file; remove it "
                  "there to stop its digests.", markup=False, soft_wrap=True)
