"""Settings: the file, environment overrides, `config check`, secrets and the keyring."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from paperdigest.config import Settings, SmtpSettings, load_settings
from paperdigest.mailer import KEYRING_SERVICE, resolve_password

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            keys |= _keys(nested[0], f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def test_the_example_config_is_valid_and_documents_every_key():
    settings = load_settings(EXAMPLE)
    assert settings.profiles[0].name == "default"
    text = EXAMPLE.read_text(encoding="utf-8")
    # Every key appears in the example, set or commented out.
    written = set(re.findall(r"^#? ?([a-z_]+) = ", text, flags=re.MULTILINE))
    leaves = {key.rsplit(".", 1)[-1] for key in _keys(Settings)}
    assert leaves - written == set()


def test_the_example_defaults_match_the_code():
    example = load_settings(EXAMPLE)
    assert example.smtp.port == SmtpSettings().port
    assert example.digest == Settings().digest
    assert example.sources == Settings().sources


def test_config_check_prints_the_effective_settings_with_secrets_masked(
    cli, tmp_path, monkeypatch
):
    config = tmp_path / "c.toml"
    config.write_text('[smtp]\nhost = "file.example"\npassword = "from-the-file"\n'
                      '[[profiles]]\nname = "ada"\nemail = "ada@example.com"\n')
    monkeypatch.setenv("PAPERDIGEST_SMTP__HOST", "env.example")
    monkeypatch.setenv("PAPERDIGEST_SMTP__PASSWORD", "from-the-env")

    result = cli("--config", str(config), "config", "check")

    assert result.exit_code == 0, result.output
    assert 'host = "env.example"' in result.stdout  # the environment wins
    assert 'password = "********"' in result.stdout
    assert "from-the-file" not in result.output and "from-the-env" not in result.output
    assert 'email = ["ada@example.com"]' in result.stdout
    assert load_settings(config).smtp.password.get_secret_value() == "from-the-env"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[smtp]\ncolour = "blue"\n', "smtp.colour: unknown key"),
        ('[digest]\ntimezone = "Mars/Olympus"\n', "digest.timezone: 'Mars/Olympus' is not"),
        ('[[profiles]]\nname = "a"\ntimezone = "Nowhere"\n', "profiles.0.timezone:"),
        ('[digest]\nsend_time = "25:99"\n', "digest.send_time: '25:99' is not a time"),
        ('[smtp]\nsecurity = "tls"\n', "smtp.security: Input should be 'ssl', 'starttls'"),
        ("[smtp]\nport = 0\n", "smtp.port: Input should be greater than or equal to 1"),
        ("[smtp\n", "not valid TOML"),
    ],
)
def test_a_bad_config_names_the_key_and_the_reason_in_one_line(cli, tmp_path, toml, message):
    config = tmp_path / "c.toml"
    config.write_text(toml)
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_a_bad_password_value_is_never_echoed(cli, tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text("[smtp]\npassword = 12345678\n")
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code == 2
    assert "smtp.password" in result.stderr and "12345678" not in result.output


def test_a_bad_environment_value_names_the_key(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERDIGEST_SMTP__PORT", "many")
    result = cli("config", "check")
    assert result.exit_code == 2
    assert "smtp.port" in result.stderr


def test_without_a_file_the_defaults_are_used(cli):
    result = cli("config", "check")
    assert result.exit_code == 0
    assert "absent: defaults" in result.stderr
    assert 'send_time = "07:00"' in result.stdout


def test_the_config_file_can_come_from_the_environment(cli, tmp_path, monkeypatch):
    config = tmp_path / "elsewhere.toml"
    config.write_text('[digest]\nsend_time = "06:15"\n')
    monkeypatch.setenv("PAPERDIGEST_CONFIG", str(config))
    result = cli("config", "check")
    assert 'send_time = "06:15"' in result.stdout


class _MemoryKeyring:
    """A keyring backend that keeps passwords in a dict."""

    def __init__(self) -> None:
        import keyring.backend

        class Backend(keyring.backend.KeyringBackend):
            priority = 1  # type: ignore[assignment]
            def __init__(self) -> None:
                super().__init__()
                self.store: dict[tuple[str, str], str] = {}

            def get_password(self, service: str, username: str) -> str | None:
                return self.store.get((service, username))

            def set_password(self, service: str, username: str, password: str) -> None:
                self.store[(service, username)] = password

            def delete_password(self, service: str, username: str) -> None:
                self.store.pop((service, username), None)

        self.backend = Backend()


@pytest.fixture
def memory_keyring():
    import keyring

    previous = keyring.get_keyring()
    memory = _MemoryKeyring().backend
    keyring.set_keyring(memory)
    yield memory
    keyring.set_keyring(previous)


def test_the_password_can_come_from_the_system_keyring(memory_keyring):
    import yagmail

    yagmail.register("me@example.org", "from-the-keyring")  # how a user stores it
    assert memory_keyring.get_password(KEYRING_SERVICE, "me@example.org") == "from-the-keyring"
    assert resolve_password(SmtpSettings(username="me@example.org")) == "from-the-keyring"
    # A configured password wins; no username means no login at all.
    assert resolve_password(SmtpSettings(username="me@example.org", password="x")) == "x"
    assert resolve_password(SmtpSettings()) is None


def test_a_missing_password_is_a_config_error_not_a_prompt(memory_keyring, store):
    from paperdigest.config import ProfileSettings
    from paperdigest.delivery import send_digests

    settings = Settings(smtp={"username": "nobody@example.org", "port": 2},
                        profiles=[ProfileSettings(name="ada", email="a@b.org")])
    from paperdigest.errors import ConfigError

    with pytest.raises(ConfigError, match=r"smtp\.password: not set"):
        send_digests(store, settings, settings.profiles)
