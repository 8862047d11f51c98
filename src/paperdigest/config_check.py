"""`config check`: every problem of a config file and its environment overrides at once.

`load_settings` stops at the first problem, which is right for a command that needs the
settings; a check should list them all, suggest the key that was meant, and say when the
bad value came from an environment variable rather than the file.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from paperdigest.config import Settings, config_path, load_settings
from paperdigest.errors import ConfigError

ENV_PREFIX = "PAPERDIGEST_"


@dataclass
class CheckResult:
    path: Path
    exists: bool
    settings: Settings | None = None
    problems: list[str] = field(default_factory=list)


def check_config(flag: Path | None, environ: dict[str, str] | None = None) -> CheckResult:
    """Read the config like every command does, and collect every problem with it."""
    env = dict(os.environ if environ is None else environ)
    path = config_path(flag)
    result = CheckResult(path=path, exists=path.is_file())
    try:
        result.settings = load_settings(flag)
    except ConfigError as exc:
        cause = exc.__context__
        if isinstance(cause, ValidationError):
            result.problems += validation_problems(cause, env)
            # What the whole file gets wrong is worth saying even when a value is bad.
            data = _file_data(path)
            result.problems += profile_problems(_raw_profiles(data), _sending(data, env))
        else:
            result.problems.append(str(exc).removeprefix(f"{path}: "))
        return result
    result.problems += semantic_problems(result.settings, _file_data(path), env)
    return result


def validation_problems(exc: ValidationError, env: dict[str, str]) -> list[str]:
    """One line per error: `key: reason`, a suggestion for an unknown key, and the
    environment variable the value came from, if one did. Values are never echoed."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            line = f"{key}: unknown key"
            guess = _suggest(loc)
            if guess:
                line += f" (did you mean {guess}?)"
        else:
            line = f"{key}: " + error["msg"].removeprefix("Value error, ")
        lines.append(line + _blame(loc, env))
    return lines


def semantic_problems(
    settings: Settings, data: dict[str, Any], env: dict[str, str]
) -> list[str]:
    """What each key allows alone but the whole does not. Addresses are checked as they
    are read (config.ProfileSettings, SmtpSettings), so a bad one is a validation error."""
    profiles = [(profile.name, bool(profile.email)) for profile in settings.profiles]
    return profile_problems(profiles, _sending(data, env))


def profile_problems(profiles: list[tuple[str, bool]], sending: bool) -> list[str]:
    """Duplicate profile names, and a profile without an address when sending is
    configured; `profiles` holds each profile's name and whether it has an address."""
    problems = []
    counts = Counter(name for name, _ in profiles if name)
    for name, count in counts.items():
        if count > 1:
            problems.append(f"profiles: the name {name!r} is used by {count} profiles")
    for index, (name, has_address) in enumerate(profiles):
        if sending and not has_address:
            problems.append(
                f"profiles.{index}.email: profile {name!r} has no address, "
                "but sending is configured ([smtp]); add email = \"you@example.org\""
            )
    return problems


def _sending(data: dict[str, Any], env: dict[str, str]) -> bool:
    return "smtp" in data or any(k.startswith(f"{ENV_PREFIX}SMTP__") for k in env)


def _raw_profiles(data: dict[str, Any]) -> list[tuple[str, bool]]:
    """The profiles of a file that did not validate, as far as they can be read."""
    entries = data.get("profiles")
    if not isinstance(entries, list):
        return []
    profiles = []
    for entry in entries:  # one per entry, so the indexes match the file's
        if not isinstance(entry, dict):
            profiles.append(("", True))  # already a validation error; say nothing more
            continue
        name = entry.get("name")
        profiles.append((name if isinstance(name, str) else "", bool(entry.get("email"))))
    return profiles


def _blame(loc: tuple[Any, ...], env: dict[str, str]) -> str:
    variable = _blamed_variable(loc, env)
    return f" (from the environment variable {variable})" if variable else ""


def _file_data(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _blamed_variable(loc: tuple[Any, ...], env: dict[str, str]) -> str | None:
    """The PAPERDIGEST_* variable that set this key (or the table holding it), if any."""
    for end in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(str(part) for part in loc[:end]).upper()
        if name in {k.upper(): k for k in env}:
            return next(k for k in env if k.upper() == name)
    return None


def _suggest(loc: tuple[Any, ...]) -> str | None:
    """The known key nearest to an unknown one, as a dotted path."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(str(part))
        nested = _model_of(info.annotation) if info else None
        if nested is None:
            return None
        model = nested
    unknown = str(loc[-1])
    fields = list(model.model_fields)
    matches = difflib.get_close_matches(unknown.lower(), fields, n=1, cutoff=0.6)
    if not matches:
        return None
    return ".".join([*(str(p) for p in loc[:-1]), matches[0]])


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = (annotation, *getattr(annotation, "__args__", ()))
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        inner = _model_of_args(candidate)
        if inner is not None:
            return inner
    return None


def _model_of_args(annotation: Any) -> type[BaseModel] | None:
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
