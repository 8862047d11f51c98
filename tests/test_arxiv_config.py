"""Following arXiv categories: the taxonomy check, arXiv on once categories are set, and
`paperdigest config init`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from paperdigest.arxiv_taxonomy import CATEGORIES, suggestions
from paperdigest.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_arxiv_is_off_until_categories_are_set_and_an_explicit_switch_wins() -> None:
    assert Settings().sources.arxiv.categories == []
    assert Settings().sources.arxiv.enabled is False
    on = Settings(sources={"arxiv": {"categories": ["cs.LG", "stat.ML"]}})
    assert on.sources.arxiv.enabled is True
    off = Settings(sources={"arxiv": {"categories": ["cs.LG"], "enabled": False}})
    assert off.sources.arxiv.enabled is False


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("cs.lg", "did you mean cs.LG?"),
        ("cs.ML", "did you mean cs.LG or stat.ML?"),
        ("cs.LGG", "did you mean cs.LG?"),
        ("physics.optic", "did you mean physics.optics"),
    ],
)
def test_a_misspelt_category_is_one_line_naming_the_real_one(
    cli, tmp_path: Path, written: str, meant: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[sources.arxiv]\ncategories = ["cs.CL", "{written}"]\n')
    for command in (["config", "check"], ["status"]):  # any command that loads the config
        result = cli("--config", str(config), *command)
        assert result.exit_code == 2
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(
            f"Error: {config}: sources.arxiv.categories: '{written}' is not an arXiv "
            f"category; {meant}"
        )
        assert "Traceback" not in result.output


def test_the_environment_is_checked_too(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERDIGEST_SOURCES__ARXIV__CATEGORIES", '["cs.cl"]')
    result = cli("config", "check")
    assert result.exit_code == 2 and "did you mean cs.CL?" in result.stderr


def test_the_taxonomy_knows_every_group_and_nothing_made_up() -> None:
    for name in ("cs.LG", "stat.ML", "math.OC", "q-bio.NC", "q-fin.ST", "econ.EM", "eess.SP",
                 "astro-ph.GA", "cond-mat.stat-mech", "physics.optics", "nlin.CD", "hep-th",
                 "quant-ph", "gr-qc"):
        assert name in CATEGORIES
    assert "cs.ML" not in CATEGORIES and "cs" not in CATEGORIES
    assert suggestions("zzz.QQ") == ()


def test_config_init_writes_the_starter_config_and_says_what_next(
    cli, tmp_path: Path
) -> None:
    path = tmp_path / "new" / "config.toml"
    result = cli("--config", str(path), "config", "init")
    assert result.exit_code == 0, result.output
    assert f"Wrote a starter config to {path}" in result.stdout
    assert "categories under [sources.arxiv]" in result.stdout
    assert "paperdigest config check" in result.stdout
    text = path.read_text(encoding="utf-8")
    assert text == (REPO / "config.example.toml").read_text(encoding="utf-8")
    assert "https://arxiv.org/category_taxonomy" in text
    assert load_settings(path).sources == Settings().sources  # valid, and the defaults

    # Choosing categories in it turns arXiv on.
    chosen = text.replace("categories = []", 'categories = ["cs.LG", "cs.CL"]')
    path.write_text(chosen, encoding="utf-8")
    assert tomllib.loads(chosen)["sources"]["arxiv"]["categories"] == ["cs.LG", "cs.CL"]
    assert load_settings(path).sources.arxiv.enabled is True


def test_config_init_never_overwrites_without_force(cli, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[digest]\npicks = 3\n')
    refused = cli("--config", str(path), "config", "init")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        f"Error: {path} already exists; edit it, or `paperdigest config init --force` "
        "replaces it"
    )
    assert path.read_text() == '[digest]\npicks = 3\n'
    forced = cli("--config", str(path), "config", "init", "--force")
    assert forced.exit_code == 0 and "[sources.arxiv]" in path.read_text()


def test_config_init_writes_to_the_default_place(cli, isolated_dirs: Path, tmp_path) -> None:
    result = cli("config", "init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "xdg-config" / "paperdigest" / "config.toml").is_file()


def test_a_missing_config_file_points_at_config_init(cli, tmp_path: Path) -> None:
    result = cli("--config", str(tmp_path / "absent.toml"), "status")
    assert result.exit_code != 0
    assert "`paperdigest config init` writes a starter one there" in result.stderr


def test_config_init_has_help(cli) -> None:
    result = cli("config", "init", "--help")
    assert result.exit_code == 0 and "--force" in result.stdout
