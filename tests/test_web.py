"""The web app behind the email's links, over HTTP (Starlette's TestClient): every route,
every token case, every CSRF case. The store is real SQLite; nothing is mocked."""

from __future__ import annotations

import warnings

import pytest
from itsdangerous.timed import TimestampSigner

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from paperdigest.config import load_settings
from paperdigest.store import Store
from paperdigest.subscriptions import unsubscribe, unsubscribed_since
from paperdigest.web.app import create_app
from paperdigest.web.links import signer_for
from paperdigest.web.tokens import Signer
from tests.mail_fixtures import QUIET
from tests.web_fixtures import BASE_URL, forms, web_config

pytestmark = QUIET
TITLE = "Once-for-All: Train One Network"


@pytest.fixture
def settings(tmp_path, plain_server):
    config = web_config(tmp_path / "config.toml", plain_server.settings(),
                        [{"name": "ada", "email": "ada@example.com"}])
    return load_settings(config)


@pytest.fixture
def signer(settings, data_dir) -> Signer:
    return signer_for(settings, data_dir)


@pytest.fixture
def client(settings, data_dir, signer):
    with TestClient(create_app(settings, data_dir, signer)) as test_client:
        yield test_client


@pytest.fixture
def paper(store):
    return store.resolve(TITLE)


def _stars(data_dir, profile="ada") -> list[str]:
    with Store.open(data_dir) as store:
        return [p.title for p, _ in store.starred(profile)]


def _dismissed(data_dir, profile="ada") -> list[int]:
    with Store.open(data_dir) as store:
        return store.dismissed_pks(profile)


def _press(client, page: str, kind: str, **headers: str):
    (form,) = forms(page)[kind]
    data = {"form": form.token} | ({"do": form.do} if form.do else {})
    return client.post(form.action, data=data, headers=headers)


# -- star and dismiss ---------------------------------------------------------------------


def test_opening_a_star_link_changes_nothing_and_shows_one_button(client, signer, paper,
                                                                    data_dir):
    page = client.get(f"/a/{signer.action('ada', paper.pk, 'star')}")

    assert page.status_code == 200
    assert paper.title in page.text and "More like this" in page.text
    assert list(forms(page.text)) == ["star"]
    assert _stars(data_dir) == []


def test_pressing_more_like_this_stars_the_paper_and_offers_undo(client, signer, paper,
                                                                  data_dir):
    page = client.get(f"/a/{signer.action('ada', paper.pk, 'star')}")
    done = _press(client, page.text, "star")

    assert done.status_code == 200 and "Starred" in done.text
    assert _stars(data_dir) == [paper.title]
    assert _stars(data_dir, "default") == []  # the token's profile, no other

    undone = _press(client, done.text, "undo")
    assert undone.status_code == 200 and "star is removed" in undone.text
    assert _stars(data_dir) == []


def test_pressing_not_for_me_dismisses_and_undo_takes_it_back(client, signer, paper,
                                                               data_dir):
    page = client.get(f"/a/{signer.action('ada', paper.pk, 'dismiss')}")
    assert _dismissed(data_dir) == []
    done = _press(client, page.text, "dismiss")

    assert done.status_code == 200 and "Dismissed" in done.text
    assert _dismissed(data_dir) == [paper.pk]
    _press(client, done.text, "undo")
    assert _dismissed(data_dir) == []


def test_pressing_twice_is_harmless(client, signer, paper, data_dir):
    page = client.get(f"/a/{signer.action('ada', paper.pk, 'star')}")
    assert _press(client, page.text, "star").status_code == 200
    assert _press(client, page.text, "star").status_code == 200
    assert _stars(data_dir) == [paper.title]


# -- tokens ---------------------------------------------------------------------------


