"""Benchmarks: the engine against the seed's training loop, against the hardware, sweeps, and the cache.

    MNIST_DATA_DIR=../shared/data/mnist python bench/run.py           # everything (about 6 minutes on 2 cores)
    MNIST_DATA_DIR=../shared/data/mnist python bench/run.py --quick   # a reduced set, under 2 minutes

Prints a table and writes bench/results.json: every figure, every ratio, the machine, the torch
version and the threads. Absolute seconds vary between machines; the ratios are measured side by
side in one process, alternating the two sides and taking medians, so that the noise of a shared
machine falls on both.

1. seed: the lab's loop (torchvision's datasets.MNIST with ToTensor, a shuffling DataLoader, the
   same model, Adam) against mnist_core.train on the identical config, time per epoch. Both sides
   also run a test pass each epoch (the seed plots test accuracy per epoch; our engine always does).
   Slow cases train on a subset of the training images; the table says which. The bf16 case sets the
   engine's bf16 against the seed's loop both in bf16 (the same autocast) and in plain fp32, labelled,
   and says whether this CPU computes bf16 natively (train.bf16_native).
2. hardware: the MLP's training FLOP/s (multiply-adds x 2 x 3 x images/s) against this machine's
   fp32 matmul peak measured here with torch.mm; at batch 10, the step against the floor set by the
   engine's fused Adam pass over the 268k weights.
3. sweeps: the epoch sweep {5, 30, 50, 100} through epoch-prefix reuse against training each value
   separately.
4. cache: a finished 50-epoch run read back in a fresh process.

OpenMP: unless OMP_WAIT_POLICY is set, this sets it to PASSIVE before torch loads. With the default
(spinning) policy, a 2-thread PyTorch process that shares 2 cores with any other busy process slows
down 10-100x (measured here: a 0.2 s epoch took over 20 s); with PASSIVE it costs about 20% on an
idle machine and stays sane on a busy one. The value used is recorded in results.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # must precede the first import of torch
ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="mnist-bench-"))
os.environ["MNIST_CACHE_DIR"] = str(WORK / "cache")  # never the project's cache
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from mnist_core.cache import RunCache  # noqa: E402
from mnist_core.config import RunConfig  # noqa: E402
from mnist_core.data import FILES, MnistData, data_dir_from_env, load_mnist  # noqa: E402
from mnist_core.models import multiply_adds  # noqa: E402
from mnist_core.sweep import run_sweep  # noqa: E402
from mnist_core.train import bf16_native, evaluate, make_optimizer, seeded_model, train  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
rows: list[dict] = []  # the table: one dict per figure


def record(section: str, name: str, value: float, unit: str, note: str = "", **extra) -> float:
    rows.append({"section": section, "name": name, "value": value, "unit": unit, "note": note, **extra})
    shown = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    print(f"  {section:<9} {name:<52} {shown:>12} {unit:<8} {note}", flush=True)
    return value


def median(values: list[float]) -> float:
    return statistics.median(values)


# -- 1. the seed's loop ----------------------------------------------------------------------------

def seed_datasets(source: Path):
    """torchvision's MNIST over the same four files, extracted into a temp folder (the source is read-only)."""
    from torchvision import datasets, transforms

    raw = WORK / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        packed = source / f"{name}.gz"
        if packed.exists():
            (raw / name).write_bytes(gzip.decompress(packed.read_bytes()))
        else:
            shutil.copy(source / name, raw / name)
    train_set = datasets.MNIST(str(WORK / "tv"), train=True, transform=transforms.ToTensor(), download=False)
    test_set = datasets.MNIST(str(WORK / "tv"), train=False, transform=transforms.ToTensor(), download=False)
    return train_set, test_set


