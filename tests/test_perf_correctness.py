"""The fast paths give the answers of the plain ones, bit for bit: a run in a comparison == the same config
trained alone, a reused epoch prefix == a real shorter run; bf16 learns and is offered only where native;
no step reads a number back from the device. Correctness only: speed is bench/run.py's job."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_core import PRESETS
from mnist_core.cli import main
from mnist_core.config import RunConfig
from mnist_core.data import MnistData
from mnist_core.sweep import run_sweep
from mnist_core.i18n import translate
from mnist_core.train import bf16_native, train

pytestmark = pytest.mark.numerics

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(train_size=400, batch_size=40, epochs=2, init="xavier_uniform")


@pytest.fixture(scope="module")
def small_mnist(mnist):
    """Real MNIST with a 1,000-image test set, so each epoch's test pass is cheap."""
    return MnistData(mnist.train_x, mnist.train_y, mnist.test_x[:1000], mnist.test_y[:1000], mnist.data_id, mnist.source)


def numbers(result):
    return [(m.epoch, m.train_loss, m.train_acc, m.test_loss, m.test_acc) for m in result.epochs]


def assert_same_run(a, b):
    """Exactly equal: one engine, one result (the seed's lr 0.1 is chaotic, so anything less is no promise)."""
    assert (a.config, a.status, a.diverged_epoch, a.steps_per_epoch) == (b.config, b.status, b.diverged_epoch,
                                                                         b.steps_per_epoch)
    assert numbers(a) == numbers(b)
    assert set(a.weights) == set(b.weights) and all(torch.equal(a.weights[n], b.weights[n]) for n in b.weights)


def test_a_run_in_a_comparison_is_the_same_config_trained_alone(small_mnist, tmp_path):
    # The seed's learning-rate experiment (normal(0, 1) init, lr 0.1 included), 2 epochs on 1,000 images.
    from mnist_core.cache import RunCache
    configs = [c.replace(epochs=2, train_size=1000) for c in PRESETS["mlp-lr"].configs()]
    assert [c.lr for c in configs] == [0.1, 0.01, 0.001, 0.0001] and configs[0].init == "normal"
    compared = run_sweep(configs, small_mnist, RunCache(tmp_path / "a"))
    alone = {c.lr: train(c, small_mnist)[0] for c in configs}
    for result in compared:
        assert not result.cached
        assert_same_run(result, alone[result.config.lr])
    # other company, another order: the same numbers for the runs they share
    others = [configs[3], configs[0].replace(lr=0.05), configs[0]]
    for result in run_sweep(others, small_mnist, RunCache(tmp_path / "b")):
        if result.config.lr in alone:
            assert_same_run(result, alone[result.config.lr])
    assert numbers(alone[0.1]) != numbers(alone[0.001])  # the runs do differ


@pytest.mark.parametrize("changes", [{}, dict(init="normal", lr=0.1)], ids=["xavier", "seed-lr-0.1"])
def test_a_reused_prefix_is_exactly_the_real_run(small_mnist, cache, changes):
    configs = [RunConfig(**{**TINY, "epochs": e, **changes}) for e in (3, 1)]
    run_sweep(configs, small_mnist, cache)
    served = cache.get(cache.key_for(configs[1], small_mnist), weights=True)
    real, _ = train(configs[1], small_mnist)
    assert numbers(served) == numbers(real)
    assert all(torch.equal(served.weights[n], real.weights[n]) for n in real.weights)


def test_cancel_stops_a_sweep_and_caches_nothing(small_mnist, cache):
    steps = []
    results = run_sweep([RunConfig(**TINY, lr=lr) for lr in (0.003, 0.001)], small_mnist, cache,
                        should_stop=lambda: steps.append(1) or len(steps) > 4)
    assert all(r is None or r.status == "cancelled" for r in results)
    assert cache.list() == []


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_bf16_autocast_runs_and_learns(synthetic, model):
    config = RunConfig(model=model, train_size=512, batch_size=64, epochs=2, init="xavier_uniform", lr=0.003,
                       precision="bf16")
    result, _ = train(config, synthetic)
    assert result.status == "ok" and result.final.test_acc > 0.9
    assert all(w.dtype == torch.float32 for w in result.weights.values())  # autocast: the weights stay fp32


def cpu_flags() -> set[str]:
    try:
        return set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")


def test_bf16_is_native_exactly_where_the_cpu_has_avx512_bf16_or_amx():
    native, reason = bf16_native("cpu")
    has_it = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    if "ONEDNN_MAX_CPU_ISA" not in os.environ:
        assert native == has_it, reason
    assert reason
    native_gpu, reason_gpu = bf16_native("cuda")
    if torch.cuda.is_available():
        assert native_gpu == torch.cuda.is_bf16_supported()
    else:
        assert not native_gpu and "no CUDA GPU" in reason_gpu
    # Said in the student's language where a page shows it (the precision box's help): no English left.
    assert translate(reason, "ko") != str(reason) and "CPU" in translate(reason, "ko")
    assert not re.search(r"\b(this|the|has|is)\b", translate(reason, "ko"))


def test_the_cli_refuses_bf16_where_it_is_not_native(tmp_path, capsys):
    # A real process on a CPU whose bf16 oneDNN may not use (ONEDNN_MAX_CPU_ISA=AVX2: what an AVX2-only
    # CPU gives it): one line, exit status 2, nothing trained.
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "PYTHONPATH": str(ROOT), "MNIST_CACHE_DIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "mnist_core", "train", "--precision", "bf16", "--device", "cpu",
                        "--epochs", "1", "--train-size", "500"], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: --precision bf16 is off on cpu") and p.stderr.count("\n") == 1
    # and this process: refused exactly where bf16_native says no
    native, reason = bf16_native("cpu")
    code = main(["train", "--precision", "bf16", "--device", "cpu", "--epochs", "1", "--train-size", "500",
                 "--init", "xavier_uniform", "--json"])
    out, err = capsys.readouterr()
    assert code == (0 if native else 2), err
    assert native or reason in err


def test_no_step_reads_a_number_back_from_the_device(small_mnist, monkeypatch):
    """On a GPU every .item() or .tolist() waits for the device; they may happen a few times per epoch only."""
    reads = []
    for name in ("item", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, _o=original: reads.append(1) or _o(self))
    config = RunConfig(train_size=2000, batch_size=10, epochs=1)  # 200 steps
    train(config, small_mnist, progress=lambda *a: None)
    assert 0 < len(reads) <= 60 < 200
