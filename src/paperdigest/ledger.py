"""The delivery ledger: one row per (profile, digest date) that says whether it went out.

This is the small API every sender calls, one message at a time:

    c = claim(store, profile, day, now=..., domain=...)   # or AlreadySentError
    save_items(store, c.id, picks)                        # what the message will show
    record_attempt(store, c.id)                           # just before the DATA payload
    mark_sent(store, c.id, when)                          # the server said 250
    mark_maybe(store, c.id, why)                          # timeout/drop after the payload
    mark_failed(store, c.id, why)                         # certainly not delivered
    mark_empty(store, c.id, why)                          # no picks: nothing to mail
    mark_interrupted(store, c.id, why)                    # stopped at an unknown point

`claim` first calls `take_over_stale` (claims whose process is gone); `c.resend` says an
earlier attempt may be out, so the message must repeat `saved_items(store, c.id)`.
`is_done` says no run should send the day again; `ledger` and `latest` read rows back.
Every mark_* ends the claim in this process.

Statuses: `sending` (claimed), `sent`, `maybe` (maybe delivered), `failed`, `empty`.
A row is reused for every attempt of its day, so every attempt carries the Message-ID
stored when it was first claimed (an HMAC of profile, date and row id under a secret
kept in the `meta` table): mail systems fold the copies. `--force` adds a new row, with
a new Message-ID, on purpose.

How this keeps "one digest a day":

- **kill -9 / a crash.** A claim names its holder: pid, host and the process's start
  stamp (boot id and start tick on Linux). A later run on the same host that finds the
  pid gone, or reused by a process with another start stamp, takes the claim over at
  once, on the same row. A holder on another host is trusted for `claim_ttl`.
  Within one process, a claim whose run has ended (its row is no longer in this
  process's set of live claims) is stale too.
- **A server that answers late.** `record_attempt` is written before the payload goes
  out; a timeout or a dropped connection after it is `maybe`: never retried in the same
  run; the next run sends it once more with the same Message-ID, and after two
  maybe-delivered copies no run sends it again (`maybe_count`).
- **"sent" cannot be written** (disk full, I/O error after the 250). The picks were
  saved before sending and `mark_sent` is one small UPDATE, the first write after the
  server's answer. If even that fails, the row stays `sending` with `in_flight = 1`;
  whoever takes it over counts it as maybe delivered, so at most one more copy goes out,
  with the same Message-ID.
- **An SMTP outage.** A failed row is claimed again by the next try (the daemon retries
  with backoff); nothing marks a paper as shown until the server took the message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from paperdigest.errors import PaperdigestError
from paperdigest.store import Store

SENDING, SENT, MAYBE, FAILED, EMPTY = "sending", "sent", "maybe", "failed", "empty"
# After this many maybe-delivered attempts no run sends the day again.
MAX_MAYBE = 2
# A holder on another host cannot be checked; its claim holds this long.
DEFAULT_TTL = timedelta(minutes=30)
SECRET_KEY = "message_id_secret"


class AlreadySentError(PaperdigestError):
    """Today's digest for this profile went out already, or is going out right now."""


# -- who holds a claim --------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 (state) on; empty where there is no such file."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat.rpartition(")")[2].split() if stat else []


def process_start(pid: int) -> str | None:
    """An opaque stamp that differs between two processes that had the same pid: boot id
    and start tick from /proc; None where /proc is not available."""
    fields = stat_fields(pid)
    if len(fields) <= 19:
        return None
    boot = _read("/proc/sys/kernel/random/boot_id") or "boot"
    return f"{boot}:{fields[19]}"


_FALLBACK_START = datetime.now(UTC).isoformat()  # no /proc: when this module was loaded


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    start: str

    @classmethod
    def current(cls) -> Holder:
        pid = os.getpid()
        known = _CURRENT.get(pid)  # keyed by pid: a forked child is another holder
        if known is None:
            known = _CURRENT[pid] = cls(pid, socket.gethostname(),
                                        process_start(pid) or _FALLBACK_START)
        return known

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}" if self.pid else "an unknown process"


_CURRENT: dict[int, Holder] = {}

# A claim in this process is (database file, row id): one process may use several.
ClaimKey = tuple[str, int]
_live: set[ClaimKey] = set()  # claims this process holds right now
_unrecorded: dict[ClaimKey, datetime] = {}  # accepted by the server, "sent" not written
_live_lock = threading.Lock()


