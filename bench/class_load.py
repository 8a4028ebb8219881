"""A class on one server: N students, each running a realistic script against one `streamlit run app.py`.

    python bench/class_load.py --students 30 --browsers 3 --curve 5,10    # writes bench/class_load_results.json

Each student: opens Home, opens their MLP comparison link (a small lr comparison with their own seed, so
every student's two runs are trainings of their own), changes the values to try, presses Run, switches
to Home while it trains and comes back, waits for the results, opens Draw and draws a "1", then opens a
classmate's share link; with random (seeded) think times between steps. Students arrive over the first
seconds; each ends by itself, and the whole class by --minutes at the latest.

Most students are light clients (bench/st_client.py: Streamlit's own websocket protocol, no browser), so
the load generator costs little CPU and the server's figures are the server's: a class of 30 headless
Chromium contexts saturates 2 cores by itself (the first try measured page loads of 137 s). --browsers of
the students are real headless Chromium pages (Playwright) running the same script, to check what a
student sees: results, no spinner left, no error box.

Recorded per N (bench/class_load_results.json): every Run ends done or refused with a message (none lost,
no student left with a spinner); click-to-feedback and page-load p50/p95 (light clients and browsers
apart); each student's wait for their first job to start, beside first come, first served (simulated from
the same jobs); how many jobs of any one classmate a student's first job waited behind; the server's peak
RSS and CPU; the load generator's CPU (this process and its browsers); load average; and the training
throughput (images/s) of the same jobs trained alone (the job service as the app builds it, in a process of
its own, no server; before and after the classes, as the machine's other work moves it) against during the load.
After the headline class, a watching phase: one longer run waits behind another while --watchers sessions
open its link, then trains while they all watch it (their watcher fragments rerun every 2 s): its
throughput against the same run alone.

Timings: light clients from sending a BackMsg to the first ForwardMsg that shows the answer (feedback; a
Run's answer is the watcher's bar, "Training…" on the button, or a message) or to the run's
script_finished (page load); browsers from the action to the page's first quiet second, less that second.
Job start and end times come from the run cache (each run's creation time less its training seconds).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import io
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from st_client import LightSession, Shown  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]

# Each student's comparison: small enough for a class to share one slot (2 epochs on 3,000 images, ~2-4 s
# a run alone on the 2-core server), their own seed, then the values they change it to.
LINK = {"model": "mlp", "init": "xavier_uniform", "epochs": "2", "train_size": "3000", "batch_size": "50",
        "test_size": "1000", "compare": "lr", "values": "0.01,0.001"}
LINK.update(json.loads(os.environ.get("CLASS_LOAD_LINK", "{}")))  # --epochs / --train-size, in the alone worker
CHANGED_VALUES = "0.01,0.003"
SEED0 = 1000


def student_link(i: int, values: str = LINK["values"]) -> dict[str, str]:
    return {**LINK, "values": values, "seed": str(SEED0 + i)}


# The watching phase: one run long enough to measure (40,000 images), waiting behind another while the
# watchers open its link, then training while they all watch it (their watcher fragments rerun every 2 s).
WATCH_SEED, BLOCKER_SEED = 2000, 2001
WATCH_SIZE = {"train_size": os.environ.get("CLASS_LOAD_WATCH_SIZE", "20000")}  # --watch-size


def watch_link(seed: int) -> dict[str, str]:
    return {**LINK, "epochs": "2", "train_size": WATCH_SIZE["train_size"], "values": "0.001", "seed": str(seed)}


# -- measuring ----------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": rounded(percentile(values, 50)), "p95": rounded(percentile(values, 95)),
            "max": rounded(max(values) if values else None)}


def rounded(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


class Sampler:
    """Every half second: the server's RSS; the CPU time of the load generator's own child processes
    (Chromium, Playwright's driver), kept per pid so that processes that exit still count."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.peak_rss = 0.0
        self.child_cpu: dict[int, float] = {}
        self.rss_series: list[tuple[float, float]] = []

    def sample(self, t0: float) -> None:
        try:
            rss = memory_mb(self.server_pid)["VmRSS"]
            self.peak_rss = max(self.peak_rss, rss)
            self.rss_series.append((round(time.time() - t0, 1), round(rss, 1)))
        except OSError:
            pass
        for pid in descendants(os.getpid()) - {self.server_pid}:
            try:
                self.child_cpu[pid] = cpu_seconds(pid)
            except OSError:
                pass

    async def run(self, t0: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample(t0)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass


# -- the server -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(cache_dir: Path) -> dict[str, str]:
    env = {**os.environ, "MNIST_CACHE_DIR": str(cache_dir), "MNIST_LAB_HOSTED": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for name, variable in (("mnist", "MNIST_DATA_DIR"), ("fashion-mnist", "FASHION_MNIST_DATA_DIR")):
        if not env.get(variable) and (ROOT.parent / "shared" / "data" / name).is_dir():
            env[variable] = str(ROOT.parent / "shared" / "data" / name)
    return env


class Server:
    """`streamlit run app.py` on 127.0.0.1, hosted mode, its own temp cache; stopped by PID."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cache_dir = tmp / "cache"
        self.log_path = tmp / "streamlit.log"

    def __enter__(self) -> "Server":
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=server_env(self.cache_dir), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2).read() == b"ok":
                    return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"streamlit did not start: {self.log_path.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- what a student sees ----------------------------------------------------------------------------------

def is_run_feedback(e: Shown) -> bool:
    """What shows that Run was taken or answered: the job watcher's bars, the button saying it trains, or a
    message (refused, already cached)."""
    return (e.kind == "progress" or e.kind == "button" and e.id.endswith("-mlp.run") and "Training" in e.text
            or e.kind == "alert" and (e.proto.format == 1 or "already in the cache" in e.text))  # 1: ERROR


def is_outcome(e: Shown) -> bool:
    """The end of a comparison's training on its page: done, failed or cancelled."""
    return e.kind == "alert" and ("Done:" in e.text or "failed" in e.text or "Cancelled" in e.text)


def digit_png() -> str:
    """A hand-drawn "1" as the canvas sends it: white ink on black, 280x280, a PNG data URL."""
    from PIL import Image, ImageDraw
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    ImageDraw.Draw(image).line([(140, 40), (150, 240)], fill=(255, 255, 255, 255), width=22)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


DRAWING = {"drawing": {"raw": {"objects": [{"type": "path", "path": [["M", 140, 40], ["L", 150, 240]]}],
                               "background": "#000000"}, "data": None}}


class Student:
    """One student's record: what they did, how long it took, what they saw."""

    def __init__(self, i: int, kind: str):
        self.i, self.kind = i, kind
        self.page_loads: list[tuple[str, float]] = []
        self.feedback: list[tuple[str, float]] = []
        self.run_clicked: float | None = None      # wall clock (same clock as the server's job records)
        self.outcome: str | None = None            # "done", "refused: ...", "failed: ...", "lost", "error: ..."
        self.spinner_left = False
        self.exceptions: list[str] = []
        self.notes: list[str] = []

    def to_json(self) -> dict:
        return {"student": self.i, "client": self.kind, "seed": SEED0 + self.i, "outcome": self.outcome,
                "spinner_left": self.spinner_left, "exceptions": self.exceptions[:3], "notes": self.notes[:5],
                "run_clicked": self.run_clicked,
                "page_loads": [[name, round(s, 3)] for name, s in self.page_loads],
                "feedback": [[name, round(s, 3)] for name, s in self.feedback]}


async def light_student(st: Student, url: str, n: int, rng: random.Random, think: float, deadline: float) -> None:
    s = LightSession(url)

    async def pause(low: float, high: float) -> None:
        await asyncio.sleep(min(rng.uniform(low, high) * think, max(0.0, deadline - time.time())))

    def left() -> float:
        return max(1.0, deadline - time.time())

    try:
        st.page_loads.append(("home", await s.open("", timeout=left())))
        await pause(2, 5)
        st.page_loads.append(("mlp link", await s.goto("mlp", urlencode(student_link(st.i)), timeout=left())))
        await pause(3, 8)
        # change a value: the values to try; the plan's metrics are drawn again
        sent = time.perf_counter()
        redrawn = s.wait_for(lambda e: e.kind == "metric")
        await s.type_text("mlp.cfg.values", CHANGED_VALUES)
        st.feedback.append(("type", await asyncio.wait_for(redrawn, left()) - sent))
        await s.wait_run(left())
        await pause(1, 4)
        feedback, outcome = s.wait_for(is_run_feedback), s.wait_for(is_outcome)
        # the watcher's line says "epoch 1 of 2" once a job runs: the wait as the student sees it (to ~2 s)
        running = s.wait_for(lambda e: e.kind == "progress" and " epoch " in f" {e.text}")
        sent, st.run_clicked = time.perf_counter(), time.time()
        await s.click("mlp.run")
        running.add_done_callback(lambda f: f.cancelled() or f.exception() or st.feedback.append(
            ("saw a job running", f.result() - sent)))
        first = await asyncio.wait_for(feedback, left())
        st.feedback.append(("run", first - sent))
        await s.wait_run(left())
        refused = s.find(lambda e: e.kind == "alert" and e.proto.format == 1)
        if refused:
            st.outcome = "refused: " + refused[0].text
        else:
            # switch pages while it trains, come back
            await pause(1, 3)
            st.page_loads.append(("home while training", await s.goto("", timeout=left())))
            await pause(2, 5)
            st.page_loads.append(("mlp again", await s.goto("mlp", timeout=left())))
            try:
                await asyncio.wait_for(outcome, left())
                shown = s.find(is_outcome)
                st.outcome = "done" if shown and "Done:" in shown[0].text else \
                    ("failed: " + shown[0].text if shown else "done")
            except asyncio.TimeoutError:
                st.outcome = "not done by the time cap"
            st.spinner_left = bool(s.find(lambda e: e.kind == "progress"))
        await pause(2, 5)
        st.page_loads.append(("draw", await s.goto("draw", timeout=left())))
        await pause(2, 5)
        sent = time.perf_counter()
        read = s.wait_for(lambda e: e.kind == "metric")
        try:
            await s.set_component("draw.canvas", {"drawing": {**DRAWING["drawing"], "data": digit_png()}})
            st.feedback.append(("draw", await asyncio.wait_for(read, left()) - sent))
            await s.wait_run(left())
            st.notes.append("draw read " + " ".join(e.text for e in s.find(lambda e: e.kind == "metric"))[:80])
        except KeyError as e:  # no canvas: nothing trained yet (the page offers a starter model instead)
            st.notes.append(f"draw: {e}")
        await pause(2, 5)
        classmate = (st.i + 1) % n
        st.page_loads.append(("classmate link", await s.goto("mlp", urlencode(student_link(classmate, CHANGED_VALUES)),
                                                             timeout=left())))
        st.notes.append("classmate " + " ".join(e.text for e in s.find(
            lambda e: e.kind == "metric" and "cached" in e.text)))
    except asyncio.TimeoutError:  # the class's time cap came: where this student was is in the record
        st.notes.append("stopped at the deadline")
        if st.run_clicked is not None and st.outcome is None:
            st.outcome = "not done by the time cap"
            st.spinner_left = bool(s.find(lambda e: e.kind == "progress"))
    except Exception as e:  # a broken student must not stop the class: it is recorded
        st.notes.append("error: " + "".join(traceback.format_exception_only(type(e), e)).strip())
        if st.run_clicked is not None and st.outcome is None:
            st.outcome = "error: " + str(e)[:200]
    finally:
        st.exceptions = list(s.exceptions)
        await s.close()


# -- the same script in a real browser ----------------------------------------------------------------------

IDLE = """() => !document.querySelector('[data-testid="stStatusWidget"]')
             && !!document.querySelector('[data-testid="stMain"] h1')"""


async def settle(page, deadline: float) -> None:
    """Until the page has drawn and stopped running for a moment (the running indicator comes and goes)."""
    quiet = None
    while time.time() < deadline:
        if await page.evaluate(IDLE):
            quiet = quiet or time.perf_counter()
            if time.perf_counter() - quiet > 1.0:
                return
        else:
            quiet = None
        await page.wait_for_timeout(150)
    raise asyncio.TimeoutError


async def browser_student(st: Student, browser, url: str, n: int, rng: random.Random, think: float,
                          deadline: float) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()

    async def pause(low: float, high: float) -> None:
        await asyncio.sleep(min(rng.uniform(low, high) * think, max(0.0, deadline - time.time())))

    async def load(name: str, action) -> None:
        started = time.perf_counter()
        await action
        await settle(page, deadline)
        st.page_loads.append((name, time.perf_counter() - started - 1.0))  # less settle's quiet second

    async def nav(label: str) -> None:
        await page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=label).first.click()

    ms = lambda: max(1000, (deadline - time.time()) * 1000)  # noqa: E731
    try:
        await load("home", page.goto(url + "/"))
        await pause(2, 5)
        await load("mlp link", page.goto(f"{url}/mlp?{urlencode(student_link(st.i))}"))
        await pause(3, 8)
        box = page.get_by_role("textbox", name="Values to try")
        await box.fill(CHANGED_VALUES)
        sent = time.perf_counter()
        await box.press("Enter")
        await page.get_by_text("Already cached").first.wait_for(timeout=ms())
        await settle(page, deadline)
        st.feedback.append(("type", time.perf_counter() - sent - 1.0))
        await pause(1, 4)
        sent, st.run_clicked = time.perf_counter(), time.time()
        await page.get_by_role("button", name="Run comparison").click()
        await page.locator('[data-testid="stProgress"], [data-testid="stAlertContentError"]').or_(
            page.get_by_role("button", name="Training…")).first.wait_for(timeout=ms())
        st.feedback.append(("run", time.perf_counter() - sent))
        if await page.locator('[data-testid="stAlertContentError"]').count():
            st.outcome = "refused: " + await page.locator('[data-testid="stAlertContentError"]').first.inner_text()
        else:
            await pause(1, 3)
            await load("home while training", nav("Home"))
            await pause(2, 5)
            await load("mlp again", nav("MLP"))
            try:
                await page.get_by_text("Done:").or_(page.get_by_text("failed")).first.wait_for(timeout=ms())
                await settle(page, deadline)
                st.outcome = "done" if await page.get_by_text("Done:").count() else "failed"
            except Exception:
                st.outcome = "not done by the time cap"
            st.spinner_left = await page.locator('[data-testid="stProgress"]').count() > 0
        await pause(2, 5)
        await load("draw", nav("Draw"))
        await pause(2, 5)
        canvas = page.locator(".st-key-draw-canvas canvas").last
        if await canvas.count():
            box = await canvas.bounding_box()
            x, top = box["x"] + 140, box["y"] + 40
            sent = time.perf_counter()
            await page.mouse.move(x, top)
            await page.mouse.down()
            for step in range(1, 21):
                await page.mouse.move(x + step * 0.5, top + step * 10)
            await page.mouse.up()
            await page.locator('[data-testid="stMetric"]').first.wait_for(timeout=ms())
            st.feedback.append(("draw", time.perf_counter() - sent))
            await settle(page, deadline)
        await pause(2, 5)
        await load("classmate link", page.goto(f"{url}/mlp?{urlencode(student_link((st.i + 1) % n, CHANGED_VALUES))}"))
        st.exceptions = await page.locator('[data-testid="stException"]').all_inner_texts()
    except (asyncio.TimeoutError, TimeoutError):
        st.notes.append("stopped at the deadline")
        if st.run_clicked is not None and st.outcome is None:
            st.outcome = "not done by the time cap"
    except Exception as e:
        st.notes.append("error: " + "".join(traceback.format_exception_only(type(e), e)).strip()[:300])
        if st.run_clicked is not None and st.outcome is None:
            st.outcome = "error: " + str(e)[:200]
    finally:
        await context.close()


# -- the jobs, from the run cache ----------------------------------------------------------------------------

def trained_runs(cache_dir: Path) -> list[dict]:
    """Every run the server trained: seed (the student), lr, start and end (wall clock), images/s."""
    from mnist_core.cache import RunCache
    runs = []
    for r in RunCache(cache_dir / "runs").list():
        images = sum(round(e.samples_per_second * e.seconds) for e in r.epochs)
        seconds = sum(e.seconds for e in r.epochs)
        runs.append({"seed": r.config.seed, "lr": r.config.lr, "start": r.created - r.total_seconds,
                     "end": r.created, "seconds": r.total_seconds, "images_per_second": images / seconds})
    return runs


def queue_figures(students: list[Student], runs: list[dict]) -> dict:
    """Each student's wait for their first job to start, measured, against first come, first served
    (simulated with one slot, the measured durations, in the order of the Run clicks); and how many jobs of
    any one classmate started while a student's first job waited."""
    by_seed: dict[int, list[dict]] = {}
    for run in runs:
        by_seed.setdefault(run["seed"], []).append(run)
    clicked = sorted((st.run_clicked, st.i) for st in students if st.run_clicked is not None
                     and SEED0 + st.i in by_seed)
    waits, behind = {}, {}
    for at, i in clicked:
        first = min(r["start"] for r in by_seed[SEED0 + i])
        waits[i] = max(0.0, first - at)
        counts = {}
        for r in runs:
            if r["seed"] != SEED0 + i and at <= r["start"] < first:
                counts[r["seed"]] = counts.get(r["seed"], 0) + 1
        behind[i] = max(counts.values(), default=0)
    # first come, first served: one slot, jobs in order of the clicks, each as long as it took
    fcfs, free_at = {}, 0.0
    for at, i in clicked:
        free_at = max(free_at, at)
        fcfs[i] = free_at - at
        free_at += sum(r["seconds"] for r in by_seed[SEED0 + i])
    return {"first_job_wait_s": summary(list(waits.values())),
            "first_job_wait_fcfs_simulated_s": summary(list(fcfs.values())),
            "most_jobs_of_one_classmate_waited_behind": max(behind.values(), default=0),
            "per_student_wait_s": {str(i): round(w, 2) for i, w in sorted(waits.items())}}


def train_alone(n: int, cache_dir: Path, watched: bool = False) -> list[dict]:
    """The students' jobs (the first n students' comparisons) through the job service as the app builds it, in
    a process of its own, with no server and no sessions: the throughput the same jobs get alone."""
    code = ("import sys, json; sys.path.insert(0, 'bench'); import class_load; "
            f"class_load.alone_worker({n})")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**server_env(cache_dir), "CLASS_LOAD_LINK": json.dumps(LINK),
                                                 "CLASS_LOAD_WATCHED": "1" if watched else "",
                                                 "CLASS_LOAD_WATCH_SIZE": WATCH_SIZE["train_size"]},
                   check=True)
    return trained_runs(cache_dir)