def _tamper(token: str) -> str:
    payload, timestamp, signature = token.split(".")
    flipped = "A" if payload[3] != "A" else "B"
    return f"{payload[:3]}{flipped}{payload[4:]}.{timestamp}.{signature}"


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    "spoil",
    [
        _tamper,
        lambda t: t[:-4],  # cut short by a mail client
        lambda t: t + "x",
        lambda t: "not-a-token",
    ],
    ids=["payload-changed", "cut-short", "extended", "garbage"],
)
def test_a_tampered_link_is_refused_and_changes_nothing(client, signer, paper, data_dir,
                                                          method, spoil):
    token = signer.action("ada", paper.pk, "star")
    form = signer.form(spoil(token))
    response = getattr(client, method)(
        f"/a/{spoil(token)}", **({"data": {"form": form}} if method == "post" else {})
    )

    assert response.status_code == 403
    assert "This link is not valid" in response.text and "Nothing was changed" in response.text
    assert _stars(data_dir) == []


def test_a_link_signed_with_another_key_is_refused(client, paper, data_dir):
    stranger = Signer("some-other-secret-key-entirely", 30)
    token = stranger.action("ada", paper.pk, "star")
    response = client.post(f"/a/{token}", data={"form": stranger.form(token)})
    assert response.status_code == 403
    assert _stars(data_dir) == []


def test_a_token_for_one_purpose_does_not_work_for_another(client, signer, data_dir):
    # An unsubscribe token (profile only) at the digest, papers and action routes.
    token = signer.unsubscribe("ada")
    for path in (f"/a/{token}", f"/d/{token}", f"/p/{token}"):
        assert client.get(path).status_code == 403
    # And a papers-page token cannot unsubscribe.
    papers = signer.papers("ada")
    response = client.post(f"/u/{papers}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 403
    with Store.open(data_dir) as store:
        assert unsubscribed_since(store, "ada") is None


def test_an_expired_link_says_so_and_changes_nothing(client, signer, paper, data_dir,
                                                      monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp",
                        lambda self: real(self) - 31 * 24 * 3600)
    token = signer.action("ada", paper.pk, "star")
    form = signer.form(token)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)

    page = client.get(f"/a/{token}")
    assert page.status_code == 410 and "expired" in page.text
    response = client.post(f"/a/{token}", data={"form": form})
    assert response.status_code == 410
    assert _stars(data_dir) == []


def test_a_link_still_works_within_its_days(client, signer, paper, data_dir, monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp",
                        lambda self: real(self) - 29 * 24 * 3600)
    token = signer.action("ada", paper.pk, "star")
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    page = client.get(f"/a/{token}")
    assert page.status_code == 200
    _press(client, page.text, "star")
    assert _stars(data_dir) == [paper.title]


def test_a_link_to_a_paper_no_longer_stored_is_a_404(client, signer, data_dir):
    assert client.get(f"/a/{signer.action('ada', 10**9, 'star')}").status_code == 404


# -- CSRF -----------------------------------------------------------------------------


def test_a_post_without_the_form_token_changes_nothing(client, signer, paper, data_dir):
    response = client.post(f"/a/{signer.action('ada', paper.pk, 'star')}", data={})
    assert response.status_code == 403 and "Reload the page" in response.text
    assert _stars(data_dir) == []


def test_a_form_token_for_another_link_is_refused(client, signer, paper, data_dir):
    token = signer.action("ada", paper.pk, "star")
    other = signer.action("ada", paper.pk, "dismiss")
    response = client.post(f"/a/{token}", data={"form": signer.form(other)})
    assert response.status_code == 403
    assert _stars(data_dir) == []


def test_a_forged_form_token_is_refused(client, signer, paper, data_dir):
    token = signer.action("ada", paper.pk, "star")
    forged = Signer("attacker-secret-key-0123456789", 30).form(token)
    assert client.post(f"/a/{token}", data={"form": forged}).status_code == 403
    assert _stars(data_dir) == []


def test_a_post_from_another_site_is_refused(client, signer, paper, data_dir):
    page = client.get(f"/a/{signer.action('ada', paper.pk, 'star')}")
    response = _press(client, page.text, "star", origin="https://evil.example")
    assert response.status_code == 403
    assert _stars(data_dir) == []
    assert _press(client, page.text, "star", origin="null").status_code == 403
    # The same site's own origin is fine.
    assert _press(client, page.text, "star", origin=BASE_URL).status_code == 200
    assert _stars(data_dir) == [paper.title]