class SeedCNN(nn.Module):
    """The seed blog's CNN, as printed there."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.layer2 = nn.Sequential(nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.layer3 = nn.Sequential(nn.Conv2d(64, 128, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2, padding=1))
        self.fc1 = nn.Linear(4 * 4 * 128, 625)
        nn.init.xavier_uniform_(self.fc1.weight)
        self.layer4 = nn.Sequential(self.fc1, nn.ReLU(), nn.Dropout(p=0.5))
        self.fc2 = nn.Linear(625, 10)
        nn.init.xavier_uniform_(self.fc2.weight)

    def forward(self, x):
        out = self.layer3(self.layer2(self.layer1(x)))
        return self.fc2(self.layer4(out.view(out.size(0), -1)))


def seed_model(config: RunConfig) -> nn.Module:
    torch.manual_seed(config.seed)
    if config.model == "cnn":
        return SeedCNN()
    layers = [nn.Linear(784, 256), nn.Linear(256, 256), nn.Linear(256, 10)]
    for layer in layers:
        nn.init.normal_(layer.weight)
    return nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])


def seed_epochs(config: RunConfig, train_set, test_x, test_y, epochs: int) -> list[float]:
    """The lab's loop, for `epochs` epochs; seconds of each (training plus one test pass).

    With config.precision "bf16", its forward passes run under the same CPU autocast as the engine's.
    """
    torch.set_flush_denormal(False)  # the engine turns it on for itself; the lab's loop runs as it did
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(train_set, range(config.train_size)),
                                         batch_size=config.batch_size, shuffle=True, drop_last=True)
    model = seed_model(config)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    flat = config.model == "mlp"
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.precision == "bf16")
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        avg_cost = 0
        for X, Y in loader:
            X = X.view(-1, 28 * 28) if flat else X
            optimizer.zero_grad()
            with bf16:
                cost = criterion(model(X).float(), Y)
            cost.backward()
            optimizer.step()
            avg_cost += cost / len(loader)
        model.eval()
        with torch.no_grad():
            correct = 0
            for at in range(0, len(test_x), 1000):
                x = test_x[at:at + 1000]
                with bf16:
                    logits = model(x.view(-1, 784) if flat else x)
                correct += (logits.argmax(1) == test_y[at:at + 1000]).sum().item()
        float(avg_cost.detach())
        times.append(time.perf_counter() - start)
    return times


def engine_epochs(config: RunConfig, data: MnistData) -> tuple[list[float], float]:
    result, _ = train(config, data)
    return [m.seconds for m in result.epochs], result.final.test_acc


def vs_seed(data: MnistData, seed_sets, cases, repeats: int) -> dict[str, float]:
    """Alternates seed and engine `repeats` times per case; the first epoch of each trial is a warm-up."""
    train_set, test_set = seed_sets
    test_x_all = torch.stack([test_set[i][0] for i in range(len(test_set))])
    test_y_all = test_set.targets.clone()
    ratios = {}
    for label, config, test_size in cases:
        engine_data = MnistData(data.train_x, data.train_y, data.test_x[:test_size], data.test_y[:test_size],
                                data.data_id, data.source)
        # a bf16 engine is set against the seed's loop in bf16 and in the fp32 a student would otherwise run
        seed_precisions = ("bf16", "fp32") if config.precision == "bf16" else (config.precision,)
        seed_t, ours_t = {p: [] for p in seed_precisions}, []
        for _ in range(repeats):
            for precision in seed_precisions:
                seed_t[precision] += seed_epochs(config.replace(precision=precision), train_set,
                                                 test_x_all[:test_size], test_y_all[:test_size], 2)[1:]
            ours_t += engine_epochs(config.replace(epochs=2), engine_data)[0][1:]
        n = config.train_size
        note = f"{n:,} train images, {test_size:,} test, batch {config.batch_size}"
        if config.precision == "bf16":
            native, reason = bf16_native("cpu")
            note += f"; bf16 {'native' if native else 'NOT native'}: {reason}"
        o = median(ours_t)
        record("seed", f"{label}: engine {config.precision} s/epoch", o, "s", note, samples_per_s=n / o)
        for precision in seed_precisions:
            s = median(seed_t[precision])
            record("seed", f"{label}: seed loop {precision} s/epoch", s, "s", note, samples_per_s=n / s)
            ratio = record("seed", f"{label}: engine {config.precision} speedup over seed loop {precision}", s / o,
                           "x", "seed / engine, median", ratio=True)
            if precision == config.precision:
                ratios[label] = ratio
    return ratios


def bf16_cost(data: MnistData, train_size: int, test_size: int) -> None:
    """The CNN's accuracy with bf16 autocast against fp32 after one epoch, same seed (speed: in section 1)."""
    small = MnistData(data.train_x, data.train_y, data.test_x[:test_size], data.test_y[:test_size], data.data_id,
                      data.source)
    note = f"CNN, 1 epoch on {train_size:,} images, {test_size:,} test"
    for precision in ("fp32", "bf16"):
        config = RunConfig(model="cnn", epochs=1, batch_size=100, train_size=train_size, precision=precision)
        record("seed", f"cnn {precision}: test accuracy", train(config, small)[0].final.test_acc, "", note)


# -- 2. the hardware -------------------------------------------------------------------------------