def alone_worker(n: int) -> None:
    from mnist_core.cache import RunCache
    from mnist_core.compare import entries, from_query_params
    from mnist_core.config import RunConfig
    from mnist_core.data import load_dataset
    from mnist_core.jobs import APP_DEFAULT, service_from_env
    service = service_from_env(RunCache(), load_dataset("mnist", "cpu"), default=APP_DEFAULT)  # as the server trains
    # A worker's first training pays for torch's start-up (its optimizer's first call takes seconds): a tiny
    # run first, not counted, as the class's first jobs absorb it on the server
    warm_up = RunConfig(epochs=1, train_size=100, test_size=100, batch_size=50, seed=SEED0 - 1)
    service.wait([j.id for j in service.submit([warm_up], "warm-up")])
    for i in range(n):  # one at a time, as a student's Run: submit, wait
        configs = [e.config for e in entries(from_query_params(student_link(i, CHANGED_VALUES), model="mlp"))]
        jobs = service.submit(configs, f"student-{i}")
        service.wait([j.id for j in jobs])
    if os.environ.get("CLASS_LOAD_WATCHED"):
        configs = [e.config for e in entries(from_query_params(watch_link(WATCH_SEED), model="mlp"))]
        service.wait([j.id for j in service.submit(configs, "watched")])


