"""Use cases that join the store, the ranker and the digest: what the CLI and the daily
job call. The store is read, never written, here (the TF-IDF index cache next to it is
brought up to date: see corpus_index)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from paperdigest.batch_ranking import BatchRanker, BatchUnsupported, ProfileRows, Rows
from paperdigest.corpus_index import CorpusIndex, DamagedIndexError, open_index
from paperdigest.digest import Digest, assemble_digest, item_for, item_from
from paperdigest.follows import is_muted, sort_papers
from paperdigest.models import Paper, Pick
from paperdigest.ranking import Ranker, sorted_unique
from paperdigest.recommend import RankedRow, background_rows, rank_rows
from paperdigest.store import Store
from paperdigest.window import fallback_note, fallen_back_to


@dataclass(frozen=True)
class Selection:
    picks: list[Pick]
    personalised: bool  # False: no stars, so these are simply the newest papers
    # Unseen papers in the window a follow rule matched, newest first, with the reason.
    followed: tuple[tuple[Paper, str], ...] = ()


def window_start(store: Store, profile: str, day: date) -> date | None:
    """The first listing day the profile's digest of `day` covers beyond the window: the
    day of its last sent digest, so a weekly reader gets the whole week and nothing older.
    A store that has nothing listed since then (never refreshed, like the offline seed
    corpus) keeps the plain window, so its digest is not empty."""
    return since_last_digest(last_digest_before(store, profile, day), store.newest_listed(day))


def last_digest_before(store: Store, profile: str, day: date) -> date | None:
    """The day of the profile's latest sent digest before `day`."""
    last = store.last_sent_digest(profile)
    return last[0] if last and last[0] < day else None


def since_last_digest(last_sent: date | None, newest_listed: date | None) -> date | None:
    """window_start, given the last digest's day and the newest listing day up to today
    (a batch reads that once a day)."""
    if last_sent is None or newest_listed is None or last_sent > newest_listed:
        return None
    return last_sent


def window_note(store: Store, window_days: int, today: date) -> str:
    """One line when nothing was listed in the window up to today, so the papers shown
    are older (window.py); "" otherwise."""
    until = fallen_back_to(store.newest_listed(today), window_days, today)
    return fallback_note(window_days, until) if until else ""


def select_picks(
    store: Store,
    profile: str,
    limit: int,
    window_days: int = 7,
    index: CorpusIndex | None = None,
    progress: Callable[[str], None] | None = None,
    since: date | None = None,
    min_score: float | None = None,
    today: date | None = None,
) -> Selection:
    """The profile's best unseen papers, or the newest ones when it has no stars.

    Papers a mute rule matches are never candidates; papers a follow rule matches are
    returned apart, in `followed`, and not ranked. `since` narrows the window to papers
    listed on or after that day; `min_score` leaves out weaker picks. The window ends
    on `today` (the clock's today by default; see window.py).
    """
    day = today or date.today()
    starred = [paper for paper, _ in store.starred(profile)]
    dismissed = store.dismissed_pks(profile)
    seen = {p.pk for p in starred} | set(dismissed) | store.shown_pks(profile)
    rules = store.rules(profile)
    screened = sort_papers(
        (p for p in store.window_papers(window_days, since, rules, day) if p.pk not in seen)
        if rules else (),
        rules,
    )
    followed = screened.followed
    seen |= screened.muted | {paper.pk for paper, _ in followed}
    if not starred:
        newest = store.newest(limit, seen, keep=lambda p: not is_muted(p, rules))
        return Selection([Pick(paper=p, score=0.0) for p in newest], False, followed)

    def ranked(index: CorpusIndex) -> Selection:
        picks = _ranked_picks(
            store, index, starred, dismissed, seen, limit,
            window_days=window_days, today=day, since=since, min_score=min_score,
        )
        return Selection(picks, True, followed)

    if index is not None:
        return ranked(index)
    try:
        return ranked(open_index(store, progress))
    except DamagedIndexError:
        # Damaged bytes on disk that the load checks could not see: never trust them.
        return ranked(open_index(store, progress, rebuild=True))


