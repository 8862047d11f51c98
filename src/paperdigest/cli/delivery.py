"""Commands that deliver: `send`, `run`, and `config check`."""

from __future__ import annotations

import logging
import signal
from datetime import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from paperdigest.cli.common import app, app_context, clean_errors, err, shown
from paperdigest.config import Settings
from paperdigest.errors import PaperdigestError
from paperdigest.validate import ADDRESS_EXAMPLE, NotAnAddressError, email_address

# `send --all` names each skipped profile up to this many; beyond, the summary counts them.
SKIPS_LISTED = 20

config_app = typer.Typer(
    name="config", help="Create or check the config.", no_args_is_help=True, add_completion=False
)
app.add_typer(config_app, name="config")


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    # APScheduler's own per-run INFO lines repeat what our jobs log.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


@app.command()
@clean_errors
def send(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="The configured profile to send (default: the "
                     "only one).", show_default=False),
    ] = None,
    all_profiles: Annotated[
        bool, typer.Option("--all", help="Send every configured profile's digest.")
    ] = False,
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="Send to this address instead of the profile's (repeatable).",
                     show_default=False),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Write the message as .eml into the data dir's outbox; "
                     "send nothing."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Send again even if today's digest went out, "
                           "or today is not one of the profile's days.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option("--shard", metavar="K/N", help="With --all: only the profiles whose "
                     "name hashes to share K of N (1 <= K <= N), so N hosts split the "
                     "readers between them.", show_default=False),
    ] = None,
) -> None:
    """Build today's digest and mail it, once per profile and day."""
    from paperdigest.delivery import DeliveryError, select_profiles, send_digests
    from paperdigest.shards import parse_shard, take_shard

    context = app_context(ctx)
    settings = context.settings
    if shard is not None and not all_profiles:
        raise PaperdigestError("--shard needs --all")
    share = parse_shard(shard) if shard is not None else None
    try:
        to = [email_address(address) for address in to or ()]
    except NotAnAddressError as exc:
        raise PaperdigestError(f"--to: {exc} {ADDRESS_EXAMPLE}") from None
    except ValueError as exc:
        raise PaperdigestError(f"--to: {exc}") from None
    profiles = select_profiles(settings, profile, all_profiles)
    if share is not None:
        profiles = take_shard(profiles, [p.name for p in profiles], *share)
    if all_profiles and not dry_run:
        _send_all(context, settings, profiles, to or (), force)
        return
    with context.store() as store:
        report = send_digests(
            store, settings, profiles, to=to or (), force=force, dry_run=dry_run
        )
    for name, path in report.written.items():
        typer.echo(f"{name}: wrote {path} (dry run: nothing sent)")
    for name in report.sent:
        chosen = settings.profile(name)
        recipients = ", ".join(to or (chosen.email if chosen else []))
        typer.echo(f"{name}: sent to {recipients}")
    for name, why in report.resting.items():
        typer.echo(f"{name}: {why}")
    for name, why in report.skipped.items():
        err.print(shown(f"{name}: {why}"), soft_wrap=True)
    for name, why in report.empty.items():
        typer.echo(f"{name}: {why}")
    for name, why in report.maybe.items():
        err.print(shown(f"{name}: maybe delivered: {why}"), soft_wrap=True)
    for name, why in report.failed.items():
        err.print(shown(f"{name}: not sent: {why}"), soft_wrap=True)
    if report.failed:
        raise DeliveryError(f"{len(report.failed)} of {len(profiles)} digests not sent")
    if report.maybe:
        raise DeliveryError(f"{len(report.maybe)} of {len(profiles)} digests not confirmed "
                            "by the server")
    if report.skipped and not (report.sent or report.written or report.empty):
        raise typer.Exit(1)


