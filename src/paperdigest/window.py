"""The candidate window (pure): the listing days a digest covers.

The window is the `window_days` up to today. Only when nothing at all was listed in it
(a store not refreshed for a while, or the offline seed corpus some days after install)
does it end on the newest listing day instead, so there is still something to read, and
the digest says so (`fallback_note`). A paper dated after today never moves the window:
one dated 9999-12-31 once cut every digest down to itself.
"""

from __future__ import annotations

from datetime import date, timedelta

# A source's date may run a day ahead of the local one (arXiv announces at 20:00 New York
# time with the next day's date; UTC is ahead of the Americas): not "in the future" yet.
SOURCE_DAY_AHEAD = 1


def latest_real_day(today: date) -> date:
    """The latest date a source may honestly give on `today`; anything later is clamped."""
    return today + timedelta(days=SOURCE_DAY_AHEAD)


def window_end(newest: date | None, window_days: int, today: date) -> date:
    """The last day of the window. `newest` is the newest listing day up to
    `latest_real_day(today)` (None for an empty store); `window_days` 0: no window."""
    if newest is None or window_days <= 0 or newest >= today - timedelta(days=window_days):
        return today
    return newest


def fallen_back_to(newest: date | None, window_days: int, today: date) -> date | None:
    """The older day the window ends on when nothing was listed in the days up to today,
    else None."""
    end = window_end(newest, window_days, today)
    return end if end != today else None


def fallback_note(window_days: int, until: date) -> str:
    """One line (under 80 columns) saying the digest holds older papers."""
    days = "day" if window_days == 1 else f"{window_days} days"
    return f"No papers in the last {days}; showing the newest, listed up to {until.isoformat()}."
