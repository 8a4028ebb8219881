"""The run cache keeps what it holds: looking touches nothing, eviction spares pinned runs and runs in
use, a damaged entry goes to quarantine (an unreadable one stays), and a writer killed with SIGKILL
leaves no entry and no temp file behind once the cache opens again.

Entries here are real files written by RunCache.put, with tiny weights: no training is needed.
"""
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import mnist_core.cache as cache_module
from mnist_core.cache import QUARANTINE, SCHEMA, RunCache
from mnist_core.cli import main
from mnist_core.config import PRESETS, RunConfig, run_key
from mnist_core.results import EpochMetrics, RunResult

ROOT = Path(__file__).resolve().parent.parent


def a_run(seed: int, size: int = 16, acc: float = 0.9) -> RunResult:
    config = RunConfig(seed=seed, epochs=2, train_size=1000)
    return RunResult(config=config, status="ok", total_seconds=2.0, steps_per_epoch=10, device="cpu",
                     epochs=[EpochMetrics(e, 0.5, acc, 0.4, acc, 1.0, 1000.0) for e in (1, 2)],
                     key=run_key(config, "test-data", "cpu"), data_id="test-data",
                     weights={"w": torch.full((size,), float(seed))})


def stored(cache: RunCache, *seeds: int) -> list[RunResult]:
    runs = [a_run(s) for s in seeds]
    for run in runs:
        assert cache.put(run)
    return runs


@pytest.fixture
def cli_cache(tmp_path, monkeypatch):
    """The cache the CLI opens (RunCache()), in a folder of the test's own."""
    monkeypatch.setattr(cache_module, "CACHE_DIR", tmp_path)
    return RunCache()


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


# -- looking touches nothing; serving records the use ----------------------------------------------

def test_listing_and_showing_leave_every_mtime_unchanged_and_serving_records_the_use(cli_cache, capsys):
    runs = stored(cli_cache, 1, 2, 3)
    cli_cache.pin([runs[0].key])
    for path in cli_cache.root.rglob("*"):
        os.utime(path, ns=(10**18, 10**18))  # long ago: any touch would show
    before = mtimes(cli_cache.root)

    assert main(["cache", "list"]) == 0 and main(["cache", "list", "--json"]) == 0
    assert main(["cache", "show", runs[1].key]) == 0 and main(["cache", "check"]) == 0
    cache = RunCache(cli_cache.root)
    assert len(cache.list()) == 3 and cache.get(runs[2].key) is not None
    assert mtimes(cli_cache.root) == before

    assert cache.get(runs[2].key, touch=True).cached
    after = mtimes(cli_cache.root)
    assert after.pop(cli_cache.path(runs[2].key).name) > before.pop(cli_cache.path(runs[2].key).name)
    assert after == before


def test_the_header_index_sees_a_replaced_entry(cache):
    (run,) = stored(cache, 1)
    assert cache.list()[0].final.test_acc == 0.9
    newer = a_run(1, acc=0.5)
    newer.created = run.created + 1
    assert cache.put(newer)
    assert [r.final.test_acc for r in cache.list()] == [0.5]
    assert cache.get(run.key).final.test_acc == 0.5
    cache.path(run.key).unlink()
    assert cache.list() == [] and cache.get(run.key) is None


# -- eviction and pins ---------------------------------------------------------------------------------

def test_eviction_goes_by_use_and_spares_pinned_runs_and_runs_being_trained(cache, capsys):
    runs = stored(cache, 0, 1, 2, 3, 4)
    entry = cache.path(runs[0].key).stat().st_size
    for age, run in enumerate(runs):  # run 0 is the least recently used, run 4 the most
        os.utime(cache.path(run.key), ns=(10**18 + age * 10**9,) * 2)
    cache.pin([runs[0].key])
    busy = FileLock(str(cache.root / f".{runs[1].key}.lock"))  # another process training or storing run 1
    busy.acquire()
    try:
        capped = RunCache(cache.root, max_bytes=int(entry * 1.5))
        assert capped.evict() == [runs[2].key, runs[3].key]
    finally:
        busy.release()
    assert {r.key for r in capped.list()} == {runs[0].key, runs[1].key, runs[4].key}
    assert capped.evict() == [runs[1].key]  # no longer in use: the least recently used unpinned run
    capped.unpin([runs[0].key])
    assert capped.evict() == [runs[0].key]


def test_a_damaged_pins_file_stops_eviction_rather_than_evicting_pinned_runs(cache):
    runs = stored(cache, 0, 1, 2)
    (cache.root / "pins.json").write_text("{not json")
    capped = RunCache(cache.root, max_bytes=1)
    assert capped.evict() == [] and len(capped.list()) == 3
    assert "pins file" in capped.problems[-1]
    with pytest.raises(ValueError):
        capped.pin([runs[0].key])