def test_an_old_page_form_has_to_be_reloaded(client, signer, paper, data_dir, monkeypatch):
    real = TimestampSigner.get_timestamp
    token = signer.action("ada", paper.pk, "star")
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 2 * 86400)
    stale = signer.form(token)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert client.post(f"/a/{token}", data={"form": stale}).status_code == 403
    assert _stars(data_dir) == []


# -- unsubscribe ------------------------------------------------------------------------


def _unsubscribed(data_dir, profile="ada") -> bool:
    with Store.open(data_dir) as store:
        return unsubscribed_since(store, profile) is not None


def test_one_click_unsubscribe_needs_no_form(client, signer, data_dir):
    token = signer.unsubscribe("ada")
    response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "no more digests" in response.text
    assert _unsubscribed(data_dir)
    assert not _unsubscribed(data_dir, "default")


def test_the_unsubscribe_page_changes_nothing_until_pressed_and_offers_resubscribe(
    client, signer, data_dir
):
    token = signer.unsubscribe("ada")
    page = client.get(f"/u/{token}")
    assert page.status_code == 200 and "Stop the daily paperdigest email" in page.text
    assert not _unsubscribed(data_dir)

    done = _press(client, page.text, "unsubscribe")
    assert done.status_code == 200 and _unsubscribed(data_dir)
    again = _press(client, done.text, "resubscribe")
    assert again.status_code == 200 and "Subscribed again" in again.text
    assert not _unsubscribed(data_dir)


def test_an_unsubscribe_post_without_one_click_or_form_token_is_refused(client, signer,
                                                                         data_dir):
    token = signer.unsubscribe("ada")
    for data in ({}, {"do": "unsubscribe"}, {"List-Unsubscribe": "yes"},
                 {"do": "unsubscribe", "form": signer.form(signer.unsubscribe("bob"))}):
        assert client.post(f"/u/{token}", data=data).status_code == 403
    assert not _unsubscribed(data_dir)


def test_a_tampered_unsubscribe_link_changes_nothing(client, signer, data_dir):
    token = _tamper(signer.unsubscribe("ada"))
    response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 403
    assert not _unsubscribed(data_dir)


def test_an_unsubscribe_link_never_expires(client, signer, data_dir, monkeypatch):
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 400 * 86400)
    token = signer.unsubscribe("ada")
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _unsubscribed(data_dir)


# -- the profile's pages -----------------------------------------------------------------


def test_the_papers_page_lists_stars_and_dismissals_with_undo(client, signer, store):
    starred = store.resolve(TITLE)
    dismissed = store.resolve("3e931bc0")
    store.star("ada", starred)
    store.dismiss("ada", dismissed)

    page = client.get(f"/p/{signer.papers('ada')}")
    assert page.status_code == 200
    assert starred.title in page.text and dismissed.title in page.text
    found = forms(page.text)
    assert len(found["unstar"]) == 1 and len(found["undismiss"]) == 1

    _press(client, page.text, "unstar")
    _press(client, page.text, "undismiss")
    assert store.starred("ada") == [] and store.dismissed_pks("ada") == []


def test_search_finds_papers_with_star_buttons_that_work(client, signer, data_dir):
    page = client.get(f"/p/{signer.papers('ada')}", params={"q": "sparse training"})
    assert page.status_code == 200
    buttons = forms(page.text)["star"]
    assert len(buttons) >= 3
    first = buttons[0]
    done = client.post(first.action, data={"form": first.token})
    assert done.status_code == 200 and "Starred" in done.text
    assert len(_stars(data_dir)) == 1
    # A starred hit shows as such, without a second button.
    again = client.get(f"/p/{signer.papers('ada')}", params={"q": "sparse training"})
    assert len(forms(again.text)["star"]) == len(buttons) - 1


def _mute(store, words: str, profile: str = "ada") -> None:
    from paperdigest.follows import Action, Field, Rule

    store.add_rule(profile, Rule(Action.mute, Field.keyword, words))


def test_search_never_shows_a_muted_paper(client, signer, store):
    url = f"/p/{signer.papers('ada')}"
    muted = "Training Neural Networks with Fixed Sparse Masks"
    before = client.get(url, params={"q": "sparse training"}).text
    assert muted in before and len(forms(before)["star"]) == 20
    _mute(store, "fixed sparse masks")
    _mute(store, "sparse training", profile="bob")  # another profile's rule: no effect

    after = client.get(url, params={"q": "sparse training"}).text
    assert muted not in after
    assert len(forms(after)["star"]) == 20  # the next hit takes its place
    # A search finding only muted papers says so, rather than that nothing matches.
    alone = client.get(url, params={"q": "eeb71218"}).text
    assert muted not in alone and "No paper matches that you have not muted." in alone


