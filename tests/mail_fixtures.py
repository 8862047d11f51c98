"""A real SMTP server on localhost (aiosmtpd), plain, STARTTLS or SSL, with AUTH.

Certificates come from a throwaway CA made by trustme; the client trusts it through
SSL_CERT_FILE, exactly as a user with a private CA would.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER = "digest@example.org"
# aiosmtpd warns about AUTH over plain text, which the "none" mode tests on purpose.
QUIET = [
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated"),
]
PASSWORD = "s3cret-app-password"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    peer: object = None  # the client's (host, port): one per connection

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)  # type: ignore[return-value]


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    transient_failures: int = 0  # answer 451 to this many DATA commands first
    reject: str | None = None  # e.g. "554 5.7.1 rejected as spam"
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            if self.transient_failures > 0:
                self.transient_failures -= 1
                return "451 4.3.0 try again later"
            if self.reject:
                return self.reject
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                         session.peer)
            )
        return "250 2.0.0 OK"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MailServer:
    """Start with .start(); .settings() gives the [smtp] table that reaches it."""

    def __init__(self, mode: str, ca: trustme.CA | None, port: int | None = None) -> None:
        self.mode = mode
        self.port = port or free_port()
        self.handler = Handler()
        self._controller: Controller | None = None
        kwargs: dict[str, object] = {
            "authenticator": _authenticator,
            "auth_required": True,
            # Implicit TLS is TLS too, but aiosmtpd only counts STARTTLS as such.
            "auth_require_tls": mode == "starttls",
        }
        if mode != "none":
            assert ca is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
            if mode == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs["tls_context"] = context
                kwargs["require_starttls"] = True
        self._kwargs = kwargs

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> MailServer:
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="localhost",
            **self._kwargs,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def settings(self, **extra: object) -> dict[str, object]:
        return {
            "host": "localhost",
            "port": self.port,
            "security": self.mode,
            "username": USER,
            "password": PASSWORD,
            "sender": USER,
            "timeout": 5,
            "retries": 2,
            "backoff": 0.01,
            **extra,
        }


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trust_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


@pytest.fixture(params=["none", "starttls", "ssl"])
def mail_server(request: pytest.FixtureRequest, ca: trustme.CA, trust_ca: None):
    server = MailServer(request.param, ca).start()
    yield server
    server.stop()


@pytest.fixture
def plain_server(ca: trustme.CA):
    server = MailServer("none", ca).start()
    yield server
    server.stop()


def write_config(path: Path, smtp: dict[str, object], profiles: list[dict[str, object]],
                 **digest: object) -> Path:
    """A TOML config file from plain dicts (only the value types tests use)."""

    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        text = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'

    lines = ["[smtp]", *(f"{k} = {value(v)}" for k, v in smtp.items())]
    lines += ["", "[digest]", *(f"{k} = {value(v)}" for k, v in digest.items())]
    for profile in profiles:
        lines += ["", "[[profiles]]", *(f"{k} = {value(v)}" for k, v in profile.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