def test_cli_pins_keys_and_presets_and_list_shows_them(cli_cache, capsys, mnist):
    (run,) = stored(cli_cache, 1)
    assert main(["cache", "pin", run.key]) == 0
    assert capsys.readouterr().out == f"pinned {run.key}\n"
    assert main(["cache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["key"], r["pinned"]) for r in listed] == [(run.key, True)]
    assert "pinned" in (main(["cache", "list"]), capsys.readouterr().out)[1].splitlines()[0]

    assert main(["cache", "pin", "--preset", "mlp-lr"]) == 0
    preset_keys = {cli_cache.key_for(c, mnist) for c in PRESETS["mlp-lr"].configs()}
    assert len(preset_keys) == len(PRESETS["mlp-lr"].values)
    assert json.loads((cli_cache.root / "pins.json").read_text()) == {"pinned": sorted(preset_keys | {run.key})}
    assert "not cached yet" in capsys.readouterr().out

    assert main(["cache", "unpin", "--preset", "mlp-lr"]) == 0 and main(["cache", "unpin", run.key]) == 0
    assert cli_cache.pinned() == set()
    for bad in (["cache", "pin"], ["cache", "pin", "../../etc/passwd"], ["cache", "pin", run.key, "--preset", "mlp-lr"]):
        capsys.readouterr()
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


# -- damaged entries go to quarantine; unreadable ones stay ----------------------------------------------

@pytest.mark.parametrize("damage", ["truncate", "garbage", "other-run"])
def test_a_damaged_entry_is_quarantined_reported_and_then_trained_again(cache, damage, caplog):
    run, other = stored(cache, 1, 2)
    path = cache.path(run.key)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    else:
        path.write_bytes(cache.path(other.key).read_bytes())
    damaged = path.read_bytes()

    with caplog.at_level(logging.WARNING, logger="mnist_core.cache"):
        assert [r.key for r in cache.list()] == [other.key]
    (kept,) = (cache.root / QUARANTINE).iterdir()
    assert kept.read_bytes() == damaged and kept.name.endswith(f"-{run.key}.safetensors")
    assert not path.exists()
    assert any(run.key in r.message and "quarantine" in r.message for r in caplog.records)
    assert cache.size_bytes() == cache.path(other.key).stat().st_size  # quarantine counts against nothing

    assert cache.put(a_run(1)) and cache.get(run.key, weights=True).weights["w"][0] == 1.0
    assert kept.exists()  # the operator deletes it, not the cache


def test_cache_check_quarantines_damaged_entries_and_lists_them(cli_cache, capsys):
    run, good = stored(cli_cache, 1, 2)
    cli_cache.path(run.key).write_bytes(b"\x08" + bytes(20))
    assert main(["cache", "check"]) == 1
    out = capsys.readouterr().out
    assert "damaged" in out and run.key in out and "quarantined" in out
    assert main(["cache", "check", "--json"]) == 0  # already moved aside: listed, no longer a new problem
    rows = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in rows] == ["quarantined"] and run.key in rows[0]["file"]
    assert RunCache(cli_cache.root).get(good.key) is not None


def test_an_entry_from_a_newer_schema_is_kept_not_overwritten(cache, monkeypatch):
    (run,) = stored(cache, 1)
    monkeypatch.setattr(cache_module, "SCHEMA", SCHEMA + 1)  # a newer version of this code writes it
    assert cache.put(a_run(1, acc=0.3))
    newer = cache.path(run.key).read_bytes()
    monkeypatch.undo()

    assert cache.get(run.key) is None and cache.list() == []
    assert "schema" in cache.problems[-1] and "kept" in cache.problems[-1]
    assert not cache.put(a_run(1))  # never replaced by an older version's run
    assert cache.path(run.key).read_bytes() == newer and not (cache.root / QUARANTINE).exists()
    rows = cache.check()
    assert [r["state"] for r in rows] == ["unreadable"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_entry_without_read_permission_is_kept(cache):
    (run,) = stored(cache, 1)
    cache.path(run.key).chmod(0)
    try:
        assert cache.get(run.key) is None and cache.list() == []
        assert "PermissionError" in cache.problems[-1]
        assert cache.path(run.key).exists() and not (cache.root / QUARANTINE).exists()
    finally:
        cache.path(run.key).chmod(0o644)
    assert cache.get(run.key) is not None


def test_an_entry_the_system_refuses_to_read_is_kept(cache):
    # As root, permissions do not stop a read; a directory in an entry's place fails with an OSError just the same.
    (run,) = stored(cache, 1)
    cache.path(run.key).unlink()
    cache.path(run.key).mkdir()
    assert cache.get(run.key) is None and cache.list() == []
    assert "IsADirectoryError" in cache.problems[-1] and "kept" in cache.problems[-1]
    assert cache.path(run.key).is_dir() and not (cache.root / QUARANTINE).exists()
    assert [r["state"] for r in cache.check()] == ["unreadable"]


def test_reads_racing_with_writers_and_eviction_never_quarantine_anything(cache):
    runs = stored(cache, 1, 2)
    done = threading.Event()

    def churn():  # another session: evicts the entries and stores them again, over and over
        while not done.is_set():
            for run in runs:
                cache.path(run.key).unlink(missing_ok=True)
                cache.put(a_run(run.config.seed))

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        seen = 0
        for _ in range(300):
            seen += len(cache.list()) + sum(cache.get(r.key, weights=True, touch=True) is not None for r in runs)
    finally:
        done.set()
        writer.join()
    assert seen > 0
    assert not (cache.root / QUARANTINE).exists() and not any("damaged" in p for p in cache.problems)


def test_the_home_page_does_not_show_cache_problems(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app_pages import shared
    monkeypatch.setattr(cache_module, "CACHE_DIR", tmp_path)
    cache = RunCache()
    run, good = stored(cache, 1, 2)
    cache.path(run.key).write_bytes(b"garbage")
    shared.run_cache.clear()
    try:
        at = AppTest.from_file("../app.py", default_timeout=120)
        at.run()
        assert not at.exception
        shown = [e.value for kind in ("warning", "error", "info", "markdown", "caption") for e in at.get(kind)]
        assert not any(run.key in text or "damaged" in text or "quarantine" in text for text in shown)
        assert any(text.startswith("1 runs") for text in shown)
    finally:
        shared.run_cache.clear()
    assert (tmp_path / "runs" / QUARANTINE).is_dir()  # the operator still has it


# -- a writer killed with SIGKILL ---------------------------------------------------------------------

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    import mnist_core.cache as cache_module
    from mnist_core.config import RunConfig, run_key
    from mnist_core.results import EpochMetrics, RunResult

    real_save = cache_module.save_file
    def save_and_hang(tensors, path, metadata):
        told = Path(sys.argv[2] + ".part")
        told.write_text(path)
        told.rename(sys.argv[2])  # tells the test the write starts, and where (whole: the test polls for it)
        real_save(tensors, path, metadata)
        time.sleep(600)  # killed before the rename, whenever the kill lands
    cache_module.save_file = save_and_hang

    config = RunConfig(seed=1, epochs=2, train_size=1000)
    cache_module.RunCache(sys.argv[1]).put(RunResult(
        config=config, status="ok", epochs=[EpochMetrics(1, 0.5, 0.9, 0.4, 0.9, 1.0, 1000.0)], total_seconds=1.0,
        steps_per_epoch=10, device="cpu", key=run_key(config, "test-data", "cpu"), data_id="test-data",
        weights={"w": torch.ones(64_000_000)}))  # 256 MB: slow enough for the kill to land mid-write
""")


def wait_for(condition, what: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


@pytest.mark.parametrize("when", ["as-it-starts", "with-bytes-on-disk"])
def test_a_writer_killed_with_sigkill_leaves_no_entry_and_its_temp_file_goes_when_the_cache_opens(tmp_path, when):
    root, started = tmp_path / "runs", tmp_path / "started"
    cache = RunCache(root)
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root), str(started)],
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: started.exists() or child.poll() is not None, "the writer to start")
        assert child.poll() is None, child.stderr.read()
        temp = Path(started.read_text())
        assert temp.parent == root and temp.name.startswith(f".{a_run(1).key}.{child.pid}.")
        if when == "with-bytes-on-disk":
            wait_for(lambda: temp.stat().st_size > 0, "bytes in the temp file")
        assert RunCache(root).clean_temps() == [] and temp.exists()  # a live writer's file is never removed
        os.kill(child.pid, signal.SIGKILL)  # as safetensors serializes 256 MB, or once it wrote them: never renamed
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()

    assert temp.exists()  # what the kill left behind...
    assert cache.list() == [] and cache.get(a_run(1).key) is None and cache.size_bytes() == 0  # ...counts for nothing
    assert not list(root.glob("*.safetensors"))

    reopened = RunCache(root)
    assert not temp.exists() and not list(root.glob(".*.tmp"))
    assert reopened.put(a_run(1))
    assert reopened.get(a_run(1).key, weights=True).weights["w"].tolist() == [1.0] * 16


def test_the_operators_cache_commands_never_load_torch(tmp_path):
    cache = RunCache(tmp_path / "runs")
    (run,) = stored(cache, 1)
    code = ("import sys; from mnist_core.cli import main; "
            f"assert [main(['cache', c, *a]) for c, *a in (('check',), ('pin', '{run.key}'), ('list',), ('unpin', '{run.key}'))] "
            "== [0, 0, 0, 0]; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MNIST_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
