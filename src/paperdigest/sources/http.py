"""The one HTTP client every live source uses: timeout, User-Agent, retries, size cap.

Transient failures (connect errors, timeouts, 5xx, 429) are retried with exponential
backoff, honouring a Retry-After header. `sleep` is injected so tests never wait.
A host name that does not resolve is not transient: it fails at once (HostUnreachable).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from paperdigest import __version__
from paperdigest.errors import PaperdigestError

log = logging.getLogger(__name__)

USER_AGENT = f"paperdigest/{__version__} (personal paper digest; python-httpx)"
MAX_BODY_BYTES = 20 * 1024 * 1024  # a day's listing is well under 1 MiB
MAX_RETRY_AFTER = 300.0  # a server asking for longer is treated as down for now


class FetchError(PaperdigestError):
    """A request failed for good: retries exhausted, or a response we must not use."""


class RefusedError(FetchError):
    """The server answered the request with a 4xx status: asking again will not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ResponseTooLarge(FetchError):
    """The body exceeded the size cap; it is a malformed response, not a transient one."""


class HostUnreachable(FetchError):
    """The host name does not resolve (offline, or a typo): retrying would not help."""

    def __init__(self, host: str) -> None:
        super().__init__(f"cannot reach {host}: the host name does not resolve (offline?)")
        self.host = host


# The most of an error response read to explain it (arXiv's error feed is under 1 KiB).
MAX_ERROR_BODY = 64 * 1024
# Turns an error response's body into the server's own message, or None.
ErrorExplainer = Callable[[bytes], str | None]


@dataclass
class RetryPolicy:
    retries: int = 3
    backoff: float = 1.0  # first delay in seconds; doubles each retry
    max_delay: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return min(self.backoff * (2**attempt), self.max_delay)


def make_client(timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _transient(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def _unresolvable(exc: BaseException) -> bool:
    """True when the cause is a failed DNS lookup (socket.gaierror somewhere in the chain)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, socket.gaierror):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _error_detail(response: httpx.Response, explain: ErrorExplainer | None) -> str:
    """': the server's message' from an error body, when `explain` can read one."""
    if explain is None:
        return ""
    try:
        body = _read_capped(response, "", MAX_ERROR_BODY)
    except (FetchError, httpx.HTTPError):
        return ""
    message = explain(body)
    return f": {message}" if message else ""


def _read_capped(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"{url}: response of {int(declared)} bytes exceeds {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"{url}: response body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def get_bytes(
    client: httpx.Client,
    url: str,
    params: Mapping[str, str | int] | None = None,
    *,
    policy: RetryPolicy | None = None,
    max_bytes: int = MAX_BODY_BYTES,
    explain: ErrorExplainer | None = None,
) -> bytes:
    """GET a URL's body, retrying transient failures; FetchError when it cannot.

    `explain` reads the body of a refused request (4xx) for the server's own reason.
    """
    policy = policy or RetryPolicy()
    shown = str(httpx.URL(url, params=params))  # messages name the full request
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        retry_after: float | None = None
        try:
            with client.stream("GET", url, params=params) as response:
                if response.status_code == 200:
                    return _read_capped(response, shown, max_bytes)
                reason = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                if not _transient(response.status_code):
                    detail = _error_detail(response, explain)
                    if 400 <= response.status_code <= 499:
                        raise RefusedError(f"{shown}: {reason}{detail}", response.status_code)
                    raise FetchError(f"{shown}: {reason}{detail}")
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                    raise FetchError(f"{shown}: {reason}, retry after {retry_after:.0f} s")
        except httpx.ConnectError as exc:
            if _unresolvable(exc):
                raise HostUnreachable(httpx.URL(url).host) from None
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except httpx.TransportError as exc:
            # Connect errors, timeouts and dropped connections are worth another try.
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except httpx.RequestError as exc:
            # Undecodable content, redirect loops: retrying would only repeat them.
            raise FetchError(f"{shown}: {type(exc).__name__}: {exc}") from None
        if last:
            raise FetchError(f"{shown}: {reason} (after {policy.retries + 1} attempts)")
        wait = policy.delay(attempt, retry_after)
        log.warning("%s: %s; retrying in %.1f s", shown, reason, wait)
        policy.sleep(wait)
    raise AssertionError("unreachable")  # the loop always returns or raises
