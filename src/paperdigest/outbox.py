"""The outbox of a run: messages rendered, then sent over reused SMTP connections.

`SenderPool` is `smtp.connections` threads, each sending queued messages over one
connection it keeps open (RSET after a refused message), optionally no faster than
`smtp.max_per_minute` (`RateLimit`), and writing each outcome to the ledger through its
own database connection. `render_letter` turns a digest into the message and the copy
kept for "view in browser".
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
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
# Orders queued for the outbox process: more than a ranked block of profiles
# (service.BATCH_PROFILES), so it works through one block while the next is ranked.
ORDERS_AHEAD = 640


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
        results: queue.Queue[_Result] | None = None,
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
        self.results: queue.Queue[_Result] = results if results is not None else queue.Queue()
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


# -- the outboxes: what send_many hands each claimed digest to ----------------------------


@dataclass(frozen=True)
class Order:
    """A claimed digest to render and send."""

    key: str
    claim_id: int
    letter: _Letter


def _put(target, item, wait: Callable[[], None]) -> None:
    """Put on a bounded queue, calling `wait` (collect results, check on a worker) while
    it is full."""
    while True:
        try:
            target.put(item, timeout=0.05)
            return
        except queue.Full:
            wait()


def _job(order: Order, rendered: _Rendered) -> _Job:
    letter = order.letter
    return _Job(order.claim_id, Outgoing(order.key, letter.sender, letter.recipients,
                                         rendered.data),
                (rendered.subject, rendered.html, rendered.text))


class LocalOutbox:
    """Renders in the calling thread and sends from a SenderPool in this process: for
    small runs, wherever `connect` or `limit` are given (tests), and inside the outbox
    process."""

    def __init__(self, pool: SenderPool) -> None:
        self.pool = pool
        self.results = pool.results

    def put(self, order: Order, wait: Callable[[], None]) -> None:
        try:
            rendered = render_letter(order.letter)
        except Exception as exc:  # one digest that cannot render costs that one
            self.results.put(_Result(order.key, "unbuilt", f"cannot build the message: {exc}"))
            return
        _put(self.pool.jobs, _job(order, rendered), wait)

    def halt(self) -> None:
        """Stop: what is queued is not sent (marked failed); a message on the wire
        finishes."""
        self.pool.broken = SendError("the run was stopped", transient=True)

    def close(self, wait: Callable[[], None]) -> None:
        """Everything put is sent (or settled) when this returns; `wait` is called
        meanwhile (collect results, see whether to stop)."""
        for _ in self.pool.threads:
            _put(self.pool.jobs, None, wait)
        while any(thread.is_alive() for thread in self.pool.threads):
            wait()
        for thread in self.pool.threads:
            thread.join()

    @property
    def running(self) -> bool:
        return False


class ProcessOutbox:
    """A process of its own that renders each order and sends it (a LocalOutbox in it),
    so that rendering and sending overlap ranking on another core and only a small
    result per message comes back.

    Exactly once: the orders are claimed before they are put here, and the process writes
    each message's attempt and outcome to the ledger itself, as the sender threads do.
    It dies with the process that started it (a killed run leaves no sender behind to
    race the next run: PR_SET_PDEATHSIG on Linux, else a watch on the parent), and it
    ignores Ctrl-C and SIGTERM: the run it belongs to decides when to stop (halt), so the
    message on the wire finishes. Orders still queued when it stops never went out: the
    run marks them (ledger.mark_interrupted)."""

    def __init__(self, smtp: SmtpSettings, data_dir: Path) -> None:
        import multiprocessing
        from logging.handlers import QueueListener

        context = multiprocessing.get_context("spawn")  # never fork a threaded process
        self.orders = context.Queue(maxsize=ORDERS_AHEAD)
        self.results = context.Queue()
        self.logs = context.Queue()
        self.stop = _Flag(context)
        self.process = context.Process(
            target=_outbox_process,
            args=(smtp, str(data_dir), self.orders, self.results, self.logs, self.stop,
                  os.getpid()),
            name="paperdigest-outbox",
            daemon=True,
        )
        self.process.start()
        self.relay: QueueListener | None = QueueListener(self.logs, _ToLoggers())
        self.relay.start()

    def put(self, order: Order, wait: Callable[[], None]) -> None:
        def waiting() -> None:
            self.check()
            wait()

        _put(self.orders, order, waiting)

    def check(self, finished: bool = False) -> None:
        """OutboxDied if the process ended without being asked to (`finished`: it was
        told there are no more orders, so only a failing exit counts)."""
        if self.stop.is_set() or self.process.is_alive():
            return
        if not finished or self.process.exitcode != 0:
            raise OutboxDied(
                f"the delivery process stopped unexpectedly (exit code {self.process.exitcode})"
            )

    def halt(self) -> None:
        self.stop.set()
        self.orders.cancel_join_thread()  # orders it will never read must not keep us
        with contextlib.suppress(queue.Full):
            self.orders.put_nowait(None)

    def close(self, wait: Callable[[], None]) -> None:
        """No more orders; returns once the process has sent (or settled) every one.
        `wait` collects results meanwhile: the process cannot end before they are read."""
        if not self.stop.is_set():
            _put(self.orders, None, lambda: (self.check(), wait()))
        while self.running:
            wait()
        self.process.join()
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        self.check(finished=True)

    @property
    def running(self) -> bool:
        return self.process.is_alive()


class _Flag:
    """The outbox's stop flag, shared with its process. Not a multiprocessing.Event:
    setting one waits until its waiters have woken, and those of a killed process never
    do. Waiting polls, 20 times a second."""

    def __init__(self, context) -> None:
        self._value = context.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return False
            time.sleep(left)
        return True


class OutboxDied(SendError):
    """The outbox process ended without being asked to (killed, out of memory): the run
    stops, and the digests it held are marked failed, or maybe delivered if their
    payload had started."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class _ToLoggers(logging.Handler):
    """The delivery process's log records, handed to this process's loggers."""

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
        return True


def _die_with(parent: int) -> None:
    """End this process when `parent` ends, however it ends."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the line above took effect
        os._exit(1)

    def watch() -> None:  # elsewhere, and a second guard on Linux
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _outbox_process(smtp, data_dir, orders, results, logs, stop, parent) -> None:
    from logging.handlers import QueueHandler

    _die_with(parent)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # Each SMTP round trip needs the GIL back from the rendering thread: wait 0.5 ms for
    # it, not the default 5 (the senders would spend most of a message waiting).
    sys.setswitchinterval(0.0005)
    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(logs)]
    root.setLevel(logging.INFO)

    def pause(seconds: float) -> None:  # backoff and pacing end early on a halt
        stop.wait(seconds)

    outbox = LocalOutbox(SenderPool(smtp, Path(data_dir), sleep=pause, results=results,
                                    limit=RateLimit(smtp.max_per_minute, sleep=pause)))

    def halt_on_stop() -> None:
        stop.wait()
        outbox.halt()

    threading.Thread(target=halt_on_stop, name="halt", daemon=True).start()
    while not stop.is_set() and (order := orders.get()) is not None:
        if not stop.is_set():
            outbox.put(order, lambda: None)
    outbox.close(lambda: None)
