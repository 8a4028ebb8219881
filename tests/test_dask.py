"""Scale-out on a real Dask cluster: a `dask scheduler` and `dask worker` processes on 127.0.0.1.

The CLI's --dask trains a sweep on the workers, which read MNIST themselves and send back metrics and
weights; the runs land in the CLI's cache and equal the embedded executor's bit for bit. A worker
killed mid-job fails that job with a message, and submitting it again trains it on the other worker.
Nothing hangs: a job no worker can run (none at all; CUDA and no GPU worker) says so within seconds,
and a cancel frees its slot whether the task never started or the worker stopped answering.
Every process the tests start is stopped by its PID at the end, pass or fail.
"""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import stop

distributed = pytest.importorskip("distributed", reason="distributed (Dask) is not installed: pip install distributed")

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.config import RunConfig  # noqa: E402
from mnist_core.jobs import NO_GPU_WORKER, NO_WORKER, WORKER_LOST, service_from_env  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["sweep", "--param", "lr", "--values", "0.01,0.001", "--epochs", "1", "--train-size", "1000",
         "--test-size", "200", "--batch-size", "50", "--json"]
SAME = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")  # what a run computed (not its timing)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with(tmp: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MNIST_CACHE_DIR": str(tmp),
            "MNIST_DATA_DIR": os.environ["MNIST_DATA_DIR"], **more}


@contextlib.contextmanager
def running_cluster(tmp: Path, *workers: list[str]):
    """A scheduler and one worker per item of `workers` (its extra flags), each with one thread and no
    nanny (the PID is the worker itself, and nothing restarts it): (address, {worker address: process}).
    Every process is stopped by its PID at the end."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
                                   str(port), "--no-dashboard"], env=env_with(tmp), cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for extra in workers:
            processes.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1",
                                               "--nthreads", "1", "--no-nanny", "--no-dashboard", *extra],
                                              env=env_with(tmp), cwd=tmp, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout=60) as client:  # waits for the scheduler
            if workers:
                client.wait_for_workers(len(workers), timeout=120)
            pids = client.run(os.getpid)  # worker address -> its PID
        by_pid = {p.pid: p for p in processes}
        yield address, {worker: by_pid[pid] for worker, pid in pids.items()}
    finally:
        for process in reversed(processes):
            stop(process)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(scheduler address, {worker address: its process}): two workers."""
    with running_cluster(tmp_path_factory.mktemp("dask"), [], []) as cluster:
        yield cluster


