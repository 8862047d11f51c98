"""Rendering a digest with Jinja2: HTML (autoescaped) and plain text."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from jinja2.filters import do_wordwrap

from paperdigest import __version__
from paperdigest.digest import DEFAULT_SUBJECT, Digest
from paperdigest.errors import PaperdigestError
from paperdigest.paths import bundled_templates_dir

if TYPE_CHECKING:
    from paperdigest.web.links import EmailLinks

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
# Wrapped texts remembered per environment: more than a day's candidates.
WRAPS_KEPT = 4096


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    html: str
    text: str


def make_environment(templates_dir: Path | None = None) -> jinja2.Environment:
    """User templates first, then the bundled ones, so a user may override just one file."""
    search = [str(bundled_templates_dir())]
    if templates_dir is not None:
        if not templates_dir.is_dir():
            raise PaperdigestError(f"templates_dir {templates_dir} is not a directory")
        search.insert(0, str(templates_dir))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html", "html.j2", "htm"), default_for_string=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wordwrap"] = _remembered_wordwrap(env)
    return env


def _remembered_wordwrap(env: jinja2.Environment):
    """Jinja's wordwrap, remembering recent results: a run of many digests wraps the same
    abstracts again and again (textwrap is pure Python, a fifth of the cost of a digest)."""

    @functools.lru_cache(maxsize=WRAPS_KEPT)
    def wrapped(s: str, *args: object, **kwargs: object) -> str:
        return do_wordwrap(env, s, *args, **kwargs)  # type: ignore[arg-type]

    def wordwrap(s: object, *args: object, **kwargs: object) -> str:
        return wrapped(str(s), *args, **kwargs)

    return wordwrap


def render_digest(
    digest: Digest,
    env: jinja2.Environment,
    subject_template: str = DEFAULT_SUBJECT,
    *,
    links: EmailLinks | None = None,
    mailed: bool = False,
) -> RenderedDigest:
    """`links` adds the signed feedback links (None: no web app to reach); `mailed` is
    False for a preview, which must not claim it was sent."""
    subject = digest.subject(subject_template)
    context = {
        "digest": digest,
        "subject": subject,
        "version": __version__,
        "links": links,
        "mailed": mailed,
        # The CLI hints in the footer must work when pasted for this profile.
        "cli_profile": "" if digest.profile == "default" else f" --profile {digest.profile}",
    }
    try:
        html = env.get_template(HTML_TEMPLATE).render(context)
        text = env.get_template(TEXT_TEMPLATE).render(context)
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or getattr(exc, "name", None) or "template"
        raise PaperdigestError(f"cannot render {where}: {exc}") from exc
    return RenderedDigest(subject=subject, html=html, text=text)
