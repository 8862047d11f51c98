"""`paperdigest config init`: a commented starter config, and what to do with it."""

from __future__ import annotations

from typing import Annotated

import typer

from paperdigest.cli.common import app_context, clean_errors, out
from paperdigest.cli.delivery import config_app
from paperdigest.config import config_path
from paperdigest.errors import PaperdigestError
from paperdigest.paths import bundled_example_config

NEXT_STEPS = """\
Next:
  1. Pick the arXiv categories to follow: edit categories under [sources.arxiv]
     (ids from https://arxiv.org/category_taxonomy, such as cs.LG or cs.CL).
  2. For email, set [smtp] and the email of [[profiles]]; the file says how.
  3. paperdigest config check      # one line naming the key if something is wrong
  4. paperdigest fetch             # today's papers, then: paperdigest preview"""


@config_app.command("init")
@clean_errors
def config_init(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a config file that already exists.")
    ] = False,
) -> None:
    """Write a commented starter config file (every key, with its default) and say what next.

    It goes where paperdigest reads its config: --config PATH, else $PAPERDIGEST_CONFIG,
    else config.toml in the user config directory.
    """
    path = config_path(app_context(ctx).config_flag)
    if path.exists() and not force:
        raise PaperdigestError(
            f"{path} already exists; edit it, or `paperdigest config init --force` replaces it"
        )
    try:
        text = bundled_example_config().read_text(encoding="utf-8")
    except OSError as exc:
        raise PaperdigestError(f"the starter config is missing from this install: {exc}") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PaperdigestError(f"cannot write {path}: {exc.strerror or exc}") from None
    out.print(f"Wrote a starter config to {path}", markup=False, soft_wrap=True)
    out.print(NEXT_STEPS, markup=False, soft_wrap=True)
