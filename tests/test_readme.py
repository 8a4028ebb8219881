"""The README, typed as a newcomer types it: the test commands are .ci/run's, the app's command opens every
page in English and Korean, and the Dask recipe trains a sweep on a scheduler and a worker that import
mnist_core the normal way (installed by requirements.txt; no PYTHONPATH).

Run in CI's fresh virtual environment, this is the newcomer's machine: the environment the README's first
two lines made. Servers bind to 127.0.0.1; every process started here is stopped by its process group."""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import stop, user_environ

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands(heading: str, number: int = 0) -> list[str]:
    """The command lines of the `number`-th bash block after `heading` (continuations joined)."""
    section = README[README.index(heading):]
    block = re.findall(r"```bash\n(.*?)```", section, re.S)[number]
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def typed_env(tmp: Path, **more: str) -> dict[str, str]:
    """A user's shell in the README's environment: its `bin` first on PATH (as `activate` does) and no
    PYTHONPATH, so mnist_core must come from the install."""
    env = {k: v for k, v in user_environ().items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "MNIST_CACHE_DIR": str(tmp / "cache"), **more}


def start(line: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Types `line` (without a trailing `&`) into bash, in its own process group."""
    with open(log, "w") as out:
        return subprocess.Popen(["bash", "-c", line.rstrip().rstrip("&")], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def test_ci_runs_exactly_the_readmes_test_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    ci_block = ci[ci.index("# --- the README's test commands"):ci.index("# --- end of the README's commands")]
    ci_lines = [line for line in ci_block.splitlines()[1:] if line.strip()]
    # CI's environment lives outside the clone (a temp folder); a user's is .venv in the project
    assert [line.replace('"$venv"', ".venv") for line in ci_lines] == commands("## Run the tests")


def test_the_readmes_app_command_opens_every_page_in_english_and_korean(tmp_path):
    from test_e2e import BROWSER_ARGS, CHROMIUM, no_errors, settle

    from mnist_core.i18n import gettext
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"No Chromium at {CHROMIUM}: install Debian's chromium package")
    venv, install, run = commands("## Run the app")
    assert (venv, install) == ("python3 -m venv .venv && . .venv/bin/activate", "pip install -r requirements.txt")
    port = free_port()
    # Where it listens is Streamlit's configuration, set here by environment so the line stays as typed.
    env = typed_env(tmp_path, STREAMLIT_SERVER_ADDRESS="127.0.0.1", STREAMLIT_SERVER_PORT=str(port),
                    STREAMLIT_SERVER_HEADLESS="true", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    server = start(run, env, tmp_path / "streamlit.log")
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (tmp_path / "streamlit.log").read_text()[-3000:]
                time.sleep(0.5)
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            for lang in ("en", "ko"):
                home = gettext("MNIST hyperparameter lab", lang)
                titles = []
                for path in ("", "mlp", "cnn", "draw", "study", "explore"):
                    page.goto(f"http://127.0.0.1:{port}/{path}?lang={lang}")
                    settle(page)
                    no_errors(page)
                    assert "This app has encountered an error" not in page.inner_text("body")
                    titles.append(page.locator("h1").first.inner_text())
                assert home in titles[0] and len(set(titles)) == 6, titles
            browser.close()
    finally:
        stop(server)
    assert "Traceback" not in (tmp_path / "streamlit.log").read_text()


def test_the_readmes_dask_recipe_as_typed_trains_a_sweep(tmp_path):
    pytest.importorskip("distributed")
    scheduler_line, worker_line, app_line, sweep_line = commands("**More machines: Dask.**")
    assert scheduler_line.startswith("dask scheduler") and "dask worker" in worker_line
    assert "streamlit run app.py" in app_line and "--dask tcp://127.0.0.1:8786" in sweep_line
    port = str(free_port())  # the README's 8786 may be taken on a shared machine; nothing else changes
    env = typed_env(tmp_path)
    scheduler = start(scheduler_line.replace("8786", port), env, tmp_path / "scheduler.log")
    worker = start(worker_line.replace("8786", port), env, tmp_path / "worker.log")
    try:
        argv = shlex.split(sweep_line.replace("8786", port))
        assert argv[:3] == ["python", "-m", "mnist_core"]
        done = subprocess.run(argv + ["--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        logs = "".join((tmp_path / f"{n}.log").read_text()[-1500:] for n in ("scheduler", "worker"))
        assert done.returncode == 0, done.stderr[-3000:] + logs
        runs = json.loads(done.stdout)
        assert [r["status"] for r in runs] == ["ok", "ok"] and len({r["key"] for r in runs}) == 2
        assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in runs), runs  # a worker trained them
        assert all(r["epochs"][-1]["test_acc"] > 0.2 for r in runs)  # learned: chance is 0.1
        assert "Error during deserialization" not in logs and "ModuleNotFoundError" not in logs
    finally:
        stop(worker)
        stop(scheduler)
