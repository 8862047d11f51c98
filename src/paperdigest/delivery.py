"""Delivering digests exactly once: the send use case over the ledger (ledger.py).

For each profile a run claims the day in the ledger, builds the digest (or, when an
earlier attempt may have been delivered, repeats that attempt's picks), saves the picks,
and sends with the Message-ID the ledger gave the day. The ledger hears of each message
as it happens: the attempt just before the payload, "sent" as soon as the server
accepted it. How that keeps one digest a day:

- kill -9 mid-run: the claim names its process; the next run sees it gone and takes the
  day over at once. If the payload was on its way, the day counts as maybe delivered and
  goes out once more with the same Message-ID, never with a new one.
- An SMTP outage: nothing is marked; the day stays claimable, and the daemon retries it
  with backoff (scheduler.py) while the catch-up window lasts.
- A server that answers after the timeout: "maybe delivered", never retried in the run;
  the next run sends one more copy with the same Message-ID, and that is the last.
- A failure to write "sent" after the server accepted: the row still says the payload was
  in flight, which the next run reads as maybe delivered (one more copy at most, same
  Message-ID); in the same process the acceptance is remembered and written then instead.
- A digest with no picks is not mailed (unless the profile sets send_empty = true).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from paperdigest import ledger as ledger_api
from paperdigest.archive import keep_copy
from paperdigest.config import (
    WEEKDAYS,
    DigestSettings,
    ProfileSettings,
    Settings,
    SmtpSettings,
)
from paperdigest.digest import Digest, assemble_digest, is_followed_reason, item_for
from paperdigest.errors import PaperdigestError, describe_os_error
from paperdigest.ledger import AlreadySentError, LedgerEntry, ledger, was_sent
from paperdigest.mailer import (
    MAX_BACKOFF_SECONDS,
    ManagedConnection,
    Outgoing,
    SendError,
    build_message,
    deliver,
    domain_of,
    inline_css,
    message_bytes,
    open_connection,
    sender_address,
)
from paperdigest.render import make_environment, render_digest
from paperdigest.service import build_digest, unmuted_trending
from paperdigest.store import Store, check_profile_name
from paperdigest.subscriptions import unsubscribed_since, why_skipped
from paperdigest.web.links import email_links

log = logging.getLogger(__name__)

__all__ = ["AlreadySentError", "DeliveryError", "LedgerEntry", "ledger", "send_digests",
           "was_sent"]

OUTBOX = "outbox"


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
    """How long a claim whose holder cannot be checked (another host, or a row from before
    claims named their process) holds: longer than the slowest run retrying can take, so
    only a crashed process's claim ever expires. A holder on this host is checked instead."""
    waits = sum(min(smtp.backoff * 2**n, MAX_BACKOFF_SECONDS) for n in range(smtp.retries))
    # Each attempt may wait `timeout` on connect, greeting, login and data.
    return timedelta(minutes=10, seconds=waits + (smtp.retries + 1) * 4 * smtp.timeout)


# -- building the day's digest ----------------------------------------------------------


def build_for(
    store: Store, settings: Settings, profile: str, day: date, repeat_claim: int | None = None
) -> Digest:
    """A resend repeats earlier picks: those of the claim being resent (it may have been
    delivered), else of a day that went out (--force); otherwise the ranker picks."""
    previous = ledger_api.saved_items(store, repeat_claim) if repeat_claim else []
    previous = previous or _sent_items(store, profile, day)
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
        trending=unmuted_trending(store, profile, cfg.trending, cfg.window_days, day),
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
    return ledger_api.saved_items(store, row["id"]) if row else []


def empty_reason(settings: Settings) -> str:
    return (
        f"no new papers to pick (nothing unseen listed in the last "
        f"{settings.digest.window_days} days); not mailed. Set send_empty = true in the "
        "profile to mail an empty digest"
    )


# -- the send use case ------------------------------------------------------------------


