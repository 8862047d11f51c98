"""Sending many digests in one run: `send --all` and the daemon's due groups.

The profiles are ranked a block at a time against candidates gathered once
(`service.select_picks_many`). The main thread claims each profile's day in the ledger,
builds its digest and saves its picks, then hands it to an outbox (outbox.py), which
renders the message and sends it from `smtp.connections` threads over connections they
keep open, optionally no faster than `smtp.max_per_minute`. For big runs the outbox is a
process of its own, so ranking, rendering and sending overlap on two cores.

Exactly once, with the ledger's rules (ledger.py), message by message as
delivery.send_digests keeps them: a claim per profile and day before the message is
built, its stable Message-ID, `record_attempt` just before the payload, `mark_sent` as
soon as the server said 250, `mark_maybe` when no answer came after the payload. The
sender threads write these on their own connections to the database, in whichever process
they run. A stopped run settles what is on the wire, then marks every claim it still
holds: failed, or maybe delivered if its payload had started. One refused recipient
costs that message; a refused login or an unreachable server (after `smtp.retries`) costs
the rest of the run, and each profile says why.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from paperdigest import ledger as ledger_api
from paperdigest.config import ProfileSettings, Settings, SmtpSettings
from paperdigest.delivery import (
    SendReport,
    _sent_items,
    build_for,
    claim_ttl,
    empty_reason,
    is_digest_day,
    local_date,
    record_quietly,
    resting_message,
)
from paperdigest.digest import Digest, assemble_digest, item_for, item_from
from paperdigest.errors import PaperdigestError, RunStopped
from paperdigest.ledger import AlreadySentError
from paperdigest.mailer import (
    ManagedConnection,
    domain_of,
    open_connection,
    sender_address,
)
from paperdigest.outbox import (
    LocalOutbox,
    Order,
    ProcessOutbox,
    RateLimit,
    SenderPool,
    _Letter,
)
from paperdigest.render import make_environment
from paperdigest.service import (
    Reader,
    Selection,
    last_digest_before,
    select_picks_many,
    since_last_digest,
    unmuted_trending,
    window_note,
)
from paperdigest.store import Store
from paperdigest.subscriptions import unsubscribed_profiles, why_skipped
from paperdigest.web.links import links_maker

log = logging.getLogger(__name__)

# Selections taken from the ranker at once, then claimed and built.
CHUNK = 32
# From this many profiles on, messages are rendered and sent by a process of their own.
PROCESS_OUTBOX_MIN = 500


# -- the report ---------------------------------------------------------------------------


@dataclass
class Progress:
    total: int
    done: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class BulkReport(SendReport):
    """SendReport plus how long each stage took, for the summary and the benchmark."""

    seconds: dict[str, float] = field(default_factory=lambda: Counter())

    def summary(self) -> str:
        """One line: sent, skipped and why, failed and why (and digests left empty or
        maybe delivered, when there are any)."""
        parts = [f"sent {len(self.sent):,}"]
        for label, reasons, always in (
            ("skipped", self.skipped, True), ("not a digest day", self.resting, False),
            ("empty", self.empty, False),
            ("maybe delivered", self.maybe, False), ("failed", self.failed, True),
        ):
            if reasons:
                why = Counter(_gist(text) for text in reasons.values()).most_common()
                listed = "; ".join(f"{n:,} {reason}" for reason, n in why)
                parts.append(f"{label} {len(reasons):,} ({listed})")
            elif always:
                parts.append(f"{label} 0")
        return ", ".join(parts)


def _gist(reason: str) -> str:
    """A reason without the profile's name, so equal reasons are counted together."""
    if "was already sent" in reason:
        return "already sent today"
    if "being sent by another" in reason:
        return "being sent by another process"
    if "may have been delivered" in reason:
        return "maybe delivered already"
    return reason


