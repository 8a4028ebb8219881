"""End to end: `streamlit run app.py` on localhost, driven in headless Chromium as a class would use it.

Debian's chromium package is the browser (Playwright's own browser download cannot work here). The
tests skip, saying so, only where no Chromium is installed. Screenshots land in test-artifacts/ only
(git-ignored): running the tests changes no tracked file. `python tests/refresh_screenshots.py` copies
them into docs/screenshots/ for the README, deliberately.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import user_environ

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"No Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install chromium)")

# A comparison small enough to train in a few seconds on 2 cores.
SMALL = {"model": "mlp", "init": "xavier_uniform", "epochs": "2", "train_size": "3000", "batch_size": "50",
         "compare": "lr", "values": "0.01,0.001"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache_dir = tmp / "cache"
        self.log_path = tmp / "streamlit.log"
        self.env = {**user_environ(), "MNIST_CACHE_DIR": str(self.cache_dir), **env}
        self.env.setdefault("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))

    def __enter__(self) -> "Server":
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [os.environ.get("LAB_SERVER_PYTHON", sys.executable), "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not start: {self.log_path.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def rss_mb(self) -> float:
        """Resident memory of the server process, in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cached_runs(self) -> list[Path]:
        return sorted((self.cache_dir / "runs").glob("*.safetensors"))


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Server(tmp_path_factory.mktemp("e2e")) as s:
        yield s


def new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    return context.new_page()


IDLE = """() => !document.querySelector('[data-testid="stStatusWidget"]')
             && !!document.querySelector('[data-testid="stMain"] h1')"""


def settle(page, timeout: float = 120) -> None:
    """Waits until the app has drawn its page and finished its script run, and stays so for a moment
    (the running indicator comes and goes between the reruns a click can cause)."""
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        if page.evaluate(IDLE):
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since > 1.5:
                return
        else:
            quiet_since = None
        page.wait_for_timeout(200)
    raise TimeoutError(f"the app was still running after {timeout} s")


def no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()


def shot(page, name: str, height: int = 2000) -> None:
    # Streamlit scrolls inside its own container, so a full-page shot is only as tall as the window.
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_timeout(1500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def nav_labels(page) -> list[str]:
    # each link reads "<material icon name>\n\n<label>"
    return [t.strip().splitlines()[-1] for t in page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()]


def table_text(page, expect: str, timeout: float = 20) -> str:
    """The text of the st.dataframes on the page, once `expect` is in it (the grid is drawn on a canvas;
    its accessible copy behind fills in a moment after the page settles)."""
    script = """() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"]'))
                       .map(table => table.textContent).join('\\n')"""
    deadline = time.time() + timeout
    while expect.lower() not in (text := page.evaluate(script)).lower() and time.time() < deadline:
        page.wait_for_timeout(250)
    return text


def comparison_url(server: Server, **changes: str) -> str:
    return f"{server.url}/mlp?{urlencode({**SMALL, **changes})}"


def run_comparison(page, timeout: float = 180) -> None:
    """Presses Run and waits for the results: the watcher reruns the page when the trainings end."""
    page.get_by_role("button", name="Run comparison").click()
    wait_done(page, timeout)


def wait_done(page, timeout: float = 180) -> None:
    page.get_by_text(re.compile(r"Done: \d+ run\(s\) trained")).first.wait_for(timeout=timeout * 1000)
    settle(page, timeout)


def open_expander(page, label: str) -> None:
    page.locator('[data-testid="stExpander"] summary').filter(has_text=label).first.click()


def go_to(page, label: str) -> None:
    """Switches page the way a student does: the sidebar's navigation link."""
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=label).first.click()
    page.wait_for_timeout(500)
    settle(page)


# -- the tests, in the order a class meets the app -----------------------------------------------

def test_a_shared_link_works_as_the_first_visit_to_a_fresh_server(server, browser):
    page = new_page(browser)
    page.goto(comparison_url(server))
    settle(page)
    no_errors(page)
    assert nav_labels(page) == ["Home", "MLP", "CNN", "Draw", "Study", "Explore"]
    assert page.get_by_role("button", name="Run comparison").is_visible()
    page.context.close()


@pytest.mark.parametrize("path, title", [("", "MNIST hyperparameter lab"), ("mlp", "MLP"), ("cnn", "CNN"),
                                         ("draw", "Draw a digit")])