def _send_all(context, settings: Settings, profiles, to, force: bool) -> None:
    """`send --all`: the batched, pipelined path, a progress bar, then a summary."""
    from paperdigest.bulk import send_many
    from paperdigest.cli.common import progress
    from paperdigest.delivery import DeliveryError

    with context.store() as store, progress() as bar:
        task = bar.add_task("Sending digests", total=len(profiles))
        report = send_many(
            store, settings, profiles, to=to, force=force,
            progress=lambda state: bar.update(task, completed=state.done),
        )
    emails = {p.name: p.email for p in profiles}
    for name in report.sent:
        typer.echo(f"{name}: sent to {', '.join(to or emails[name])}")
    if len(report.skipped) <= SKIPS_LISTED:  # else the summary counts them
        for name, why in report.skipped.items():
            err.print(f"{name}: {why}", markup=False, soft_wrap=True)
    for name, why in report.empty.items():
        typer.echo(f"{name}: {why}")
    for name, why in report.maybe.items():
        err.print(f"{name}: maybe delivered: {why}", markup=False, soft_wrap=True)
    for name, why in report.failed.items():
        err.print(f"{name}: not sent: {why}", markup=False, soft_wrap=True)
    err.print(report.summary(), markup=False, soft_wrap=True)
    if report.failed:
        raise DeliveryError(f"{len(report.failed)} of {len(profiles)} digests not sent")
    if report.maybe:
        raise DeliveryError(f"{len(report.maybe)} of {len(profiles)} digests not confirmed "
                            "by the server")
    if report.skipped and not (report.sent or report.empty):
        raise typer.Exit(1)


@app.command()
@clean_errors
def run(ctx: typer.Context) -> None:
    """Run in the foreground and send each profile's digest daily at its own hour.

    Retries a digest that did not go out, with backoff, within the catch-up window.
    Stops within seconds on Ctrl-C or SIGTERM, after a send in progress finishes.
    """
    from paperdigest.scheduler import Daemon

    context = app_context(ctx)
    settings = context.settings
    _setup_logging()
    with context.store():
        pass  # create and seed the database before the first job needs it
    daemon = Daemon(settings, context.data_dir)

    def stop(signum: int, _frame: object) -> None:
        logging.getLogger(__name__).info("received %s", signal.Signals(signum).name)
        daemon.stop.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        daemon.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@config_app.command("check")
@clean_errors
def config_check(ctx: typer.Context) -> None:
    """Validate the config file and print the effective settings, secrets masked.

    Every problem is listed at once, one line each, naming the key.
    """
    from paperdigest.config_check import check_config

    context = app_context(ctx)
    result = check_config(context.config_flag)
    if not result.exists and context.config_flag is None and not result.problems:
        err.print(f"No config file: {result.path} does not exist, so every setting is a "
                  "default (absent: defaults). Copy config.example.toml there to send "
                  "digests.", markup=False, soft_wrap=True)
    for problem in result.problems:
        err.print(f"Error: {result.path}: {problem}", markup=False, soft_wrap=True)
    if result.problems or result.settings is None:
        raise typer.Exit(2)
    if result.exists:
        err.print(f"Config OK: {result.path}", markup=False, soft_wrap=True)
    typer.echo(effective_toml(result.settings), nl=False)
    if result.settings.profiles:
        step = "`paperdigest send --dry-run` writes the message without sending it"
    else:
        step = "add a [[profiles]] table with a name and an email to send digests"
    err.print(f"Next: {step}.", markup=False, soft_wrap=True)


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, every secret replaced by a mask."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "********"
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return walk(settings.model_dump())


def effective_toml(settings: Settings) -> str:
    data = masked(settings)
    lines: list[str] = []
    top = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
    lines += [f"{k} = {_toml(v)}" for k, v in top.items() if v is not None]
    for section in ("smtp", "digest", "web"):
        lines += ["", f"[{section}]", *_keys(data[section])]
    if data["smtp"]["password"] is None and data["smtp"]["username"]:
        lines.append("# password: not set here; read from the system keyring at send time")
    for profile in data["profiles"]:
        lines += ["", "[[profiles]]", *_keys(profile)]
    # A table's own keys must come before its sub-tables to read naturally.
    shared = {k: v for k, v in data["sources"].items() if not isinstance(v, dict)}
    if shared:
        lines += ["", "[sources]", *_keys(shared)]
    for name, source in data["sources"].items():
        if isinstance(source, dict):
            lines += ["", f"[sources.{name}]", *_keys(source)]
    return "\n".join(lines).lstrip("\n") + "\n"


def _keys(section: dict[str, Any]) -> list[str]:
    return [f"{k} = {_toml(v)}" for k, v in section.items() if v is not None]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, time):
        return f'"{value.strftime("%H:%M")}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Path):
        value = str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


__all__ = ["config_app"]