@dataclass
class SendReport:
    sent: dict[str, str] = field(default_factory=dict)  # profile -> message id
    skipped: dict[str, str] = field(default_factory=dict)  # profile -> why
    failed: dict[str, str] = field(default_factory=dict)  # profile -> error
    written: dict[str, Path] = field(default_factory=dict)  # dry run: profile -> .eml
    maybe: dict[str, str] = field(default_factory=dict)  # profile -> why it may be out
    empty: dict[str, str] = field(default_factory=dict)  # profile -> why nothing was mailed
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
            since = unsubscribed_since(store, profile.name)
            if since is not None:
                report.skipped[profile.name] = why_skipped(profile.name, since)
                continue
            day = local_date(profile, settings, now)
            if not force and not is_digest_day(profile, settings.digest, day):
                report.resting[profile.name] = resting_message(profile, settings, day)
                continue
            claimed = None
            if not dry_run:
                try:
                    claimed = ledger_api.claim(
                        store, profile.name, day, now=now, domain=domain_of(sender),
                        force=force, ttl=claim_ttl(settings.smtp),
                    )
                except AlreadySentError as exc:
                    report.skipped[profile.name] = str(exc)
                    continue
                if claimed.took_over is not None:
                    log.warning("%s: took over the %s claim of %s, which is no longer "
                                "running", profile.name, day, claimed.took_over)
            try:
                job = _job(store, settings, env, profile, day, claimed, sender, recipients,
                           now)
                if not job.digest.shown and not profile.send_empty:
                    why = empty_reason(settings)
                    if claimed is not None:
                        ledger_api.mark_empty(store, claimed.id, why)
                    report.empty[profile.name] = why
                    continue
                if claimed is not None and not claimed.resend:
                    ledger_api.save_items(
                        store, claimed.id,
                        [(item.pk, item.score, item.reason) for item in job.digest.shown],
                    )
                jobs.append(job)
            except BaseException:
                if claimed is not None:
                    ledger_api.mark_failed(store, claimed.id, "run stopped before sending")
                raise
    except BaseException:
        # Never leave a claim behind that would block the day until it expires.
        for job in jobs:
            if job.digest_id is not None:
                ledger_api.mark_failed(store, job.digest_id, "run stopped before sending")
        raise

    if dry_run:
        folder = outbox or store.path.parent / OUTBOX
        for job in jobs:
            report.written[job.profile.name] = write_eml(
                folder, job.profile.name, job.day, job.outgoing.data
            )
        return report

    if not jobs:
        return report
    by_key = {job.profile.name: job for job in jobs}
    recorded: set[str] = set()

    def before_data(key: str) -> None:
        try:
            ledger_api.record_attempt(store, _id(by_key[key]))
        except sqlite3.Error as exc:
            raise SendError(f"cannot write the attempt to the ledger ({exc}); not sending",
                            transient=False) from None

    def on_accepted(key: str, when: datetime) -> None:
        job = by_key[key]
        report.sent[key] = job.message_id
        try:
            ledger_api.mark_sent(store, _id(job), when)
        except Exception as exc:
            log.error("%s: the server accepted the digest, but the ledger could not record it "
                      "(%s); it counts as maybe delivered: at most one more copy, with the "
                      "same Message-ID", key, exc)
        recorded.add(key)

    try:
        result = deliver([job.outgoing for job in jobs], settings.smtp, connect=connect,
                         sleep=sleep, before_data=before_data, on_accepted=on_accepted)
    except BaseException as exc:
        for job in jobs:
            if job.profile.name not in recorded:
                record_quietly(ledger_api.mark_interrupted, store, _id(job),
                         f"interrupted: {type(exc).__name__}")
        raise
    for job in jobs:
        name = job.profile.name
        if name in result.accepted:
            continue  # recorded as it happened
        if name in result.maybe:
            record_quietly(ledger_api.mark_maybe, store, _id(job), str(result.maybe[name]))
            report.maybe[name] = (
                f"{result.maybe[name]}; it may have been delivered, so the next run sends "
                f"it once more at most, with the same Message-ID {job.message_id}"
            )
            continue
        error = result.failed.get(name) or SendError("not sent", transient=False)
        record_quietly(ledger_api.mark_failed, store, _id(job), str(error))
        report.failed[name] = str(error)
    return report


def _id(job: _Job) -> int:
    assert job.digest_id is not None  # only a dry run has none, and it sends nothing
    return job.digest_id


def record_quietly(mark: Callable[[Store, int, str], None], store: Store, claim_id: int,
                   why: str) -> None:
    """A ledger write after the outcome: if it fails, the row still reads as in flight,
    which the next run treats safely (maybe delivered)."""
    try:
        mark(store, claim_id, why)
    except Exception as exc:
        log.error("cannot record the outcome in the ledger (%s): %s", exc, why)


def write_eml(folder: Path, profile: str, day: date, data: bytes) -> Path:
    """Write a dry run's message as `folder/PROFILE-DATE.eml`, inside `folder` whatever the
    profile is called; a full disk or a file named like the folder is one clear error."""
    path = folder / f"{check_profile_name(profile)}-{day.isoformat()}.eml"
    if path.resolve().parent != folder.resolve():
        raise PaperdigestError(f"profile name {profile!r} would write outside {folder}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise PaperdigestError(f"cannot write {path}: {describe_os_error(exc)}") from None
    return path


def _job(
    store: Store,
    settings: Settings,
    env,
    profile: ProfileSettings,
    day: date,
    claimed: ledger_api.Claim | None,
    sender: str,
    recipients: tuple[str, ...],
    now: datetime,
) -> _Job:
    repeat = claimed.id if claimed is not None and claimed.resend else None
    digest = build_for(store, settings, profile.name, day, repeat)
    links = email_links(settings, store.path.parent, profile.name, day)
    rendered = render_digest(digest, env, settings.digest.subject, links=links, mailed=True)
    html = inline_css(rendered.html)
    message = build_message(
        rendered, sender=sender, recipients=recipients, profile=profile.name, now=now,
        message_id=claimed.message_id if claimed is not None else None,
        from_name=settings.smtp.from_name,
        unsubscribe_url=links.unsubscribe if links is not None else None,
        inlined_html=html,
    )
    if claimed is not None:
        # Kept for "view in browser" and `preview`; it counts once the row says it went out.
        keep_copy(store, claimed.id, rendered.subject, html, rendered.text)
    return _Job(
        profile=profile,
        day=day,
        digest_id=claimed.id if claimed is not None else None,
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
            "to the config file (`paperdigest config init` writes a starter one)"
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