def test_each_page_opens_without_an_error(server, browser, path, title):
    page = new_page(browser)
    page.goto(f"{server.url}/{path}")
    settle(page)
    no_errors(page)
    assert title in page.locator("h1").first.inner_text()
    if path == "cnn":
        open_expander(page, "Shape flow")  # closed: the plan stays short
        assert "flatten" in table_text(page, "flatten")  # the shape-flow table
    page.context.close()


def test_the_draw_page_trains_a_starter_model_and_reads_a_drawn_digit(server, browser):
    page = new_page(browser)
    page.goto(f"{server.url}/draw")
    settle(page)
    page.get_by_role("button", name="Train a starter model").click()
    canvas = page.locator(".st-key-draw-canvas canvas").last  # the component's drawing layer (in a shadow root)
    canvas.wait_for(timeout=300_000)  # the service trains it; the page reruns when it is done
    settle(page)
    no_errors(page)
    box = canvas.bounding_box()
    # a "1": one vertical stroke, drawn with real mouse events on the canvas
    x, top = box["x"] + 140, box["y"] + 40
    page.mouse.move(x, top)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + step * 0.5, top + step * 10)
    page.mouse.up()
    page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
    settle(page)
    no_errors(page)
    reads = page.locator('[data-testid="stMetricValue"]').first.inner_text().strip()
    assert reads == "1", f"the starter model read {reads!r}"
    assert page.get_by_text("What the models see").is_visible()
    shot(page, "draw", height=1300)
    page.context.close()


def test_a_small_comparison_runs_and_shows_charts_and_timing(server, browser):
    page = new_page(browser)
    page.goto(comparison_url(server))
    settle(page)
    run_comparison(page)
    no_errors(page)
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 4  # train loss, test loss, test accuracy, final
    assert page.get_by_role("heading", name="Time").is_visible()
    assert "steps / epoch" in table_text(page, "steps / epoch")
    shot(page, "mlp")
    page.context.close()


def test_a_shared_link_in_a_fresh_browser_shows_the_same_results_from_the_cache(server, browser):
    before = server.cached_runs()
    page = new_page(browser)
    page.goto(comparison_url(server))
    settle(page)
    no_errors(page)
    page.get_by_text("2 of 2").first.wait_for(timeout=30_000)  # both runs already cached
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 4
    assert server.cached_runs() == before  # nothing was trained to show it
    page.context.close()


def test_the_cnn_page_shows_the_seed_stride_experiment_shapes(server, browser):
    page = new_page(browser)
    page.goto(f"{server.url}/cnn?{urlencode({'model': 'cnn', 'epochs': '2', 'train_size': '2000', 'test_size': '1000', 'compare': 'stride', 'values': '1,5'})}")
    settle(page)
    no_errors(page)
    open_expander(page, "Shape flow")
    flow = table_text(page, "2048")
    assert "2048" in flow and "128" in flow  # stride 1 and stride 5 flatten to these
    run_comparison(page)
    no_errors(page)
    shot(page, "cnn")
    page.context.close()


def test_home_page_lists_the_cached_runs(server, browser):
    page = new_page(browser)
    page.goto(server.url)
    settle(page)
    no_errors(page)
    assert page.get_by_text("Runs in the cache").is_visible()
    assert page.get_by_text("Training now on this server").is_visible()
    assert page.get_by_text("MNIST found").is_visible()
    if server.cached_runs():  # the earlier tests of this module trained some
        assert "compare" in table_text(page, "compare")  # each cached run opens its comparison
    shot(page, "home", height=1000)
    page.context.close()


def test_five_users_asking_for_the_same_new_comparison_get_it_trained_once(server, browser):
    url = comparison_url(server, seed="4242", epochs="3")
    pages = [new_page(browser) for _ in range(5)]
    for page in pages:
        page.goto(url)
    for page in pages:
        settle(page)
    before = len(server.cached_runs())
    for page in pages:
        page.get_by_role("button", name="Run comparison").click()
    watched = 0
    for n, page in enumerate(pages):
        try:  # every session gets the results without pressing Run again
            page.locator('[data-testid="stVegaLiteChart"]').nth(3).wait_for(timeout=240_000)
        except playwright_api.TimeoutError:
            shot(page, f"five-users-{n}-stuck", height=1200)  # what the student saw, to look at
            raise
        settle(page)
        no_errors(page)
        # a session that asked while the runs trained watched the same trainings (one job per run, whoever
        # asked first owns it; "Done" counts those it watched); one that asked after they ended got the cache
        watched += page.get_by_text(re.compile(r"Done: \d run\(s\) trained")).count() > 0
        page.context.close()
    assert watched >= 1
    assert len(server.cached_runs()) == before + 2  # trained once