def _key(store: Store, claim_id: int) -> ClaimKey:
    return (os.path.realpath(store.path), claim_id)


def release(store: Store, claim_id: int) -> None:
    """Forget a claim in this process (every mark_* does it)."""
    with _live_lock:
        _live.discard(_key(store, claim_id))


def holder_gone(holder: Holder, claim: ClaimKey, me: Holder | None = None) -> bool | None:
    """True if the holder certainly stopped, False if it runs, None if unknowable (another
    host)."""
    me = me or Holder.current()
    if holder.host != me.host:
        return None
    if holder.pid == me.pid and holder.start == me.start:
        with _live_lock:
            return claim not in _live  # this process: live while its run lasts
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    if stat_fields(holder.pid)[:1] in (["Z"], ["X"]):
        return True  # killed, not yet reaped by its parent
    start = process_start(holder.pid)
    return start is not None and start != holder.start  # the pid was reused


# -- reading the ledger -------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    profile: str
    digest_date: date
    status: str
    created_at: datetime
    sent_at: datetime | None
    message_id: str | None
    error: str | None
    attempts: int = 0  # runs that claimed this row
    data_attempts: int = 0  # of those, how many started sending the message itself
    maybe_count: int = 0  # attempts that may have been delivered
    holder: Holder | None = None


def _entry(row) -> LedgerEntry:
    holder = None
    if row["holder_pid"] is not None:
        holder = Holder(row["holder_pid"], row["holder_host"] or "", row["holder_start"] or "")
    return LedgerEntry(
        id=row["id"],
        profile=row["profile"],
        digest_date=date.fromisoformat(row["digest_date"]),
        status=row["status"],
        created_at=datetime.fromisoformat(row["created_at"]),
        sent_at=datetime.fromisoformat(row["sent_at"]) if row["sent_at"] else None,
        message_id=row["message_id"],
        error=row["error"],
        attempts=row["attempts"],
        data_attempts=row["data_attempts"],
        maybe_count=row["maybe_count"],
        holder=holder,
    )


def ledger(store: Store, profile: str | None = None) -> list[LedgerEntry]:
    """Every row, oldest first."""
    rows = store.conn.execute(
        "SELECT * FROM digests WHERE (? IS NULL OR profile = ?) ORDER BY id",
        (profile, profile),
    ).fetchall()
    return [_entry(row) for row in rows]


def day_entries(store: Store, profile: str, day: date) -> list[LedgerEntry]:
    rows = store.conn.execute(
        "SELECT * FROM digests WHERE profile = ? AND digest_date = ? ORDER BY id",
        (profile, day.isoformat()),
    ).fetchall()
    return [_entry(row) for row in rows]


def was_sent(store: Store, profile: str, day: date) -> bool:
    return any(e.status == SENT for e in day_entries(store, profile, day))


def is_done(store: Store, profile: str, day: date) -> bool:
    """Whether no run should send this day again: sent, or maybe delivered twice."""
    return any(
        e.status == SENT or (e.status == MAYBE and e.maybe_count >= MAX_MAYBE)
        for e in day_entries(store, profile, day)
    )


def latest(store: Store, profile: str) -> LedgerEntry | None:
    """The profile's newest row for its latest digest date (what `status` shows)."""
    row = store.conn.execute(
        "SELECT * FROM digests WHERE profile = ? ORDER BY digest_date DESC, "
        "status = 'sent' DESC, id DESC LIMIT 1",
        (profile,),
    ).fetchone()
    return _entry(row) if row else None


def unconfirmed_note(entry: LedgerEntry) -> str:
    """What `status` says about a maybe-delivered day."""
    then = (
        "the next run sends it once more, same Message-ID"
        if entry.maybe_count < MAX_MAYBE
        else "not sent again"
    )
    return f"{entry.digest_date} MAYBE DELIVERED (the server never confirmed; {then})"


# -- claiming -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    id: int
    profile: str
    day: date
    message_id: str
    resend: bool  # an earlier attempt may have been delivered: repeat its picks
    took_over: Holder | None = None  # the gone holder this claim replaced


