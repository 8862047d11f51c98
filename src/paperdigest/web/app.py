"""`paperdigest serve`: the pages the email's signed links open (Starlette, Jinja2).

Every page is reached through a token from an email; there is no login. A GET never
changes anything (mail scanners open links); every change is a POST from a button, with
a form token bound to the link (CSRF) and, when the browser sends one, a same-origin check.
The one exception is RFC 8058 one-click unsubscribe, which mail providers POST without a
form. Changes go through the same Store calls as the CLI.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from paperdigest import __version__
from paperdigest.archive import sent_copy
from paperdigest.config import Settings
from paperdigest.digest import paper_link, snippet
from paperdigest.follows import is_muted
from paperdigest.models import Paper
from paperdigest.render import make_environment
from paperdigest.store import Store
from paperdigest.subscriptions import resubscribe, unsubscribe, unsubscribed_since
from paperdigest.web.tokens import UNDO, Action, ExpiredLink, LinkError, Signer

PAGE_CSP = (
    "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# The archived email is styled inline, as mail must be; it still runs no script at all.
DIGEST_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
ONE_CLICK = "One-Click"
SEARCH_LIMIT = 20
# Search reads this many hits so that leaving out muted papers still fills the page.
SEARCH_POOL = 200

WHAT: dict[Action, tuple[str, str]] = {
    # action: (button and heading, what pressing it does)
    "star": ("More like this", "Star this paper: papers like it rank higher in your digest."),
    "dismiss": ("Not for me", "Dismiss this paper: it is never shown again, and papers like "
                "it rank lower."),
    "unstar": ("Remove the star", "Take the star back: it no longer shapes your digest."),
    "undismiss": ("Take back “Not for me”", "Undo the dismissal: papers like it are no longer "
                  "pushed down."),
}
DONE: dict[Action, str] = {
    "star": "Starred. Papers like it rank higher from your next digest.",
    "dismiss": "Dismissed. It will not be shown again, and papers like it rank lower.",
    "unstar": "The star is removed.",
    "undismiss": "The dismissal is taken back.",
}


@dataclass
class WebApp:
    settings: Settings
    data_dir: Path
    signer: Signer
    env: jinja2.Environment

    @property
    def prefix(self) -> str:
        """The path the app lives under behind a reverse proxy (from web.base_url)."""
        base = self.settings.web.base_url
        return urlsplit(base).path.rstrip("/") if base else ""

    def store(self) -> Store:
        return Store.open(self.data_dir)

    # -- responses ----------------------------------------------------------------------

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = self.env.get_template(f"web/{template}").render(
            nonce=nonce, version=__version__, **context
        )
        return HTMLResponse(html, status_code=status,
                            headers=security_headers(PAGE_CSP.format(nonce=nonce)))

    def problem(self, status: int, title: str, message: str) -> HTMLResponse:
        return self.page("problem.html.j2", status, title=title, message=message)

    def bad_link(self, exc: LinkError) -> HTMLResponse:
        if isinstance(exc, ExpiredLink):
            days = self.settings.web.link_days
            return self.problem(
                410, "This link has expired",
                f"Links in the email work for {days} days, and this one is older. Nothing "
                "was changed. Use the links in a newer digest, or the command line "
                "(paperdigest star ID, paperdigest dismiss ID).",
            )
        return self.problem(
            403, "This link is not valid",
            "It was changed or cut short on the way (some mail clients break long links). "
            "Nothing was changed. Open it again from the email, or copy the whole link.",
        )

    def stale_form(self) -> HTMLResponse:
        return self.problem(
            403, "This button could not be used",
            "The page was open too long, or the request did not come from this site. "
            "Nothing was changed. Reload the page and press the button again.",
        )

    def form_fields(self, token: str) -> dict[str, str]:
        """What a form needs to post a link token: where, and its CSRF token."""
        return {"action": f"{self.prefix}/a/{token}", "form": self.signer.form(token)}

    def unsubscribe_view(
        self, token: str, profile: str, since: datetime | None, done: str | None
    ) -> HTMLResponse:
        return self.page(
            "unsubscribe.html.j2",
            profile=profile,
            since=since,
            done=done,
            form={**self.form_fields(token), "action": f"{self.prefix}/u/{token}"},
        )

    def action_form(self, profile: str, paper_pk: int, action: Action) -> dict[str, str]:
        return {**self.form_fields(self.signer.action(profile, paper_pk, action)),
                "label": WHAT[action][0], "kind": action}


def security_headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        # Tokens are in the URLs: never send them to the sites the pages link to. (Not
        # "no-referrer": with it, browsers send `Origin: null` on this site's own forms.)
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex, nofollow",
    }


def same_origin(request: Request, web: WebApp) -> bool:
    """False when the browser says the POST came from another site. No Origin header
    (older clients) leaves the decision to the form token."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    allowed = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    if web.settings.web.base_url:
        parts = urlsplit(web.settings.web.base_url)
        allowed.add(f"{parts.scheme}://{parts.netloc}")
    return origin in allowed