def _ranked_picks(
    store: Store,
    index: CorpusIndex,
    starred: list[Paper],
    dismissed: list[int],
    seen: set[int],
    limit: int,
    *,
    window_days: int,
    today: date,
    since: date | None,
    min_score: float | None,
) -> list[Pick]:
    excluded = index.rows_of(sorted(seen))
    candidates = index.eligible(excluded, window_days, today)
    if since is not None:
        candidates = candidates[index.listed_days[candidates] >= since.toordinal()]
    star_rows = index.rows_of([p.pk for p in starred])
    dismissed_rows = index.rows_of(sorted(dismissed))
    background = background_rows(index.n_rows, set(star_rows) | set(dismissed_rows))
    # Only the rows the ranker reads are gathered from the (memory-mapped) matrix.
    needed = np.unique(
        np.concatenate(
            [np.asarray(r, dtype=np.int64) for r in (star_rows, dismissed_rows, background,
                                                     candidates)]
        )
    )

    def local(rows: object) -> np.ndarray:
        return np.searchsorted(needed, np.asarray(rows, dtype=np.int64))

    ranked = [
        RankedRow(
            row=int(needed[r.row]),
            score=r.score,
            star_row=int(needed[r.star_row]) if r.star_row is not None else None,
            terms=r.terms,
        )
        for r in rank_rows(
            index.take(needed),
            index.feature_names,
            local(star_rows).tolist(),
            local(dismissed_rows).tolist(),
            local(candidates),
            limit,
            ranker=Ranker(term_embedding=index.term_vectors),
            background=local(background),
            vectors=index.take_vectors(needed),
            titles=index.take_titles(needed),
        )
    ]
    # The starred papers are loaded already; only the picks need reading.
    papers = {p.pk: p for p in starred}
    papers.update((p.pk, p) for p in store.papers([int(index.pks[r.row]) for r in ranked]))
    picks = [
        Pick(
            paper=papers[int(index.pks[r.row])],
            score=r.score,
            because_of=papers.get(int(index.pks[r.star_row])) if r.star_row is not None else None,
            terms=r.terms,
        )
        for r in ranked
        if min_score is None or r.score >= min_score
    ]
    return picks


# Profiles ranked at once: bounds the (candidates x profiles) score blocks to a few MB.
BATCH_PROFILES = 256


def _rows(index: CorpusIndex, rows: np.ndarray) -> Rows:
    return Rows(index.take(rows), index.take_titles(rows), index.take_vectors(rows))


def _positions(sorted_rows: np.ndarray, rows: Sequence[int]) -> np.ndarray:
    """Where each of `rows` is in `sorted_rows`, for those that are in it."""
    rows = np.asarray(rows, dtype=np.int64)
    at = np.searchsorted(sorted_rows, rows)
    inside = at < len(sorted_rows)
    hit = np.zeros(len(rows), bool)
    hit[inside] = sorted_rows[at[inside]] == rows[inside]
    return sorted_unique(at[hit])


@dataclass(frozen=True)
class Reader:
    """One profile of a batch: its name, and what bounds its digest's window."""

    name: str
    today: date  # its local day: the window ends here (window.py)
    since: date | None = None  # papers listed on or after this day (window_start)
    min_score: float | None = None


def select_picks_many(
    store: Store,
    readers: Sequence[Reader],
    limit: int,
    window_days: int = 7,
    index: CorpusIndex | None = None,
    block: int = BATCH_PROFILES,
    progress: Callable[[str], None] | None = None,
) -> Iterator[tuple[str, Selection]]:
    """`select_picks` for many profiles, the same picks, ranked a block at a time against
    candidates and a background gathered once per window: readers whose window ends on
    the same day and starts on the same day (their last digest) are ranked together.
    Yields as each block is ranked, so the caller can render and send while the next
    block is scored. A cache found damaged while gathering is rebuilt once, and the block
    ranked again from it."""
    trusted = index is not None  # the caller's index is the caller's to check
    if index is None:
        index = open_index(store, progress)
    groups: dict[tuple[date, date | None], list[Reader]] = {}
    for reader in readers:
        groups.setdefault((reader.today, reader.since), []).append(reader)
    for (today, since), members in groups.items():
        ranking: _BatchState | None = None
        start = 0
        while start < len(members):
            chunk = members[start : start + block]
            try:
                ranking = ranking or _batch_state(index, window_days, today, since)
                selections = list(_select_block(store, chunk, limit, window_days, index,
                                                ranking))
            except DamagedIndexError:
                if trusted:
                    raise
                # Damaged bytes on disk that the load checks could not see: never trust them.
                index, ranking, trusted = open_index(store, progress, rebuild=True), None, True
                continue
            yield from selections
            start += block


@dataclass(frozen=True)
class _BatchState:
    candidates: np.ndarray
    background: np.ndarray
    batch: BatchRanker | None


def _batch_state(
    index: CorpusIndex, window_days: int, today: date, since: date | None
) -> _BatchState:
    """The candidates and background every profile of a group is ranked against, gathered
    once (as _ranked_picks gathers them for one profile)."""
    candidates = index.eligible([], window_days, today)
    if since is not None:
        candidates = candidates[index.listed_days[candidates] >= since.toordinal()]
    background = background_rows(index.n_rows, set())
    batch: BatchRanker | None = None
    if index.n_rows and len(candidates):
        try:
            batch = BatchRanker(
                Ranker(term_embedding=index.term_vectors),
                _rows(index, background),
                _rows(index, candidates),
            )
        except BatchUnsupported:
            batch = None
    return _BatchState(candidates, background, batch)


