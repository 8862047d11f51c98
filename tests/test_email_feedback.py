"""Feedback from the email, end to end: a digest really sent to a local SMTP server, its
links followed over HTTP into the web app, and what `recommend`, `send`, the daemon and
`preview` do afterwards. Also the email's own details: links, plurals, footers, URLs."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest

from paperdigest.config import load_settings
from paperdigest.digest import ARXIV_TITLE_SEARCH, paper_link
from paperdigest.models import Paper, Pick, distinct_terms
from paperdigest.store import Store
from paperdigest.web.app import create_app
from paperdigest.web.links import signer_for
from paperdigest.web.secret import SECRET_FILE, secret_key
from tests.mail_fixtures import QUIET, USER, free_port
from tests.web_fixtures import (
    LONG_URL_PAPERS,
    SECRET,
    forms,
    ingest_long_url_paper,
    links_in_text,
    web_config,
)

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = QUIET
LONG_URL = re.search(r"https://example\.org/\S+", LONG_URL_PAPERS.read_text())[0]


def _config(tmp_path, server, base_url="http://testserver", name="ada", **digest):
    path = web_config(tmp_path / "config.toml", server.settings(),
                      [{"name": name, "email": f"{name}@example.com"}], base_url=base_url,
                      **digest)
    with path.open("a") as file:  # the daemon test must not reach the internet
        file.write("\n[sources.hf]\nenabled = false\n")
    return path


def _part(message, subtype: str) -> str:
    return message.get_body(preferencelist=(subtype,)).get_content().replace("\r\n", "\n")


def _send(cli, config, *extra):
    result = cli("--config", str(config), "send", *extra)
    return result


@pytest.fixture
def client_for(data_dir):
    opened = []

    def make(config: Path) -> TestClient:
        settings = load_settings(config)
        client = TestClient(create_app(settings, data_dir, signer_for(settings, data_dir)))
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def _press(client, url: str, kind: str):
    page = client.get(url)
    assert page.status_code == 200, page.text
    (form,) = forms(page.text)[kind]
    return client.post(form.action, data={"form": form.token})


def test_more_like_this_in_a_received_message_becomes_a_star_that_recommend_uses(
    cli, data_dir, tmp_path, plain_server, client_for
):
    config = _config(tmp_path, plain_server)
    assert _send(cli, config).exit_code == 0
    message = plain_server.received[0].message
    text = _part(message, "plain")
    stars = links_in_text(text, "More like this")
    dismissals = links_in_text(text, "Not for me")
    items = re.findall(r"^(\d+)\. ", text, flags=re.MULTILINE)
    assert len(stars) == len(dismissals) == len(items) == 10
    html = _part(message, "html")
    assert html.count(">More like this</a>") == html.count(">Not for me</a>") == 10
    first_title = re.search(r"^1\. (.+)$", text, flags=re.MULTILINE)[1]
    second_title = re.search(r"^2\. (.+)$", text, flags=re.MULTILINE)[1]
    client = client_for(config)

    done = _press(client, stars[0], "star")
    assert done.status_code == 200 and "Starred" in done.text
    done = _press(client, dismissals[1], "dismiss")
    assert done.status_code == 200 and "Dismissed" in done.text

    starred = json.loads(cli("stars", "--profile", "ada", "--json").stdout)
    assert [s["title"] for s in starred] == [first_title]
    ranked = json.loads(cli("recommend", "--profile", "ada", "--json", "-n", "50").stdout)
    assert ranked and all(r["reason"].startswith("like “" + first_title[:20]) for r in ranked)
    assert second_title not in [r["title"] for r in ranked]
    with Store.open(data_dir) as store:
        assert len(store.dismissed_pks("ada")) == 1


FOLLOWED_TITLE = "Robo-taxi Fleet Coordination at Scale via Reinforcement Learning"


def test_a_followed_paper_in_a_received_message_carries_both_links_too(
    cli, data_dir, tmp_path, plain_server, client_for
):
    config = _config(tmp_path, plain_server)
    follow = cli("--config", str(config), "follow", "keyword", "taxi", "--profile", "ada")
    assert follow.exit_code == 0
    assert _send(cli, config).exit_code == 0
    message = plain_server.received[0].message
    text = _part(message, "plain")
    followed = text.partition("Followed\n--------\n")[2].partition("Picked for you")[0]
    assert f"* {FOLLOWED_TITLE}" in followed
    (star,) = links_in_text(followed, "More like this")
    (dismiss,) = links_in_text(followed, "Not for me")
    html = _part(message, "html")
    followed_html = html.partition("Followed</h2>")[2].partition("Picked for you</h2>")[0]
    assert FOLLOWED_TITLE in followed_html
    assert followed_html.count(">More like this</a>") == 1
    assert followed_html.count(">Not for me</a>") == 1
    # One pair per paper shown: the followed one and the ten picks, HTML as text.
    assert html.count(">More like this</a>") == len(links_in_text(text, "More like this")) == 11
    client = client_for(config)

    page = client.get(dismiss)
    assert page.status_code == 200 and FOLLOWED_TITLE in page.text
    done = _press(client, star, "star")
    assert done.status_code == 200 and "Starred" in done.text
    starred = json.loads(cli("stars", "--profile", "ada", "--json").stdout)
    assert [s["title"] for s in starred] == [FOLLOWED_TITLE]
    done = _press(client, dismiss, "dismiss")
    assert done.status_code == 200 and "Dismissed" in done.text
    with Store.open(data_dir) as store:
        assert store.dismissed_pks("ada") == [store.resolve(starred[0]["id"]).pk]


def test_a_message_carries_one_click_unsubscribe_that_stops_the_mail(
    cli, data_dir, tmp_path, plain_server, client_for, caplog
):
    config = _config(tmp_path, plain_server)
    assert _send(cli, config).exit_code == 0
    message = plain_server.received[0].message
    header = message["List-Unsubscribe"]
    assert re.fullmatch(r"<http://testserver/u/[\w.-]+>", header)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw = plain_server.received[0].data.decode()
    assert re.search(r"^List-Unsubscribe: <http://testserver/u/[\w.-]+>\r$", raw, re.M)
    # The visible footer link leads to the same page.
    assert links_in_text(_part(message, "plain"), "Unsubscribe") == [header[1:-1]]
    assert f'href="{header[1:-1]}"' in _part(message, "html")

    # What a mail provider does for "Unsubscribe" (RFC 8058).
    response = client_for(config).post(header[1:-1], data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    # (Counted, not assumed to be 1: on a very busy machine a late SMTP answer can make
    # the first send deliver twice, which is the ledger's business, not this test's.)
    sent = len(plain_server.received)

    skipped = _send(cli, config, "--force")
    assert skipped.exit_code == 1
    assert "unsubscribed" in skipped.stderr and "resubscribe --profile ada" in skipped.stderr
    assert len(plain_server.received) == sent

    from paperdigest.scheduler import Daemon

    caplog.set_level(logging.INFO)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    daemon = Daemon(load_settings(config), data_dir, clock=lambda: tomorrow)
    assert daemon.run_job("ada") == "unsubscribed"
    assert daemon.next_retry == {}  # and no retry is planned
    assert "unsubscribed" in caplog.text
    assert len(plain_server.received) == sent

    assert "none: unsubscribed" in cli("--config", str(config), "status").stdout
    result = cli("resubscribe", "--profile", "ada")
    assert result.exit_code == 0 and "subscribed again" in result.stdout
    assert _send(cli, config, "--force").exit_code == 0
    assert len(plain_server.received) > sent


def test_send_all_skips_only_the_profile_that_unsubscribed(cli, data_dir, tmp_path,
                                                           plain_server, client_for):
    config = web_config(tmp_path / "config.toml", plain_server.settings(),
                        [{"name": "ada", "email": "ada@example.com"},
                         {"name": "bob", "email": "bob@example.com"}])
    assert _send(cli, config, "--profile", "ada").exit_code == 0
    header = plain_server.received[0].message["List-Unsubscribe"]
    assert client_for(config).post(
        header[1:-1], data={"List-Unsubscribe": "One-Click"}).status_code == 200
    sent = len(plain_server.received)

    result = _send(cli, config, "--all", "--force")
    assert result.exit_code == 0, result.output
    assert "bob: sent to bob@example.com" in result.stdout
    assert "ada: unsubscribed on" in result.stderr
    assert "resubscribe --profile ada" in result.stderr
    assert {tuple(r.recipients) for r in plain_server.received[sent:]} == {("bob@example.com",)}


def test_without_base_url_no_unsubscribe_header_and_the_footer_says_how_to_stop(
    cli, data_dir, tmp_path, plain_server
):
    config = _config(tmp_path, plain_server, base_url=None)
    assert _send(cli, config).exit_code == 0
    message = plain_server.received[0].message
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    text = _part(message, "plain")
    assert "To stop this mail: paperdigest unsubscribe --profile ada" in text
    assert "More like this" not in text and "http://testserver" not in text
    assert cli("unsubscribe", "--profile", "ada").exit_code == 0
    sent = len(plain_server.received)
    assert _send(cli, config, "--force").exit_code == 1
    assert len(plain_server.received) == sent


def test_view_in_browser_shows_the_digest_that_was_sent(cli, data_dir, tmp_path, plain_server,
                                                        client_for):
    config = _config(tmp_path, plain_server)
    assert _send(cli, config).exit_code == 0
    message = plain_server.received[0].message
    (view,) = links_in_text(_part(message, "plain"), "View in your browser")
    page = client_for(config).get(view)
    assert page.status_code == 200
    assert page.text == _part(message, "html")
    assert "script-src" not in page.headers["content-security-policy"]


def test_preview_after_the_send_shows_what_was_sent_and_says_so(cli, data_dir, tmp_path,
                                                                plain_server):
    config = _config(tmp_path, plain_server)
    before = cli("--config", str(config), "preview", "--profile", "ada")
    assert "Sent by" not in before.stdout and "View in your browser" not in before.stdout
    assert _send(cli, config).exit_code == 0
    # A star now would change a fresh ranking; the preview must still show what was sent.
    assert cli("star", "--profile", "ada", "3e931bc0").exit_code == 0

    out = tmp_path / "sent.html"
    after = cli("--config", str(config), "preview", "--profile", "ada", "--out", str(out))

    message = plain_server.received[0].message
    assert "was sent" in after.stderr and "this is what was sent" in after.stderr
    assert after.stdout == _part(message, "plain")
    assert out.read_text() == _part(message, "html")


def test_subject_and_header_say_1_paper(cli, data_dir, tmp_path, plain_server):
    config = _config(tmp_path, plain_server, picks=1)
    assert _send(cli, config).exit_code == 0
    message = plain_server.received[0].message
    assert message["Subject"].endswith(": 1 paper for you")
    assert "1 paper for ada" in _part(message, "html")
    assert "1 papers" not in _part(message, "html") + _part(message, "plain")


def test_from_carries_a_configurable_sender_name(cli, data_dir, tmp_path, plain_server):
    config = _config(tmp_path, plain_server)
    assert _send(cli, config).exit_code == 0
    assert plain_server.received[0].message["From"] == f"paperdigest <{USER}>"
    text = config.read_text().replace("[smtp]\n", '[smtp]\nfrom_name = "Zoë\'s papers"\n')
    config.write_text(text)
    assert _send(cli, config, "--force").exit_code == 0
    sender = plain_server.received[-1].message["From"]
    assert sender.addresses[0].display_name == "Zoë's papers"
    assert sender.addresses[0].addr_spec == USER


def test_footer_hints_name_the_profile_only_when_not_default(cli, data_dir, tmp_path,
                                                            plain_server):
    config = _config(tmp_path, plain_server, name="ada")
    assert _send(cli, config).exit_code == 0
    text = _part(plain_server.received[0].message, "plain")
    assert "paperdigest star ID --profile ada" in text
    assert "Sent by paperdigest" in text

    default = cli("preview")
    assert "paperdigest star ID " in default.stdout and "--profile" not in default.stdout
    assert "To stop this mail: paperdigest unsubscribe\n" in default.stdout
    assert "Sent by" not in default.stdout


def test_a_200_character_url_in_an_abstract_stays_on_one_line(cli, data_dir, tmp_path,
                                                              plain_server):
    assert len(LONG_URL) == 200
    ingest_long_url_paper(data_dir)
    config = _config(tmp_path, plain_server)
    assert _send(cli, config).exit_code == 0
    message = plain_server.received[0].message
    text = _part(message, "plain")
    assert "Supercalifragilistic" in text.split("\n1. ", 1)[1].splitlines()[0]
    assert LONG_URL in text.splitlines()[text.splitlines().index(
        next(line for line in text.splitlines() if LONG_URL in line))]
    for line in text.splitlines():
        for url in re.findall(r"https?://\S+", line):
            # Every URL in the text part ends at the end of a line or at a space.
            assert url in line
    html = _part(message, "html")
    assert LONG_URL in html
    assert "Attention &lt;Benchmarks&gt; &amp; " in html and "<Benchmarks>" not in html


def test_every_item_links_to_the_paper():
    base = dict(pk=1, id="x", abstract="", authors=(), listed=__import__("datetime").date.today())
    assert paper_link(Paper(title="T", url=None, arxiv_id="2503.11731", **base)) == \
        "https://arxiv.org/abs/2503.11731"
    assert paper_link(Paper(title="T", url="https://huggingface.co/papers/x", **base)) == \
        "https://huggingface.co/papers/x"
    assert paper_link(Paper(title="T", url="https://example.org/t", arxiv_id=None,
                            hf_page="https://huggingface.co/papers/y", **base)) == \
        "https://huggingface.co/papers/y"
    seed = paper_link(Paper(title="Dynamic Sparse No Training: LLMs & more", url=None, **base))
    assert seed == ARXIV_TITLE_SEARCH + "Dynamic+Sparse+No+Training%3A+LLMs+%26+more"
    assert paper_link(Paper(title="T", url="javascript:alert(1)", **base)).startswith(
        ARXIV_TITLE_SEARCH)


def test_the_reason_quotes_whole_words_and_repeats_no_term():
    star = Paper(pk=1, id="a", title="The Unreasonable Effectiveness of Random Pruning: "
                 "Return of the Most Naive Baseline for Sparse Training", abstract="",
                 authors=(), url=None, listed=__import__("datetime").date.today())
    pick = Pick(paper=star, score=1.0, because_of=star,
                terms=("sparse training", "training", "dnn", "dnns", "sparse"))
    quoted = re.search(r"“(.*)…”", pick.reason)[1]
    assert star.title.startswith(quoted) and star.title[len(quoted)] == " "
    assert pick.reason.endswith(" · sparse training, dnn")
    assert distinct_terms(("llms", "sparsity", "sparse")) == ["llms", "sparsity", "sparse"]


def test_the_secret_key_is_made_once_private_and_never_printed(cli, data_dir, tmp_path,
                                                              plain_server):
    config = web_config(tmp_path / "c.toml", plain_server.settings(),
                        [{"name": "ada", "email": "a@b.org"}])
    config.write_text(config.read_text().replace(f'secret_key = "{SECRET}"\n', ""))
    settings = load_settings(config)
    key = secret_key(settings, data_dir)
    path = data_dir / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert secret_key(settings, data_dir) == key and len(key) >= 32
    checked = cli("--config", str(config), "config", "check")
    assert key not in checked.output and "base_url" in checked.stdout
    dry = cli("--config", str(config), "send", "--dry-run")
    assert key not in dry.output
    # Set in the config, it is masked.
    settings_text = web_config(tmp_path / "d.toml", plain_server.settings(), [])
    masked = cli("--config", str(settings_text), "config", "check")
    assert SECRET not in masked.output and "secret_key" in masked.stdout


def _start_serve(data_dir: Path, config: Path) -> tuple[subprocess.Popen, int]:
    """`paperdigest serve` in its own process, answering on a free port. Another process
    may take the port first on a busy machine; then it tries the next one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(3):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-c", "from paperdigest.cli import main; main()",
             "--data-dir", str(data_dir), "--config", str(config), "serve", "--port",
             str(port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 60  # a loaded machine starts Python slowly
        while process.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
                return process, port
            except httpx.TransportError:
                time.sleep(0.1)
        process.kill()
        stderr = process.communicate()[1]
        assert "address already in use" in stderr, stderr
    pytest.fail("no free port for serve")


def test_serve_answers_over_real_http_and_stops_on_sigterm(cli, data_dir, tmp_path,
                                                          plain_server):
    config = _config(tmp_path, plain_server, base_url="https://papers.example.org")
    assert _send(cli, config).exit_code == 0
    text = _part(plain_server.received[0].message, "plain")
    star = links_in_text(text, "More like this")[0]
    process, port = _start_serve(data_dir, config)
    local = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=30) as client:
            # What the reverse proxy in front of papers.example.org does.
            page = client.get(star.replace("https://papers.example.org", local))
            assert page.status_code == 200
            (form,) = forms(page.text)["star"]
            done = client.post(f"{local}{form.action}", data={"form": form.token},
                               headers={"origin": "https://papers.example.org"})
            assert done.status_code == 200 and "Starred" in done.text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells of it.
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert SECRET not in stderr and "/a/" not in stderr  # no tokens in the log
    assert len(json.loads(cli("stars", "--profile", "ada", "--json").stdout)) == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[web]\nbase_url = "javascript:alert(1)"\n', "web.base_url: must be an http"),
        ('[web]\nbase_url = "https://x.org/?next=//evil"\n', "web.base_url: must be a plain"),
        ('[web]\nsecret_key = "short"\n', "web.secret_key: use at least 16"),
        ('[web]\nlink_days = 0\n', "web.link_days"),
    ],
)
def test_bad_web_settings_are_one_line_errors(cli, tmp_path, table, message):
    config = tmp_path / "c.toml"
    config.write_text(table)
    result = cli("--config", str(config), "config", "check")
    assert result.exit_code != 0 and message in result.stderr
    assert "Traceback" not in result.output and "short" not in result.output