async def checked_form(request: Request, web: WebApp, token: str) -> dict[str, str] | None:
    """The posted fields if the form token matches this link and the origin is ours."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not same_origin(request, web):
        return None
    if not web.signer.check_form(fields.get("form", ""), token):
        return None
    return fields


def paper_view(paper: Paper) -> dict[str, Any]:
    return {
        "pk": paper.pk,
        "id": paper.id,
        "title": paper.title,
        "authors": ", ".join(paper.authors[:6]) + (" et al." if len(paper.authors) > 6 else ""),
        "link": paper_link(paper),
        "snippet": snippet(paper.abstract),
    }


# -- routes -----------------------------------------------------------------------------


async def home(request: Request) -> Response:
    web: WebApp = request.app.state.web
    return web.page("home.html.j2")


async def action_page(request: Request) -> Response:
    web: WebApp = request.app.state.web
    token = request.path_params["token"]
    try:
        claim = web.signer.read_action(token)
    except LinkError as exc:
        return web.bad_link(exc)
    with web.store() as store:
        found = store.papers([claim.paper_pk])
        if not found:
            return web.problem(404, "Paper not found", "This paper is no longer stored.")
        paper = found[0]
        starred = any(p.pk == paper.pk for p, _ in store.starred(claim.profile))
        dismissed = paper.pk in store.dismissed_pks(claim.profile)
    return web.page(
        "action.html.j2",
        profile=claim.profile,
        paper=paper_view(paper),
        heading=WHAT[claim.action][0],
        explain=WHAT[claim.action][1],
        state="starred" if starred else "dismissed" if dismissed else None,
        form={**web.form_fields(token), "label": WHAT[claim.action][0], "kind": claim.action},
        papers_url=f"{web.prefix}/p/{web.signer.papers(claim.profile)}",
    )


async def apply_action(request: Request) -> Response:
    web: WebApp = request.app.state.web
    token = request.path_params["token"]
    try:
        claim = web.signer.read_action(token)
    except LinkError as exc:
        return web.bad_link(exc)
    if await checked_form(request, web, token) is None:
        return web.stale_form()
    with web.store() as store:
        found = store.papers([claim.paper_pk])
        if not found:
            return web.problem(404, "Paper not found", "This paper is no longer stored.")
        paper = found[0]
        # The very calls `paperdigest star/unstar/dismiss/undismiss` make.
        getattr(store, claim.action)(claim.profile, paper)
    return web.page(
        "done.html.j2",
        profile=claim.profile,
        paper=paper_view(paper),
        message=DONE[claim.action],
        undo=web.action_form(claim.profile, paper.pk, UNDO[claim.action]),
        papers_url=f"{web.prefix}/p/{web.signer.papers(claim.profile)}",
    )


async def unsubscribe_page(request: Request) -> Response:
    web: WebApp = request.app.state.web
    token = request.path_params["token"]
    try:
        profile = web.signer.read_unsubscribe(token)
    except LinkError as exc:
        return web.bad_link(exc)
    with web.store() as store:
        since = unsubscribed_since(store, profile)
    return web.unsubscribe_view(token, profile, since, done=None)


async def apply_unsubscribe(request: Request) -> Response:
    web: WebApp = request.app.state.web
    token = request.path_params["token"]
    try:
        profile = web.signer.read_unsubscribe(token)
    except LinkError as exc:
        return web.bad_link(exc)
    form = await request.form()
    if form.get("List-Unsubscribe") == ONE_CLICK:
        # RFC 8058: the mail provider posts this on the reader's behalf, with no page.
        with web.store() as store:
            unsubscribe(store, profile, via="one-click")
            since = unsubscribed_since(store, profile)
        return web.unsubscribe_view(token, profile, since, done="unsubscribed")
    fields = await checked_form(request, web, token)
    if fields is None or fields.get("do") not in ("unsubscribe", "resubscribe"):
        return web.stale_form()
    with web.store() as store:
        if fields["do"] == "unsubscribe":
            unsubscribe(store, profile, via="web")
        else:
            resubscribe(store, profile)
        since = unsubscribed_since(store, profile)
    return web.unsubscribe_view(token, profile, since, done=fields["do"] + "d")


async def digest_view(request: Request) -> Response:
    web: WebApp = request.app.state.web
    try:
        profile, day = web.signer.read_digest(request.path_params["token"])
    except LinkError as exc:
        return web.bad_link(exc)
    with web.store() as store:
        copy = sent_copy(store, profile, day)
    if copy is None:
        return web.problem(404, "No digest to show",
                           f"No digest for {profile} was sent on {day}. (A preview's link "
                           "leads here too: only a sent digest is kept.)")
    return HTMLResponse(copy.html, headers=security_headers(DIGEST_CSP))


async def papers_page(request: Request) -> Response:
    web: WebApp = request.app.state.web
    try:
        profile = web.signer.read_papers(request.path_params["token"])
    except LinkError as exc:
        return web.bad_link(exc)
    query = " ".join(request.query_params.get("q", "").split())[:200]
    with web.store() as store:
        rules = store.rules(profile)
        stars = [paper for paper, _ in reversed(store.starred(profile))]
        dismissed = store.papers(list(reversed(store.dismissed_pks(profile))))
        found = [paper for paper, _ in store.search(query, SEARCH_POOL)] if query else []
    starred_pks = {p.pk for p in stars}
    dismissed_pks = {p.pk for p in dismissed}
    # A muted paper is never shown, here as in the digest; the page counts what it hides.
    hits = [p for p in found if not is_muted(p, rules)][:SEARCH_LIMIT]
    shown_stars = [p for p in stars if not is_muted(p, rules)]
    shown_dismissed = [p for p in dismissed if not is_muted(p, rules)]

    def row(paper: Paper, action: Action | None) -> dict[str, Any]:
        return {**paper_view(paper),
                "form": web.action_form(profile, paper.pk, action) if action else None}

    return web.page(
        "papers.html.j2",
        profile=profile,
        query=query,
        hits=[
            row(p, None if p.pk in starred_pks else "star")
            | {"starred": p.pk in starred_pks, "dismissed": p.pk in dismissed_pks}
            for p in hits
        ],
        muted_hits=bool(found) and not hits,
        stars=[row(p, "unstar") for p in shown_stars],
        dismissed=[row(p, "undismiss") for p in shown_dismissed],
        muted_stars=len(stars) - len(shown_stars),
        muted_dismissed=len(dismissed) - len(shown_dismissed),
        cli_profile="" if profile == "default" else f" --profile {profile}",
    )


def create_app(settings: Settings, data_dir: Path, signer: Signer) -> Starlette:
    env = make_environment(None)  # the bundled pages only: user templates are for email

    async def http_error(request: Request, exc: Exception) -> Response:
        web: WebApp = request.app.state.web
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return web.problem(405, "Not here", "This address takes no such request.")
        return web.problem(status if status < 500 else 500, "Not found",
                           "There is no page here. Open a link from your digest email.")

    async def server_error(request: Request, exc: Exception) -> Response:
        # uvicorn logs the traceback; the reader gets a page, not a stack.
        web: WebApp = request.app.state.web
        return web.problem(500, "Something went wrong",
                           "Nothing may have changed. Try again in a moment.")

    app = Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/a/{token}", action_page, methods=["GET"]),
            Route("/a/{token}", apply_action, methods=["POST"]),
            Route("/u/{token}", unsubscribe_page, methods=["GET"]),
            Route("/u/{token}", apply_unsubscribe, methods=["POST"]),
            Route("/d/{token}", digest_view, methods=["GET"]),
            Route("/p/{token}", papers_page, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
    app.state.web = WebApp(settings, data_dir, signer, env)
    return app


__all__ = ["create_app"]
