"""Follow and mute rules: `follow`, `unfollow`, `mute`, `unmute` and `follows`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from paperdigest.cli.common import (
    JsonOption,
    ProfileOption,
    app,
    app_context,
    clean_errors,
    err,
    out,
    print_json,
    resolve_profile,
)
from paperdigest.errors import PaperdigestError
from paperdigest.follows import Action, Field, Rule, check_rule_value

FieldArgument = Annotated[
    Field,
    typer.Argument(help="What to match: an author's name, or keywords in the title or "
                   "abstract.", metavar="author|keyword", show_default=False),
]
WordsArgument = Annotated[
    list[str],
    typer.Argument(help="The name or the words (a phrase matches as a whole).",
                   metavar="WORDS...", show_default=False),
]


def _rule(action: Action, field: Field, words: list[str]) -> Rule:
    try:
        return Rule(action, field, check_rule_value(field, " ".join(words)))
    except ValueError as exc:
        raise PaperdigestError(str(exc)) from None


def _add(ctx: typer.Context, action: Action, field: Field, words: list[str],
         profile: str) -> None:
    rule = _rule(action, field, words)
    context = app_context(ctx)
    with context.store() as store:
        name = resolve_profile(context, store, profile)
        existing = store.add_rule(name, rule)
    verb = "following" if action is Action.follow else "muting"
    if existing is not None:
        out.print(f"already {verb} {field.value} {existing.value}", markup=False)
        return
    out.print(f"{verb} {field.value} {rule.value} (profile {name})", markup=False)
    flag = "" if name == "default" else f" --profile {name}"
    if action is Action.follow:
        hint = "shows its papers in the Followed section"
    else:
        hint = "shows the digest without its papers"
    out.print(f"Next: `paperdigest preview{flag}` {hint}.", markup=False)


def _remove(ctx: typer.Context, action: Action, field: Field, words: list[str],
            profile: str) -> None:
    rule = _rule(action, field, words)
    context = app_context(ctx)
    with context.store() as store:
        name = resolve_profile(context, store, profile)
        removed = store.remove_rule(name, rule)
    verb = "following" if action is Action.follow else "muting"
    for old in removed:
        out.print(f"no longer {verb} {field.value} {old.value}", markup=False)
    if removed:
        return
    out.print(f"was not {verb} {field.value} {rule.value} (see `paperdigest follows`)",
              markup=False)


@app.command(rich_help_panel="Follow and mute")
@clean_errors
def follow(ctx: typer.Context, field: FieldArgument, words: WordsArgument,
           profile: ProfileOption = "default") -> None:
    """Always show papers by an author, or with these words, above the picks.

    Authors match in any spelling: "Y. LeCun", "yann lecun" and "LeCun, Yann" are one.
    """
    _add(ctx, Action.follow, field, words, profile)


@app.command(rich_help_panel="Follow and mute")
@clean_errors
def unfollow(ctx: typer.Context, field: FieldArgument, words: WordsArgument,
             profile: ProfileOption = "default") -> None:
    """Stop following an author or keywords."""
    _remove(ctx, Action.follow, field, words, profile)


@app.command(rich_help_panel="Follow and mute")
@clean_errors
def mute(ctx: typer.Context, field: FieldArgument, words: WordsArgument,
         profile: ProfileOption = "default") -> None:
    """Never show papers by an author, or with these words in the title or abstract."""
    _add(ctx, Action.mute, field, words, profile)


@app.command(rich_help_panel="Follow and mute")
@clean_errors
def unmute(ctx: typer.Context, field: FieldArgument, words: WordsArgument,
           profile: ProfileOption = "default") -> None:
    """Take a mute back."""
    _remove(ctx, Action.mute, field, words, profile)


@app.command(rich_help_panel="Follow and mute")
@clean_errors
def follows(ctx: typer.Context, profile: ProfileOption = "default",
            as_json: JsonOption = False) -> None:
    """List a profile's follow and mute rules."""
    context = app_context(ctx)
    with context.store() as store:
        rules = store.rules(resolve_profile(context, store, profile))
    if as_json:
        print_json([{"action": r.action.value, "field": r.field.value, "value": r.value}
                    for r in rules])
        return
    if not rules:
        err.print("No rules yet. Add one with `paperdigest follow author NAME` or "
                  "`paperdigest mute keyword WORDS`.", markup=False)
        return
    table = Table("rule", "match", "value", box=None, header_style="bold")
    for rule in rules:
        table.add_row(rule.action.value, rule.field.value, rule.value)
    out.print(table)