def matmul_peak(n: int = 4096, repeats: int = 3) -> float:
    """fp32 FLOP/s of torch.mm on large square matrices: the best of a few, as a peak should be."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times)


def adam_floor(config: RunConfig, steps: int = 200) -> float:
    """Seconds of the engine's fused Adam step over the MLP's weights: the least a training step can cost."""
    model = seeded_model(config, "cpu")
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    optimizer = make_optimizer(config, model.parameters(), "cpu")
    for _ in range(20):
        optimizer.step()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        times.append((time.perf_counter() - start) / steps)
    return median(times)


def eval_seconds(config: RunConfig, data: MnistData) -> float:
    model = seeded_model(config, "cpu")
    evaluate(model, data.test_x, data.test_y, config, "cpu")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        evaluate(model, data.test_x, data.test_y, config, "cpu")
        times.append(time.perf_counter() - start)
    return median(times)


def vs_hardware(data: MnistData, batch_sizes: dict[int, int], repeats: int) -> None:
    """Each epoch is timed right after a peak measurement, so both see the same load on a shared machine."""
    test_pass = eval_seconds(RunConfig(), data)
    peaks = []
    for batch, n in batch_sizes.items():
        config = RunConfig(batch_size=batch, train_size=n, epochs=2)
        shares, epochs = [], []
        for _ in range(repeats):
            peaks.append(matmul_peak())
            epoch = median(engine_epochs(config, data)[0][1:])
            epochs.append(epoch)
            shares.append(multiply_adds(config) * 2 * 3 * n / (epoch - test_pass) / peaks[-1])
        epoch = median(epochs)
        flops = multiply_adds(config) * 2 * 3 * n / (epoch - test_pass)
        note = f"{n:,} images; epoch minus its {test_pass:.3f} s test pass"
        record("hardware", f"mlp batch {batch}: training FLOP/s", flops / 1e9, "GFLOP/s", note)
        record("hardware", f"mlp batch {batch}: share of matmul peak", median(shares), "",
               "each epoch against the peak measured just before it", ratio=True)
        if batch == 10:
            floor = adam_floor(config)
            step = (epoch - test_pass) / (n // batch)
            record("hardware", "mlp batch 10: step time", step * 1e6, "us", note)
            record("hardware", "fused Adam step over 268k weights (floor)", floor * 1e6, "us")
            record("hardware", "mlp batch 10: floor / step", floor / step, "", "1.0 = the step is all optimizer",
                   ratio=True)
    record("hardware", "fp32 matmul peak (torch.mm 4096x4096)", median(peaks) / 1e9, "GFLOP/s",
           f"median of {len(peaks)}, best {max(peaks) / 1e9:.0f}")


# -- 3. sweeps -------------------------------------------------------------------------------------

def timed_sweep(configs: list[RunConfig], data: MnistData) -> tuple[float, list]:
    """Wall seconds and results of a sweep on an empty cache."""
    cache = RunCache(tempfile.mkdtemp(dir=WORK, prefix="runs-"))
    start = time.perf_counter()
    results = run_sweep(configs, data, cache)
    return time.perf_counter() - start, results


def epoch_sweep(data: MnistData, n: int, really_separate: bool) -> None:
    base = RunConfig(lr=0.0001, batch_size=100, train_size=n)
    values = (5, 30, 50, 100)
    configs = [base.replace(epochs=e) for e in values]
    seconds, results = timed_sweep(configs, data)
    trained = max(len(r.epochs) for r in results)
    note = f"{n:,} images, batch 100, 10k test pass per epoch"
    record("sweeps", "epoch sweep {5,30,50,100}: epochs trained, prefix reuse", trained, "epochs", note)
    record("sweeps", "epoch sweep: epochs trained, each value separately", sum(values), "epochs")
    record("sweeps", "epoch sweep: prefix reuse", seconds, "s", note)
    if really_separate:
        apart = sum(timed_sweep([c], data)[0] for c in configs)
        how = "measured, each value trained"
    else:
        apart = sum(values) * median([m.seconds for m in results[-1].epochs])
        how = "estimated: 185 x the median epoch"
    record("sweeps", "epoch sweep: each value separately", apart, "s", how)
    record("sweeps", "epoch sweep: reuse speedup", apart / seconds, "x", "", ratio=True)


# -- 4. the cache ----------------------------------------------------------------------------------

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from mnist_core.cache import RunCache
from mnist_core.config import RunConfig
from mnist_core.data import load_mnist
t1 = time.perf_counter()
cache = RunCache(sys.argv[1])
hit = cache.get(sys.argv[2])
t2 = time.perf_counter()
data = load_mnist("cpu")
hit2 = cache.get(cache.key_for(RunConfig.from_dict(json.loads(sys.argv[3])), data))
t3 = time.perf_counter()
assert hit is not None and hit2 is not None and len(hit.epochs) == 50
print(json.dumps({"imports": t1 - t0, "by_key": t2 - t1, "by_config": t3 - t2}))
"""