def test_a_from_name_cannot_add_a_header():
    from datetime import datetime as moment

    from paperdigest.mailer import build_message, message_bytes
    from paperdigest.render import RenderedDigest

    message = build_message(
        RenderedDigest(subject="s", html="<p>x</p>", text="x\n"),
        sender="me@example.org", recipients=["you@example.org"], profile="p",
        now=moment(2026, 1, 1, tzinfo=UTC), from_name="Evil\r\nBcc: victim@example.com",
        unsubscribe_url="https://papers.example.org/u/" + "t" * 150,
    )
    parsed = BytesParser(policy=policy.default).parsebytes(message_bytes(message))
    assert parsed["Bcc"] is None
    assert parsed["From"].addresses[0].addr_spec == "me@example.org"
    # A long unsubscribe URL stays one readable header line, never encoded words.
    assert parsed["List-Unsubscribe"] == "<https://papers.example.org/u/" + "t" * 150 + ">"


@pytest.mark.parametrize("outbox_process", [False, True])
def test_the_batched_send_carries_the_same_links_headers_and_kept_copy(
    data_dir, tmp_path, plain_server, client_for, outbox_process
):
    # `send --all` and the daemon's groups go through bulk.send_many, whose messages may
    # be rendered and sent by a process of their own: they must be the messages the one-profile path
    # builds, links, List-Unsubscribe, From name and the copy for "view in browser".
    from paperdigest.bulk import send_many

    config = web_config(tmp_path / "config.toml", {**plain_server.settings(),
                                                   "from_name": "Lab papers"},
                        [{"name": "ada", "email": "ada@example.com"},
                         {"name": "bob", "email": "bob@example.com"}])
    settings = load_settings(config)
    with Store.open(data_dir) as store:
        report = send_many(store, settings, settings.profiles,
                           outbox_process=outbox_process)
    assert sorted(report.sent) == ["ada", "bob"], report.summary()
    assert len(plain_server.received) == 2
    client = client_for(config)
    for received in plain_server.received:
        message = received.message
        assert message["From"].addresses[0].display_name == "Lab papers"
        assert message["List-Unsubscribe"].startswith("<http://testserver/u/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        text = _part(message, "plain")
        assert len(links_in_text(text, "More like this")) >= 1
        assert "More like this" in _part(message, "html")
        (view,) = links_in_text(text, "View in your browser")
        page = client.get(view)
        assert page.status_code == 200
        assert message["Subject"].split(": ", 1)[-1] in page.text