def test_clicking_around_while_training_never_loses_it(server, browser):
    page = new_page(browser)
    page.goto(comparison_url(server, seed="5151", epochs="6", train_size="20000"))
    settle(page)
    page.get_by_role("button", name="Run comparison").click()
    page.get_by_text(re.compile(r"Overall: \d+%")).first.wait_for(timeout=60_000)  # the watcher
    shot(page, "training-watcher", height=1200)
    go_to(page, "Draw")  # leave while it trains
    no_errors(page)
    go_to(page, "MLP")   # come back: the running job, then its results, without pressing Run again
    no_errors(page)
    wait_done(page, 300)
    no_errors(page)
    assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 4
    shot(page, "results-after-switching-pages", height=1200)
    page.context.close()


def test_a_closed_tab_does_not_stop_its_training_and_a_classmate_watches_it(server, browser):
    before = len(server.cached_runs())
    url = comparison_url(server, seed="99", epochs="20", train_size="30000", values="0.002")
    first = new_page(browser)
    first.goto(url)
    settle(first)
    first.get_by_role("button", name="Run comparison").click()
    first.get_by_text(re.compile(r"Overall: \d+%")).first.wait_for(timeout=60_000)
    # The same student in a second tab, and after a reload: still their job, with their Cancel.
    second = first.context.new_page()
    second.goto(url)
    second.get_by_role("button", name="Cancel").first.wait_for(timeout=60_000)
    assert second.get_by_text("started by someone else").count() == 0
    first.reload()
    first.get_by_role("button", name="Cancel").first.wait_for(timeout=60_000)
    first.context.close()  # the student closes the tabs: the training goes on

    classmate = new_page(browser)
    classmate.goto(url)  # the same link, another session: it finds the running job by its run keys
    classmate.get_by_text("started by someone else").first.wait_for(timeout=60_000)
    assert classmate.get_by_role("button", name="Cancel").count() == 0  # only the owner may cancel
    shot(classmate, "watching-a-classmates-training", height=1200)
    classmate.get_by_role("heading", name="Results").wait_for(timeout=600_000)
    settle(classmate)
    no_errors(classmate)
    assert len(server.cached_runs()) == before + 1
    classmate.context.close()


def test_the_draw_page_shows_inside_three_cnns_side_by_side(browser, mnist, tmp_path):
    # A server of its own, whose cache holds just the seed's CNN at stride 1, 2 and 5 (trained here on 1,000
    # digits): the Draw page asks the best of each kind, so these three are the ones shown side by side.
    from mnist_core import RunCache, RunConfig, run_sweep
    with Server(tmp_path) as server:
        base = RunConfig(model="cnn", epochs=1, train_size=1000, test_size=100, seed=3)
        run_sweep([base, base.replace(stride=2), base.replace(stride=5)], mnist, RunCache(server.cache_dir / "runs"))
        page = new_page(browser)
        page.goto(f"{server.url}/draw")
        settle(page)
        canvas = page.locator(".st-key-draw-canvas canvas").last
        canvas.wait_for(timeout=30_000)
        box = canvas.bounding_box()
        # a "7": a bar across the top, then a stroke down to the bottom left
        points = [(80 + 6 * i, 60) for i in range(21)] + [(200 - 4 * i, 60 + 9 * i) for i in range(1, 21)]
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.up()
        page.get_by_text("CNN: layer by layer").wait_for(timeout=60_000)
        settle(page)
        no_errors(page)
        for shape in ("conv1 · 32x28x28", "conv1 · 32x6x6", "pool3 · 128x4x4", "pool3 · 128x1x1"):
            assert page.get_by_text(shape).first.is_visible(), shape
        # three runs' captions of one layer, each inside its own column: none runs into its neighbour
        captions = [page.get_by_text(re.compile(rf"^conv1 · 32x{n}x{n} ")).first.bounding_box() for n in (28, 14, 6)]
        for left, right in zip(captions, captions[1:]):
            assert left["x"] + left["width"] <= right["x"], (left, right)
        # the side-by-side view only, into test-artifacts/ (the README's screenshots are refreshed elsewhere)
        page.set_viewport_size({"width": 1400, "height": 6000})
        page.wait_for_timeout(2000)
        top = page.get_by_role("heading", name="CNN: layer by layer").bounding_box()["y"]
        bottom = page.get_by_text("The learned first-layer filters").bounding_box()["y"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "inside-cnn-stride-1-vs-5.png"),
                        clip={"x": 0, "y": top - 10, "width": 1400, "height": bottom - top + 400})
        page.context.close()
