"""Sending many digests in one run: `send --all` and the daemon's due groups.

The profiles are ranked a block at a time against candidates gathered once
(`service.select_picks_many`); while the main thread claims, renders and builds the next
messages, `smtp.connections` sender threads push the finished ones over connections they
keep open, optionally no faster than `smtp.max_per_minute`. Only the main thread touches
the database: senders hand back what the server said, and the main thread writes it to
the ledger as soon as it arrives, so a killed run leaves at most the messages in flight
claimed but unconfirmed.

Exactly once, as for one profile (delivery.py): a claim per profile and day before the
message is built, 'sent' only once the server accepted it. One refused recipient costs
that message; a refused login or an unreachable server (after `smtp.retries`) costs the
rest of the run, and each profile says why.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from paperdigest.config import ProfileSettings, Settings, SmtpSettings
from paperdigest.delivery import (
    SendReport,
    _sent_items,
    build_for,
    claim_ttl,
    local_date,
    mark_failed,
)
from paperdigest.digest import Digest, assemble_digest, item_from
from paperdigest.errors import PaperdigestError
from paperdigest.mailer import (
    MAX_BACKOFF_SECONDS,
    ManagedConnection,
    Outgoing,
    SendError,
    _quiet_close,
    build_message,
    classify,
    message_bytes,
    open_connection,
    sender_address,
)
from paperdigest.render import make_environment, render_digest
from paperdigest.service import select_picks_many
from paperdigest.store import Store

log = logging.getLogger(__name__)

# Messages built ahead of the senders, per connection: enough to keep them busy while the
# next block is ranked, few enough that a killed run leaves few claims unconfirmed.
QUEUE_PER_CONNECTION = 16
# Profiles claimed in one transaction (one disk sync instead of 32).
CLAIM_BLOCK = 32
# From this many profiles on, messages are rendered in worker processes.
PROCESS_RENDER_MIN = 500


# -- the ledger, as this module uses it ---------------------------------------------------


class Ledger:
    """The exactly-once ledger behind a small interface (claim, sent, failed), so the bulk
    sender does not depend on how delivery.py keeps it."""

    def __init__(self, store: Store, smtp: SmtpSettings) -> None:
        self.store = store
        self.ttl = claim_ttl(smtp)

    def sent_today(self, days: dict[str, date]) -> set[str]:
        """Which of the profiles already have their day's digest sent (a fast pre-check;
        the claim is what decides)."""
        wanted = {(name, day.isoformat()) for name, day in days.items()}
        dates = sorted({day for _, day in wanted})
        found: set[str] = set()
        for day in dates:
            for (name,) in self.store.conn.execute(
                "SELECT DISTINCT profile FROM digests WHERE digest_date = ? AND status = 'sent'",
                (day,),
            ):
                if (name, day) in wanted:
                    found.add(name)
        return found

    def claim_many(
        self, wanted: Sequence[tuple[str, date]], now: datetime, force: bool
    ) -> dict[str, int | str]:
        """Claim each (profile, day) in one transaction: its claim id, or why not.

        The rules are delivery.claim's, applied to several profiles at once.
        """
        out: dict[str, int | str] = {}
        with self.store.transaction() as conn:
            for profile, day in wanted:
                out[profile] = self._claim_in(conn, profile, day, now, force)
        return out

    def _claim_in(self, conn, profile: str, day: date, now: datetime, force: bool) -> int | str:
        rows = conn.execute(
            "SELECT id, status, created_at, sent_at FROM digests "
            "WHERE profile = ? AND digest_date = ? AND status IN ('sent', 'sending') "
            "ORDER BY id",
            (profile, day.isoformat()),
        ).fetchall()
        for row in rows:
            if row["status"] != "sending":
                continue
            claimed = datetime.fromisoformat(row["created_at"])
            if now - claimed < self.ttl:
                return (f"the {day} digest for {profile!r} is being sent by another "
                        f"paperdigest process (since {claimed.isoformat()}); not sending it "
                        "twice")
            conn.execute(  # a crashed process left this claim behind: release it
                "UPDATE digests SET status = 'failed', error = ? WHERE id = ?",
                ("claim expired: the sending process stopped", row["id"]),
            )
        sent = [row for row in rows if row["status"] == "sent"]
        if sent and not force:
            return (f"the {day} digest for {profile!r} was already sent at "
                    f"{sent[-1]['sent_at']}; use --force to send it again")
        cursor = conn.execute(
            "INSERT INTO digests(profile, digest_date, status, created_at) "
            "VALUES (?, ?, 'sending', ?)",
            (profile, day.isoformat(), now.astimezone(UTC).isoformat(timespec="seconds")),
        )
        return int(cursor.lastrowid or 0)

    def settle(self, outcomes: Sequence[tuple[_Pending, _Result]]) -> None:
        """Record what the server said about several messages, in one transaction: as
        delivery.mark_sent / mark_failed do one at a time."""
        with self.store.transaction() as conn:
            for job, result in outcomes:
                if result.accepted_at is None:
                    conn.execute("UPDATE digests SET status = 'failed', error = ? WHERE id = ?",
                                 (str(result.error), job.claim_id))
                    continue
                conn.executemany(
                    "INSERT INTO digest_items(digest_id, paper_pk, rank, score, reason) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(job.claim_id, item.pk, rank, item.score, item.reason)
                     for rank, item in enumerate(job.digest.items, 1)],
                )
                conn.execute(
                    "UPDATE digests SET status = 'sent', sent_at = ?, message_id = ?, "
                    "error = NULL WHERE id = ?",
                    (result.accepted_at.astimezone(UTC).isoformat(timespec="seconds"),
                     job.message_id, job.claim_id),
                )

    def failed(self, claim_id: int, error: str) -> None:
        mark_failed(self.store, claim_id, error)


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
        self._next = None
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
class _Result:
    key: str
    accepted_at: datetime | None
    error: SendError | None


class SenderPool:
    """`connections` threads, each sending queued messages over one connection it reuses
    (reconnecting with backoff on transient failures)."""

    def __init__(
        self,
        smtp: SmtpSettings,
        *,
        connect: Callable[[SmtpSettings], ManagedConnection] = open_connection,
        sleep: Callable[[float], None] = time.sleep,
        limit: RateLimit | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.smtp = smtp
        self.connect = connect
        self.sleep = sleep
        self.limit = limit or RateLimit(smtp.max_per_minute)
        self.clock = clock
        self.jobs: queue.Queue[Outgoing | None] = queue.Queue(
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

    def submit(self, message: Outgoing) -> None:
        self.jobs.put(message)

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()

    def _run(self) -> None:
        client: ManagedConnection | None = None
        try:
            while (message := self.jobs.get()) is not None:
                client = self._send(message, client)
        finally:
            if client is not None:
                _quiet_close(client)

    def _send(self, message: Outgoing, client: ManagedConnection | None):
        failures = 0
        while True:
            if self.broken is not None:
                self.results.put(_Result(message.key, None, self.broken))
                return client
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
                refused = client.smtp.sendmail(
                    message.sender, list(message.recipients), message.data
                )
            except Exception as raw:  # every failure is classified here
                exc = classify(raw, self.smtp)
                if exc.transient:
                    _quiet_close(client)
                    client = None
                    if failures < self.smtp.retries:
                        failures += 1
                        self._backoff(exc, failures)
                        continue
                else:
                    _reset(client)
                log.error("not sent (%s): %s", message.key, exc)
                self.results.put(_Result(message.key, None, exc))
                return client
            except BaseException:
                self.broken = SendError("the run was stopped", transient=True)
                raise
            if refused:
                log.warning("%s: refused for %s", message.key, ", ".join(sorted(refused)))
            self.results.put(_Result(message.key, self.clock(), None))
            return client

    def _backoff(self, exc: SendError, failures: int) -> None:
        delay = min(self.smtp.backoff * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
        log.warning("%s; retry %d of %d in %.3gs", exc, failures, self.smtp.retries, delay)
        self.sleep(delay)


def _reset(client: ManagedConnection | None) -> None:
    """RSET after a refused message, so the next one starts a clean transaction."""
    if client is None:
        return
    # A dead connection is found by the next send.
    with contextlib.suppress(Exception):
        client.smtp.rset()  # type: ignore[attr-defined]


# -- the run --------------------------------------------------------------------------------


@dataclass
class Progress:
    total: int
    done: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class _Pending:
    claim_id: int
    digest: Digest
    message_id: str = ""


@dataclass
class BulkReport(SendReport):
    """SendReport plus how long each stage took, for the summary and the benchmark."""

    seconds: dict[str, float] = field(default_factory=lambda: Counter())

    def summary(self) -> str:
        """One line: sent, skipped and why, failed and why."""
        parts = [f"sent {len(self.sent):,}"]
        for label, reasons in (("skipped", self.skipped), ("failed", self.failed)):
            if reasons:
                why = Counter(_gist(text) for text in reasons.values()).most_common()
                listed = "; ".join(f"{n:,} {reason}" for reason, n in why)
                parts.append(f"{label} {len(reasons):,} ({listed})")
            else:
                parts.append(f"{label} 0")
        return ", ".join(parts)


def _gist(reason: str) -> str:
    """A reason without the profile's name, so equal reasons are counted together."""
    if "was already sent" in reason:
        return "already sent today"
    if "being sent by another" in reason:
        return "being sent by another process"
    return reason


