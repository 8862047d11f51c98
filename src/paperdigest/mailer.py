"""Mail: building the digest message and handing it to an SMTP server.

yagmail opens the connection and logs in (it knows ssl/starttls and the keyring), but its
own message builder rewrites a digest (newlines to <br>, premailer, HTML in the text part),
so the message is built here with the stdlib and sent over yagmail's connection.

"Exactly what the templates rendered" means: the text/plain part decodes to the rendered
text byte for byte, and the text/html part to `css_inline.inline(rendered html)` plus a
final newline, once the CRLF line endings every mail body travels with are read back as
LF. Both parts are quoted-printable, so the message is 7-bit clean and any server takes it.
"""

from __future__ import annotations

import binascii
import contextlib
import logging
import re
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage, MIMEPart
from email.policy import Policy
from email.utils import format_datetime, formataddr, parseaddr
from typing import Protocol

import css_inline

from paperdigest.config import SmtpSettings
from paperdigest.errors import ConfigError, PaperdigestError
from paperdigest.render import RenderedDigest

log = logging.getLogger(__name__)

KEYRING_SERVICE = "yagmail"  # where `yagmail.register` and `keyring set yagmail USER` store it
MAX_BACKOFF_SECONDS = 300.0
WIRE_POLICY = policy.SMTP  # CRLF line endings, as SMTP wants


class SendError(PaperdigestError):
    """The SMTP server did not take the message."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class MaybeDelivered(SendError):
    """The whole message went out, then no answer came (timeout, dropped connection): the
    server may have stored it. Never retried within a run (that is how duplicates are
    made); the ledger records it and a later run sends it once more at most."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def one_line(value: str) -> str:
    """A header value on one line: a newline in a title can never start a new header."""
    return " ".join(value.split())


def sender_address(smtp: SmtpSettings) -> str:
    sender = smtp.sender or smtp.username
    if not sender:
        raise ConfigError("smtp.sender: not set (and no smtp.username to send as)")
    return one_line(sender)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip("> ") or "paperdigest.invalid"


class _OneLineHeader(UnstructuredHeader):
    """Written as is: the default folding would turn a long URL into encoded words, which
    no mail client reads as a link. The value is already one line of ASCII."""

    def fold(self, *, policy: Policy) -> str:  # type: ignore[override]
        return f"{self.name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _OneLineHeader)
MESSAGE_POLICY = policy.default.clone(header_factory=_HEADERS)


def from_header(sender: str, from_name: str | None) -> str:
    """`paperdigest <you@example.org>`; a name set in `sender` itself is replaced."""
    name, address = parseaddr(one_line(sender))
    name = one_line(from_name) if from_name is not None else name
    address = address or one_line(sender)
    return formataddr((name, address)) if name else address


