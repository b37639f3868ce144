"""The page at / in headless Chromium: it classifies and explains a hostile text, which stays text.

Needs the playwright Python package and a system Chromium (`apt-get install chromium`; `playwright install` is not
needed). SENTITUNE_SCREENSHOT=docs/images/serve-page.png also saves a screenshot of the page after a plain review,
scored by SENTITUNE_PAGE_MODEL (a run or model folder) when set, else by the tiny random test model.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")  # as benchmarks/check_report_render.py
HOSTILE = "A wonderful film <img src=x onerror=window.pwned=1> <script>window.pwned=2</script> &lt;b&gt;bold&lt;/b&gt;"
REVIEW = "The acting was wonderful and the music moving, but the ending felt rushed and a little dull."


def find_chromium() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tiny_model) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread; its base URL."""
    import uvicorn

    from sentitune.inference.serve import create_app

    model = os.environ.get("SENTITUNE_PAGE_MODEL") or tiny_model
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(model), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{listening.getsockname()[1]}/"
    server.should_exit = True
    thread.join(30)
    listening.close()


@pytest.fixture
def page(browser, served):
    opened = browser.new_page(viewport={"width": 900, "height": 760})
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    opened.goto(served)
    opened.wait_for_selector("#model:has-text('classes')")  # wait_for_function would eval, which the CSP forbids
    yield opened
    opened.close()
    assert not [p for p in problems if "status of 422" not in p], problems  # a 422 is one test's purpose


def classify(page, text: str) -> None:
    # set as a script would: fill() types, and typing stops at the text box's maxlength
    page.eval_on_selector("#text", "(box, text) => { box.value = text; }", text)
    page.click("#classify")
    page.wait_for_selector("body[data-state=done]", timeout=120_000)


def test_a_hostile_text_is_classified_explained_and_stays_text(page, served):
    from sentitune.inference.explain import background

    labels = httpx.get(served + "health").json()["labels"]
    classify(page, HOSTILE)
    assert not page.is_visible("#error"), page.text_content("#error")
    assert page.text_content("#label") in labels
    rows = page.locator(".bar-row")
    assert [rows.nth(i).get_attribute("data-label") for i in range(rows.count())] == labels
    widths = page.eval_on_selector_all(".bar", "bars => bars.map(b => parseFloat(b.style.width))")
    assert all(0 <= w <= 100 for w in widths) and abs(sum(widths) - 100) < 0.5
    words = page.locator("#words span")
    assert words.all_text_contents() == HOSTILE.replace("&lt;", "<").replace("&gt;", ">").split()
    for i in range(words.count()):  # coloured exactly as explain.background colours the same score
        colour = words.nth(i).evaluate("w => w.style.backgroundColor")
        assert colour == "rgb({}, {}, {})".format(*background(float(words.nth(i).get_attribute("data-score"))))
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert page.locator("img, script:not([src]), b").count() == 0
    if os.environ.get("SENTITUNE_SCREENSHOT"):
        classify(page, REVIEW)
        shot = Path(os.environ["SENTITUNE_SCREENSHOT"])
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)


def test_a_rejected_text_shows_the_server_message(page):
    classify(page, "y" * 20_001)  # longer than the server takes (maxlength stops only typing)
    assert page.is_visible("#error") and "(422)" in page.text_content("#error")
    assert "over 20000 characters" in page.text_content("#error")
    assert page.is_hidden("#result")