# -- the run --------------------------------------------------------------------------------


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
    outbox_process: bool | None = None,
    stop: threading.Event | None = None,
) -> BulkReport:
    """Build and send today's digest of every profile; see the module docstring.

    ``outbox_process``: render and send in a process of its own (outbox.ProcessOutbox);
    by default for runs of PROCESS_OUTBOX_MIN profiles or more, unless ``connect`` or
    ``limit`` are given (they live in this process). ``stop``: set it to end the run
    early (the daemon's SIGTERM); RunStopped is raised once what was on the wire is
    settled."""
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
    ttl = claim_ttl(settings.smtp)
    by_name = {p.name: p for p in profiles}
    days = {p.name: local_date(p, settings, now) for p in profiles}
    claims: dict[str, int] = {}  # claimed here, not yet handed to the outbox
    pending: dict[str, int] = {}  # handed to the outbox, no outcome back yet
    clock = time.perf_counter
    seconds = report.seconds

    def advance(outcome: str) -> None:
        state.done += 1
        if outcome in ("sent", "skipped", "failed"):
            setattr(state, outcome, getattr(state, outcome) + 1)
        if progress is not None:
            progress(state)

    def collect(block: bool = False, stopping: bool = False) -> None:
        if stop is not None and stop.is_set() and not stopping:
            raise RunStopped("the run was stopped")
        while True:
            try:
                result = outbox.results.get(block=block, timeout=0.1 if block else None)
            except queue.Empty:
                return
            block = False
            claim_id = pending.pop(result.key)
            if result.outcome == "sent":
                report.sent[result.key] = message_ids[result.key]
            elif result.outcome == "maybe":
                report.maybe[result.key] = (
                    f"{result.detail}; it may have been delivered, so the next run sends it "
                    f"once more at most, with the same Message-ID {message_ids[result.key]}"
                )
            else:
                if result.outcome == "unbuilt":  # never reached a sender: nothing written
                    record_quietly(ledger_api.mark_failed, store, claim_id, result.detail)
                report.failed[result.key] = result.detail
            advance("failed" if result.outcome == "unbuilt" else result.outcome)

    # A profile whose day is done is not ranked: a second run of the day is quick.
    fresh = []
    stopped = unsubscribed_profiles(store)
    for profile in profiles:
        if profile.name in stopped:  # even with --force: they asked for no more mail
            report.skipped[profile.name] = why_skipped(profile.name, stopped[profile.name])
            advance("skipped")
        elif not force and not is_digest_day(profile, cfg, days[profile.name]):
            report.resting[profile.name] = resting_message(profile, settings,
                                                           days[profile.name])
            advance("resting")
        elif not force and ledger_api.is_done(store, profile.name, days[profile.name]):
            report.skipped[profile.name] = (
                f"the {days[profile.name]} digest for {profile.name!r} was already sent; "
                "use --force to send it again"
            )
            advance("skipped")
        else:
            fresh.append(profile.name)
    if not fresh:
        return report
    # Each profile's window ends on its own local day and starts at its last digest
    # (service.build_digest); profiles with the same window are ranked together.
    newest = {day: store.newest_listed(day) for day in {days[name] for name in fresh}}
    readers = []
    for name in fresh:
        day = days[name]
        since = since_last_digest(last_digest_before(store, name, day), newest[day])
        readers.append(Reader(name, day, since, settings.min_score(name)))
    shared = _DayCache(store, settings)
    links_for = links_maker(settings, store.path.parent)
    if outbox_process is None:
        outbox_process = (len(fresh) >= PROCESS_OUTBOX_MIN and connect is open_connection
                          and limit is None)
    message_ids: dict[str, str] = {}
    outbox: LocalOutbox | ProcessOutbox = (
        ProcessOutbox(settings.smtp, store.path.parent) if outbox_process
        else LocalOutbox(SenderPool(settings.smtp, store.path.parent, connect=connect,
                                    sleep=sleep, limit=limit))
    )
    try:
        selections = iter(select_picks_many(store, readers, cfg.picks, cfg.window_days))
        while True:
            started = clock()
            chunk = list(itertools.islice(selections, CHUNK))
            seconds["rank"] += clock() - started
            if not chunk:
                break
            started = clock()
            letters = _prepare(store, settings, by_name, days, chunk, shared, force, now,
                               sender, ttl, report, claims)
            seconds["ledger"] += clock() - started
            started = clock()
            for name, letter in letters:
                if letter is None:
                    advance("skipped" if name in report.skipped
                            else "failed" if name in report.failed else "empty")
                    continue
                message_ids[name] = letter.message_id
                order = Order(name, claims[name], _Letter(
                    letter.digest, cfg.subject, templates, sender,
                    tuple(to) or tuple(by_name[name].email), now, letter.message_id,
                    settings.smtp.from_name,
                    links_for(name, days[name]),
                ))
                # The copy is kept by the sender with the attempt; it counts once the
                # ledger row says the message went out.
                outbox.put(order, collect)
                pending[name] = claims.pop(name)
            collect()
            seconds["hand_over"] += clock() - started
        started = clock()
        outbox.close(lambda: collect(block=True))
        collect()
        seconds["send_wait"] += clock() - started
    except BaseException:
        # Stop: what is queued is not sent (the senders mark it failed); a message on the
        # wire finishes and its outcome is read; claims not yet handed over are released,
        # and those handed over with no outcome (never taken, or their sender died) are
        # marked failed, or maybe delivered if the payload had started.
        outbox.halt()
        with contextlib.suppress(Exception):
            outbox.close(lambda: collect(block=True, stopping=True))
            collect(stopping=True)
        for claim_id in claims.values():
            record_quietly(ledger_api.mark_failed, store, claim_id, "run stopped before sending")
        for claim_id in pending.values():
            record_quietly(ledger_api.mark_interrupted, store, claim_id,
                           "run stopped before sending")
        raise
    return report