def build_message(
    rendered: RenderedDigest,
    *,
    sender: str,
    recipients: Sequence[str],
    profile: str,
    now: datetime,
    message_id: str | None = None,
    from_name: str | None = None,
    unsubscribe_url: str | None = None,
    inlined_html: str | None = None,
) -> EmailMessage:
    """multipart/alternative: the rendered text, then the HTML with its CSS inlined.

    `message_id` comes from the ledger, so every attempt of one digest carries the same
    one; without it (a dry run) a random one is made. With `unsubscribe_url` (a signed
    link to `paperdigest serve`), the message carries RFC 8058 one-click unsubscribe
    headers; without it, none, since no one would read a mailto request (the footer says
    how to stop the mail instead). `inlined_html`: inline_css(rendered.html), when the
    caller has it already."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    _set(message, "From", from_header(sender, from_name))
    _set(message, "To", ", ".join(one_line(r) for r in recipients))
    _set(message, "Subject", one_line(rendered.subject))
    _set(message, "Date", format_datetime(now))
    # Short enough never to be folded onto a second line.
    token = secrets.token_hex(8)
    _set(message, "Message-ID", one_line(message_id or "") or (
        f"<paperdigest.{now:%Y%m%d}.{token}@{domain_of(sender)}>"
    ))
    if unsubscribe_url is not None:
        url = one_line(unsubscribe_url)
        if not url.isascii() or any(c in url for c in "<>,"):
            raise PaperdigestError("web.base_url: not usable in a List-Unsubscribe header")
        _set(message, "List-Unsubscribe", f"<{url}>")
        _set(message, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    _set(message, "Auto-Submitted", "auto-generated")
    # A boundary starting "=_" never occurs in a quoted-printable body (its "=" would be
    # "=3D"), so the generator need not search both parts for a free one.
    _set(message, "MIME-Version", "1.0")
    _set(message, "Content-Type",
         f'multipart/alternative; boundary="=_paperdigest_{secrets.token_hex(16)}"')
    message.attach(_text_part(rendered.text, "plain"))
    message.attach(_text_part(
        inlined_html if inlined_html is not None else inline_css(rendered.html), "html"
    ))
    return message


def _text_part(text: str, subtype: str) -> MIMEPart:
    """A UTF-8 text part, quoted-printable, as `set_content(text, cte="quoted-printable")`
    makes it (line breaks normalised to one newline each, one at the end), encoded by the
    stdlib's C encoder (binascii) instead of the email package's pure-Python one, which
    took a third of the time of building a digest."""
    part = MIMEPart(policy=MESSAGE_POLICY)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    body = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    part.set_payload(binascii.b2a_qp(body, istext=True).decode("ascii"))
    return part


def _set(message: EmailMessage, name: str, value: str) -> None:
    """A header of one short ASCII line is stored as is (parsing it through the header
    registry is a fifth of the cost of building a digest); any other goes through the
    policy, which encodes and folds it. Values reach here on one line (one_line)."""
    if value.isascii() and len(name) + 2 + len(value) <= MESSAGE_POLICY.max_line_length:
        message.set_raw(name, value)
    else:
        message[name] = value


def inline_css(html: str) -> str:
    # A MIME text body ends with a newline; adding it here keeps "what was sent" and
    # "what this returns" the same string.
    return css_inline.inline(html).rstrip("\n") + "\n"


def message_bytes(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=WIRE_POLICY)


@dataclass(frozen=True)
class Outgoing:
    """One message of a run, with where it goes."""

    key: str  # which digest it is, for the caller (a profile name)
    sender: str
    recipients: tuple[str, ...]
    data: bytes


Connector = Callable[[], "ManagedConnection"]


class ManagedConnection(Protocol):
    smtp: smtplib.SMTP

    def close(self) -> None: ...


def resolve_password(smtp: SmtpSettings) -> str | None:
    """The configured password, else the one in the system keyring, else None (no login)."""
    if smtp.password is not None:
        return smtp.password.get_secret_value()
    if not smtp.username:
        return None
    try:
        import keyring
        from keyring.errors import KeyringError
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, smtp.username)
    except KeyringError as exc:
        log.warning("cannot read the system keyring: %s", type(exc).__name__)
        return None
    except Exception as exc:  # a broken keyring backend must not stop the digest
        log.warning("cannot read the system keyring: %s", type(exc).__name__)
        return None


def tls_context() -> ssl.SSLContext:
    # smtplib's default context does not verify certificates; this one does, and it
    # honours SSL_CERT_FILE for a private CA.
    return ssl.create_default_context()


def open_connection(smtp: SmtpSettings) -> ManagedConnection:
    """Connect and log in with yagmail; raises SendError, never with the password in it."""
    import yagmail

    password = resolve_password(smtp)
    if smtp.username and password is None:
        raise ConfigError(
            "smtp.password: not set; set it in the config, in PAPERDIGEST_SMTP__PASSWORD, "
            f"or in the system keyring (keyring set {KEYRING_SERVICE} {smtp.username})"
        )
    context = tls_context()
    kwargs: dict[str, object] = {"timeout": smtp.timeout}
    if smtp.security == "ssl":
        kwargs["context"] = context
    client = yagmail.SMTP(
        user=smtp.username or smtp.sender or "",
        password=password or "",
        host=smtp.host,
        port=smtp.port,
        smtp_ssl=smtp.security == "ssl",
        # Explicit, or yagmail tries STARTTLS on a plain server.
        smtp_starttls={"context": context} if smtp.security == "starttls" else False,
        smtp_skip_login=not smtp.username,
        soft_email_validation=False,
        **kwargs,
    )
    try:
        client.login()
    except Exception as exc:
        _quiet_close(client)
        raise classify(exc, smtp) from None
    return client


def _quiet_close(client: object) -> None:
    with contextlib.suppress(Exception):
        client.close()  # type: ignore[attr-defined]


def classify(exc: BaseException, smtp: SmtpSettings) -> SendError:
    """Transient (worth retrying) or permanent, in one line without secrets."""
    where = f"{smtp.host}:{smtp.port}"
    if isinstance(exc, SendError):
        return exc
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendError(
            f"{where} refused the login for {smtp.username!r} ({exc.smtp_code}); "
            "check smtp.username and smtp.password",
            transient=False,
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        transient = bool(codes) and all(400 <= code < 500 for code in codes)
        refused = ", ".join(f"{addr} ({code})" for addr, (code, _) in exc.recipients.items())
        return SendError(f"{where} refused the recipients: {refused}", transient=transient)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = _reply_text(exc.smtp_error)
        transient = 400 <= exc.smtp_code < 500
        return SendError(f"{where} answered {exc.smtp_code} {reply}", transient=transient)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SendError(
            f"{where} does not support what smtp.security={smtp.security!r} needs: {exc}",
            transient=False,
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message})",
            transient=False,
        )
    if isinstance(exc, ssl.SSLError):
        return SendError(
            f"{where}: TLS failed ({exc.reason or exc}); is smtp.security={smtp.security!r} "
            "right for this port?",
            transient=False,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SendError(f"{where} closed the connection: {exc}", transient=True)
    if isinstance(exc, TimeoutError):
        return SendError(f"{where} did not answer within {smtp.timeout:g}s", transient=True)
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return SendError(f"cannot reach {where}: {reason}", transient=True)
    if isinstance(exc, smtplib.SMTPException):
        return SendError(f"{where}: {exc}", transient=False)
    return SendError(f"{where}: unexpected {type(exc).__name__}", transient=False)


def _reply_text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return one_line(reply)


@dataclass
class RunResult:
    accepted: dict[str, datetime]  # key -> when the server took it
    failed: dict[str, SendError]
    maybe: dict[str, MaybeDelivered] = field(default_factory=dict)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def send_message(
    conn: smtplib.SMTP, message: Outgoing, before_data: Callable[[], None] | None = None
) -> dict:
    """smtplib's sendmail, with one difference that matters: it tells a failure before
    the server had the whole message (not delivered) from no answer after it
    (MaybeDelivered). `before_data` runs just before DATA: the ledger writes the attempt
    there, and if it cannot, nothing is sent. Returns the refused recipients."""
    conn.ehlo_or_helo_if_needed()
    options = [f"size={len(message.data)}"] if conn.does_esmtp and conn.has_extn("size") else []
    code, reply = conn.mail(message.sender, options)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, message.sender)
    refused: dict[str, tuple[int, bytes]] = {}
    for recipient in message.recipients:
        code, reply = conn.rcpt(recipient)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
    if len(refused) == len(message.recipients):
        conn.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    if before_data is not None:
        try:
            before_data()
        except BaseException:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.rset()  # nothing was sent; leave the connection ready for the next
            raise
    code, reply = conn.docmd("DATA")
    if code != 354:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            conn.rset()  # end the transaction, so the next message can start its own
        raise smtplib.SMTPDataError(code, reply)
    payload = _LEADING_DOT.sub(b"..", message.data)
    if not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    conn.send(payload + b".\r\n")  # failing here, the server never saw the final dot
    try:
        code, reply = conn.getreply()
    except Exception as exc:  # smtplib turns timeouts and resets into SMTPServerDisconnected
        raise MaybeDelivered(f"no answer after the whole message was sent ({exc})") from None
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)
    return refused


def deliver(
    messages: Sequence[Outgoing],
    smtp: SmtpSettings,
    *,
    connect: Callable[[SmtpSettings], ManagedConnection] = open_connection,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] | None = None,
    before_data: Callable[[str], None] | None = None,
    on_accepted: Callable[[str, datetime], None] | None = None,
) -> RunResult:
    """Send every message over one connection, reconnecting with exponential backoff on
    transient failures (at most smtp.retries times); a permanent failure of the connection
    (say a refused login) stops the run, a permanent refusal of one message skips it.

    A message that may have been delivered (MaybeDelivered) is never sent again here; the
    run reconnects for the others. `before_data(key)` runs before each payload (raise to
    send nothing), `on_accepted(key, when)` as soon as the server took one."""
    from datetime import UTC

    clock = clock or (lambda: datetime.now(UTC))
    pending = list(messages)
    result = RunResult(accepted={}, failed={})
    failures = 0
    while pending:
        try:
            client = connect(smtp)
        except SendError as exc:
            if exc.transient and failures < smtp.retries:
                failures += 1
                _wait(exc, failures, smtp, sleep)
                continue
            for message in pending:
                result.failed[message.key] = exc
            return result
        try:
            while pending:
                message = pending[0]
                hook = (lambda key=message.key: before_data(key)) if before_data else None
                try:
                    refused = send_message(client.smtp, message, hook)
                except MaybeDelivered as exc:
                    log.error("%s: %s:%s: %s; not sending it again in this run",
                              message.key, smtp.host, smtp.port, exc)
                    result.maybe[message.key] = exc
                    pending.pop(0)
                    break  # the connection is in an unknown state: a fresh one for the rest
                except Exception as raw:
                    exc = classify(raw, smtp)
                    if exc.transient:
                        raise exc from None
                    log.error("not sent (%s): %s", message.key, exc)
                    result.failed[message.key] = exc
                    pending.pop(0)
                    continue
                if refused:
                    log.warning("%s: refused for %s", message.key, ", ".join(sorted(refused)))
                accepted_at = clock()
                result.accepted[message.key] = accepted_at
                pending.pop(0)
                if on_accepted is not None:
                    on_accepted(message.key, accepted_at)
        except SendError as exc:
            _quiet_close(client)
            if failures < smtp.retries:
                failures += 1
                _wait(exc, failures, smtp, sleep)
                continue
            for message in pending:
                result.failed[message.key] = exc
            return result
        _quiet_close(client)
    return result


def _wait(exc: SendError, failures: int, smtp: SmtpSettings, sleep: Callable[[float], None]):
    delay = min(smtp.backoff * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
    log.warning("%s; retry %d of %d in %.3gs", exc, failures, smtp.retries, delay)
    sleep(delay)
