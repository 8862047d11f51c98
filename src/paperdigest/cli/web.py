"""Commands for the email's web side: `serve`, `unsubscribe`, `resubscribe`."""

from __future__ import annotations

from typing import Annotated

import typer

from paperdigest.cli.common import ProfileOption, app, app_context, clean_errors, err
from paperdigest.store import check_profile_name


@app.command()
@clean_errors
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; keep 127.0.0.1 behind a "
                          "reverse proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]
    = 8321,
) -> None:
    """Run the web app that the email's links open.

    It answers "More like this", "Not for me", Unsubscribe, View in browser, and the
    profile's stars, dismissals and search. Stops on Ctrl-C or SIGTERM.
    """
    import uvicorn

    from paperdigest.web.app import create_app
    from paperdigest.web.links import signer_for

    context = app_context(ctx)
    settings = context.settings
    with context.store():
        pass  # create and seed the database before the first request needs it
    signer = signer_for(settings, context.data_dir)  # makes the key now, not on a request
    if settings.web.base_url is None:
        err.print("Note: web.base_url is not set, so emails carry no links to this server; "
                  "set it to the URL readers reach it at.", markup=False, soft_wrap=True)
    else:
        err.print(f"Links in emails point at {settings.web.base_url}.", markup=False)
    web_app = create_app(settings, context.data_dir, signer)
    # No access log: every URL holds a token that works like a password for its action.
    uvicorn.run(web_app, host=host, port=port, log_level="info", proxy_headers=True,
                server_header=False, access_log=False)


@app.command()
@clean_errors
def unsubscribe(ctx: typer.Context, profile: ProfileOption = "default") -> None:
    """Stop mailing this profile's digest (as the email's Unsubscribe link does)."""
    from paperdigest.subscriptions import unsubscribe as stop

    name = check_profile_name(profile)
    with app_context(ctx).store() as store:
        changed = stop(store, name, via="cli")
    typer.echo(f"{name}: unsubscribed; `send` and `run` skip it" if changed
               else f"{name}: already unsubscribed")


@app.command()
@clean_errors
def resubscribe(ctx: typer.Context, profile: ProfileOption = "default") -> None:
    """Start mailing this profile's digest again after an unsubscribe."""
    from paperdigest.subscriptions import resubscribe as start

    name = check_profile_name(profile)
    with app_context(ctx).store() as store:
        changed = start(store, name)
    typer.echo(f"{name}: subscribed again; the next digest goes out as usual" if changed
               else f"{name}: was not unsubscribed")
