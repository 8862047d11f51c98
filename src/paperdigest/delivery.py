"""Delivering digests exactly once: the ledger and the send use case.

The ledger is the `digests` table: one row per attempt at a (profile, digest date), with
status 'sending' (claimed), 'sent' or 'failed'. A run claims its rows inside BEGIN
IMMEDIATE before connecting, so of two concurrent runs only one finds the day unclaimed.
Digest items are written, and the status becomes 'sent', in the same transaction and only
after the SMTP server accepted the message: a failed send marks no paper as shown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from paperdigest.config import (
    WEEKDAYS,
    DigestSettings,
    ProfileSettings,
    Settings,
    SmtpSettings,
)
from paperdigest.digest import Digest, assemble_digest, is_followed_reason, item_for
from paperdigest.errors import PaperdigestError
from paperdigest.mailer import (
    MAX_BACKOFF_SECONDS,
    ManagedConnection,
    Outgoing,
    SendError,
    build_message,
    deliver,
    message_bytes,
    open_connection,
    sender_address,
)
from paperdigest.render import make_environment, render_digest
from paperdigest.service import build_digest, unmuted_trending
from paperdigest.store import Store, check_profile_name

log = logging.getLogger(__name__)

OUTBOX = "outbox"


class AlreadySentError(PaperdigestError):
    """Today's digest for this profile went out already, or is going out right now."""


class DeliveryError(PaperdigestError):
    """At least one digest of a run was not delivered."""


def profile_zone(profile: ProfileSettings, settings: Settings) -> ZoneInfo:
    return ZoneInfo(profile.timezone or settings.digest.timezone)


def local_date(profile: ProfileSettings, settings: Settings, now: datetime) -> date:
    """The digest date: the calendar day where the profile lives."""
    return now.astimezone(profile_zone(profile, settings)).date()


def digest_days(profile: ProfileSettings, digest: DigestSettings) -> list[str]:
    return profile.days or digest.days


def is_digest_day(profile: ProfileSettings, digest: DigestSettings, day: date) -> bool:
    return WEEKDAYS[day.weekday()] in digest_days(profile, digest)


def next_digest_day(profile: ProfileSettings, digest: DigestSettings, day: date) -> date:
    """The first digest day after `day` (a week later at most: days is never empty)."""
    for offset in range(1, 8):
        if is_digest_day(profile, digest, day + timedelta(days=offset)):
            return day + timedelta(days=offset)
    return day + timedelta(days=7)  # pragma: no cover - days is never empty


def resting_message(profile: ProfileSettings, settings: Settings, day: date) -> str:
    """Why nothing goes out today, and when the next digest does."""
    nxt = next_digest_day(profile, settings.digest, day)
    at = (profile.send_time or settings.digest.send_time).strftime("%H:%M")
    zone = profile.timezone or settings.digest.timezone
    return (
        f"no digest today ({day:%a} {day}): its days are "
        f"{', '.join(digest_days(profile, settings.digest))}; the next one goes out on "
        f"{nxt:%a} {nxt} at {at} {zone}"
    )


def claim_ttl(smtp: SmtpSettings) -> timedelta:
    """How long a 'sending' claim holds: longer than the slowest run retrying can take,
    so only a crashed process's claim ever expires."""
    waits = sum(min(smtp.backoff * 2**n, MAX_BACKOFF_SECONDS) for n in range(smtp.retries))
    # Each attempt may wait `timeout` on connect, greeting, login and data.
    return timedelta(minutes=10, seconds=waits + (smtp.retries + 1) * 4 * smtp.timeout)


# -- the ledger -------------------------------------------------------------------------


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


def ledger(store: Store, profile: str | None = None) -> list[LedgerEntry]:
    """Every attempt, oldest first."""
    rows = store.conn.execute(
        "SELECT * FROM digests WHERE (? IS NULL OR profile = ?) ORDER BY id",
        (profile, profile),
    ).fetchall()
    return [
        LedgerEntry(
            id=row["id"],
            profile=row["profile"],
            digest_date=date.fromisoformat(row["digest_date"]),
            status=row["status"],
            created_at=datetime.fromisoformat(row["created_at"]),
            sent_at=datetime.fromisoformat(row["sent_at"]) if row["sent_at"] else None,
            message_id=row["message_id"],
            error=row["error"],
        )
        for row in rows
    ]


def was_sent(store: Store, profile: str, day: date) -> bool:
    row = store.conn.execute(
        "SELECT 1 FROM digests WHERE profile = ? AND digest_date = ? AND status = 'sent'",
        (profile, day.isoformat()),
    ).fetchone()
    return row is not None