class _DayCache:
    """What every profile of a local day shares: trending papers and the window's note."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.cfg = settings.digest
        self._trending: dict[date, list] = {}
        self._notes: dict[date, str] = {}

    def trending(self, profile: str, day: date) -> list:
        cfg = self.cfg
        if cfg.trending <= 0:
            return []
        if self.store.rules(profile):  # less what the profile muted
            return unmuted_trending(self.store, profile, cfg.trending, cfg.window_days, day)
        if day not in self._trending:
            self._trending[day] = self.store.trending(cfg.trending, cfg.window_days, day)
        return self._trending[day]

    def note(self, day: date) -> str:
        if day not in self._notes:
            self._notes[day] = window_note(self.store, self.cfg.window_days, day)
        return self._notes[day]


@dataclass(frozen=True)
class _Prepared:
    digest: Digest
    message_id: str


def _prepare(
    store: Store,
    settings: Settings,
    by_name: dict[str, ProfileSettings],
    days: dict[str, date],
    chunk: Sequence[tuple[str, Selection]],
    shared: _DayCache,
    force: bool,
    now: datetime,
    sender: str,
    ttl,
    report: BulkReport,
    claims: dict[str, int],
) -> list[tuple[str, _Prepared | None]]:
    """Claim each profile's day and fix its digest (saved to the ledger before sending),
    as delivery.send_digests does, for a chunk of profiles at once: the claims and the
    batch's picks are written in one transaction. None for a profile with nothing to send
    (the report says why)."""
    ranked = {  # as service.build_digest, from the batch's selection
        name: assemble_digest(
            days[name], name, [item_from(p) for p in selection.picks],
            trending=shared.trending(name, days[name]),
            personalised=selection.personalised,
            followed=[item_for(paper, 0.0, reason) for paper, reason in selection.followed],
            window_note=shared.note(days[name]),
        )
        for name, selection in chunk
    }
    # --force on a day that went out repeats what went out, not a new ranking.
    repeat = {name for name in ranked if force and _sent_items(store, name, days[name])}
    results = ledger_api.claim_many(
        store,
        [(name, days[name],
          None if name in repeat else [(i.pk, i.score, i.reason) for i in digest.shown])
         for name, digest in ranked.items()],
        now=now, domain=domain_of(sender), force=force, ttl=ttl,
    )
    # Held from here: a stopped run releases every claim in `claims` (send_many).
    claims.update((c.profile, c.id) for c in results if not isinstance(c, AlreadySentError))
    prepared: list[tuple[str, _Prepared | None]] = []
    for (name, digest), claimed in zip(ranked.items(), results, strict=True):
        if isinstance(claimed, AlreadySentError):
            report.skipped[name] = str(claimed)
            prepared.append((name, None))
            continue
        day = days[name]
        if claimed.took_over is not None:
            log.warning("%s: took over the %s claim of %s, which is no longer running", name,
                        day, claimed.took_over)
        try:
            if claimed.resend or name in repeat:
                # What may already be out (or went out) is repeated, not re-ranked.
                digest = build_for(store, settings, name, day, claimed.id if claimed.resend
                                   else None)
                if not claimed.resend:
                    ledger_api.save_items(
                        store, claimed.id, [(i.pk, i.score, i.reason) for i in digest.shown]
                    )
            if not digest.shown and not by_name[name].send_empty:
                why = empty_reason(settings)
                ledger_api.mark_empty(store, claimed.id, why)
                del claims[name]
                report.empty[name] = why
                prepared.append((name, None))
                continue
        except Exception as exc:  # this profile's day only: the others go on
            why = f"cannot prepare the digest: {exc}"
            record_quietly(ledger_api.mark_failed, store, claimed.id, why)
            del claims[name]
            report.failed[name] = why
            prepared.append((name, None))
            continue
        prepared.append((name, _Prepared(digest, claimed.message_id)))
    return prepared