def _select_block(
    store: Store,
    readers: Sequence[Reader],
    limit: int,
    window_days: int,
    index: CorpusIndex,
    ranking: _BatchState,
) -> Iterator[tuple[str, Selection]]:
    batch, candidates, background = ranking.batch, ranking.candidates, ranking.background
    marks = []  # (reader, starred pks, star rows, dismissed rows, seen rows, followed)
    known = store.marks_of([reader.name for reader in readers])
    for reader in readers:
        own = known[reader.name]
        seen = set(own.starred) | set(own.dismissed) | own.shown
        followed: tuple[tuple[Paper, str], ...] = ()
        if own.rules:  # as select_picks: muted papers are no candidates, followed ones apart
            screened = sort_papers(
                (p for p in store.window_papers(window_days, reader.since, own.rules,
                                                reader.today) if p.pk not in seen),
                own.rules,
            )
            followed = screened.followed
            seen |= screened.muted | {paper.pk for paper, _ in followed}
        marks.append((reader, own.starred, index.rows_of(own.starred),
                      index.rows_of(own.dismissed), index.rows_of(sorted(seen)), followed))
    ranked: list[list[RankedRow] | None] = [None] * len(marks)
    marked = np.unique(np.concatenate(
        [np.asarray(m[2] + m[3], np.int64) for m in marks] or [np.zeros(0, np.int64)]
    ))
    if batch is not None and len(marked):
        ranked = batch.rank(
            _rows(index, marked),
            [
                ProfileRows(
                    stars=np.searchsorted(marked, np.asarray(stars, np.int64)),
                    dismissed=np.searchsorted(marked, np.asarray(dismissed, np.int64)),
                    background_out=_positions(background, stars + dismissed),
                    candidates_out=_positions(candidates, seen),
                )
                for _, _, stars, dismissed, seen, _ in marks
            ],
            limit,
            index.feature_names,
        )
    chosen: dict[str, tuple[list[RankedRow], list[int], list[int | None]]] = {}
    for (reader, starred, _, _, _, _), rows in zip(marks, ranked, strict=True):
        if rows is None or not starred:
            continue
        if reader.min_score is not None:  # as _ranked_picks: the top `limit`, then the cut
            rows = [r for r in rows if r.score >= reader.min_score]
        chosen[reader.name] = (
            rows,
            [int(index.pks[candidates[r.row]]) for r in rows],
            [int(index.pks[marked[r.star_row]]) if r.star_row is not None else None
             for r in rows],
        )
    # Read once for the block: readers share many picks (and a star is a paper too).
    papers = {p.pk: p for p in store.papers(sorted(
        {pk for _, picked, because in chosen.values() for pk in (*picked, *because)
         if pk is not None}
    ))}
    for reader, _, _, _, _, followed in marks:
        if reader.name not in chosen:
            yield reader.name, select_picks(
                store, reader.name, limit, window_days, index=index, since=reader.since,
                min_score=reader.min_score, today=reader.today,
            )
            continue
        rows, picked, because = chosen[reader.name]
        yield reader.name, Selection(
            [
                Pick(
                    paper=papers[pk],
                    score=r.score,
                    because_of=papers.get(star) if star is not None else None,
                    terms=r.terms,
                )
                for pk, star, r in zip(picked, because, rows, strict=True)
            ],
            True,
            followed,
        )


def build_digest(
    store: Store,
    profile: str,
    day: date,
    picks: int,
    window_days: int,
    trending: int,
    progress: Callable[[str], None] | None = None,
    min_score: float | None = None,
) -> Digest:
    """The digest of `day`: papers listed since the profile's last sent digest (at most
    `window_days` back), followed ones first, muted ones nowhere."""
    since = window_start(store, profile, day)
    selection = select_picks(
        store, profile, picks, window_days, progress=progress, since=since,
        min_score=min_score, today=day,
    )
    return assemble_digest(
        day,
        profile,
        [item_from(pick) for pick in selection.picks],
        trending=unmuted_trending(store, profile, trending, window_days, day),
        personalised=selection.personalised,
        followed=[item_for(paper, 0.0, reason) for paper, reason in selection.followed],
        window_note=window_note(store, window_days, day),
    )


def unmuted_trending(
    store: Store, profile: str, limit: int, window_days: int, today: date | None = None
) -> list[Paper]:
    """The most upvoted papers of the window (ending on `today`), less what the profile
    muted."""
    if limit <= 0:
        return []
    rules = store.rules(profile)
    if not rules:
        return store.trending(limit, window_days, today)
    # Read a few more so muting some still fills the section.
    papers = store.trending(limit * 3, window_days, today)
    return [p for p in papers if not is_muted(p, rules)][:limit]

