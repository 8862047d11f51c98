"""Rhythm: digest days, a digest covering everything since the last one, and min_score."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

import pytest

from paperdigest.config import WEEKDAYS, DigestSettings, ProfileSettings, Settings
from paperdigest.delivery import ledger, send_digests
from paperdigest.scheduler import Daemon, catchup_due, make_trigger, next_send_time
from paperdigest.store import Store
from tests.mail_fixtures import QUIET, write_config

pytestmark = QUIET

STAR = "The Unreasonable Effectiveness of Random Pruning"
TUESDAY = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def other_day(day: date) -> str:
    return WEEKDAYS[(day.weekday() + 1) % 7]


def test_days_accept_names_and_refuse_anything_else_with_a_sentence():
    assert ProfileSettings(name="a", days=["Thursday", "mon", "MON"]).days == ["mon", "thu"]
    with pytest.raises(ValueError, match="'mo' is not a day of the week"):
        ProfileSettings(name="a", days=["mo"])
    with pytest.raises(ValueError, match="at least one day"):
        DigestSettings(days=[])


def test_the_next_send_time_skips_days_without_a_digest():
    profile = ProfileSettings(name="a", email="a@b.org", days=["mon", "thu"])
    digest = DigestSettings(send_time=time(7, 0), timezone="Europe/Paris")
    at = next_send_time(profile, digest, TUESDAY)
    assert (at.strftime("%a %Y-%m-%d %H:%M"), str(at.tzinfo)) == (
        "Thu 2026-12-03 07:00", "Europe/Paris")
    # The trigger the daemon uses fires on the same instants.
    trigger = make_trigger(profile, digest)
    first = trigger.get_next_fire_time(None, TUESDAY)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert [first, second] == [at, at + timedelta(days=4)]  # Thursday, then Monday
    # A missed Monday is not caught up on Tuesday.
    assert not catchup_due(profile, digest, TUESDAY)


def test_send_on_another_day_sends_nothing_and_says_when_the_next_one_is(
    cli, data_dir, tmp_path, plain_server
):
    today = datetime.now(UTC).date()
    ada = {"name": "ada", "email": "ada@example.com", "days": [other_day(today)]}
    config = str(write_config(tmp_path / "c.toml", plain_server.settings(), [ada]))

    result = cli("--config", config, "send")

    assert result.exit_code == 0, result.output
    nxt = today + timedelta(days=1)
    assert f"ada: no digest today ({today:%a} {today})" in result.stdout
    assert f"the next one goes out on {nxt:%a} {nxt} at 07:00 UTC" in result.stdout
    assert plain_server.received == []
    with Store.open(data_dir) as store:
        assert ledger(store) == []

    forced = cli("--config", config, "send", "--force")
    assert forced.exit_code == 0, forced.output
    assert len(plain_server.received) == 1


def test_the_daemon_rests_on_other_days(data_dir, plain_server):
    profile = ProfileSettings(name="ada", email="ada@example.com", days=["mon"])
    settings = Settings(smtp=plain_server.settings(), profiles=[profile],
                        sources={"hf": {"enabled": False}})
    daemon = Daemon(settings, data_dir, clock=lambda: TUESDAY)
    assert daemon.send_now("ada") == "resting"
    assert plain_server.received == []


def test_a_weekly_digest_covers_every_paper_since_the_last_one(cli, data_dir, tmp_path):
    """Papers listed before the last sent digest are old news; the rest all count."""
    today = date.today()
    rows = [
        ("2612.10001", "Zebrafish regeneration before the last digest", today - timedelta(4)),
        ("2612.10002", "Zebrafish regeneration after the last digest", today - timedelta(1)),
    ]
    path = tmp_path / "fish.jsonl"
    path.write_text("".join(
        json.dumps({"id": i, "title": t, "abstract": "Fins grow back.",
                    "published": d.isoformat()}) + "\n" for i, t, d in rows))
    assert cli("ingest", str(path)).exit_code == 0
    for profile in ("weekly", "fresh"):
        cli("profile", "add", profile)
        cli("follow", "keyword", "zebrafish", "--profile", profile)
    with Store.open(data_dir) as store:  # "weekly" had a digest two days ago
        store.conn.execute(
            "INSERT INTO digests(profile, digest_date, status, created_at, sent_at) "
            "VALUES ('weekly', ?, 'sent', ?, ?)",
            ((today - timedelta(2)).isoformat(), "2026-01-01T00:00:00", "2026-01-01T00:00:00"),
        )

    weekly = cli("preview", "--profile", "weekly").stdout
    fresh = cli("preview", "--profile", "fresh").stdout
    assert "after the last digest" in weekly and "before the last digest" not in weekly
    assert "after the last digest" in fresh and "before the last digest" in fresh


def test_min_score_leaves_out_weak_picks_but_never_followed_papers(
    cli, data_dir, tmp_path, plain_server
):
    cli("star", STAR)
    all_picks = json.loads(cli("recommend", "--json", "--limit", "10").stdout)
    cut = all_picks[2]["score"]
    ada = {"name": "default", "email": "ada@example.com", "min_score": cut}
    config = str(write_config(tmp_path / "c.toml", plain_server.settings(), [ada]))
    cli("follow", "keyword", "axolotl")
    cli("ingest", str(_axolotl(tmp_path)))

    text = cli("--config", config, "preview").stdout
    assert "Axolotl Organ Segmentation" in text  # followed: shown whatever its score
    shown = [p["id"] for p in all_picks if f"[id {p['id']}]" in text]
    assert shown == [p["id"] for p in all_picks if p["score"] >= cut]
    assert len(shown) == 3

    assert cli("--config", config, "send").exit_code == 0
    with Store.open(data_dir) as store:
        [entry] = ledger(store)
        count = store.conn.execute(
            "SELECT count(*) FROM digest_items WHERE digest_id = ?", (entry.id,)
        ).fetchone()[0]
    assert count == 4  # three picks and the followed paper


def _axolotl(tmp_path):
    path = tmp_path / "axolotl.jsonl"
    path.write_text(json.dumps({
        "id": "2612.20001", "title": "Axolotl Organ Segmentation with U-Nets",
        "abstract": "Medical images.", "published": date.today().isoformat(),
    }) + "\n")
    return path


def test_send_digests_respects_days_for_each_profile(store, plain_server):
    settings = Settings(
        smtp=plain_server.settings(),
        profiles=[ProfileSettings(name="ada", email="ada@example.com", days=["tue"]),
                  ProfileSettings(name="bob", email="bob@example.com", days=["wed"])],
    )
    report = send_digests(store, settings, settings.profiles, now=TUESDAY)
    assert report.sent.keys() == {"ada"}
    assert "next one goes out on Wed 2026-12-02" in report.resting["bob"]
