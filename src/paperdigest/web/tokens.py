"""Signed tokens for the links in an email (itsdangerous), one salt per purpose.

A token is the capability: whoever holds the link may do what it names for that profile,
nothing else. Payloads are short JSON lists so the URLs (and List-Unsubscribe) stay short.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from paperdigest.errors import PaperdigestError
from paperdigest.store import check_profile_name

Action = Literal["star", "unstar", "dismiss", "undismiss"]
ACTIONS: tuple[Action, ...] = ("star", "unstar", "dismiss", "undismiss")
UNDO: dict[Action, Action] = {
    "star": "unstar", "unstar": "star", "dismiss": "undismiss", "undismiss": "dismiss"
}
# A page left open this long must be reloaded before its buttons work again.
FORM_SECONDS = 24 * 3600


class LinkError(PaperdigestError):
    """A link that cannot be used; the page says why."""


class ExpiredLink(LinkError):
    pass


class InvalidLink(LinkError):
    pass


@dataclass(frozen=True)
class ActionClaim:
    profile: str
    paper_pk: int
    action: Action


class Signer:
    def __init__(self, secret: str, link_days: int) -> None:
        self._secret = secret
        self.max_age = int(timedelta(days=link_days).total_seconds())
        self._serializers: dict[str, URLSafeTimedSerializer] = {}

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        # One per purpose, made once: a digest signs ~20 links, a run 100,000 digests.
        serializer = self._serializers.get(purpose)
        if serializer is None:
            serializer = URLSafeTimedSerializer(self._secret, salt=f"paperdigest.{purpose}")
            self._serializers[purpose] = serializer
        return serializer

    def _dumps(self, purpose: str, payload: list[Any]) -> str:
        return str(self._serializer(purpose).dumps(payload))

    def _loads(self, purpose: str, token: str, max_age: int | None) -> list[Any]:
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age)
        except SignatureExpired:
            raise ExpiredLink("this link has expired") from None
        except BadSignature:
            raise InvalidLink("this link is not valid: it was changed or cut short") from None
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
            raise InvalidLink("this link is not valid")
        try:
            check_profile_name(payload[0])
        except PaperdigestError:
            raise InvalidLink("this link is not valid") from None
        return payload

    # -- star / dismiss one paper, and their undos ------------------------------------

    def action(self, profile: str, paper_pk: int, action: Action) -> str:
        return self._dumps("action", [check_profile_name(profile), paper_pk, action])

    def read_action(self, token: str) -> ActionClaim:
        payload = self._loads("action", token, self.max_age)
        if (
            len(payload) != 3
            or type(payload[1]) is not int
            or payload[2] not in ACTIONS
        ):
            raise InvalidLink("this link is not valid")
        return ActionClaim(payload[0], payload[1], payload[2])

    # -- unsubscribe: never expires, so an old email can still stop the mail ----------

    def unsubscribe(self, profile: str) -> str:
        return self._dumps("unsubscribe", [check_profile_name(profile)])

    def read_unsubscribe(self, token: str) -> str:
        payload = self._loads("unsubscribe", token, None)
        if len(payload) != 1:
            raise InvalidLink("this link is not valid")
        return payload[0]

    # -- the profile's pages: stars, dismissals, search -------------------------------

    def papers(self, profile: str) -> str:
        return self._dumps("papers", [check_profile_name(profile)])

    def read_papers(self, token: str) -> str:
        payload = self._loads("papers", token, self.max_age)
        if len(payload) != 1:
            raise InvalidLink("this link is not valid")
        return payload[0]

    # -- one day's digest, in the browser ---------------------------------------------

    def digest(self, profile: str, day: date) -> str:
        return self._dumps("digest", [check_profile_name(profile), day.isoformat()])

    def read_digest(self, token: str) -> tuple[str, date]:
        payload = self._loads("digest", token, self.max_age)
        try:
            if len(payload) != 2:
                raise ValueError
            return payload[0], date.fromisoformat(payload[1])
        except (TypeError, ValueError):
            raise InvalidLink("this link is not valid") from None

    # -- CSRF: a form token bound to the link its form posts to -----------------------

    def form(self, link_token: str) -> str:
        return self._dumps("form", [_digest_of(link_token)])

    def check_form(self, form_token: str, link_token: str) -> bool:
        try:
            payload = self._serializer("form").loads(form_token, max_age=FORM_SECONDS)
        except BadSignature:  # SignatureExpired included
            return False
        return payload == [_digest_of(link_token)]


def _digest_of(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]