def cli(tmp: Path, *argv: str) -> list[dict]:
    p = subprocess.run([sys.executable, "-m", "mnist_core", *argv], capture_output=True, text=True,
                       env=env_with(tmp), cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_a_sweep_on_two_workers_lands_in_the_cli_cache_and_equals_the_embedded_runs(cluster, tmp_path):
    address, workers = cluster
    on_dask = cli(tmp_path / "dask", *SWEEP, "--dask", address)
    assert [r["config"]["lr"] for r in on_dask] == [0.01, 0.001]
    assert all(r["worker"] in workers and not r["cached"] and r["status"] == "ok" for r in on_dask)
    cache = RunCache(tmp_path / "dask" / "runs")
    for run in on_dask:
        stored = cache.get(run["key"])
        assert stored is not None and stored.machine["worker"] == run["worker"]
        assert stored.machine["cpu_capability"] and stored.machine["torch"]

    embedded = cli(tmp_path / "embedded", *SWEEP)
    assert [r["worker"] for r in embedded] == ["local", "local"]
    assert [r["key"] for r in embedded] == [r["key"] for r in on_dask]
    assert [[[m[f] for f in SAME] for m in r["epochs"]] for r in on_dask] == \
           [[[m[f] for f in SAME] for m in r["epochs"]] for r in embedded]

    again = cli(tmp_path / "dask", *SWEEP, "--dask", address)
    assert [(r["cached"], r["worker"]) for r in again] == [(True, None), (True, None)]


def test_a_worker_killed_mid_job_fails_that_job_and_a_retry_succeeds(cluster, mnist, tmp_path):
    address, workers = cluster
    cache = RunCache(tmp_path / "runs")
    service = service_from_env(cache, mnist, env={"MNIST_LAB_DASK_SCHEDULER": address})  # as the app builds it
    try:
        config = RunConfig(train_size=5000, test_size=200, batch_size=10, epochs=4, init="xavier_uniform", seed=3)
        (job,) = service.submit([config], owner="ann")
        deadline = time.monotonic() + 120
        while not ((now := service.job(job.id)).worker and now.epoch >= 1 and now.fraction > 0):
            assert now.state in ("queued", "running") and time.monotonic() < deadline, now
            time.sleep(0.02)
        killed = now.worker
        os.kill(workers[killed].pid, signal.SIGKILL)
        workers[killed].wait(30)
        assert service.wait([job.id], timeout=120)
        failed = service.job(job.id)
        assert failed.state == "failed" and failed.message == WORKER_LOST
        assert all(cache.get(key) is None for key in failed.keys)  # nothing half-trained

        (retry,) = service.submit([config], owner="ann")  # what pressing Run again does
        assert retry.id != job.id and service.wait([retry.id], timeout=300)
        done = service.job(retry.id)
        assert done.state == "done" and done.worker != killed and done.worker in workers, done
        assert [m.epoch for m in cache.get(done.keys[0]).epochs] == [1, 2, 3, 4]
    finally:
        service.shutdown()


def test_an_unreachable_scheduler_is_one_line_and_exit_2(capsys, mnist):
    from mnist_core.cli import main
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    code = main(["train", "--epochs", "1", "--train-size", "500", "--dask", address])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: cannot reach the Dask scheduler at {address}")


def test_a_cuda_job_goes_to_the_worker_started_with_a_gpu_resource(tmp_path, mnist):
    # A scheduler, one plain worker and one started with --resources GPU=1: a job asking for cuda may only
    # go to the second. On a machine without a GPU that worker then says so (naming itself) and nothing is
    # cached; with a GPU it trains there. CPU jobs still go anywhere.
    with running_cluster(tmp_path, [], ["--resources", "GPU=1"]) as (address, _):
        with distributed.Client(address, timeout=60) as client:
            gpu_worker = next(w for w, info in client.scheduler_info()["workers"].items() if info.get("resources"))
        cache = RunCache(tmp_path / "runs")
        service = service_from_env(cache, mnist, env={"MNIST_LAB_DASK_SCHEDULER": address})
        try:
            config = RunConfig(device="cuda", epochs=1, train_size=500, test_size=200, batch_size=50)
            (job,) = service.submit([config], owner="ann")
            assert job.device == "cuda" and job.keys == [cache.key_for(config, mnist)]
            assert service.wait([job.id], timeout=120)
            done = service.job(job.id)
            if torch_has_cuda():
                assert done.state == "done" and done.worker == gpu_worker
            else:
                assert done.state == "failed" and gpu_worker in done.message and "CUDA" in done.message
                assert cache.get(job.keys[0]) is None
        finally:
            service.shutdown()


def torch_has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


LONG = RunConfig(train_size=10_000, test_size=100, batch_size=10, epochs=200, init="xavier_uniform", seed=71)


def wait_until(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the expected state"
        time.sleep(0.05)


def test_with_no_worker_a_job_says_so_at_once_and_the_cli_returns(tmp_path, mnist):
    with running_cluster(tmp_path) as (address, _):
        service = service_from_env(RunCache(tmp_path / "runs"), mnist, env={"MNIST_LAB_DASK_SCHEDULER": address})
        try:
            (job,) = service.submit([RunConfig(epochs=1, train_size=500, test_size=200, seed=72)], owner="ann")
            assert service.wait([job.id], timeout=30)
            failed = service.job(job.id)
            assert failed.state == "failed" and failed.message == NO_WORKER and failed.started is None
        finally:
            service.shutdown()
        p = subprocess.run([sys.executable, "-m", "mnist_core", "train", "--epochs", "1", "--train-size", "500",
                            "--dask", address], capture_output=True, text=True, env=env_with(tmp_path), cwd=ROOT,
                           timeout=120)
        assert p.returncode == 1 and p.stdout == "" and "Traceback" not in p.stderr
        assert p.stderr.strip().endswith(NO_WORKER)


@pytest.fixture(scope="module")
def lone_worker(tmp_path_factory):
    """(scheduler address, its one CPU-only worker's process)."""
    with running_cluster(tmp_path_factory.mktemp("lone"), []) as (address, workers):
        yield address, next(iter(workers.values()))


def test_a_cuda_job_with_no_gpu_worker_says_so_and_cpu_jobs_still_train(lone_worker, mnist, tmp_path):
    address, _ = lone_worker
    cache = RunCache(tmp_path / "runs")
    service = service_from_env(cache, mnist, env={"MNIST_LAB_DASK_SCHEDULER": address})
    try:
        small = RunConfig(epochs=1, train_size=500, test_size=200, batch_size=50, seed=73)
        (gpu,) = service.submit([small.replace(device="cuda")], owner="ann")
        (cpu,) = service.submit([small], owner="bob")
        assert service.wait([gpu.id, cpu.id], timeout=120)
        failed, done = service.job(gpu.id), service.job(cpu.id)
        assert failed.state == "failed" and failed.message == NO_GPU_WORKER and cache.get(gpu.keys[0]) is None
        assert done.state == "done" and done.worker.startswith("tcp://127.0.0.1")
    finally:
        service.shutdown()


def test_a_cancel_frees_the_slot_if_the_task_never_started_or_the_worker_stopped_answering(lone_worker, mnist,
                                                                                          tmp_path):
    address, worker = lone_worker
    cache = RunCache(tmp_path / "runs")
    # Two slots for one worker thread: the second job's task waits in Dask behind the first.
    service = service_from_env(cache, mnist, env={"MNIST_LAB_DASK_SCHEDULER": address, "MNIST_LAB_MAX_CONCURRENT": "2"})

    def tasks() -> int:
        return service.client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

    try:
        jobs = service.submit([LONG, LONG.replace(lr=0.002)], owner="ann")
        wait_until(lambda: any(service.job(j.id).epoch for j in jobs))
        training, waiting = sorted((service.job(j.id) for j in jobs), key=lambda j: not j.epoch)
        assert waiting.state == "running" and waiting.worker is None and tasks() == 2
        assert service.cancel(waiting.id, "ann") and service.wait([waiting.id], timeout=30)
        assert service.job(waiting.id).state == "cancelled"
        wait_until(lambda: tasks() == 1)  # its task was cancelled: released from the scheduler, never run

        os.kill(worker.pid, signal.SIGSTOP)  # the worker stops answering
        try:
            assert service.cancel(training.id, "ann") and service.wait([training.id], timeout=30)
            assert service.job(training.id).state == "cancelled"
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        # Woken, the worker still finds its cancel flag and stops: the next job trains on it.
        (after,) = service.submit([RunConfig(epochs=1, train_size=500, test_size=200, seed=74)], owner="ann")
        assert service.wait([after.id], timeout=120) and service.job(after.id).state == "done"
        assert all(cache.get(key) is None for job in jobs for key in job.keys)
    finally:
        service.shutdown()


def test_a_training_never_waits_for_a_scheduler_that_stopped_answering(lone_worker, mnist, tmp_path):
    # The worker's progress and cancel checks go through a courier thread, so a stalled scheduler (one in a
    # busy server process) delays the live chart, never the training. Held by the scheduler, an epoch would
    # last as long as the stall; here every epoch ends well within it, while the scheduler sleeps.
    address, _ = lone_worker
    cache = RunCache(tmp_path / "runs")
    service = service_from_env(cache, mnist, env={"MNIST_LAB_DASK_SCHEDULER": address})
    stall = 8.0
    try:
        scheduler = service.client.run_on_scheduler(os.getpid)
        config = RunConfig(train_size=2_000, test_size=100, batch_size=20, epochs=30, init="xavier_uniform", seed=75)
        (job,) = service.submit([config], owner="ann")
        wait_until(lambda: service.job(job.id).epoch)  # training, its progress arriving
        before = service.job(job.id).epoch
        os.kill(scheduler, signal.SIGSTOP)
        try:
            time.sleep(stall)
        finally:
            os.kill(scheduler, signal.SIGCONT)
        assert service.wait([job.id], timeout=300) and service.job(job.id).state == "done"
        run = cache.get(job.keys[0])
        assert before < config.epochs and len(run.epochs) == config.epochs
        assert max(e.seconds for e in run.epochs) < stall / 2, [round(e.seconds, 2) for e in run.epochs]
    finally:
        service.shutdown()
