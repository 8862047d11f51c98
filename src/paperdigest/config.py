"""Settings: a TOML file, overridden by PAPERDIGEST_* environment variables.

The file is `--config PATH`, else $PAPERDIGEST_CONFIG, else `config.toml` in the user
config directory. Nested keys use `__` in the environment: PAPERDIGEST_SMTP__PASSWORD.
No file at all is fine: every key has a default, so `preview` works with no config.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from paperdigest.arxiv_taxonomy import check_category
from paperdigest.digest import DEFAULT_SUBJECT
from paperdigest.errors import ConfigError
from paperdigest.paths import default_config_file
from paperdigest.validate import (
    ADDRESS_EXAMPLE,
    NotAnAddressError,
    email_address,
    profile_name_problem,
)


def _hhmm(value: Any) -> Any:
    if isinstance(value, str):
        try:
            hours, minutes = value.strip().split(":")
            return time(int(hours), int(minutes))
        except ValueError:
            raise ValueError(f"{value!r} is not a time of day as HH:MM") from None
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekdays(value: Any) -> Any:
    """["mon", "Thursday"] -> ["mon", "thu"]; a plain sentence for anything else."""
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if not isinstance(value, list | tuple):
        return value
    days: list[str] = []
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    for item in value:
        word = str(item).strip().lower()
        if word in full:
            word = word[:3]
        if word not in WEEKDAYS:
            raise ValueError(f"{item!r} is not a day of the week such as mon or thu")
        if word not in days:
            days.append(word)
    if not days:
        raise ValueError("give at least one day, such as [\"mon\"]")
    return sorted(days, key=WEEKDAYS.index)


SendTime = Annotated[time, BeforeValidator(_hhmm)]
Weekdays = Annotated[list[str], BeforeValidator(_weekdays)]
Emails = Annotated[list[str], BeforeValidator(_one_or_many)]


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Paris") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SmtpSettings(_Section):
    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str | None = None
    # The display name in From: "paperdigest <you@example.com>".
    from_name: str = "paperdigest"
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=20)
    # Seconds before the first retry of a transient SMTP failure; doubles each retry.
    backoff: float = Field(5.0, ge=0)
    # `send --all` and the daemon: parallel connections, each reused for many messages,
    # and an optional cap on messages a minute over all of them (providers throttle).
    connections: int = Field(2, ge=1, le=32)
    max_per_minute: int | None = Field(None, ge=1)

    @field_validator("sender")
    @classmethod
    def _one_sender(cls, value: str | None) -> str | None:
        return None if value is None else email_address(value)


class DigestSettings(_Section):
    picks: int = Field(10, ge=1, le=100)
    send_time: SendTime = time(7, 0)
    timezone: str = "UTC"
    subject: str = DEFAULT_SUBJECT
    templates_dir: Path | None = None
    catchup_hours: float = Field(6.0, ge=0)
    # Only papers listed in the last this-many days up to today are candidates
    # (window.py: when nothing was listed in them, the newest listed days instead).
    window_days: int = Field(7, ge=0)
    trending: int = Field(5, ge=0, le=50)
    # Local days the digest goes out on; each digest covers everything since the last.
    days: Weekdays = Field(default_factory=lambda: list(WEEKDAYS))
    # Picks scoring below this are left out (the followed section is not affected).
    min_score: float | None = None

    _tz = field_validator("timezone")(_check_timezone)

    @field_validator("subject")
    @classmethod
    def _subject_fields(cls, value: str) -> str:
        try:
            value.format(date="2026-01-01", count=1, papers="1 paper", profile="default")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"may only use {{date}}, {{count}}, {{papers}} and {{profile}} ({exc!s})"
            ) from None
        return value


class ProfileSettings(_Section):
    name: str
    email: Emails = Field(default_factory=list)
    send_time: SendTime | None = None
    timezone: str | None = None
    # Mail a digest even when it has no picks (nothing new in the window).
    send_empty: bool = False
    days: Weekdays | None = None
    min_score: float | None = None

    _tz = field_validator("timezone")(_check_timezone)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # The name becomes part of file names (the dry-run outbox): "../../x" must not.
        problem = profile_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("email")
    @classmethod
    def _one_address_each(cls, value: list[str]) -> list[str]:
        # Every bad address of the list in one message, and never the good ones.
        addresses, problems = [], []
        for address in value:
            try:
                addresses.append(email_address(address))
            except NotAnAddressError as exc:
                problems.append(f"{exc} {ADDRESS_EXAMPLE}")
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return addresses


class HFSourceSettings(_Section):
    enabled: bool = True
    base_url: str = "https://huggingface.co"


class ArxivSourceSettings(_Section):
    # Unset: on as soon as categories are set. An explicit true or false wins.
    enabled: bool | None = None
    # The daily announcement feed (RSS), read by the daily job and a plain `fetch`.
    feed_url: str = "https://rss.arxiv.org"
    # The search (Atom) API, for backfills: `fetch --source arxiv --since D`.
    base_url: str = "https://export.arxiv.org"
    categories: list[str] = Field(default_factory=list)
    # A backfill reads at most this many API results per category, and says so if it stops.
    max_results: int = Field(10_000, ge=1, le=30_000)
    # Results per request, and seconds between requests: arXiv asks for at most one
    # request every 3 seconds. Lower it only for a local test server.
    page_size: int = Field(200, ge=1, le=2000)
    request_delay: float = Field(3.0, ge=0)
    # A paper is new on the day of its first version; true makes a new version of an
    # older paper new again too (for profiles that were never sent it): a replacement in
    # the feed, a revision in a backfill.
    include_revisions: bool = False

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        checked = [check_category(name.strip()) for name in value]
        return list(dict.fromkeys(checked))

    @model_validator(mode="after")
    def _on_when_categories_are_set(self) -> ArxivSourceSettings:
        if self.enabled is None:
            self.enabled = bool(self.categories)
        return self


class SourcesSettings(_Section):
    hf: HFSourceSettings = Field(default_factory=HFSourceSettings)
    arxiv: ArxivSourceSettings = Field(default_factory=ArxivSourceSettings)
    # Shared by every HTTP source: per-request timeout, retries of transient errors, and
    # the first backoff delay in seconds (doubling each retry unless Retry-After says).
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    backoff: float = Field(1.0, ge=0)


class WebSettings(_Section):
    # Where `paperdigest serve` is reached from a mail client, e.g. https://papers.example.org
    # (a reverse proxy in front). Unset: the email carries no feedback or unsubscribe links.
    base_url: str | None = None
    # Signs the links. Unset: generated on first use and kept in the data dir (mode 0600).
    secret_key: SecretStr | None = None
    # Days a feedback link in an email keeps working.
    link_days: int = Field(30, ge=1, le=3650)

    @field_validator("base_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL such as https://papers.example.org")
        if parts.query or parts.fragment or any(c.isspace() for c in value):
            raise ValueError("must be a plain URL without spaces, ?query or #fragment")
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 random characters (or leave it unset)")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAPERDIGEST_",
        env_nested_delimiter="__",
        extra="forbid",
        # PAPERDIGEST_CONFIG and PAPERDIGEST_DATA_DIR are read by paths, not as keys here.
        env_ignore_empty=True,
    )

    data_dir: Path | None = None
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    digest: DigestSettings = Field(default_factory=DigestSettings)
    profiles: list[ProfileSettings] = Field(default_factory=list)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    web: WebSettings = Field(default_factory=WebSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; init keywords (tests) beat both.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    # By name, for profile(): a batch of 100,000 profiles looks each one up (a scan per
    # lookup made that quadratic). Rebuilt when the list is replaced or changes length.
    _by_name: dict[str, ProfileSettings] = PrivateAttr(default_factory=dict)
    _by_name_of: tuple[int, int] = PrivateAttr(default=(0, -1))

    def profile(self, name: str) -> ProfileSettings | None:
        """The [[profiles]] entry of that name (the first, if two share it)."""
        if self._by_name_of != (id(self.profiles), len(self.profiles)):
            self._by_name = {}
            for entry in self.profiles:
                self._by_name.setdefault(entry.name, entry)
            self._by_name_of = (id(self.profiles), len(self.profiles))
        return self._by_name.get(name)

    def min_score(self, name: str) -> float | None:
        """The profile's own min_score, else the [digest] one."""
        chosen = self.profile(name)
        if chosen is not None and chosen.min_score is not None:
            return chosen.min_score
        return self.digest.min_score


def config_path(flag: Path | None) -> Path:
    if flag is not None:
        return flag.expanduser()
    env = os.environ.get("PAPERDIGEST_CONFIG")
    if env:
        return Path(env).expanduser()
    return default_config_file()


def load_settings(path: Path | None = None, *, required: bool = False) -> Settings:
    """Read settings; every problem becomes one ConfigError line naming the key."""
    file = config_path(path)
    named = path is not None or bool(os.environ.get("PAPERDIGEST_CONFIG"))
    if not file.exists():
        if required or named:
            raise ConfigError(
                f"config file {file} does not exist; `paperdigest config init` writes a "
                "starter one there"
            )
        file = Path(os.devnull)
    elif not file.is_file():
        raise ConfigError(f"config file {file} is not a file")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=file)

    try:
        return _FromFile()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{file}: {describe_validation_error(exc)}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """The first error as `key.path: reason`, never echoing the offending value."""
    error = exc.errors(include_input=False, include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    message = error["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    return f"{key}: {message}" + (f" (and {more} more)" if more else "")