def message_id_for(secret: str, profile: str, day: date, row_id: int, domain: str) -> str:
    """The same Message-ID for every attempt at one ledger row; unguessable from outside."""
    mac = hmac.new(secret.encode(), f"{profile}\n{day}\n{row_id}".encode(), hashlib.sha256)
    return f"<paperdigest.{day:%Y%m%d}.{mac.hexdigest()[:20]}@{domain}>"


def _secret(store: Store) -> str:
    secret = store.get_meta(SECRET_KEY)
    if not secret:
        secret = secrets.token_hex(16)
        store.set_meta(SECRET_KEY, secret)
    return secret


def _row_holder(row) -> Holder | None:
    if row["holder_pid"] is None:
        return None
    return Holder(row["holder_pid"], row["holder_host"] or "", row["holder_start"] or "")


def _still_held(store: Store, row, now: datetime, ttl: timedelta, me: Holder) -> bool:
    holder = _row_holder(row)
    if holder is not None:
        gone = holder_gone(holder, _key(store, row["id"]), me)
        if gone is not None:
            return not gone
    # Another host, or a row written before holders were recorded: trust it for a while.
    claimed = datetime.fromisoformat(row["claimed_at"] or row["created_at"])
    return now - claimed < ttl


def take_over_stale(
    store: Store,
    profile: str,
    day: date,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    holder: Holder | None = None,
) -> Holder | None:
    """Release the day's claims whose holder is gone, in a transaction of its own (so a
    refusal that follows never undoes it). A payload that was in flight counts as maybe
    delivered. Returns the last gone holder, if any."""
    me = holder or Holder.current()
    took_over: Holder | None = None
    # Most days have no claim in progress: a plain read spares a write transaction. A
    # claim that appears after this read is a live one, which the claim itself refuses.
    if store.conn.execute(
        "SELECT 1 FROM digests WHERE profile = ? AND digest_date = ? AND status = ? LIMIT 1",
        (profile, day.isoformat(), SENDING),
    ).fetchone() is None:
        return None
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT * FROM digests WHERE profile = ? AND digest_date = ? AND status = ? "
            "ORDER BY id",
            (profile, day.isoformat(), SENDING),
        ).fetchall()
        for row in rows:
            if _still_held(store, row, now, ttl, me):
                continue
            took_over = _row_holder(row) or Holder(0, "", "")
            conn.execute(
                "UPDATE digests SET status = CASE WHEN in_flight OR maybe_count > 0 "
                "THEN 'maybe' ELSE 'failed' END, maybe_count = maybe_count + in_flight, "
                "in_flight = 0, error = ? WHERE id = ?",
                (f"claim taken over: {_row_holder(row) or 'its process'} stopped", row["id"]),
            )
    return took_over


def claim(
    store: Store,
    profile: str,
    day: date,
    *,
    now: datetime,
    domain: str = "paperdigest.invalid",
    force: bool = False,
    ttl: timedelta = DEFAULT_TTL,
    holder: Holder | None = None,
    items: Sequence[tuple[int, float, str]] | None = None,
) -> Claim:
    """Take (profile, day) for this process, or raise AlreadySentError saying why.

    The claim is one BEGIN IMMEDIATE transaction, so of two concurrent runs one wins. A
    claim whose holder is gone is taken over at once (take_over_stale); an attempt that
    may have been delivered is resent (with its Message-ID) only while fewer than
    MAX_MAYBE copies may be out.

    `items`, when the caller knows the picks already, are saved in the same transaction
    (as save_items), unless the claim is a resend, which repeats the picks saved before.
    """
    result = claim_many(store, [(profile, day, items)], now=now, domain=domain, force=force,
                        ttl=ttl, holder=holder)[0]
    if isinstance(result, AlreadySentError):
        raise result
    return result


