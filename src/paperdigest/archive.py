"""What each digest looked like when it was sent, kept for "view in browser" and for a
`preview` run after the day's digest went out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from paperdigest.store import Store


@dataclass(frozen=True)
class SentCopy:
    profile: str
    day: date
    sent_at: datetime | None
    status: str  # 'sent', or 'maybe' (the server may have taken it; see ledger.py)
    subject: str
    html: str  # as mailed: CSS inlined
    text: str


def keep_copy(store: Store, digest_id: int, subject: str, html: str, text: str) -> None:
    """Stored with the claim (one row per claim, replaced by a resend); it only counts
    once the ledger row says 'sent' or 'maybe'."""
    store.conn.execute(
        "INSERT OR REPLACE INTO digest_copies(digest_id, subject, html, text) "
        "VALUES (?, ?, ?, ?)",
        (digest_id, subject, html, text),
    )


def sent_copy(store: Store, profile: str, day: date) -> SentCopy | None:
    """The latest digest sent (or maybe delivered) to `profile` for `day`, if one was
    kept. A sent one wins over a maybe-delivered one."""
    row = store.conn.execute(
        "SELECT digests.sent_at, digests.status, digest_copies.* FROM digests "
        "JOIN digest_copies ON digest_copies.digest_id = digests.id "
        "WHERE digests.profile = ? AND digests.digest_date = ? "
        "AND digests.status IN ('sent', 'maybe') "
        "ORDER BY digests.status = 'sent' DESC, digests.id DESC LIMIT 1",
        (profile, day.isoformat()),
    ).fetchone()
    if row is None:
        return None
    return SentCopy(
        profile=profile,
        day=day,
        sent_at=datetime.fromisoformat(row["sent_at"]) if row["sent_at"] else None,
        status=row["status"],
        subject=row["subject"],
        html=row["html"],
        text=row["text"],
    )