def throughput(alone: list[dict], loaded: list[dict]) -> dict:
    """Images/s of the same runs (seed, lr) alone (the mean of before and after the classes) and during the
    load; the ratio of their medians."""
    alone_by: dict[tuple, list[float]] = {}
    for r in alone:
        alone_by.setdefault((r["seed"], r["lr"]), []).append(r["images_per_second"])
    pairs = [(statistics.mean(alone_by[(r["seed"], r["lr"])]), r["images_per_second"]) for r in loaded
             if (r["seed"], r["lr"]) in alone_by]
    if not pairs:
        return {"runs_compared": 0}
    a, b = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    # the median hides the slowest runs: all the load's runs together, images over training seconds, too
    images = sum(r["images_per_second"] * r["seconds"] for r in loaded if "seconds" in r)
    seconds = sum(r["seconds"] for r in loaded if "seconds" in r)
    aggregate = {"during_load_all_runs_images_per_second": round(images / seconds),
                 "all_runs_ratio": round(images / seconds / a, 3)} if seconds else {}
    return {"runs_compared": len(pairs), "alone_images_per_second_median": round(a), "during_load_median": round(b),
            "ratio": round(b / a, 3), **aggregate}


# -- training while a class watches -------------------------------------------------------------------------

async def watch_phase(url: str, watchers: int, timeout: float) -> dict:
    """`watchers` sessions open the link of a run that waits behind another, then watch it train to the end
    (their watcher fragments rerun every 2 s): the training's own throughput with a class watching."""
    blocker, owner = LightSession(url), LightSession(url)
    sessions: list[LightSession] = []
    try:
        await blocker.open("mlp", urlencode(watch_link(BLOCKER_SEED)), timeout=timeout)
        await owner.open("mlp", urlencode(watch_link(WATCH_SEED)), timeout=timeout)
        blocker_done, done = blocker.wait_for(is_outcome), owner.wait_for(is_outcome)
        await blocker.click("mlp.run")
        await blocker.wait_run(timeout)
        await owner.click("mlp.run")
        await owner.wait_run(timeout)
        sessions = [LightSession(url) for _ in range(watchers)]
        loads = await asyncio.gather(*(s.open("mlp", urlencode(watch_link(WATCH_SEED)), timeout=timeout)
                                       for s in sessions), return_exceptions=True)
        watching_before_start = not blocker_done.done()
        await asyncio.wait_for(asyncio.gather(blocker_done, done), timeout)
        refreshes = sum(s.messages for s in sessions)
        return {"watchers": watchers, "watchers_settled_before_it_started": watching_before_start,
                "watcher_page_load_s": summary([x for x in loads if isinstance(x, float)]),
                "watcher_errors": [str(x)[:100] for x in loads if not isinstance(x, float)][:3],
                "messages_to_watchers": refreshes}
    finally:
        for s in [blocker, owner, *sessions]:
            await s.close()