def claim_many(
    store: Store,
    wanted: Sequence[tuple[str, date, Sequence[tuple[int, float, str]] | None]],
    *,
    now: datetime,
    domain: str = "paperdigest.invalid",
    force: bool = False,
    ttl: timedelta = DEFAULT_TTL,
    holder: Holder | None = None,
) -> list[Claim | AlreadySentError]:
    """`claim` for several (profile, day, items) in one transaction (one disk sync for a
    whole chunk of a batch): each gets its Claim, or the AlreadySentError that says why
    not. Claims taken together are held together: if this process dies, all of them are
    taken over as one."""
    me = holder or Holder.current()
    _write_unrecorded(store)  # committed on its own: a claim below may refuse
    took_over = [take_over_stale(store, profile, day, now=now, ttl=ttl, holder=me)
                 for profile, day, _ in wanted]
    keys: list[ClaimKey] = []
    results: list[Claim | AlreadySentError] = []
    try:
        with store.transaction() as conn:
            for (profile, day, items), gone in zip(wanted, took_over, strict=True):
                try:
                    results.append(_claim_row(conn, store, profile, day, now, domain, force,
                                              me, items, gone, keys))
                except AlreadySentError as exc:
                    results.append(exc)
    except BaseException:
        with _live_lock:
            _live.difference_update(keys)
        raise
    return results


def _claim_row(
    conn: sqlite3.Connection,
    store: Store,
    profile: str,
    day: date,
    now: datetime,
    domain: str,
    force: bool,
    me: Holder,
    items: Sequence[tuple[int, float, str]] | None,
    took_over: Holder | None,
    keys: list[ClaimKey],
) -> Claim:
    """One claim inside claim_many's transaction; raises AlreadySentError before it
    writes anything."""
    rows = conn.execute(
        "SELECT * FROM digests WHERE profile = ? AND digest_date = ? ORDER BY id",
        (profile, day.isoformat()),
    ).fetchall()
    for row in rows:
        if row["status"] == SENDING:
            holder_text = _row_holder(row) or "another paperdigest process"
            raise AlreadySentError(
                f"the {day} digest for {profile!r} is being sent by another paperdigest "
                f"process ({holder_text}, since "
                f"{row['claimed_at'] or row['created_at']}); not sending it twice"
            )
    sent = [row for row in rows if row["status"] == SENT]
    if sent and not force:
        raise AlreadySentError(
            f"the {day} digest for {profile!r} was already sent at {sent[-1]['sent_at']}; "
            "use --force to send it again"
        )
    reuse = rows[-1] if rows and not force and rows[-1]["status"] != SENT else None
    if reuse is not None and reuse["maybe_count"] >= MAX_MAYBE:
        raise AlreadySentError(
            f"the {day} digest for {profile!r} may have been delivered "
            f"{reuse['maybe_count']} times already (the server never confirmed); "
            "not sending another copy; use --force to send it again"
        )
    if reuse is not None:
        conn.execute(
            "UPDATE digests SET status = 'sending', holder_pid = ?, holder_host = ?, "
            "holder_start = ?, claimed_at = ?, attempts = attempts + 1 WHERE id = ?",
            (me.pid, me.host, me.start, _iso(now), reuse["id"]),
        )
        row_id, message_id = reuse["id"], reuse["message_id"]
        resend = reuse["maybe_count"] > 0
    else:
        cursor = conn.execute(
            "INSERT INTO digests(profile, digest_date, status, created_at, claimed_at, "
            "holder_pid, holder_host, holder_start, attempts) "
            "VALUES (?, ?, 'sending', ?, ?, ?, ?, ?, 1)",
            (profile, day.isoformat(), _iso(now), _iso(now), me.pid, me.host, me.start),
        )
        row_id, message_id, resend = int(cursor.lastrowid or 0), None, False
    if not message_id:
        message_id = message_id_for(_secret(store), profile, day, row_id, domain)
        conn.execute("UPDATE digests SET message_id = ? WHERE id = ?", (message_id, row_id))
    if items is not None and not resend:
        _save_items(conn, row_id, items)
    # Live before the commit: a thread of this process claiming next must find it held,
    # not taken for a leftover of an ended run.
    key = _key(store, row_id)
    with _live_lock:
        _live.add(key)
    keys.append(key)
    return Claim(row_id, profile, day, message_id, resend, took_over)


def _write_unrecorded(store: Store) -> None:
    """This process saw the server accept these but could not write it then: now."""
    with _live_lock:
        pending = {key: at for key, at in _unrecorded.items() if key[0] == _key(store, 0)[0]}
    if not pending:
        return
    with store.transaction() as conn:
        for (_, claim_id), sent_at in pending.items():
            conn.execute(
                "UPDATE digests SET status = 'sent', sent_at = ?, in_flight = 0, error = NULL "
                "WHERE id = ? AND status = 'sending'",
                (_iso(sent_at), claim_id),
            )
    with _live_lock:
        for key in pending:
            _unrecorded.pop(key, None)


