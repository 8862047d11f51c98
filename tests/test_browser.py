"""In a real browser: Debian's headless Chromium, driven by selenium through chromedriver.

A digest is really sent to a local SMTP server (aiosmtpd) with `web.base_url` pointing at
the web app served by uvicorn on localhost; the browser opens the received HTML, follows
its links and presses the buttons, and the store is checked. Layout is measured at 375 px
and 600 px. Screenshots go to test-screenshots/ (git-ignored).

Skipped, with the reason, only when chromium or chromedriver is not installed
(`apt-get install chromium chromium-driver`; .ci/run installs them).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.mail_fixtures import QUIET
from tests.web_fixtures import ingest_long_url_paper, links_in_text, web_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT = 60  # seconds; generous, as the machine running the tests may be busy
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-screenshots"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)

pytestmark = [
    *QUIET,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Debian's chromium and chromium-driver "
                              "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: "
                                    "pip install '.[test]'")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def viewport(driver, width: int, height: int = 900) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
    )


def screenshot(driver, name: str) -> Path:
    """The whole page, however tall."""
    SCREENSHOTS.mkdir(exist_ok=True)
    width = driver.execute_script("return window.innerWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    viewport(driver, width, min(height, 6000))
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    viewport(driver, width)
    return path


def overflow(driver) -> dict[str, object]:
    """How wide the document is against the viewport, and any element sticking out."""
    return driver.execute_script(
        """
        const width = window.innerWidth;
        const wide = [];
        for (const el of document.body.querySelectorAll('*')) {
          const box = el.getBoundingClientRect();
          if (box.width > 0 && box.right > width + 0.5) {
            wide.push(el.tagName + ' ' + Math.round(box.right) + ' ' +
                      (el.textContent || '').trim().slice(0, 40));
          }
        }
        return {document: document.documentElement.scrollWidth, viewport: width,
                wide: wide.slice(0, 5)};
        """
    )


@pytest.fixture
def served(data_dir, tmp_path, plain_server):
    """`paperdigest serve`'s app on a real port, and a config whose links point at it."""
    import uvicorn

    from paperdigest.config import load_settings
    from paperdigest.web.app import create_app
    from paperdigest.web.links import signer_for

    # Bound here and handed to uvicorn: no other process can take the port in between.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = web_config(tmp_path / "config.toml", plain_server.settings(),
                        [{"name": "ada", "email": "ada@example.com"}], base_url=base)
    settings = load_settings(config)
    app = create_app(settings, data_dir, signer_for(settings, data_dir))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield config
    server.should_exit = True
    thread.join(10)
    sock.close()


def _received(cli, config, plain_server, tmp_path) -> tuple[Path, str]:
    """Send the digest; the received HTML part as a file to open, and the text part."""
    result = cli("--config", str(config), "send")
    assert result.exit_code == 0, result.output
    message = plain_server.received[-1].message
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    path = tmp_path / "received.html"
    path.write_text(html, encoding="utf-8")
    return path, text


def _click_link(driver, text: str, index: int = 0) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    link = driver.find_elements(By.LINK_TEXT, text)[index]
    link.click()
    WebDriverWait(driver, WAIT).until(expected_conditions.staleness_of(link))
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _status(driver) -> str:
    """The confirmation line of the page a button led to (waits for it)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[role=status]"))
        ).text
    except TimeoutException:
        pytest.fail(f"no confirmation at {driver.current_url}: {driver.page_source[-800:]}")


def _title(driver, number: int) -> str:
    """The title of item `number` in the email, as numbered there."""
    from selenium.webdriver.common.by import By

    path = f"//p[starts-with(normalize-space(.), '{number}. ')]/a"
    return driver.find_element(By.XPATH, path).text


def _press(driver, action: str) -> None:
    """Press the button and wait for the page its form posts to."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    button = driver.find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]')
    button.click()
    WebDriverWait(driver, WAIT).until(expected_conditions.staleness_of(button))
    WebDriverWait(driver, WAIT).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def test_more_like_this_and_not_for_me_from_a_received_message(browser, served, cli, data_dir,
                                                               plain_server, tmp_path):
    from selenium.webdriver.common.by import By

    received, _ = _received(cli, served, plain_server, tmp_path)
    browser.get(received.as_uri())
    first = _title(browser, 1)
    _click_link(browser, "More like this", 0)
    assert "More like this" in browser.find_element(By.TAG_NAME, "h1").text
    assert json.loads(cli("stars", "--profile", "ada", "--json").stdout) == []  # GET: nothing
    viewport(browser, 375)
    screenshot(browser, "action-page-375")
    viewport(browser, 600)
    screenshot(browser, "action-page-600")
    _press(browser, "star")
    assert "Starred" in _status(browser)
    screenshot(browser, "action-done-600")

    stars = json.loads(cli("stars", "--profile", "ada", "--json").stdout)
    assert [s["title"] for s in stars] == [first]
    ranked = json.loads(cli("recommend", "--profile", "ada", "--json").stdout)
    assert ranked and all(r["reason"].startswith("like “") for r in ranked)

    browser.get(received.as_uri())
    second = _title(browser, 2)
    _click_link(browser, "Not for me", 1)
    _press(browser, "dismiss")
    assert "Dismissed" in _status(browser)
    ranked = json.loads(cli("recommend", "--profile", "ada", "--json", "-n", "50").stdout)
    assert second not in [r["title"] for r in ranked]

    _press(browser, "undo")  # and undo works from the confirmation page
    assert "taken back" in _status(browser)
    from paperdigest.store import Store

    with Store.open(data_dir) as store:
        assert store.dismissed_pks("ada") == []


