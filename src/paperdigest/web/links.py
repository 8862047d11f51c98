"""The signed links one email carries, built for the templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from paperdigest.config import Settings
from paperdigest.web.secret import secret_key
from paperdigest.web.tokens import Signer


@dataclass(frozen=True)
class EmailLinks:
    """The links of one email. Each is signed once and reused: the HTML part, the text
    part and the List-Unsubscribe header carry the same ones (signing is most of the
    cost of rendering a digest with links)."""

    base_url: str
    signer: Signer
    profile: str
    day: date
    _signed: dict[tuple[str, str, int], str] = field(default_factory=dict, compare=False,
                                                     repr=False)

    def _link(self, path: str, what: str, pk: int, sign: Callable[[], str]) -> str:
        """base_url/path/token, the token signed on first use."""
        key = (path, what, pk)
        if key not in self._signed:
            self._signed[key] = f"{self.base_url}/{path}/{sign()}"
        return self._signed[key]

    def star(self, paper_pk: int) -> str:
        return self._link("a", "star", paper_pk,
                          lambda: self.signer.action(self.profile, paper_pk, "star"))

    def dismiss(self, paper_pk: int) -> str:
        return self._link("a", "dismiss", paper_pk,
                          lambda: self.signer.action(self.profile, paper_pk, "dismiss"))

    @property
    def view(self) -> str:
        return self._link("d", "", 0, lambda: self.signer.digest(self.profile, self.day))

    @property
    def papers(self) -> str:
        return self._link("p", "", 0, lambda: self.signer.papers(self.profile))

    @property
    def unsubscribe(self) -> str:
        return self._link("u", "", 0, lambda: self.signer.unsubscribe(self.profile))


def signer_for(settings: Settings, data_dir: Path) -> Signer:
    return Signer(secret_key(settings, data_dir), settings.web.link_days)


def email_links(settings: Settings, data_dir: Path, profile: str, day: date) -> EmailLinks | None:
    """None without `web.base_url`: there is nothing for the links to reach."""
    return links_maker(settings, data_dir)(profile, day)


def links_maker(
    settings: Settings, data_dir: Path
) -> Callable[[str, date], EmailLinks | None]:
    """email_links for many emails (a batch): the secret key is read once."""
    base_url = settings.web.base_url
    if base_url is None:
        return lambda profile, day: None
    signer = signer_for(settings, data_dir)
    return lambda profile, day: EmailLinks(base_url, signer, profile, day)
