"""Server memory with the embedded training service: five browser sessions each run a comparison.

Starts `streamlit run app.py` on 127.0.0.1 (a fresh server and an empty cache per scenario), opens five
headless Chromium sessions on the MLP (then CNN) page with a small comparison each (their own seeds,
so each session's two runs are trainings of their own: ten jobs in line), presses Run in all five, and
samples the server's resident memory until every session shows its results. Reports the baseline
(after the first page view), the peak RSS sampled, and the kernel's high-water mark (VmHWM).

    python bench/server_memory.py            # writes bench/server_memory_results.json
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SESSIONS = 5
SCENARIOS = {
    "mlp": {"model": "mlp", "init": "xavier_uniform", "epochs": "2", "train_size": "3000", "batch_size": "50",
            "test_size": "1000", "compare": "lr", "values": "0.01,0.001"},
    "cnn": {"model": "cnn", "epochs": "1", "train_size": "2000", "batch_size": "50", "test_size": "1000",
            "compare": "stride", "values": "1,5"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


def scenario(browser, model: str, params: dict[str, str]) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="mnist-lab-memory-"))
    port = free_port()
    env = {**os.environ, "MNIST_CACHE_DIR": str(tmp / "cache"), "OMP_WAIT_POLICY": "PASSIVE"}
    env.setdefault("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))
    log = open(tmp / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        pages = []
        for i in range(SESSIONS):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.goto(f"{url}/{model}?{urlencode({**params, 'seed': str(100 + i)})}")
            pages.append(page)
        for page in pages:
            page.get_by_role("button", name="Run comparison").wait_for(timeout=120_000)
        baseline = status(proc.pid)["VmRSS"]
        started = time.time()
        for page in pages:
            page.get_by_role("button", name="Run comparison").click()
        peak = baseline
        done = re.compile(r"Done: \d+ run\(s\) trained")
        while not all(p.get_by_text(done).count() for p in pages):
            peak = max(peak, status(proc.pid)["VmRSS"])
            if time.time() - started > 1800:
                raise TimeoutError("the sessions did not finish in 30 min")
            time.sleep(0.5)
        for page in pages:  # the results pages, drawn (charts, the inspected run's test-set report)
            page.get_by_role("heading", name="Results").wait_for(timeout=120_000)
        time.sleep(3)
        final = status(proc.pid)
        for page in pages:
            page.context.close()
        return {"sessions": SESSIONS, "comparison": {k: v for k, v in params.items()},
                "baseline_rss_mb": round(baseline, 1), "peak_rss_sampled_mb": round(max(peak, final["VmRSS"]), 1),
                "vm_hwm_mb": round(final["VmHWM"], 1), "seconds_to_all_results": round(time.time() - started, 1)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def machine() -> dict[str, str]:
    import torch
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": str(os.cpu_count()),
            "torch": torch.__version__, "python": platform.python_version()}


def main() -> None:
    from playwright.sync_api import sync_playwright
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "service": "embedded (threads in the server process, 1 training at a time)"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-dev-shm-usage"])
        for model, params in SCENARIOS.items():
            results[model] = scenario(browser, model, params)
            print(model, results[model], flush=True)
        browser.close()
    out = ROOT / "bench" / "server_memory_results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
