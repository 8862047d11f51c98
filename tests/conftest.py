"""Shared fixtures: every test gets its own data and config directories."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paperdigest.cli import app
from paperdigest.ingest import ensure_seeded
from paperdigest.store import DB_NAME, Store

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes the real user's config or data."""
    for name in ("PAPERDIGEST_CONFIG", "PAPERDIGEST_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for key in list(__import__("os").environ):
        if key.startswith("PAPERDIGEST_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    data_dir = tmp_path / "data"
    monkeypatch.setenv("PAPERDIGEST_DATA_DIR", str(data_dir))
    return data_dir


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the seed corpus, built once and copied into each test that needs it."""
    directory = tmp_path_factory.mktemp("seeded")
    with Store.open(directory) as store:
        ensure_seeded(store)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return directory / DB_NAME


@pytest.fixture
def data_dir(isolated_dirs: Path, seeded_db: Path) -> Path:
    """The test's data directory, already holding the seed corpus."""
    isolated_dirs.mkdir(parents=True, exist_ok=True)
    shutil.copy(seeded_db, isolated_dirs / DB_NAME)
    return isolated_dirs


@pytest.fixture
def store(data_dir: Path):
    with Store.open(data_dir) as opened:
        yield opened


@pytest.fixture
def cli() -> Callable[..., object]:
    """Run the real CLI in-process: cli("star", "abc") -> click Result."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


# The SMTP server fixtures for the delivery tests (tests/mail_fixtures.py).
from tests.mail_fixtures import ca, mail_server, plain_server, trust_ca  # noqa: E402, F401