# -- rendering (in worker processes for big runs: it is CPU work the ranker need not wait for)


@dataclass(frozen=True)
class _Letter:
    """What a renderer needs to turn a digest into a message."""

    digest: Digest
    subject: str
    templates_dir: str | None
    sender: str
    recipients: tuple[str, ...]
    now: datetime


_ENVIRONMENTS: dict[str | None, object] = {}


def render_letter(letter: _Letter) -> tuple[bytes, str]:
    """The message's bytes and Message-ID (mailer.build_message: the one message builder)."""
    from pathlib import Path

    env = _ENVIRONMENTS.get(letter.templates_dir)
    if env is None:
        folder = Path(letter.templates_dir) if letter.templates_dir else None
        env = _ENVIRONMENTS[letter.templates_dir] = make_environment(folder)
    rendered = render_digest(letter.digest, env, letter.subject)  # type: ignore[arg-type]
    message = build_message(rendered, sender=letter.sender, recipients=letter.recipients,
                            profile=letter.digest.profile, now=letter.now)
    return message_bytes(message), str(message["Message-ID"])


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
            self.waiting.append((key, render_letter(letter)))
        else:
            self.waiting.append((key, self.pool.submit(render_letter, letter)))

    def ready(self, wait: bool = False):
        """(key, (bytes, message id) or the exception) for letters done, in order."""
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


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def send_many(
    store: Store,
    settings: Settings,
    profiles: Sequence[ProfileSettings],
    *,
    now: datetime | None = None,
    to: Sequence[str] = (),
    force: bool = False,
    connect: Callable[[SmtpSettings], ManagedConnection] = open_connection,
    sleep: Callable[[float], None] = time.sleep,
    limit: RateLimit | None = None,
    progress: Callable[[Progress], None] | None = None,
    render_processes: int | None = None,
) -> BulkReport:
    """Build and send today's digest of every profile; see the module docstring.

    ``render_processes``: worker processes that render (default: one per spare core for
    runs of PROCESS_RENDER_MIN profiles or more, else none)."""
    now = now or datetime.now(UTC)
    report = BulkReport()
    state = Progress(total=len(profiles))
    cfg = settings.digest
    for profile in profiles:
        if not (to or profile.email):
            raise PaperdigestError(
                f"profile {profile.name!r} has no email address; set email in its "
                "[[profiles]] entry or pass --to"
            )
    sender = sender_address(settings.smtp)
    make_environment(cfg.templates_dir)  # a bad templates_dir fails here, once
    templates = str(cfg.templates_dir) if cfg.templates_dir else None
    ledger = Ledger(store, settings.smtp)
    by_name = {p.name: p for p in profiles}
    days = {p.name: local_date(p, settings, now) for p in profiles}
    already = ledger.sent_today(days)
    pending: dict[str, _Pending] = {}
    clock = time.perf_counter
    seconds = report.seconds

    def advance() -> None:
        state.done += 1
        if progress is not None:
            progress(state)

    def drain(block: bool = False) -> None:
        """Record what the senders report, in one transaction for all that is ready."""
        results: list[_Result] = []
        while pending and len(results) < len(pending):
            try:
                results.append(pool.results.get(block=block and not results))
            except queue.Empty:
                break
        if not results:
            return
        started = clock()
        ledger.settle([(pending[r.key], r) for r in results])
        seconds["ledger"] += clock() - started
        for result in results:
            job = pending.pop(result.key)
            if result.accepted_at is not None:
                report.sent[result.key] = job.message_id
                state.sent += 1
            else:
                report.failed[result.key] = str(result.error)
                state.failed += 1
            advance()

    def hand_over(wait: bool = False) -> None:
        """Rendered messages to the senders, in order."""
        for name, result in renderers.ready(wait):
            job = pending[name]
            if isinstance(result, BaseException):
                pending.pop(name)
                ledger.failed(job.claim_id, f"cannot build the message: {result}")
                report.failed[name] = f"cannot build the message: {result}"
                state.failed += 1
                advance()
                continue
            data, job.message_id = result
            recipients = tuple(to) or tuple(by_name[name].email)
            outgoing = Outgoing(name, sender, recipients, data)
            while True:  # settle what came back while the queue is full
                try:
                    pool.jobs.put(outgoing, timeout=0.05)
                    break
                except queue.Full:
                    drain()
            drain()

    # Profiles already sent today are not ranked: a second run of the day is quick.
    fresh = [p.name for p in profiles if force or p.name not in already]
    for name in (p.name for p in profiles if not force and p.name in already):
        report.skipped[name] = (
            f"the {days[name]} digest for {name!r} was already sent; use --force to send it "
            "again"
        )
        state.skipped += 1
        advance()
    if not fresh:
        return report
    trending = store.trending(cfg.trending, cfg.window_days) if cfg.trending > 0 else []
    if render_processes is None:
        spare = max(1, (os.cpu_count() or 1) - 1)
        render_processes = spare if len(fresh) >= PROCESS_RENDER_MIN else 0
    renderers = _Renderers(render_processes)
    pool = SenderPool(settings.smtp, connect=connect, sleep=sleep, limit=limit)
    try:
        selections = iter(select_picks_many(store, fresh, cfg.picks, cfg.window_days))
        while True:
            started = clock()
            chunk = list(itertools.islice(selections, CLAIM_BLOCK))
            seconds["rank"] += clock() - started
            if not chunk:
                break
            started = clock()
            claims = ledger.claim_many([(name, days[name]) for name, _ in chunk], now, force)
            seconds["ledger"] += clock() - started
            for name, selection in chunk:
                claim_id = claims[name]
                if isinstance(claim_id, str):
                    report.skipped[name] = claim_id
                    state.skipped += 1
                    advance()
                    continue
                started = clock()
                digest = _digest(store, settings, name, days[name], selection, trending, force)
                pending[name] = _Pending(claim_id, digest)
                renderers.submit(name, _Letter(digest, cfg.subject, templates, sender,
                                               tuple(to) or tuple(by_name[name].email), now))
                seconds["render"] += clock() - started
            hand_over()
        started = clock()
        hand_over(wait=True)
        while pending:
            drain(block=True)
        seconds["send_wait"] += clock() - started
    except BaseException:
        # Stop: what is queued is not sent; what the server already took is recorded as
        # sent, the rest released (a killed process's claims expire instead).
        pool.broken = SendError("the run was stopped", transient=True)
        pool.close()
        renderers.close()
        drain()
        for job in pending.values():
            ledger.failed(job.claim_id, "interrupted before the server answered")
        raise
    pool.close()
    renderers.close()
    return report


def _digest(
    store: Store,
    settings: Settings,
    name: str,
    day: date,
    selection,
    trending: list,
    force: bool,
) -> Digest:
    """The day's digest from the batch's picks; a forced resend repeats what went out."""
    if force and _sent_items(store, name, day):
        return build_for(store, settings, name, day)
    return assemble_digest(
        day,
        name,
        [item_from(pick) for pick in selection.picks],
        trending=trending,
        personalised=selection.personalised,
    )
