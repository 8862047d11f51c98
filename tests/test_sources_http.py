"""The shared HTTP client against a real local server: retries, Retry-After, caps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from paperdigest import __version__
from paperdigest.sources.http import (
    FetchError,
    HostUnreachable,
    ResponseTooLarge,
    RetryPolicy,
    get_bytes,
    make_client,
    parse_retry_after,
)


class Sleeps(list[float]):
    """An injected sleep that records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client():
    with make_client(timeout=5.0) as opened:
        yield opened


def test_sends_a_user_agent_naming_paperdigest_and_its_version(
    httpserver: HTTPServer, client, sleeps: Sleeps
) -> None:
    httpserver.expect_request(
        "/ok", headers={"User-Agent": f"paperdigest/{__version__} (personal paper digest; "
                        "python-httpx)"}
    ).respond_with_data(b"[]")
    assert get_bytes(client, httpserver.url_for("/ok"), policy=RetryPolicy(sleep=sleeps)) == b"[]"
    assert sleeps == []


def test_429_waits_as_long_as_retry_after_says(httpserver: HTTPServer, client, sleeps) -> None:
    httpserver.expect_oneshot_request("/p").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_request("/p").respond_with_data(b"done")
    assert get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps)) == b"done"
    assert sleeps == [7.0]


def test_500_then_success_backs_off_exponentially(httpserver: HTTPServer, client, sleeps) -> None:
    for _ in range(2):
        httpserver.expect_oneshot_request("/p").respond_with_data("oops", status=500)
    httpserver.expect_request("/p").respond_with_data(b"done")
    policy = RetryPolicy(retries=3, backoff=1.5, sleep=sleeps)
    assert get_bytes(client, httpserver.url_for("/p"), policy=policy) == b"done"
    assert sleeps == [1.5, 3.0]


def test_persistent_503_fails_after_the_retries(httpserver: HTTPServer, client, sleeps) -> None:
    httpserver.expect_request("/p").respond_with_data("down", status=503)
    with pytest.raises(FetchError, match=r"HTTP 503 .*after 3 attempts"):
        get_bytes(client, httpserver.url_for("/p"), {"date": "2025-03-17"},
                  policy=RetryPolicy(retries=2, backoff=0.5, sleep=sleeps))
    assert sleeps == [0.5, 1.0]


def test_404_is_not_retried(httpserver: HTTPServer, client, sleeps) -> None:
    httpserver.expect_request("/p").respond_with_data("no", status=404)
    with pytest.raises(FetchError, match="HTTP 404"):
        get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps))
    assert sleeps == []
    assert len(httpserver.log) == 1


def test_a_timeout_is_retried(sleeps) -> None:
    def slow(_request: Request) -> Response:
        time.sleep(0.5)  # longer than the client's timeout below
        return Response(b"late")

    # Threaded, so the retry is answered while the slow handler is still asleep.
    server = HTTPServer(threaded=True)
    server.start()
    try:
        server.expect_oneshot_request("/p").respond_with_handler(slow)
        server.expect_request("/p").respond_with_data(b"on time")
        with make_client(timeout=0.1) as client:
            body = get_bytes(client, server.url_for("/p"), policy=RetryPolicy(sleep=sleeps))
    finally:
        server.clear()
        server.stop()
    assert body == b"on time"
    assert sleeps == [1.0]


def test_connection_refused_fails_cleanly(sleeps) -> None:
    with make_client(timeout=1.0) as client, pytest.raises(FetchError, match="ConnectError"):
        get_bytes(client, "http://127.0.0.1:9/api", policy=RetryPolicy(retries=1, sleep=sleeps))


def test_a_huge_body_is_refused_not_retried(httpserver: HTTPServer, client, sleeps) -> None:
    httpserver.expect_request("/p").respond_with_data(b"x" * 5000)
    with pytest.raises(ResponseTooLarge, match="exceeds 1000"):
        get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps),
                  max_bytes=1000)
    assert sleeps == []


def test_a_huge_chunked_body_without_length_is_cut_off(
    httpserver: HTTPServer, client, sleeps
) -> None:
    def stream(_request: Request) -> Response:
        return Response((b"y" * 1000 for _ in range(50)), direct_passthrough=True)

    httpserver.expect_request("/p").respond_with_handler(stream)
    with pytest.raises(ResponseTooLarge, match="body exceeds 10000"):
        get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps),
                  max_bytes=10_000)


def test_retry_after_as_an_http_date_and_too_long() -> None:
    now = datetime(2025, 3, 17, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now) == 30.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_retry_after_beyond_the_cap_gives_up_now(httpserver: HTTPServer, client, sleeps) -> None:
    httpserver.expect_request("/p").respond_with_data(
        "", status=429, headers={"Retry-After": "86400"}
    )
    with pytest.raises(FetchError, match="retry after 86400 s"):
        get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps))
    assert sleeps == []


def test_an_undecodable_body_fails_without_retrying(httpserver: HTTPServer, client, sleeps) -> None:
    httpserver.expect_request("/p").respond_with_data(
        b"this is not gzip", headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(FetchError, match="DecodingError"):
        get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps))
    assert sleeps == []


def test_an_unresolvable_host_is_not_retried(sleeps) -> None:
    # .invalid is reserved (RFC 2606): it never resolves, online or not.
    with make_client(timeout=5.0) as client, pytest.raises(HostUnreachable) as raised:
        get_bytes(client, "https://paperdigest-test.invalid/api/daily_papers",
                  {"date": "2025-09-30"}, policy=RetryPolicy(retries=3, sleep=sleeps))
    assert sleeps == []
    assert str(raised.value) == (
        "cannot reach paperdigest-test.invalid: the host name does not resolve (offline?)"
    )


def test_a_refused_request_carries_the_servers_own_reason(
    httpserver: HTTPServer, client, sleeps
) -> None:
    httpserver.expect_request("/p").respond_with_data(b"<why>bad id</why>", status=400)

    def explain(body: bytes) -> str | None:
        return body.decode().removeprefix("<why>").removesuffix("</why>")

    with pytest.raises(FetchError, match=r"HTTP 400 BAD REQUEST: bad id$"):
        get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps),
                  explain=explain)
    with pytest.raises(FetchError, match=r"HTTP 400 BAD REQUEST$"):
        get_bytes(client, httpserver.url_for("/p"), policy=RetryPolicy(sleep=sleeps),
                  explain=lambda body: None)
    assert sleeps == []
