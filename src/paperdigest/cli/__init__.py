"""The `paperdigest` command line.

Commands import what is slow to load (NumPy and SciPy for ranking, HTTP clients, SMTP, the
scheduler) when they run, so `--help`, `star` or `search` start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paperdigest import __version__
from paperdigest.cli import (
    delivery,  # noqa: F401  (send, run, config check)
    follows,  # noqa: F401  (follow, unfollow, mute, unmute, follows)
    forget,  # noqa: F401  (forget)
    library,  # noqa: F401  (import)
    papers,  # noqa: F401  (registers commands)
    profiles,  # noqa: F401  (profile list, add, rm)
    setup,  # noqa: F401  (config init)
    sources,  # noqa: F401  (fetch, status)
    web,  # noqa: F401  (serve, unsubscribe, resubscribe)
)
from paperdigest.cli.common import AppContext, app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paperdigest {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where the database lives (default: the user data dir). "
            "Env: PAPERDIGEST_DATA_DIR.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML config file (default: config.toml in the user config dir). "
            "Env: PAPERDIGEST_CONFIG.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Learns which research papers you care about and mails you a daily digest."""
    ctx.obj = AppContext(data_dir_flag=data_dir, config_flag=config)


def main() -> None:
    app()


__all__ = ["app", "main"]
