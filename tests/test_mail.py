"""`paperdigest send` against a real SMTP server: what arrives is what was rendered."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import css_inline
import pytest

from paperdigest.config import load_settings
from paperdigest.delivery import ledger
from paperdigest.render import RenderedDigest, make_environment, render_digest
from paperdigest.service import build_digest
from paperdigest.store import Store
from tests.mail_fixtures import PASSWORD, QUIET, USER, write_config

pytestmark = QUIET


def _ids(text: str) -> list[str]:
    return re.findall(r"\[id ([^\]]+)\]", text)


def _body(message, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}"
    # Bodies travel with CRLF line endings; the rendered text has LF.
    return part.get_content().replace("\r\n", "\n")


def _expected(config: Path, data_dir: Path, profile: str) -> RenderedDigest:
    settings = load_settings(config)
    cfg = settings.digest
    with Store.open(data_dir) as store:
        digest = build_digest(
            store, profile, datetime.now(UTC).date(), cfg.picks, cfg.window_days, cfg.trending
        )
    return render_digest(digest, make_environment(cfg.templates_dir), cfg.subject, mailed=True)


def test_send_delivers_exactly_the_rendered_digest(cli, data_dir, tmp_path, mail_server):
    recipients = ["ada@example.com", "grace@example.net"]
    config = write_config(
        tmp_path / "config.toml",
        mail_server.settings(),
        [{"name": "ada", "email": recipients}],
    )
    star = cli("--config", str(config), "star", "--profile", "ada",
               "Once-for-All: Train One Network")
    assert star.exit_code == 0, star.output
    preview = cli("--config", str(config), "preview", "--profile", "ada")
    expected = _expected(config, data_dir, "ada")

    result = cli("--config", str(config), "send", "--profile", "ada")

    assert result.exit_code == 0, result.output
    assert "ada: sent to ada@example.com, grace@example.net" in result.stdout
    assert len(mail_server.received) == 1
    received = mail_server.received[0]
    assert received.sender == USER
    assert received.recipients == recipients
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == expected.subject
    assert message["From"] == f"paperdigest <{USER}>"
    assert message["To"] == ", ".join(recipients)
    assert message["Date"] and message["Message-ID"]
    # No web.base_url: no unsubscribe header (nothing would read a mailto), the footer says.
    assert message["List-Unsubscribe"] is None
    assert "paperdigest unsubscribe --profile ada" in _body(message, "plain")
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert _body(message, "plain") == expected.text
    assert _body(message, "html") == css_inline.inline(expected.html).rstrip("\n") + "\n"
    # The picks are the ones `paperdigest preview` showed.
    assert _ids(preview.stdout) and _ids(_body(message, "plain")) == _ids(preview.stdout)
    entries = ledger(Store.open(data_dir), "ada")
    assert [e.status for e in entries] == ["sent"]
    assert entries[0].message_id == message["Message-ID"]


def test_dry_run_writes_the_message_and_sends_nothing(cli, data_dir, tmp_path, plain_server):
    config = write_config(
        tmp_path / "config.toml", plain_server.settings(), [{"name": "ada", "email": "a@b.org"}]
    )
    result = cli("--config", str(config), "send", "--dry-run")

    assert result.exit_code == 0, result.output
    written = sorted((data_dir / "outbox").glob("ada-*.eml"))
    assert len(written) == 1 and str(written[0]) in result.stdout
    message = BytesParser(policy=policy.default).parsebytes(written[0].read_bytes())
    assert message["To"] == "a@b.org"
    assert message.get_content_type() == "multipart/alternative"
    assert plain_server.received == []
    with Store.open(data_dir) as store:
        assert ledger(store) == [] and store.shown_pks("ada") == set()


def test_a_newline_in_a_header_value_cannot_add_a_header():
    from paperdigest.mailer import build_message, message_bytes

    rendered = RenderedDigest(
        subject="Attention\r\nBcc: victim@example.com\nX-Evil: 1", html="<p>x</p>", text="x\n"
    )
    message = build_message(
        rendered, sender="me@example.org", recipients=["you@example.org"], profile="p",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    parsed = BytesParser(policy=policy.default).parsebytes(message_bytes(message))
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert parsed["Subject"] == "Attention Bcc: victim@example.com X-Evil: 1"


def test_a_wrong_password_fails_at_once_without_showing_it(cli, data_dir, tmp_path,
                                                           plain_server):
    wrong = "not-the-" + PASSWORD
    config = write_config(
        tmp_path / "config.toml",
        plain_server.settings(password=wrong, retries=5),
        [{"name": "ada", "email": "a@b.org"}],
    )
    result = cli("--config", str(config), "send")

    assert result.exit_code == 1
    assert "refused the login" in result.stderr
    assert wrong not in result.output and PASSWORD not in result.output
    assert "Traceback" not in result.output
    assert plain_server.received == []
    with Store.open(data_dir) as store:
        assert [e.status for e in ledger(store)] == ["failed"]
        assert store.shown_pks("ada") == set()


def test_send_names_the_problem_when_no_profile_is_configured(cli, data_dir, tmp_path):
    config = write_config(tmp_path / "config.toml", {"host": "localhost"}, [])
    result = cli("--config", str(config), "send")
    assert result.exit_code == 1
    assert "no profiles are configured" in result.stderr


@pytest.mark.parametrize("flag", ["--help"])
def test_commands_have_help(cli, flag):
    for command in (["send"], ["run"], ["config", "check"]):
        assert cli(*command, flag).exit_code == 0
