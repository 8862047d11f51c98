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
    subject: str
    html: str  # as mailed: CSS inlined
    text: str


def keep_copy(store: Store, digest_id: int, subject: str, html: str, text: str) -> None:
    """Stored with the claim; it only counts once the ledger row says 'sent'."""
    store.conn.execute(
        "INSERT OR REPLACE INTO digest_copies(digest_id, subject, html, text) "
        "VALUES (?, ?, ?, ?)",
        (digest_id, subject, html, text),
    )


def sent_copy(store: Store, profile: str, day: date) -> SentCopy | None:
    """The latest digest sent to `profile` for `day`, if one was kept."""
    row = store.conn.execute(
        "SELECT digests.sent_at, digest_copies.* FROM digests JOIN digest_copies "
        "ON digest_copies.digest_id = digests.id "
        "WHERE digests.profile = ? AND digests.digest_date = ? AND digests.status = 'sent' "
        "ORDER BY digests.id DESC LIMIT 1",
        (profile, day.isoformat()),
    ).fetchone()
    if row is None:
        return None
    return SentCopy(
        profile=profile,
        day=day,
        sent_at=datetime.fromisoformat(row["sent_at"]) if row["sent_at"] else None,
        subject=row["subject"],
        html=row["html"],
        text=row["text"],
    )
