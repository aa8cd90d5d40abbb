"""End to end: serve the leaderboard with `streamlit run` and open it in headless Chromium.

Chromium is driven over the DevTools protocol (tornado's websocket client, which Streamlit
already depends on): load the page, wait until the rendered text shows the models and their
metrics, switch tabs by clicking them, and save screenshots (PNG) under the test's tmp folder.
Skipped, with the reason, only when no Chromium/Chrome binary is installed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_seed_table import SEED_LABELS

from dashboards import serve

pytestmark = pytest.mark.slow  # a real server and browser: ~40 s for the module

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--remote-allow-origins=*",
    "--hide-scrollbars",
    "--window-size=1500,2000",
    "--remote-debugging-port=0",
]
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
SCREENSHOT_DIR_ENV = "LEADERBOARD_SCREENSHOT_DIR"  # keep the PNGs somewhere to look at


def find_browser() -> str | None:
    env = os.environ.get("CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class DevTools:
    """The little of the Chrome DevTools protocol the test needs, synchronously."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect  # a dependency of streamlit

        self.stack = contextlib.ExitStack()
        self.conn = self.stack.enter_context(
            connect(ws_url, max_size=None, open_timeout=30, proxy=None)
        )
        self.next_id = 0

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message_id = self.next_id
        self.conn.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"DevTools {method}: no answer in {timeout:g} s")
            reply = json.loads(self.conn.recv(timeout=left))
            if reply.get("id") == message_id:  # events (no id) are skipped
                if "error" in reply:
                    raise AssertionError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        self.stack.close()


@pytest.fixture(scope="module")
def browser_binary() -> str:
    binary = find_browser()
    if binary is None:
        pytest.skip(
            "no Chromium/Chrome binary found (apt-get install chromium, or set "
            "CHROMIUM=/path/to/chrome): the browser test needs one"
        )
    return binary


