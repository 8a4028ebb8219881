"""Runs per hour for a class: the same mix of quick looks through the job service, three ways to use 2 cores.

    MNIST_DATA_DIR=../shared/data/mnist python bench/class_mix.py --students 30 --reps 2

The mix: --students comparisons submitted at once, one per student, cycling through the seed's six
experiments (the Study's presets, at a quick-look size: MLP 3 epochs on 3,000 images, CNN 1 epoch on
1,000, 1,000 test images), each student with their own seed so nothing is shared through the cache. The
setups, each in a fresh process with an empty cache (an empty speeds file too: each measures itself):

- threads-1x2: today's embedded default, one training at a time in a thread of the server, torch's 2 threads;
- threads-2x1: two trainings at once in threads of the server, torch held to 1 thread;
- dask-1x2: a local Dask cluster of one worker process, torch's 2 threads (MNIST_LAB_DASK_SCHEDULER=local);
- dask-2x1: the same with two single-thread worker processes (and MNIST_LAB_MAX_CONCURRENT=2).

Recorded per setup (bench/class_mix_results.json): finished runs per hour (runs over the time from the first
submit to the last end); each run's own training seconds (measured where it trained) against the same run in
threads-1x2 of the same rep: median and max of that ratio (the issue's "no single run more than 1.3x slower");
the setups alternate --reps times, and the load average is read before and after each.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETUPS = {
    "threads-1x2": {"MNIST_LAB_MAX_CONCURRENT": "1", "MNIST_LAB_DASK_SCHEDULER": "none"},
    "threads-2x1": {"MNIST_LAB_MAX_CONCURRENT": "2", "MNIST_LAB_DASK_SCHEDULER": "none", "CLASS_MIX_THREADS": "1"},
    "dask-1x2": {"MNIST_LAB_DASK_SCHEDULER": "local", "MNIST_LAB_MAX_CONCURRENT": "1"},
    "dask-2x1": {"MNIST_LAB_DASK_SCHEDULER": "local", "MNIST_LAB_MAX_CONCURRENT": "2"},
}
LOOK = {"mlp": {"train_size": 3000, "test_size": 1000, "epochs": 3},
        "cnn": {"train_size": 1000, "test_size": 1000, "epochs": 1}}


def mix(students: int):
    """(owner, configs) per student: the six seed experiments in turn, each student's own seed."""
    from mnist_core.compare import entries, format_values, make_comparison
    from mnist_core.config import PRESETS
    from mnist_core.study import ORDER
    out = []
    for i in range(students):
        preset = PRESETS[ORDER[i % len(ORDER)]]
        base = preset.base.replace(seed=2000 + i, **LOOK[preset.base.model])
        comparison = make_comparison(base, preset.param, format_values(preset.param, preset.values))
        out.append((f"student-{i}", [e.config for e in entries(comparison) if e.config is not None]))
    return out


def worker(students: int) -> dict:
    """One setup, in this process (its settings come from the environment)."""
    if os.environ.get("CLASS_MIX_THREADS"):
        import torch
        torch.set_num_threads(int(os.environ["CLASS_MIX_THREADS"]))
    from mnist_core.cache import RunCache
    from mnist_core.data import load_dataset
    from mnist_core.jobs import service_from_env
    from mnist_core.speed import speed_for
    cache = RunCache()
    service = service_from_env(cache, load_dataset("mnist", "cpu"))
    try:
        for model in ("mlp", "cnn"):  # measured before the clock starts, as a server does at its first estimate
            speed_for(model, "cpu")
        requests = mix(students)
        started = time.monotonic()
        jobs = [job for owner, configs in requests for job in service.submit(configs, owner)]
        service.wait([j.id for j in jobs])
        seconds = time.monotonic() - started
        states = [service.job(j.id).state for j in jobs]
        runs = {}
        for owner, configs in requests:
            for config in configs:
                run = cache.get(cache.key_for(config, service.data_for(config.dataset)))
                if run is not None:
                    runs[f"{owner} {config.describe()}"] = run.total_seconds
        return {"jobs": len(jobs), "not_done": sum(s != "done" for s in states), "runs": len(runs),
                "seconds": round(seconds, 2), "runs_per_hour": round(len(runs) / seconds * 3600),
                "run_seconds": runs}
    finally:
        service.shutdown()


def run_setup(name: str, students: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="mnist-lab-mix-") as tmp:
        env = {**os.environ, **SETUPS[name], "MNIST_CACHE_DIR": tmp, "MNIST_LAB_SPEEDS_FILE": f"{tmp}/speeds.json",
               "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
        code = f"import sys, json; sys.path.insert(0, 'bench'); import class_mix; print(json.dumps(class_mix.worker({students})))"
        load_before = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--reps", type=int, default=2, help="alternations of the three setups (default 2)")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "class_mix_results.json"))
    args = parser.parse_args(argv)
    import torch
    names = args.setups.split(",")
    reps = []
    for rep in range(args.reps):
        reps.append({})
        for name in names:
            print(f"rep {rep + 1}: {name} ...", flush=True)
            reps[-1][name] = run_setup(name, args.students)
            print(f"  {reps[-1][name]['runs_per_hour']} runs/hour, {reps[-1][name]['seconds']} s", flush=True)
    summary = {}
    for name in names:
        per_hour = [r[name]["runs_per_hour"] for r in reps]
        ratios = [r[name]["run_seconds"][k] / r["threads-1x2"]["run_seconds"][k] for r in reps
                  if "threads-1x2" in r for k in r[name]["run_seconds"] if k in r["threads-1x2"]["run_seconds"]]
        summary[name] = {"runs_per_hour_median": statistics.median(per_hour), "min": min(per_hour), "max": max(per_hour),
                         "run_seconds_vs_threads_1x2_median": round(statistics.median(ratios), 3) if ratios else None,
                         "run_seconds_vs_threads_1x2_max": round(max(ratios), 3) if ratios else None,
                         "not_done": sum(r[name]["not_done"] for r in reps)}
    base = summary.get("threads-1x2", {}).get("runs_per_hour_median")
    for name in names:
        if base:
            summary[name]["runs_per_hour_vs_threads_1x2"] = round(summary[name]["runs_per_hour_median"] / base, 3)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "command": "python bench/class_mix.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "machine": {"cpu": cpu, "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                           "torch": torch.__version__, "python": platform.python_version()},
               "students": args.students, "look": LOOK, "summary": summary,
               "reps": [{n: {k: v for k, v in r[n].items() if k != "run_seconds"} for n in r} for r in reps]}
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