# -- the digest a claim sends ---------------------------------------------------------------


def save_items(store: Store, claim_id: int, items: Iterable[tuple[int, float, str]]) -> None:
    """Store the picks (paper pk, score, reason) before sending: `mark_sent` then needs
    one small write, and a resend repeats exactly these."""
    with store.transaction() as conn:
        _save_items(conn, claim_id, items)


def _save_items(
    conn: sqlite3.Connection, claim_id: int, items: Iterable[tuple[int, float, str]]
) -> None:
    conn.execute("DELETE FROM digest_items WHERE digest_id = ?", (claim_id,))
    conn.executemany(
        "INSERT INTO digest_items(digest_id, paper_pk, rank, score, reason) "
        "VALUES (?, ?, ?, ?, ?)",
        [(claim_id, pk, rank, score, reason) for rank, (pk, score, reason) in enumerate(items, 1)],
    )


def saved_items(store: Store, claim_id: int) -> list[tuple[int, float, str]]:
    return [
        (pk, score, reason)
        for pk, score, reason in store.conn.execute(
            "SELECT paper_pk, score, reason FROM digest_items WHERE digest_id = ? ORDER BY rank",
            (claim_id,),
        )
    ]


# -- outcomes -------------------------------------------------------------------------------


def record_attempt(store: Store, claim_id: int) -> None:
    """Written just before the message's payload goes out. If this cannot be written,
    do not send: an unrecorded payload is how a day ends up sent twice."""
    store.conn.execute(
        "UPDATE digests SET data_attempts = data_attempts + 1, in_flight = 1 WHERE id = ?",
        (claim_id,),
    )


def mark_sent(store: Store, claim_id: int, sent_at: datetime) -> None:
    """The server accepted the message: the first and only write after its answer. If
    it fails, this process remembers the acceptance and writes it at its next claim; a
    process that never gets there leaves `in_flight`, read later as maybe delivered."""
    try:
        store.conn.execute(
            "UPDATE digests SET status = 'sent', sent_at = ?, in_flight = 0, error = NULL "
            "WHERE id = ?",
            (_iso(sent_at), claim_id),
        )
    except BaseException:
        with _live_lock:
            _unrecorded[_key(store, claim_id)] = sent_at
        raise
    finally:
        release(store, claim_id)


def mark_maybe(store: Store, claim_id: int, error: str) -> None:
    """The whole message went out but no answer came: maybe delivered."""
    try:
        store.conn.execute(
            "UPDATE digests SET status = 'maybe', maybe_count = maybe_count + 1, "
            "in_flight = 0, error = ? WHERE id = ?",
            (error, claim_id),
        )
    finally:
        release(store, claim_id)


def mark_failed(store: Store, claim_id: int, error: str) -> None:
    """Not delivered by this attempt; a row an earlier attempt may have delivered stays
    `maybe`."""
    try:
        store.conn.execute(
            "UPDATE digests SET status = CASE WHEN maybe_count > 0 THEN 'maybe' "
            "ELSE 'failed' END, in_flight = 0, error = ? WHERE id = ?",
            (error, claim_id),
        )
    finally:
        release(store, claim_id)


def mark_empty(store: Store, claim_id: int, why: str) -> None:
    """No picks, so nothing was mailed; a later run may still send the day."""
    try:
        store.conn.execute(
            "UPDATE digests SET status = CASE WHEN maybe_count > 0 THEN 'maybe' "
            "ELSE 'empty' END, in_flight = 0, error = ? WHERE id = ?",
            (why, claim_id),
        )
    finally:
        release(store, claim_id)


def mark_interrupted(store: Store, claim_id: int, error: str) -> None:
    """The run stopped at an unknown point: a payload in flight may have been delivered."""
    try:
        store.conn.execute(
            "UPDATE digests SET status = CASE WHEN in_flight OR maybe_count > 0 "
            "THEN 'maybe' ELSE 'failed' END, maybe_count = maybe_count + in_flight, "
            "in_flight = 0, error = ? WHERE id = ?",
            (error, claim_id),
        )
    finally:
        release(store, claim_id)
