"""Records the golden runs tests/test_golden.py compares with: the first epochs of a few fixed small configs.

    MNIST_DATA_DIR=../shared/data/mnist python tests/record_golden.py            # (re)write the file
    MNIST_DATA_DIR=../shared/data/mnist python tests/record_golden.py --compare  # how far this machine is from it

Re-record only together with an ENGINE_VERSION bump: the file says which engine version it holds, and
the test fails when the two differ. Record with the CPU's native kernels (no ATEN_CPU_CAPABILITY).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mnist_core.config import ENGINE_VERSION, RunConfig  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden" / f"engine_v{ENGINE_VERSION}.json"
CONFIGS = {  # small enough for seconds on 2 cores; the test set is a balanced sample, as a quick look scores
    "mlp-normal": RunConfig(model="mlp", init="normal", lr=0.001, epochs=2, batch_size=100, train_size=2000,
                            test_size=1000),
    "mlp-xavier": RunConfig(model="mlp", init="xavier_uniform", lr=0.001, epochs=2, batch_size=100, train_size=2000,
                            test_size=1000),
    "cnn": RunConfig(model="cnn", lr=0.001, epochs=2, batch_size=50, train_size=500, test_size=500),
}
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


def measure() -> dict:
    from mnist_core.data import load_mnist
    from mnist_core.train import train
    data = load_mnist("cpu")
    runs = {}
    for name, config in CONFIGS.items():
        result, _ = train(config, data)
        runs[name] = {"config": config.to_dict(),
                      "epochs": [{k: getattr(m, k) for k in METRICS} for m in result.epochs]}
    return {"engine_version": ENGINE_VERSION, "data_id": data.data_id, "runs": runs}


def deviations(recorded: dict, measured: dict) -> dict[str, float]:
    """The largest relative loss deviation and absolute accuracy deviation, per metric, over all runs."""
    worst = dict.fromkeys(METRICS, 0.0)
    for name, run in recorded["runs"].items():
        for a, b in zip(run["epochs"], measured["runs"][name]["epochs"]):
            for k in METRICS:
                gap = abs(a[k] - b[k]) / (abs(a[k]) if k.endswith("loss") else 1)
                worst[k] = max(worst[k], gap)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true", help="print the deviations from the recorded file")
    args = parser.parse_args()
    import torch
    measured = measure()
    print(f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(native)')}: "
          f"{torch.backends.cpu.get_cpu_capability()}")
    if args.compare:
        print(json.dumps(deviations(json.loads(GOLDEN.read_text()), measured)))
        return
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(measured, indent=1) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main()