def claim(
    store: Store, profile: str, day: date, *, now: datetime, ttl: timedelta, force: bool
) -> int:
    """Take (profile, day) for this process or raise AlreadySentError. Returns the row id."""
    with store.transaction() as conn:
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
            if now - claimed < ttl:
                raise AlreadySentError(
                    f"the {day} digest for {profile!r} is being sent by another paperdigest "
                    f"process (since {_iso(claimed)}); not sending it twice"
                )
            # A crashed process left this claim behind: release it.
            conn.execute(
                "UPDATE digests SET status = 'failed', error = ? WHERE id = ?",
                ("claim expired: the sending process stopped", row["id"]),
            )
        sent = [row for row in rows if row["status"] == "sent"]
        if sent and not force:
            raise AlreadySentError(
                f"the {day} digest for {profile!r} was already sent at {sent[-1]['sent_at']}; "
                "use --force to send it again"
            )
        cursor = conn.execute(
            "INSERT INTO digests(profile, digest_date, status, created_at) "
            "VALUES (?, ?, 'sending', ?)",
            (profile, day.isoformat(), _iso(now)),
        )
        return int(cursor.lastrowid or 0)


def mark_sent(
    store: Store, digest_id: int, digest: Digest, sent_at: datetime, message_id: str
) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO digest_items(digest_id, paper_pk, rank, score, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (digest_id, item.pk, rank, item.score, item.reason)
                for rank, item in enumerate(digest.shown, 1)
            ],
        )
        conn.execute(
            "UPDATE digests SET status = 'sent', sent_at = ?, message_id = ?, error = NULL "
            "WHERE id = ?",
            (_iso(sent_at), message_id, digest_id),
        )


def mark_failed(store: Store, digest_id: int, error: str) -> None:
    store.conn.execute(
        "UPDATE digests SET status = 'failed', error = ? WHERE id = ?", (error, digest_id)
    )


# -- building the day's digest ----------------------------------------------------------


def build_for(store: Store, settings: Settings, profile: str, day: date) -> Digest:
    """A resend of a day that went out repeats its picks; otherwise the ranker picks."""
    previous = _sent_items(store, profile, day)
    cfg = settings.digest
    if not previous:
        return build_digest(
            store, profile, day, cfg.picks, cfg.window_days, cfg.trending,
            min_score=settings.min_score(profile),
        )
    papers = {paper.pk: paper for paper in store.papers([pk for pk, _, _ in previous])}
    # A paper forgotten since is simply left out of the repeat.
    items = [
        item_for(papers[pk], score, reason) for pk, score, reason in previous if pk in papers
    ]
    return assemble_digest(
        day,
        profile,
        [item for item in items if not is_followed_reason(item.reason)],
        trending=unmuted_trending(store, profile, cfg.trending, cfg.window_days),
        personalised=any(
            reason != "new" and not is_followed_reason(reason) for _, _, reason in previous
        ),
        followed=[item for item in items if is_followed_reason(item.reason)],
    )



def _sent_items(store: Store, profile: str, day: date) -> list[tuple[int, float, str]]:
    row = store.conn.execute(
        "SELECT id FROM digests WHERE profile = ? AND digest_date = ? AND status = 'sent' "
        "ORDER BY id LIMIT 1",
        (profile, day.isoformat()),
    ).fetchone()
    if row is None:
        return []
    return [
        (pk, score, reason)
        for pk, score, reason in store.conn.execute(
            "SELECT paper_pk, score, reason FROM digest_items WHERE digest_id = ? ORDER BY rank",
            (row["id"],),
        )
    ]


# -- the send use case ------------------------------------------------------------------


@dataclass
class SendReport:
    sent: dict[str, str] = field(default_factory=dict)  # profile -> message id
    skipped: dict[str, str] = field(default_factory=dict)  # profile -> why
    failed: dict[str, str] = field(default_factory=dict)  # profile -> error
    written: dict[str, Path] = field(default_factory=dict)  # dry run: profile -> .eml
    # Not one of the profile's digest days: nothing to do, and not a failure.
    resting: dict[str, str] = field(default_factory=dict)  # profile -> when the next one is


@dataclass
class _Job:
    profile: ProfileSettings
    day: date
    digest_id: int | None
    digest: Digest
    outgoing: Outgoing
    message_id: str


