"""`python -m mnist_core`: JSON a script can read, tables a person can, one-line errors, no tracebacks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_core.cli import main
from mnist_core.data import denormalize
from mnist_core.train import resolve_device

pytestmark = pytest.mark.numerics

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--train-size", "2000", "--init", "xavier_uniform", "--batch-size", "50"]
RUN_FIELDS = {"key", "cached", "status", "config", "total_seconds", "steps_per_epoch", "device", "epochs"}
EPOCH_FIELDS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_then_the_same_run_comes_from_the_cache(capsys, mnist):
    code, out, _ = run(capsys, "train", "--epochs", "2", *QUICK, "--json")
    assert code == 0
    first = json.loads(out)
    assert RUN_FIELDS <= set(first) and first["status"] == "ok" and first["cached"] is False
    assert first["steps_per_epoch"] == 40 and first["device"] == resolve_device("auto") and first["config"]["train_size"] == 2000
    assert [e["epoch"] for e in first["epochs"]] == [1, 2] and EPOCH_FIELDS <= set(first["epochs"][0])
    assert first["epochs"][-1]["test_acc"] > 0.85

    code, out, _ = run(capsys, "train", "--epochs", "2", *QUICK, "--json")
    again = json.loads(out)
    assert again["cached"] is True and again["key"] == first["key"] and again["epochs"] == first["epochs"]

    code, out, _ = run(capsys, "cache", "list")
    assert code == 0 and first["key"] in out
    code, out, _ = run(capsys, "cache", "show", first["key"], "--json")
    assert json.loads(out)["epochs"] == first["epochs"]


def test_sweep_json_is_a_list_in_value_order(capsys, mnist):
    code, out, _ = run(capsys, "sweep", "--param", "lr", "--values", "0.01,0.001", "--epochs", "1", *QUICK, "--json")
    assert code == 0
    runs = json.loads(out)
    assert [r["config"]["lr"] for r in runs] == [0.01, 0.001]
    assert all(RUN_FIELDS <= set(r) for r in runs)
    code, out, _ = run(capsys, "sweep", "--preset", "mlp-batch", "--epochs", "1", "--train-size", "1000")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("batch_size sweep")
    assert [line.split()[0] for line in lines[2:]] == ["10", "30", "100", "1000"]
    steps = [int(line.split()[8]) for line in lines[2:]]
    assert steps == [100, 34, 10, 1]  # the seed's finding: smaller batches, more steps


def test_shapes_prints_the_flow(capsys):
    code, out, _ = run(capsys, "shapes", "--json")
    flow = json.loads(out)
    assert code == 0 and flow[0]["shape"] == [1, 28, 28] and {"layer": "flatten", "shape": [2048], "detail": ""} in flow
    code, out, _ = run(capsys, "shapes", "--stride", "5")
    assert "flatten  128" in out


@pytest.mark.parametrize("argv, words", [
    (["train", "--lr", "-1"], "learning rate must be a positive"),
    (["train", "--lr", "abc"], "learning rate must be a number"),
    (["train", "--activations", "relu,swish"], "Unknown activation function 'swish'"),
    (["train", "--batch-size", "0"], "batch size"),
    (["shapes", "--kernel-size", "10", "--conv-layers", "all"], "at conv3"),
    (["sweep", "--param", "lr"], "sweep needs --preset"),
    (["sweep", "--param", "colour", "--values", "1,2"], "cannot be varied"),
    (["cache", "show", "../../etc/passwd"], "is not a run key"),
    (["cache", "show", "mlp-0123456789abcdef"], "No cached run"),
    (["predict", "--run", "mlp-0123456789abcdef", "x.png"], "No cached run"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and words in err and err.count("\n") == 1


def test_device_cuda_trains_on_the_gpu_or_says_there_is_none(capsys):
    code, out, err = run(capsys, "train", "--device", "cuda", "--epochs", "1", *QUICK, "--json")
    if torch.cuda.is_available():
        assert code == 0 and err == ""
        result = json.loads(out)
        assert result["device"] == "cuda" and result["status"] == "ok" and result["epochs"][-1]["test_acc"] > 0.8
    else:
        assert code == 2 and out == ""
        assert err.startswith("error: ") and "no CUDA GPU" in err and err.count("\n") == 1


def test_missing_data_is_one_line_in_a_real_process(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MNIST_DATA_DIR": str(tmp_path), "MNIST_CACHE_DIR": str(tmp_path / "c"),
           "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "mnist_core", "train", "--epochs", "1"], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: MNIST was not found") and "MNIST_DATA_DIR" in p.stderr


def test_predict_reads_digits_drawn_as_images(capsys, mnist, tmp_path):
    code, out, _ = run(capsys, "train", "--epochs", "1", "--init", "xavier_uniform", "--json")
    key = json.loads(out)["key"]
    paths, truth = [], []
    for i in range(8):
        pixels = (denormalize(mnist.test_x[i, 0]).numpy() * 255).astype(np.uint8)
        big = Image.fromarray(255 - pixels).resize((200, 200))  # black ink on white paper, any size
        paths.append(str(tmp_path / f"digit{i}.png"))
        big.save(paths[-1])
        truth.append(int(mnist.test_y[i]))
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    code, out, _ = run(capsys, "predict", "--run", key, *paths, str(tmp_path / "blank.png"), "--json")
    assert code == 0
    answers = json.loads(out)
    digits = [a["digit"] for a in answers[:-1]]
    assert sum(d == t for d, t in zip(digits, truth)) >= 7, (digits, truth)
    assert all(abs(sum(a["probabilities"]) - 1) < 1e-3 for a in answers[:-1])
    assert answers[-1]["digit"] is None and "blank" in answers[-1]["message"]
    (tmp_path / "notes.txt").write_text("hello")
    code, out, err = run(capsys, "predict", "--run", key, str(tmp_path / "notes.txt"))
    assert code == 2 and "is not an image" in err


def test_reading_the_cache_never_loads_torch(tmp_path, capsys, mnist):
    # A cached run's metrics must come back in a fraction of a second from a cold start: importing
    # torch alone takes ~2 s, so the `cache` commands must not import it.
    code, out, _ = run(capsys, "train", "--epochs", "1", *QUICK, "--json")
    key = json.loads(out)["key"]
    probe = ("import sys; from mnist_core.cli import main; "
             f"assert main(['cache', 'show', '{key}', '--json']) == 0; assert main(['cache', 'list']) == 0; "
             "assert 'torch' not in sys.modules, 'torch was imported'")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout[: p.stdout.rindex("}") + 1])["key"] == key


def test_a_sweep_longer_than_the_service_remembers_prints_every_run(capsys, monkeypatch):
    # The service forgets finished jobs beyond KEEP_FINISHED, but not while their caller waits on them:
    # a 1,000-value sweep once crashed after ~508 runs. Eight runs over a limit of two show the same.
    monkeypatch.setattr("mnist_core.jobs.service.KEEP_FINISHED", 2)
    seeds = ",".join(str(seed) for seed in range(901, 909))
    code, out, err = run(capsys, "sweep", "--model", "mlp", "--param", "seed", "--values", seeds, "--epochs", "1",
                         "--train-size", "100", "--test-size", "100", "--hidden", "32", "--json")
    assert code == 0, err
    runs = json.loads(out)
    assert [r["config"]["seed"] for r in runs] == list(range(901, 909)) and all(not r["cached"] for r in runs)