# -- one class ---------------------------------------------------------------------------------------------

async def class_run(n: int, browsers: int, minutes: float, think: float, seed: int, tmp: Path,
                    warm_up_training: bool = False, watchers: int = 0) -> tuple[dict, list, list]:
    loadavg_before = os.getloadavg()
    with Server(tmp) as server:
        # the first visit loads torch, the dataset and the job service: a warm-up session, as the teacher's
        # own check before class (not counted)
        warm = LightSession(server.url)
        warm_load = await warm.open("", timeout=120)
        if warm_up_training:  # the teacher's check also trains a tiny run: the server's first training
            await warm.goto("mlp", urlencode({**LINK, "train_size": "100", "batch_size": "50", "epochs": "1",
                                              "values": "0.01", "seed": "1"}))
            done = warm.wait_for(is_outcome)
            await warm.click("mlp.run")
            await asyncio.wait_for(done, 180)
        await warm.close()
        sampler = Sampler(server.proc.pid)
        stop = asyncio.Event()
        t0, own0, cpu0 = time.time(), os.times(), cpu_seconds(server.proc.pid)
        sampling = asyncio.create_task(sampler.run(t0, stop))
        deadline = t0 + minutes * 60
        ramp = min(30.0, 1.0 * n)   # students arrive over the first seconds, not all at the same instant
        students = [Student(i, "browser" if i < browsers else "light") for i in range(n)]
        rngs = [random.Random(seed * 100_003 + i) for i in range(n)]
        arrivals = [rngs[i].uniform(0, ramp) for i in range(n)]

        async def arrive(st: Student, coro_factory):
            await asyncio.sleep(arrivals[st.i])
            await coro_factory()

        playwright = browser = None
        tasks = []
        if browsers:
            from playwright.async_api import async_playwright
            playwright = await async_playwright().start()
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            for st in students:
                if st.kind == "browser":
                    tasks.append(arrive(st, lambda st=st: browser_student(st, browser, server.url, n, rngs[st.i],
                                                                          think, deadline)))
                else:
                    tasks.append(arrive(st, lambda st=st: light_student(st, server.url, n, rngs[st.i], think,
                                                                        deadline)))
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=minutes * 60 + 60)
        finally:
            if browser is not None:
                await browser.close()
                await playwright.stop()
        wall = time.time() - t0
        watched = None
        if watchers:
            try:
                watched = await watch_phase(server.url, watchers, timeout=600)
            except Exception as e:  # recorded, and the class's figures are kept
                watched = {"error": "".join(traceback.format_exception_only(type(e), e)).strip()[:300]}
        stop.set()
        await sampling
        sampler.sample(t0)
        server_cpu = cpu_seconds(server.proc.pid) - cpu0
        own1 = os.times()
        final_mem = memory_mb(server.proc.pid)
        loadavg_after = os.getloadavg()
    every_run = trained_runs(server.cache_dir)
    runs = [r for r in every_run if SEED0 <= r["seed"] < SEED0 + n]  # not the warm-up's, nor the watched one
    if watched is not None and "error" not in watched:
        watched["runs"] = [r for r in every_run if r["seed"] in (WATCH_SEED, BLOCKER_SEED)]
    generator_own = (own1.user - own0.user) + (own1.system - own0.system)
    browser_cpu = sum(sampler.child_cpu.values())

    def figures(kind: str) -> dict:
        group = [st for st in students if st.kind == kind]
        return {"students": len(group),
                "page_load_s": summary([s for st in group for _, s in st.page_loads]),
                "first_page_load_s": summary([st.page_loads[0][1] for st in group if st.page_loads]),
                "feedback_s": summary([s for st in group for name, s in st.feedback if name != "saw a job running"]),
                "saw_own_job_running_after_s": summary([s for st in group for name, s in st.feedback
                                                       if name == "saw a job running"]),
                "run_click_feedback_s": summary([s for st in group for name, s in st.feedback if name == "run"])}

    outcomes: dict[str, int] = {}
    for st in students:
        key = (st.outcome or "never clicked Run").split(":")[0]
        outcomes[key] = outcomes.get(key, 0) + 1
    asked = {SEED0 + st.i for st in students if st.outcome == "done"}
    missing = sorted(s for s in asked if sum(r["seed"] == s for r in runs) < 2)
    result = {
        "students": n, "light_clients": n - browsers, "browsers": browsers, "wall_s": round(wall, 1),
        "warm_up_first_page_load_s": round(warm_load, 2),
        "nothing_lost": {
            "outcomes": outcomes,
            "lost_or_error": [st.i for st in students if st.outcome in (None, "lost") or
                              (st.outcome or "").startswith("error")],
            "not_done_by_the_cap": [st.i for st in students if st.outcome == "not done by the time cap"],
            "spinner_left": [st.i for st in students if st.spinner_left],
            "exception_boxes": [st.i for st in students if st.exceptions],
            "done_but_runs_not_in_cache": missing,
            "runs_trained": len(runs)},
        "light": figures("light"), "browser": figures("browser") if browsers else None,
        "queue": queue_figures(students, runs),
        "watched": watched,
        "server": {"peak_rss_mb_sampled": round(sampler.peak_rss, 1), "vm_hwm_mb": round(final_mem["VmHWM"], 1),
                   "cpu_s": round(server_cpu, 1), "cpu_cores_used": round(server_cpu / wall, 2)},
        "load_generator": {"own_cpu_s": round(generator_own, 1), "browser_processes_cpu_s": round(browser_cpu, 1),
                           "cpu_cores_used": round((generator_own + browser_cpu) / wall, 2)},
        "jobs": [{"seed": r["seed"], "lr": r["lr"], "start_s": round(r["start"] - t0, 2), "seconds": round(r["seconds"], 2),
                  "images_per_second": round(r["images_per_second"])} for r in sorted(runs, key=lambda r: r["start"])],
        "run_clicks_s": {str(st.i): round(st.run_clicked - t0, 2) for st in students if st.run_clicked},
        "loadavg_before": [round(x, 2) for x in loadavg_before], "loadavg_after": [round(x, 2) for x in loadavg_after],
    }
    return result, [st.to_json() for st in students], runs


