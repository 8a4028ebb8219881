"""Ctrl-C on `train` and `sweep`, whenever it comes, on a busy machine: the command cancels its jobs,
caches nothing and ends with the one line "cancelled" and exit status 130.

Races here showed only when the machine was loaded: a KeyboardInterrupt raised half-way through `submit`
left a job training its 200 epochs; one raised inside an import was swallowed (the command trained on) or
left numpy half-loaded (a traceback); see mnist_core/ctrl_c.py. So every case runs while other processes
burn every core, and each case is repeated: MNIST_LAB_CTRL_C_REPEATS times (default 4 in the suite;
`MNIST_LAB_CTRL_C_REPEATS=20 python -m pytest -q tests/test_ctrl_c.py` is the longer check, ~10 min).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPEATS = int(os.environ.get("MNIST_LAB_CTRL_C_REPEATS", "4"))
# Long enough to be still training whenever the signal comes (always cancelled, never waited for).
LONG = ["--train-size=10000", "--test-size=100", "--batch-size=10", "--init=xavier_uniform", "--epochs=200"]
COMMANDS = {
    "train": ["train", *LONG, "--json"],
    "sweep": ["sweep", "--param=lr", "--values=0.001,0.002,0.003", *LONG, "--json"],  # one runs, two wait
}
HANG = 60  # seconds after the signal: a command still running then has not cancelled (it was minutes)


@pytest.fixture(scope="module")
def busy_machine():
    """One process per core spinning in Python for the module's tests; each stops by itself after 15 min."""
    burn = "import time\nend = time.time() + 900\nwhile time.time() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(os.cpu_count() or 2)]
    yield
    for p in burners:
        p.kill()
        p.wait()


def lock_files(cache: Path) -> list[Path]:
    return list((cache / "runs").glob(".*.lock"))


def interrupt(command: str, cache: Path, when) -> tuple[int, str, str, float]:
    """Starts the command, sends SIGINT once `when(process)` says so, and returns (exit status, stdout,
    stderr, seconds from the signal to the exit)."""
    env = {**os.environ, "MNIST_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "mnist_core", *COMMANDS[command]], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        when(p)
        if p.poll() is not None:
            out, err = p.communicate()
            pytest.fail(f"{command} ended before the signal: {p.returncode} {err[-2000:]}")
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=HANG)
        return p.returncode, out, err, time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def after_start(seconds: float):
    """`seconds` after the command has started: once it has used 0.15 s of CPU, Python is up and importing
    the command, whatever the load. (A Ctrl-C in the interpreter's own first milliseconds is CPython's
    business: once, at a load average of 8, one was lost there and the command trained on.)"""
    def when(p):
        deadline = time.monotonic() + 120
        while p.poll() is None and cpu_seconds(p.pid) < 0.15 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(seconds)
    return when


def check(result, cache: Path, label: str) -> float:
    code, out, err, seconds = result
    assert (code, out, err.strip()) == (130, "", "cancelled"), f"{label}: exit {code}, stdout {out[:200]!r}, stderr {err[-2000:]!r}"
    assert list((cache / "runs").glob("*.safetensors")) == [], f"{label}: a cancelled run was cached"
    assert list((cache / "runs").glob(".*.tmp")) == [], f"{label}: a temp file was left behind"
    return seconds


def wait_for_lock(cache: Path, p: subprocess.Popen, extra: float) -> None:
    deadline = time.monotonic() + 300
    while not lock_files(cache) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(extra)


def commands():
    """train and sweep in turn, REPEATS runs in all."""
    return [list(COMMANDS)[i % len(COMMANDS)] for i in range(REPEATS)]


def test_ctrl_c_while_starting_loading_or_submitting(tmp_path, busy_machine):
    """At a random moment of the first seconds: importing torch, loading MNIST, creating and submitting
    the jobs."""
    rng = random.Random("start")
    for i, command in enumerate(commands()):
        cache, delay = tmp_path / f"r{i}", rng.uniform(0.0, 6.0)
        check(interrupt(command, cache, after_start(delay)), cache, f"{command}, signal {delay:.2f} s after start")


@pytest.mark.parametrize("moment", ["first step", "mid-epoch"])
def test_ctrl_c_in_the_first_step_and_mid_epoch(moment, tmp_path, busy_machine):
    """Once the first job holds its run's lock (its first step is under way), or a random 0.2-3 s later."""
    rng = random.Random(moment)
    for i, command in enumerate(commands()):
        cache, extra = tmp_path / f"r{i}", 0.0 if moment == "first step" else rng.uniform(0.2, 3.0)
        check(interrupt(command, cache, lambda p: wait_for_lock(cache, p, extra)), cache,
              f"{command}, signal {extra:.2f} s after the first job took its lock")
