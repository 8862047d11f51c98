"""Where things live on disk: the data directory and the files bundled with the package."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "paperdigest"
_PACKAGE_DIR = Path(__file__).resolve().parent


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


def resolve_data_dir(flag: Path | None, configured: Path | None) -> Path:
    """`--data-dir` beats PAPERDIGEST_DATA_DIR, which beats config `data_dir`."""
    if flag is not None:
        return flag.expanduser()
    env = os.environ.get("PAPERDIGEST_DATA_DIR")
    if env:
        return Path(env).expanduser()
    if configured is not None:
        return configured.expanduser()
    return default_data_dir()


def _bundled(name: str) -> Path:
    # A wheel carries the folder inside the package; a source checkout or an editable
    # install has it at the top of the repository.
    inside = _PACKAGE_DIR / name
    if inside.is_dir():
        return inside
    return _PACKAGE_DIR.parent.parent / name


def bundled_example_config() -> Path:
    """config.example.toml: inside the package in a wheel, at the top of a checkout."""
    inside = _PACKAGE_DIR / "config.example.toml"
    return inside if inside.is_file() else _PACKAGE_DIR.parent.parent / "config.example.toml"


def bundled_templates_dir() -> Path:
    return _bundled("templates")


def bundled_seeds_dir() -> Path:
    return _bundled("seeds")


def bundled_seed_files() -> list[Path]:
    return sorted(bundled_seeds_dir().glob("*.txt"))