def machine() -> dict:
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30, help="the headline class size (default 30)")
    parser.add_argument("--browsers", type=int, default=3, help="how many of them are real Chromium pages")
    parser.add_argument("--curve", default="", help="smaller class sizes to run first, e.g. 5,10")
    parser.add_argument("--minutes", type=float, default=10, help="each class's time cap (default 10)")
    parser.add_argument("--think", type=float, default=1.0, help="think times are scaled by this (default 1)")
    parser.add_argument("--alone", type=int, default=8, help="students whose jobs are also trained alone, before and after (default 8; 0: none)")
    parser.add_argument("--epochs", default=LINK["epochs"], help=f"epochs of each run (default {LINK['epochs']})")
    parser.add_argument("--train-size", default=LINK["train_size"],
                        help=f"training images of each run (default {LINK['train_size']})")
    parser.add_argument("--warm-up-training", action="store_true",
                        help="train a tiny run before the class comes in (the server's first training sets up "
                             "torch's optimizer, ~2.5 s alone and much more under load); default: the first "
                             "student's job pays it")
    parser.add_argument("--watchers", type=int, default=-1,
                        help="after the headline class: this many sessions watch one run train (2 epochs of --watch-size), "
                             "against the same run alone (default: as many as the students; 0: skip)")
    parser.add_argument("--watch-size", default=WATCH_SIZE["train_size"],
                        help="training images of the watched run (2 epochs; default 20000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="a note stored with the results (e.g. a noisy machine)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "class_load_results.json"))
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.curve.split(",") if x.strip()] + [args.students]
    LINK.update(epochs=str(args.epochs), train_size=str(args.train_size))  # the alone worker gets them too
    WATCH_SIZE["train_size"] = str(args.watch_size)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "command": "python bench/class_load.py " + " ".join(argv or sys.argv[1:]),
               "note": args.note, "script": LINK | {"changed_values": CHANGED_VALUES}, "classes": []}
    with tempfile.TemporaryDirectory(prefix="mnist-lab-class-") as tmp:
        alone_n = min(args.alone, max(sizes))
        watching = args.watchers != 0
        alone = train_alone(alone_n, Path(tmp) / "alone-before", watching) if alone_n or watching else []
        for n in sizes:
            print(f"class of {n} ...", flush=True)
            run_dir = Path(tmp) / f"class-{n}"
            run_dir.mkdir()
            # --students 0 --watchers 30: only the watching phase
            watchers = (n if args.watchers < 0 else args.watchers) if n == args.students else 0
            result, students, runs = asyncio.run(class_run(n, min(args.browsers, n), args.minutes, args.think,
                                                           args.seed, run_dir, args.warm_up_training, watchers))
            result["runs"] = runs
            result["per_student"] = students
            results["classes"].append(result)
            print(json.dumps({k: v for k, v in result.items() if k not in ("per_student", "jobs", "runs")}, indent=1),
                  flush=True)
        # the same jobs alone again, after the classes: on a shared machine the two differ by its other work
        alone_after = train_alone(alone_n, Path(tmp) / "alone-after", watching) if alone_n or watching else []
    def median_ips(runs: list[dict]) -> int | None:
        ours = [r["images_per_second"] for r in runs if SEED0 <= r["seed"] < WATCH_SEED]  # not the warm-up
        return round(statistics.median(ours)) if ours else None
    results["alone"] = {"students": alone_n, "runs": len(alone), "images_per_second_median_before": median_ips(alone),
                        "images_per_second_median_after": median_ips(alone_after)}
    for result in results["classes"]:
        result["throughput"] = throughput(alone + alone_after, result.pop("runs"))
        if result.get("watched") and "runs" in result["watched"]:
            watched_runs = result["watched"].pop("runs")
            result["watched"]["throughput"] = throughput(alone + alone_after,
                                                         [r for r in watched_runs if r["seed"] == WATCH_SEED])
            result["watched"]["blocker_throughput_while_watchers_opened"] = throughput(
                alone + alone_after, [r | {"seed": WATCH_SEED} for r in watched_runs if r["seed"] == BLOCKER_SEED])
    results["headline"] = headline(results["classes"][-1])
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return results


def headline(c: dict) -> dict:
    """The issue's goals for the class, beside what was measured."""
    lost = c["nothing_lost"]
    return {"students": c["students"],
            "nothing_lost": not (lost["lost_or_error"] or lost["spinner_left"] or lost["done_but_runs_not_in_cache"]
                                 or lost["not_done_by_the_cap"] or lost["exception_boxes"]),
            "feedback_p95_s": c["light"]["feedback_s"]["p95"], "feedback_goal_s": 2,
            "page_load_p95_s": c["light"]["page_load_s"]["p95"], "page_load_goal_s": 5,
            "peak_rss_mb": max(c["server"]["peak_rss_mb_sampled"], c["server"]["vm_hwm_mb"]), "peak_rss_goal_mb": 3000,
            "throughput_ratio": c.get("throughput", {}).get("ratio"), "throughput_goal": 0.7,
            "throughput_ratio_with_watchers": ((c.get("watched") or {}).get("throughput") or {}).get("ratio"),
            "most_jobs_of_one_classmate_waited_behind": c["queue"]["most_jobs_of_one_classmate_waited_behind"],
            "waited_behind_goal": 1}


if __name__ == "__main__":
    main()