def test_starred_and_dismissed_papers_muted_later_are_hidden_and_counted(client, signer,
                                                                        store):
    store.star("ada", store.resolve(TITLE))
    dismissed = store.resolve("3e931bc0")
    store.dismiss("ada", dismissed)
    _mute(store, "once for all")
    _mute(store, dismissed.title)

    page = client.get(f"/p/{signer.papers('ada')}").text
    assert TITLE not in page and dismissed.title not in page
    assert "unstar" not in forms(page) and "undismiss" not in forms(page)
    assert page.count("Plus 1 that your mute rules hide here") == 2
    assert "<code>paperdigest stars --profile ada</code> lists every star" in page
    assert [p.title for p, _ in store.starred("ada")] == [store.resolve(TITLE).title]


def test_search_shows_untrusted_text_escaped(client, signer, store):
    from paperdigest.models import PaperRecord

    store.ingest([PaperRecord(title='Zebrafish <script>alert("x")</script> & co',
                              abstract="zebrafish <img src=x onerror=alert(1)>")])
    page = client.get(f"/p/{signer.papers('ada')}", params={"q": "zebrafish"})
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text


# -- headers, other routes --------------------------------------------------------------


def test_every_page_carries_a_strict_policy(client, signer, paper):
    for path in ("/", "/nowhere", f"/a/{signer.action('ada', paper.pk, 'star')}",
                 f"/p/{signer.papers('ada')}", f"/u/{signer.unsubscribe('ada')}", "/a/bad"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp, path
        assert "unsafe" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


def test_unknown_paths_and_methods_get_a_plain_page(client):
    assert client.get("/nowhere").status_code == 404
    assert client.get("/a/").status_code == 404
    assert client.delete("/").status_code == 405
    assert client.put("/u/token").status_code == 405


def test_the_app_never_redirects(client, signer, paper):
    # No route answers with a redirect, so none can be made to point elsewhere.
    for path in ("/", f"/a/{signer.action('ada', paper.pk, 'star')}?next=https://evil.example",
                 "/a/x?url=//evil.example", f"/p/{signer.papers('ada')}?next=//evil"):
        response = client.get(path, follow_redirects=False)
        assert not response.is_redirect and "location" not in response.headers


def test_a_digest_link_shows_404_until_that_digest_was_sent(client, signer):
    from datetime import date

    response = client.get(f"/d/{signer.digest('ada', date(2026, 1, 2))}")
    assert response.status_code == 404 and "No digest" in response.text


def test_one_click_unsubscribed_profile_is_skipped_by_the_store_flag(data_dir):
    with Store.open(data_dir) as store:
        assert unsubscribe(store, "ada", via="test")
        assert not unsubscribe(store, "ada", via="test")  # first date kept


def test_a_failure_inside_gets_a_page_not_a_traceback(settings, data_dir, signer, paper):
    app = create_app(settings, data_dir, signer)
    (data_dir / "paperdigest.sqlite3").write_bytes(b"not a database at all" * 100)
    for name in ("paperdigest.sqlite3-wal", "paperdigest.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/a/{signer.action('ada', paper.pk, 'star')}")
    assert response.status_code == 500
    assert "Something went wrong" in response.text and "Traceback" not in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "payload",
    [["ada", 1, "delete"], ["ada", "1", "star"], ["ada", 1], ["../../etc", 1, "star"],
     [1, 1, "star"], {"p": "ada"}, "ada"],
)
def test_a_genuinely_signed_token_with_a_wrong_shape_is_refused(client, signer, data_dir,
                                                                  payload):
    token = signer._dumps("action", payload)  # signed with the real key, bad inside
    assert client.get(f"/a/{token}").status_code == 403
    assert client.post(f"/a/{token}", data={"form": signer.form(token)}).status_code == 403
    assert _stars(data_dir) == []
