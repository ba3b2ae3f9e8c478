"""End to end in headless Chromium (Debian's package, driven by playwright): type a query, see results, screenshot."""

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from engine.api.facade import Engine
from engine.server.app import create_app
from ingest.pipeline import IngestOptions
from tests.corpus import good_files

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")]


@contextlib.contextmanager
def _served(store):
    """A live uvicorn server for ``store`` on a free loopback port, stopped on leaving; yields its URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    good_files(root / "media", n_images=6, n_audio=2, n_texts=3)
    with Engine.open(root / "store", "tiny-random") as engine:
        assert engine.ingest([root / "media"], IngestOptions(workers=0)).failed == 0
    with _served(root / "store") as url:
        yield url, root


def wait_until(page, expression: str, timeout: float = 30.0) -> None:
    """Poll a JS expression from Python until truthy.

    page.wait_for_function polls with eval inside the page, which the app's CSP (script-src 'self') rightly
    blocks; page.evaluate goes through the DevTools protocol and is not subject to it.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {expression}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def page():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        tab = browser.new_page(viewport={"width": 1100, "height": 800})
        yield tab
        browser.close()


def test_type_a_query_and_see_thumbnails(live_server, page, tmp_path_factory):
    base, _ = live_server
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base + "/")
    wait_until(page, "document.querySelector('#stats').textContent.includes('preset')")
    page.keyboard.type("a red square above a blue circle")  # the query box has focus on load
    page.keyboard.press("Enter")
    page.wait_for_selector("#results li.card img", timeout=30_000)
    wait_until(page, "[...document.querySelectorAll('#results img')].some(i => i.complete && i.naturalWidth > 0)")
    cards = page.locator("#results li.card")
    assert cards.count() == 11  # 6 images, 2 sounds, 3 notes
    assert page.locator("#results audio").count() == 2
    assert "results in" in page.locator("#status").inner_text()
    assert page.locator("#results .snippet").first.inner_text()
    folder = Path(os.environ.get("XMODAL_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "xmodal-search.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\nscreenshot: {shot}")
    assert shot.stat().st_size > 5000
    assert errors == []


def test_target_toggle_and_file_query_from_the_keyboard(live_server, page):
    base, root = live_server
    page.goto(base + "/")
    page.locator("input[name=target][value=audio]").uncheck()
    page.locator("input[name=target][value=text]").uncheck()
    page.locator("#file").set_input_files(str(root / "media" / "images" / "img_2.jpg"))
    wait_until(page, "document.querySelector('#status').textContent.includes('results in')")
    names = page.locator("#results .name").all_inner_texts()
    assert names[0].endswith("img_2.jpg") and len(names) == 6
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "go"


def test_bad_k_clears_old_results_and_scores_are_labelled(live_server, page):
    base, root = live_server
    page.goto(base + "/")
    page.locator("#q").fill("a red square")
    page.keyboard.press("Enter")
    wait_until(page, "document.querySelector('#status').textContent.includes('results in')")
    first = page.locator("#results li.card").first.locator(".scores span")
    assert first.first.inner_text().startswith("fused score ")  # the ordering score comes first, named
    assert "ordered by" in first.first.get_attribute("title")
    assert "cosine" in first.nth(1).get_attribute("title")
    page.locator("#k").fill("0")  # once silently turned into 24; a chosen file searches at once, past the form's checks
    page.locator("#file").set_input_files(str(root / "media" / "images" / "img_2.jpg"))
    wait_until(page, "document.querySelector('#status').classList.contains('error')")
    assert "from 1 to 200" in page.locator("#status").inner_text()
    assert page.locator("#results li.card").count() == 0


@pytest.fixture(scope="module")
def video_server(tmp_path_factory):
    """A store holding one generated WebM (tests/videos.py: a picture shown from 3 s to 6 s) and a photo."""

    from engine.datasets.videos import write_video
    from tests.videos import SHOTS, SOUNDS, picture

    root = tmp_path_factory.mktemp("browser-video")
    (root / "media").mkdir()
    write_video(root / "media" / "scenes.webm", SHOTS, SOUNDS)
    picture(1).save(root / "query.png")
    with Engine.open(root / "store", "tiny-random") as engine:
        assert engine.ingest([root / "media"], IngestOptions(workers=0)).failed == 0
    with _served(root / "store") as url:
        yield url, root


def test_a_video_result_plays_from_the_matched_moment(video_server, page):
    base, root = video_server
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + "/")
    for kind in ("image", "audio", "text"):
        page.locator(f"input[name=target][value={kind}]").uncheck()
    page.locator("#file").set_input_files(str(root / "query.png"))  # the picture the video shows from 3 s
    wait_until(page, "document.querySelector('#status').textContent.includes('results in')")
    card = page.locator("#results li.card").first
    assert "video · frame at 0:03" in card.locator(".badge").inner_text()  # the result names the moment
    video = card.locator("video")
    assert video.get_attribute("src").endswith("#t=3.00") and "t=3.00" in video.get_attribute("poster")
    wait_until(page, "(() => { const v = document.querySelector('#results video');"
                     " return v.readyState >= 1 && v.duration > 8; })()")  # metadata read through range requests
    wait_until(page, "(() => { const img = new Image(); img.src = document.querySelector('#results video').poster;"
                     " window.__poster = img; return true; })()")
    wait_until(page, "window.__poster.complete && window.__poster.naturalWidth > 0")  # the matched frame loads
    start = page.evaluate("document.querySelector('#results video').currentTime")
    assert abs(start - 3.0) < 0.5  # before play: the player sits at the matched second (the #t= fragment)
    page.evaluate("(() => { const v = document.querySelector('#results video'); v.muted = true; v.play(); })()")
    began = time.monotonic()
    wait_until(page, "document.querySelector('#results video').currentTime > 3.3")
    at = page.evaluate("document.querySelector('#results video').currentTime")
    assert 3.3 < at < 6.0 and time.monotonic() - began < at  # played on from 3 s: less time passed than 0 -> at
    page.evaluate("document.querySelector('#results video').pause()")
    assert errors == []