def send_digests(
    store: Store,
    settings: Settings,
    profiles: Sequence[ProfileSettings],
    *,
    now: datetime | None = None,
    to: Sequence[str] = (),
    force: bool = False,
    dry_run: bool = False,
    outbox: Path | None = None,
    connect: Callable[[SmtpSettings], ManagedConnection] = open_connection,
    sleep: Callable[[float], None] = time.sleep,
) -> SendReport:
    """Build and send today's digest of each profile over one SMTP connection."""
    now = now or datetime.now(UTC)
    report = SendReport()
    env = make_environment(settings.digest.templates_dir)
    if dry_run and not (settings.smtp.sender or settings.smtp.username):
        sender = "paperdigest@localhost"  # a dry run needs no mail settings
    else:
        sender = sender_address(settings.smtp)
    jobs: list[_Job] = []
    try:
        for profile in profiles:
            recipients = tuple(to) or tuple(profile.email)
            if not recipients:
                raise PaperdigestError(
                    f"profile {profile.name!r} has no email address; set email in its "
                    "[[profiles]] entry or pass --to"
                )
            day = local_date(profile, settings, now)
            if not force and not is_digest_day(profile, settings.digest, day):
                report.resting[profile.name] = resting_message(profile, settings, day)
                continue
            digest_id = None
            if not dry_run:
                try:
                    digest_id = claim(
                        store, profile.name, day, now=now, ttl=claim_ttl(settings.smtp),
                        force=force,
                    )
                except AlreadySentError as exc:
                    report.skipped[profile.name] = str(exc)
                    continue
            try:
                jobs.append(_job(store, settings, env, profile, day, digest_id, sender,
                                 recipients, now))
            except BaseException:
                if digest_id is not None:
                    mark_failed(store, digest_id, "run stopped before sending")
                raise
    except BaseException:
        # Never leave a claim behind that would block the day until it expires.
        for job in jobs:
            if job.digest_id is not None:
                mark_failed(store, job.digest_id, "run stopped before sending")
        raise

    if dry_run:
        folder = outbox or store.path.parent / OUTBOX
        folder.mkdir(parents=True, exist_ok=True)
        for job in jobs:
            path = folder / f"{job.profile.name}-{job.day.isoformat()}.eml"
            path.write_bytes(job.outgoing.data)
            report.written[job.profile.name] = path
        return report

    if not jobs:
        return report
    try:
        result = deliver([job.outgoing for job in jobs], settings.smtp, connect=connect,
                         sleep=sleep)
    except BaseException as exc:
        for job in jobs:
            assert job.digest_id is not None
            mark_failed(store, job.digest_id, f"interrupted: {type(exc).__name__}")
        raise
    for job in jobs:
        assert job.digest_id is not None
        name = job.profile.name
        if name in result.accepted:
            mark_sent(store, job.digest_id, job.digest, result.accepted[name], job.message_id)
            report.sent[name] = job.message_id
        else:
            error = result.failed.get(name) or SendError("not sent", transient=False)
            mark_failed(store, job.digest_id, str(error))
            report.failed[name] = str(error)
    return report


def _job(
    store: Store,
    settings: Settings,
    env,
    profile: ProfileSettings,
    day: date,
    digest_id: int | None,
    sender: str,
    recipients: tuple[str, ...],
    now: datetime,
) -> _Job:
    digest = build_for(store, settings, profile.name, day)
    rendered = render_digest(digest, env, settings.digest.subject)
    message = build_message(
        rendered, sender=sender, recipients=recipients, profile=profile.name, now=now
    )
    return _Job(
        profile=profile,
        day=day,
        digest_id=digest_id,
        digest=digest,
        outgoing=Outgoing(
            key=profile.name, sender=sender, recipients=recipients, data=message_bytes(message)
        ),
        message_id=str(message["Message-ID"]),
    )


def select_profiles(
    settings: Settings, name: str | None, all_profiles: bool
) -> list[ProfileSettings]:
    if all_profiles and name:
        raise PaperdigestError("give --profile NAME or --all, not both")
    if not settings.profiles:
        raise PaperdigestError(
            "no profiles are configured; add a [[profiles]] entry with a name and an email "
            "to the config file (see config.example.toml)"
        )
    if all_profiles:
        return list(settings.profiles)
    if name is None:
        if len(settings.profiles) == 1:
            return list(settings.profiles)
        names = ", ".join(p.name for p in settings.profiles)
        raise PaperdigestError(f"several profiles are configured ({names}); give --profile "
                               "NAME or --all")
    profile = settings.profile(check_profile_name(name))
    if profile is None:
        names = ", ".join(p.name for p in settings.profiles)
        raise PaperdigestError(f"no profile named {name!r} in the config (configured: {names})")
    return [profile]