def cache_hit(data: MnistData) -> None:
    cache = RunCache(WORK / "hit" / "runs")  # the layout MNIST_CACHE_DIR=WORK/hit gives the CLI
    config = RunConfig(epochs=50, train_size=500, batch_size=100)
    key = cache.get_or_train(config, data).key
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    probes = []
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", PROBE, str(cache.root), key, json.dumps(config.to_dict())],
                             env=env, capture_output=True, text=True, check=True)
        probes.append({**json.loads(out.stdout), "process": time.perf_counter() - start})
    best = {k: median([p[k] for p in probes]) for k in probes[0]}
    cli = []
    for _ in range(3):  # what a student types: the run's metrics by key, from a cold start
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mnist_core", "cache", "show", key, "--json"], check=True,
                       env={**env, "MNIST_CACHE_DIR": str(cache.root.parent)}, capture_output=True, cwd=ROOT)
        cli.append(time.perf_counter() - start)
    best["cli"] = median(cli)
    note = "50-epoch run, fresh process, median of 3"
    record("cache", "hit by key (cache.get), after imports", best["by_key"], "s", note)
    record("cache", "hit by config (load MNIST + key + get), after imports", best["by_config"], "s",
           "load_mnist hashes the 4 files for the key")
    record("cache", "import mnist_core (torch) in the fresh process", best["imports"], "s")
    record("cache", "whole fresh process (python start to exit)", best["process"], "s",
           "imports torch and loads MNIST to compute the key by config")
    record("cache", "fresh process: python -m mnist_core cache show KEY", best["cli"], "s",
           "start to exit; reading metrics needs no torch")


# -- main ------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced set, under 2 minutes")
    args = parser.parse_args()
    quick = args.quick
    started = time.perf_counter()
    source = data_dir_from_env()
    if source is None:
        sys.exit("Set MNIST_DATA_DIR (e.g. MNIST_DATA_DIR=../shared/data/mnist): the seed's loop reads the same files.")
    data = load_mnist("cpu")
    load_at_start = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, {'quick' if quick else 'full'} run, load average {load_at_start}",
          flush=True)

    repeats = 2 if quick else 3
    mlp = RunConfig(model="mlp", activations=("relu", "relu"), init="normal", optimizer="adam", lr=0.001)
    cnn = RunConfig(model="cnn", optimizer="adam", lr=0.001)
    cases = [  # (label, config, test images)
        ("mlp batch 10", mlp.replace(batch_size=10, train_size=3000 if quick else 10000), 10000),
        ("mlp batch 100", mlp.replace(batch_size=100, train_size=20000 if quick else 60000), 10000),
        ("mlp batch 1000", mlp.replace(batch_size=1000, train_size=30000 if quick else 60000), 10000),
        ("cnn batch 100", cnn.replace(batch_size=100, train_size=1000 if quick else 6000), 1000),
        ("cnn batch 100 bf16", cnn.replace(batch_size=100, train_size=1000 if quick else 6000, precision="bf16"), 1000),
    ]
    ratios = vs_seed(data, seed_datasets(source), cases, repeats)
    bf16_cost(data, 1000 if quick else 6000, 2000 if quick else 10000)
    vs_hardware(data, {10: 3000 if quick else 10000, 100: 20000 if quick else 60000,
                       1000: 30000 if quick else 60000}, repeats)
    epoch_sweep(data, 300 if quick else 1000, really_separate=not quick)
    cache_hit(data)

    value = {r["name"]: r["value"] for r in rows}
    targets = {
        "mlp batch 10 >= 2.5x seed": ratios["mlp batch 10"] >= 2.5,
        "mlp batch 100 >= 4x seed": ratios["mlp batch 100"] >= 4,
        "mlp batch 1000 >= 4x seed": ratios["mlp batch 1000"] >= 4,
        "cnn >= 1.3x seed (fp32)": ratios["cnn batch 100"] >= 1.3,
        "mlp batch 1000 >= 60% of matmul peak": value["mlp batch 1000: share of matmul peak"] >= 0.6,
        "cache hit by key < 1 s": value["hit by key (cache.get), after imports"] < 1,
        "cache hit in a fresh process < 1 s": value["fresh process: python -m mnist_core cache show KEY"] < 1,
    }
    print("\ntargets:")
    for name, met in targets.items():
        print(f"  {'met    ' if met else 'NOT met'}  {name}")
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "python": platform.python_version()}
    try:
        machine["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                    if line.startswith("model name"))
        machine["load_average_at_start"] = load_at_start
        machine["load_average_at_end"] = os.getloadavg()
    except (OSError, StopIteration):
        pass
    report = {"mode": "quick" if quick else "full", "command": "python bench/run.py" + (" --quick" if quick else ""),
              "seconds": time.perf_counter() - started, "machine": machine, "figures": rows,
              "ratios": {r["name"]: r["value"] for r in rows if r.get("ratio")}, "targets": targets}
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    os.replace(tmp, RESULTS)
    print(f"\nwrote {RESULTS.relative_to(ROOT)} in {report['seconds']:.0f} s")
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
