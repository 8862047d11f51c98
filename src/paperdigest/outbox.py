"""The outbox of a run: messages rendered, then sent over reused SMTP connections.

`SenderPool` is `smtp.connections` threads, each sending queued messages over one
connection it keeps open (RSET after a refused message), optionally no faster than
`smtp.max_per_minute` (`RateLimit`), and writing each outcome to the ledger through its
own database connection. `render_letter` turns a digest into the message and the copy
kept for "view in browser".
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from paperdigest import ledger as ledger_api
from paperdigest.archive import keep_copy
from paperdigest.config import SmtpSettings
from paperdigest.delivery import record_quietly
from paperdigest.digest import Digest
from paperdigest.mailer import (
    MAX_BACKOFF_SECONDS,
    ManagedConnection,
    MaybeDelivered,
    Outgoing,
    SendError,
    _quiet_close,
    build_message,
    classify,
    inline_css,
    message_bytes,
    open_connection,
    send_message,
)
from paperdigest.render import make_environment, render_digest
from paperdigest.store import Store
from paperdigest.web.links import EmailLinks

log = logging.getLogger(__name__)

# Messages built ahead of the senders, per connection: enough to keep them busy while the
# next block is ranked, few enough that a stopped run leaves few claims to release.
QUEUE_PER_CONNECTION = 16


# -- pacing -------------------------------------------------------------------------------


class RateLimit:
    """At most `per_minute` messages a minute over all connections, evenly spaced (a
    provider that throttles per minute also dislikes bursts). None: no limit."""

    def __init__(
        self,
        per_minute: int | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock = clock
        self.sleep = sleep
        self.waits = 0
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:  # held while sleeping: the next sender queues behind this one
            now = self.clock()
            at = now if self._next is None else max(self._next, now)
            if at > now:
                self.waits += 1
                self.sleep(at - now)
            self._next = at + self.interval


# -- the senders --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    claim_id: int
    outgoing: Outgoing
    copy: tuple[str, str, str] | None = None  # subject, HTML, text: kept for the archive


@dataclass(frozen=True)
class _Result:
    key: str
    outcome: str  # "sent", "maybe" or "failed"
    detail: str = ""


class SenderPool:
    """`connections` threads, each sending queued messages over one connection it reuses
    (reconnecting with backoff on transient failures) and writing each outcome to the
    ledger through its own database connection."""

    def __init__(
        self,
        smtp: SmtpSettings,
        data_dir: Path,
        *,
        connect: Callable[[SmtpSettings], ManagedConnection] = open_connection,
        sleep: Callable[[float], None] = time.sleep,
        limit: RateLimit | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.smtp = smtp
        self.data_dir = data_dir
        self.connect = connect
        self.sleep = sleep
        self.limit = limit or RateLimit(smtp.max_per_minute)
        self.clock = clock
        self.jobs: queue.Queue[_Job | None] = queue.Queue(
            maxsize=QUEUE_PER_CONNECTION * smtp.connections
        )
        self.results: queue.Queue[_Result] = queue.Queue()
        self.broken: SendError | None = None  # a failure no later message can avoid
        self.threads = [
            threading.Thread(target=self._run, name=f"smtp-{i}", daemon=True)
            for i in range(smtp.connections)
        ]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        client: ManagedConnection | None = None
        store: Store | None = None
        try:
            while (job := self.jobs.get()) is not None:
                if store is None:
                    store = Store.open(self.data_dir)
                client = self._send(store, job, client)
        finally:
            if client is not None:
                _quiet_close(client)
            if store is not None:
                store.close()

    def _send(self, store: Store, job: _Job, client: ManagedConnection | None):
        message, failures = job.outgoing, 0

        def before_data() -> None:
            try:  # one transaction: the copy is kept with the attempt
                with store.transaction():
                    if job.copy is not None:
                        keep_copy(store, job.claim_id, *job.copy)
                    ledger_api.record_attempt(store, job.claim_id)
            except sqlite3.Error as exc:
                raise SendError(f"cannot write the attempt to the ledger ({exc}); not "
                                "sending", transient=False) from None

        while True:
            if self.broken is not None:
                return self._settle(store, job, "failed", str(self.broken), client)
            try:
                if client is None:
                    try:
                        client = self.connect(self.smtp)
                    except SendError as exc:
                        if exc.transient and failures < self.smtp.retries:
                            failures += 1
                            self._backoff(exc, failures)
                            continue
                        self.broken = exc  # refused login, or unreachable after retries
                        continue
                self.limit.wait()
                refused = send_message(client.smtp, message, before_data)  # type: ignore[arg-type]
            except MaybeDelivered as exc:
                # Never retried in this run: the next one sends it once more at most.
                _quiet_close(client)
                return self._settle(store, job, "maybe", str(exc), None)
            except Exception as raw:  # every other failure is classified here
                exc = classify(raw, self.smtp)
                if exc.transient:
                    _quiet_close(client)
                    client = None
                    if failures < self.smtp.retries:
                        failures += 1
                        self._backoff(exc, failures)
                        continue
                log.error("not sent (%s): %s", message.key, exc)
                return self._settle(store, job, "failed", str(exc), client)
            except BaseException:
                self.broken = SendError("the run was stopped", transient=True)
                record_quietly(ledger_api.mark_interrupted, store, job.claim_id, "interrupted")
                raise
            if refused:
                log.warning("%s: refused for %s", message.key, ", ".join(sorted(refused)))
            return self._settle(store, job, "sent", "", client)

    def _settle(self, store: Store, job: _Job, outcome: str, detail: str, client):
        if outcome == "sent":
            try:
                ledger_api.mark_sent(store, job.claim_id, self.clock())
            except Exception as exc:
                log.error("%s: the server accepted the digest, but the ledger could not "
                          "record it (%s); it counts as maybe delivered", job.outgoing.key,
                          exc)
        elif outcome == "maybe":
            record_quietly(ledger_api.mark_maybe, store, job.claim_id, detail)
        else:
            record_quietly(ledger_api.mark_failed, store, job.claim_id, detail)
        self.results.put(_Result(job.outgoing.key, outcome, detail))
        return client

    def _backoff(self, exc: SendError, failures: int) -> None:
        delay = min(self.smtp.backoff * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
        log.warning("%s; retry %d of %d in %.3gs", exc, failures, self.smtp.retries, delay)
        self.sleep(delay)


# -- rendering (in a worker process for big runs: CPU work the ranker need not wait for) --


@dataclass(frozen=True)
class _Letter:
    """What a renderer needs to turn a digest into a message."""

    digest: Digest
    subject: str
    templates_dir: str | None
    sender: str
    recipients: tuple[str, ...]
    now: datetime
    message_id: str
    from_name: str | None = None
    links: EmailLinks | None = None


@dataclass(frozen=True)
class _Rendered:
    """The message to send, and the copy kept for "view in browser" and `preview`."""

    data: bytes
    subject: str
    html: str
    text: str


_ENVIRONMENTS: dict[str | None, object] = {}


def render_letter(letter: _Letter) -> _Rendered:
    """The message (mailer.build_message: the one message builder) and its copy."""
    env = _ENVIRONMENTS.get(letter.templates_dir)
    if env is None:
        folder = Path(letter.templates_dir) if letter.templates_dir else None
        env = _ENVIRONMENTS[letter.templates_dir] = make_environment(folder)
    rendered = render_digest(letter.digest, env, letter.subject,  # type: ignore[arg-type]
                             links=letter.links, mailed=True)
    links = letter.links
    html = inline_css(rendered.html)
    message = build_message(rendered, sender=letter.sender, recipients=letter.recipients,
                            profile=letter.digest.profile, now=letter.now,
                            message_id=letter.message_id, from_name=letter.from_name,
                            unsubscribe_url=links.unsubscribe if links is not None else None,
                            inlined_html=html)
    return _Rendered(message_bytes(message), rendered.subject, html, rendered.text)


class _Renderers:
    """Renders letters in order: in this process, or in worker processes so that
    rendering overlaps ranking (results come back in submission order)."""

    def __init__(self, processes: int) -> None:
        self.pool = None
        if processes > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: the sender threads are running, and forking a threaded process is unsafe
            self.pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context(
                "spawn"))
        self.waiting: deque = deque()

    def submit(self, key: str, letter: _Letter) -> None:
        if self.pool is None:
            try:
                self.waiting.append((key, render_letter(letter)))
            except Exception as exc:  # one digest that cannot render costs that one
                self.waiting.append((key, exc))
        else:
            self.waiting.append((key, self.pool.submit(render_letter, letter)))

    def ready(self, wait: bool = False) -> Iterator[tuple[str, _Rendered | Exception]]:
        """(key, the rendered message or the exception) for letters done, in order."""
        while self.waiting:
            key, result = self.waiting[0]
            if self.pool is not None:
                if not (wait or result.done()):
                    return
                try:
                    result = result.result()
                except Exception as exc:  # one digest that cannot render costs that one
                    result = exc
            self.waiting.popleft()
            yield key, result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
