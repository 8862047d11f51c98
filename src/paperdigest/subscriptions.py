"""Who asked for no more mail: set by the email's unsubscribe link, undone by
`paperdigest resubscribe`. `send` and the daemon skip such a profile and say so."""

from __future__ import annotations

from datetime import UTC, datetime

from paperdigest.store import Store


def unsubscribe(store: Store, profile: str, via: str, now: datetime | None = None) -> bool:
    """False if the profile was unsubscribed already (the first date is kept)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    cursor = store.conn.execute(
        "INSERT OR IGNORE INTO unsubscribed(profile, since, via) VALUES (?, ?, ?)",
        (profile, stamp, via),
    )
    return cursor.rowcount == 1


def resubscribe(store: Store, profile: str) -> bool:
    cursor = store.conn.execute("DELETE FROM unsubscribed WHERE profile = ?", (profile,))
    return cursor.rowcount == 1


def unsubscribed_since(store: Store, profile: str) -> datetime | None:
    row = store.conn.execute(
        "SELECT since FROM unsubscribed WHERE profile = ?", (profile,)
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row else None


def unsubscribed_profiles(store: Store) -> dict[str, datetime]:
    """Every profile that stopped its mail, and since when (one query for a batch)."""
    rows = store.conn.execute("SELECT profile, since FROM unsubscribed")
    return {profile: datetime.fromisoformat(since) for profile, since in rows}


def why_skipped(profile: str, since: datetime) -> str:
    return (
        f"unsubscribed on {since:%Y-%m-%d} with the link in the email; not sending "
        f"(`paperdigest resubscribe --profile {profile}` starts the mail again)"
    )