@contextlib.contextmanager
def streamlit_app(db: Path, log: Path):
    """`streamlit run` of the leaderboard on ``db`` at a free port; yields its URL."""
    port = free_port()
    command = serve.command(db, port, options=["--server.address", "127.0.0.1"])
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "EVALSUITE_DB": ""}
        )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"streamlit exited: {log.read_text()[-2000:]}")
        try:
            with LOCAL.open(f"{url}/_stcore/health", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    try:
        wait_for(healthy, 60, "streamlit to serve")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def served(sample_db, tmp_path_factory):
    """The leaderboard served by `streamlit run` on the sample database."""
    db, info = sample_db
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with streamlit_app(db, log) as url:
        yield url, info


@pytest.fixture()
def page(browser_binary, tmp_path):
    profile = tmp_path / "profile"
    chrome = subprocess.Popen(
        [browser_binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tools = None
    try:
        port_file = profile / "DevToolsActivePort"
        wait_for(
            lambda: port_file.is_file() and port_file.read_text().strip(),
            30,
            "Chromium's DevTools port",
        )
        port = int(port_file.read_text().split()[0])

        def target() -> str | None:
            try:
                with LOCAL.open(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [t for t in json.load(r) if t.get("type") == "page"]
            except OSError:
                return None
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        tools = DevTools(wait_for(target, 30, "a Chromium page"))
        tools.call("Page.enable")
        tools.call(
            "Emulation.setDeviceMetricsOverride",
            width=1500,
            height=2000,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield tools
    finally:
        if tools is not None:
            tools.close()
        chrome.terminate()
        try:
            chrome.wait(timeout=10)
        except subprocess.TimeoutExpired:
            chrome.kill()
            chrome.wait()


def open_app(tools: DevTools, url: str, expected: list[str], timeout: float = 60) -> str:
    """Load ``url`` (a second time if the first load stays a skeleton) until every expected
    text is rendered; returns the page text."""
    for attempt in range(2):
        tools.call("Page.navigate", url=url)
        try:
            return wait_for(
                lambda: (t := tools.text()) and all(e in t for e in expected) and t,
                timeout / 2,
                f"{expected} on the page",
            )
        except AssertionError:
            if attempt == 1:
                raise AssertionError(f"page text was: {tools.text()[:3000]}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def charts_drawn(tools: DevTools) -> None:
    """Wait until every Altair chart on the visible page has drawn (canvas or svg)."""
    wait_for(
        lambda: tools.evaluate(
            "[...document.querySelectorAll('[data-testid=stVegaLiteChart]')]"
            ".filter(c => c.offsetParent !== null)"
            ".every(c => c.querySelector('canvas, svg'))"
        ),
        30,
        "the charts to draw",
    )
    time.sleep(0.5)


def click_tab(tools: DevTools, label: str) -> None:
    clicked = tools.evaluate(
        "(() => { const t = [...document.querySelectorAll('[role=tab]')]"
        f".find(b => b.innerText.trim() === {json.dumps(label)}); "
        "if (t) { t.click(); return true; } return false; })()"
    )
    assert clicked, f"no tab {label!r}"


def click_expander(tools: DevTools, label: str) -> None:
    """Open the expander whose title holds ``label`` (once it is drawn)."""
    wait_for(
        lambda: tools.evaluate(
            "(() => { const s = [...document.querySelectorAll('[data-testid=stExpander] summary')]"
            f".find(e => e.innerText.includes({json.dumps(label)})); "
            "if (s) { s.click(); return true; } return false; })()"
        ),
        30,
        f"the expander {label!r}",
    )


def screenshot_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get(SCREENSHOT_DIR_ENV) or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_leaderboard_in_a_real_browser(served, page, tmp_path):
    url, info = served
    text = open_app(page, url, [*info["names"], "Compared with", "Trade-off", *SEED_LABELS])
    # the verdict line is plain text
    assert "Compared with FashionCLIP-tiny" in text
    # every candidate's significant changes, from evalsuite.verdicts
    assert "footwear-ft: better on footwear article type (zero-shot accuracy +10.10 pts" in text
    assert "worse on fashion-mnist label (zero-shot accuracy -5.00 pts" in text
    assert "Trade-off" in text
    # the first view is the seed's table; the wide grid is one click away
    click_expander(page, "Every metric")
    # the table is drawn on a canvas; its accessible twin (a hidden <table>) holds the column
    # titles and the numbers behind the cells
    grid = "[data-testid=stDataFrame]"
    headers = wait_for(
        lambda: page.evaluate(
            f"[...document.querySelectorAll('{grid} th')].map(c => c.innerText).join(' | ')"
        ),
        20,
        "the overview table's column titles",
    )
    assert "Zero-shot accuracy (footwear type)" in headers and "Text search hits / 390" in headers
    cells = page.evaluate(
        f"[...document.querySelectorAll('{grid} td')].map(c => c.innerText).join(' | ')"
    )
    assert "footwear-ft" in cells and "79.9" in cells, cells[:2000]
    shots = screenshot_dir(tmp_path)
    charts_drawn(page)
    overview = page.screenshot(shots / "leaderboard-overview.png")
    assert overview.stat().st_size > 20_000
    assert overview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for tab, expected in (
        ("Benchmark", "Per-class F1"),
        ("Retrieval", "relevant in the top"),
        ("Training", "Validation"),
    ):
        click_tab(page, tab)
        wait_for(lambda expected=expected: expected in page.text(), 30, f"{tab} page")
        charts_drawn(page)
        page.screenshot(shots / f"leaderboard-{tab.lower()}.png")


def test_empty_database_page_in_a_browser(page, tmp_path):
    with streamlit_app(tmp_path / "missing.duckdb", tmp_path / "streamlit.log") as url:
        text = open_app(page, url, ["does not exist yet", "make demo"])
    assert "evalsuite score" in text
    assert not (tmp_path / "missing.duckdb").exists()


LOCKER = r"""
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: locks every other process out, as a scorer does
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
"""


def test_locked_database_shows_a_notice_then_recovers_by_itself(sample_db, page, tmp_path):
    """A writer holds the lock while the page first loads: the page says the results are
    being written, then shows the leaderboard on its own once the lock is released."""
    source, info = sample_db
    db = tmp_path / "results.duckdb"
    db.write_bytes(source.read_bytes())
    with streamlit_app(db, tmp_path / "streamlit.log") as url:
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db), "8"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert locker.stdout.readline().strip() == "locked"
            page.call("Page.navigate", url=url)
            wait_for(lambda: "being written" in page.text(), 30, "the 'being written' notice")
            assert locker.stdout.readline().strip() == "released"
            # Wait for the whole page, not its first line: the verdicts render after it.
            text = wait_for(
                lambda: (
                    (t := page.text())
                    and "Compared with" in t
                    and all(name in t for name in info["names"])
                    and t
                ),
                30,
                "the leaderboard after the lock is released",
            )
        finally:
            locker.kill()
            locker.wait()
    assert "being written" not in text
    assert all(name in text for name in info["names"])


SEED_GEOMETRY = """(() => {
  const table = document.querySelector('#seed-table table');
  if (!table || !table.querySelector('th[data-model]')) return null;
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.top]; };
  const scrolling = [];  // the table and every box around it: none may scroll sideways
  for (let e = table; e; e = e.parentElement) {
    if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible')
      scrolling.push(e.tagName + '.' + e.className);
  }
  return {
    viewport: window.innerWidth,
    page: document.documentElement.scrollWidth,
    table: box(table),
    models: [...table.querySelectorAll('th[data-model]')].map(e => [e.dataset.model, ...box(e)]),
    rows: [...table.querySelectorAll('tr[data-row]')].map(e => [e.dataset.row, ...box(e)]),
    scrolling,
  };
})()"""
FIRST_VIEW_WIDTH = 1400


def seed_table_fits(page: DevTools, width: int = FIRST_VIEW_WIDTH) -> dict[str, Any]:
    """The seed table's rows and model columns, once drawn; asserts that they lie within a
    ``width``-px viewport with nothing scrolling sideways."""
    geo = wait_for(lambda: page.evaluate(SEED_GEOMETRY), 30, "the seed table")
    assert geo["viewport"] == width
    assert geo["page"] <= width, f"the page scrolls sideways: {geo['page']} px"
    assert not geo["scrolling"], f"boxes scroll sideways: {geo['scrolling']}"
    left, right, _ = geo["table"]
    assert left >= 0 and right <= width, geo["table"]
    for name, left, right, _ in geo["models"] + geo["rows"]:
        assert 0 <= left < right <= width, (name, left, right)
    return geo


def test_first_view_seed_table_fits_1400_px(served, page, tmp_path):
    """The seed's table is the first thing on the page: every row and every model column
    (the baseline first) within 1400 px, without scrolling sideways."""
    url, info = served
    page.call(
        "Emulation.setDeviceMetricsOverride",
        width=FIRST_VIEW_WIDTH, height=1600, deviceScaleFactor=1, mobile=False,
    )  # fmt: skip
    open_app(page, url, [*SEED_LABELS, *info["names"], "Compared with"])
    geo = seed_table_fits(page)
    assert [row[0] for row in geo["rows"]][: len(SEED_LABELS)] == SEED_LABELS
    models = [m[0] for m in geo["models"]]
    assert models[0] == "FashionCLIP-tiny" and set(models) == set(info["names"])
    assert geo["table"][2] < 900, "the table starts near the top of the page"
    shot = page.screenshot(screenshot_dir(tmp_path) / "leaderboard-seed-table.png")
    assert shot.stat().st_size > 20_000