def test_a_tampered_link_shows_why_and_changes_nothing(browser, served, cli, data_dir,
                                                       plain_server, tmp_path):
    from selenium.webdriver.common.by import By

    _, text = _received(cli, served, plain_server, tmp_path)
    link = links_in_text(text, "More like this")[0]
    base, token = link.rsplit("/", 1)
    payload, rest = token.split(".", 1)
    tampered = f"{base}/{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{rest}"

    browser.get(tampered)
    assert browser.find_element(By.TAG_NAME, "h1").text == "This link is not valid"
    assert browser.find_elements(By.TAG_NAME, "button") == []
    screenshot(browser, "tampered-link")
    assert json.loads(cli("stars", "--profile", "ada", "--json").stdout) == []


def test_unsubscribe_from_the_footer_stops_the_mail(browser, served, cli, data_dir,
                                                    plain_server, tmp_path):

    received, _ = _received(cli, served, plain_server, tmp_path)
    browser.get(received.as_uri())
    sent = len(plain_server.received)
    _click_link(browser, "Unsubscribe")
    _press(browser, "unsubscribe")
    assert "no more digests" in _status(browser)
    skipped = cli("--config", str(served), "send", "--force")
    assert skipped.exit_code == 1 and "unsubscribed" in skipped.stderr
    assert len(plain_server.received) == sent


@pytest.mark.parametrize("width", [375, 600])
def test_the_digest_fits_the_screen(browser, served, cli, data_dir, plain_server, tmp_path,
                                    width):
    title = ingest_long_url_paper(data_dir)  # a 200-character URL in its abstract
    follow = cli("--config", str(served), "follow", "keyword", "taxi", "--profile", "ada")
    assert follow.exit_code == 0
    received, _ = _received(cli, served, plain_server, tmp_path)
    viewport(browser, width)
    browser.get(received.as_uri())
    assert title[:30] in browser.page_source
    assert "Followed</h2>" in browser.page_source

    measured = overflow(browser)
    screenshot(browser, f"email-{width}")
    assert measured["document"] <= measured["viewport"] == width, measured
    assert measured["wide"] == [], measured


@pytest.mark.parametrize("width", [375, 600])
def test_the_web_pages_fit_the_screen(browser, served, cli, data_dir, plain_server, tmp_path,
                                      width):
    title = ingest_long_url_paper(data_dir)
    _, text = _received(cli, served, plain_server, tmp_path)
    viewport(browser, width)
    browser.get(links_in_text(text, "More like this")[0])
    assert title[:30] in browser.page_source
    assert overflow(browser)["wide"] == []
    browser.get(links_in_text(text, "Your stars and dismissals, and search")[0] + "?q=sparse")
    assert overflow(browser)["wide"] == []
    screenshot(browser, f"papers-page-{width}")


def test_a_personalised_digest_fits_too(browser, served, cli, data_dir, plain_server,
                                        tmp_path):
    """A followed paper and three picks for a reader with stars: the screenshots in docs/
    come from here."""
    star = cli("--config", str(served), "star", "--profile", "ada", "3e931bc0", "7b4481eb")
    assert star.exit_code == 0
    follow = cli("--config", str(served), "follow", "keyword", "taxi", "--profile", "ada")
    assert follow.exit_code == 0
    config = served.read_text().replace("[digest]\n", "[digest]\npicks = 3\ntrending = 0\n")
    served.write_text(config)
    received, _ = _received(cli, served, plain_server, tmp_path)
    for width in (600, 375):
        viewport(browser, width)
        browser.get(received.as_uri())
        measured = overflow(browser)
        screenshot(browser, f"readme-email-{width}")
        assert measured["document"] <= width and measured["wide"] == [], measured
    _click_link(browser, "More like this", 0)
    viewport(browser, 375, 640)
    screenshot(browser, "readme-action-page-375")
    assert overflow(browser)["wide"] == []
