"""The signed links one email carries, built for the templates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from paperdigest.config import Settings
from paperdigest.web.secret import secret_key
from paperdigest.web.tokens import Signer


@dataclass(frozen=True)
class EmailLinks:
    base_url: str
    signer: Signer
    profile: str
    day: date

    def star(self, paper_pk: int) -> str:
        return f"{self.base_url}/a/{self.signer.action(self.profile, paper_pk, 'star')}"

    def dismiss(self, paper_pk: int) -> str:
        return f"{self.base_url}/a/{self.signer.action(self.profile, paper_pk, 'dismiss')}"

    @property
    def view(self) -> str:
        return f"{self.base_url}/d/{self.signer.digest(self.profile, self.day)}"

    @property
    def papers(self) -> str:
        return f"{self.base_url}/p/{self.signer.papers(self.profile)}"

    @property
    def unsubscribe(self) -> str:
        return f"{self.base_url}/u/{self.signer.unsubscribe(self.profile)}"


def signer_for(settings: Settings, data_dir: Path) -> Signer:
    return Signer(secret_key(settings, data_dir), settings.web.link_days)


def email_links(settings: Settings, data_dir: Path, profile: str, day: date) -> EmailLinks | None:
    """None without `web.base_url`: there is nothing for the links to reach."""
    if settings.web.base_url is None:
        return None
    return EmailLinks(settings.web.base_url, signer_for(settings, data_dir), profile, day)
