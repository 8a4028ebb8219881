"""Take a run home: a plain PyTorch Jupyter notebook that trains one cached run again, step by step.

The notebook is written the way the seed's labs are (read the data, define the model, a training loop,
plot the curves) and needs only torch, numpy, pandas, altair and safetensors: no mnist_core. Running it
top to bottom reproduces the run's per-epoch metrics, because it mirrors everything in train.py that
changes a number:

- the data: the first `train_size` training images, normalised with data.MEAN and data.STD, and the
  test images the run scored (data.balanced_test_sample, its source copied into the notebook);
- the initial weights: torch.manual_seed(seed), then the model built in the engine's layer order (the
  CNN pools before its ReLU, and trains in channels_last);
- the data order: torch.randperm from a generator seeded with the run's seed, once per epoch;
- dropout: written out as the engine computes it (nn.Dropout rounds differently, and a chaotic run, such
  as RMSprop's, amplifies that), its masks from the global generator seeded with seed + 1 (the engine's
  dropout generator);
- the optimizer: torch.optim's fused kernel, which the engine calls directly (bit for bit the same);
- denormals flushed to zero, a mean cross-entropy per batch, the test pass after each epoch in batches
  of train.EVAL_BATCH.

Beside the notebook go the run's trained weights as `<key>.safetensors` (with the run's record in the
header), which its last cells load to read a test image. The notebook is nbformat v4 JSON written with
the json module: building one needs no Jupyter package.
"""
from __future__ import annotations

import inspect
import io
import json
import textwrap
import zipfile
from dataclasses import asdict
from pathlib import Path
from string import Template
from typing import Any

from .cache import check_key
from .config import MNIST_TEST_SIZE, measured_on
from .data import DATASETS, MEAN, STD, TEST_SAMPLE_SEED, balanced_test_sample
from .models import CNN_CHANNELS, CNN_FC, POOL_PADDING, conv_specs, shape_flow
from .results import RunResult
from .train import EVAL_BATCH, FUSED_OPTIMIZERS

NOTEBOOK_NAME = "run.ipynb"

# The activation layers by config name: the notebook writes the class itself (models.ACTIVATION_LAYERS).
ACTIVATION_CLASSES = {"relu": "nn.ReLU()", "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()",
                      "leaky_relu": "nn.LeakyReLU()", "gelu": "nn.GELU()"}
INIT_CALLS = {"normal": "nn.init.normal_(layer.weight)  # mean 0, std 1: the seed's choice",
              "xavier_uniform": "nn.init.xavier_uniform_(layer.weight)",
              "kaiming_uniform": 'nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")'}
OPTIMIZER_CLASSES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}


def weights_name(run: RunResult) -> str:
    return f"{check_key(run.key)}.safetensors"


# -- cells -----------------------------------------------------------------------------------------

def _code(source: str, **values: Any) -> dict[str, Any]:
    """A code cell from an indented template; $names are filled in (the code's own braces stay as they are)."""
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": Template(textwrap.dedent(source).strip("\n")).substitute(values)}


def _markdown(text: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": textwrap.dedent(text).strip("\n")}


def _settings(run: RunResult, device: str) -> str:
    c = run.config
    lines = [f"SEED = {c.seed}",
             f"LEARNING_RATE = {c.lr!r}",
             f"EPOCHS = {c.epochs}",
             f"BATCH_SIZE = {c.batch_size}",
             f"TRAIN_SIZE = {c.train_size}  # the first {c.train_size:,} training images",
             f"TEST_SIZE = {c.test_size}  # test images scored after each epoch"
             + ("" if c.test_size >= MNIST_TEST_SIZE else ": a fixed, class-balanced sample")]
    if c.optimizer in ("sgd", "rmsprop"):
        lines.append(f"MOMENTUM = {c.momentum!r}")
    if c.model == "mlp":
        lines.append(f"HIDDEN = {c.hidden}  # units in each of the two hidden layers")
    else:
        lines.append(f"KEEP_PROB = {c.keep_prob!r}  # dropout keeps this share of the 625 values while training")
    where = f"the app trained this run on {'the CPU' if run.device == 'cpu' else run.device}"
    if device == "cpu":
        lines.append(f'DEVICE = "cpu"  # {where}')
    else:
        lines.append(f'DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # {where}')
    return "\n".join(lines)


def _mlp_class(run: RunResult) -> str:
    c = run.config
    init = INIT_CALLS.get(c.init)
    init_lines = (f"# {c.init} init on the weights; the biases keep PyTorch's own init\n"
                  f"        for layer in (self.fc1, self.fc2, self.fc3):\n"
                  f"            {init}") if init else "# the weights and biases keep nn.Linear's own init"
    return _code('''
        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(784, HIDDEN)  # 28 x 28 = 784 pixels in
                self.fc2 = nn.Linear(HIDDEN, HIDDEN)
                self.fc3 = nn.Linear(HIDDEN, 10)  # one score per class
                self.act1 = $act1
                self.act2 = $act2
                $init

            def forward(self, x):
                x = x.flatten(1)  # (batch, 1, 28, 28) -> (batch, 784)
                return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))
        ''', act1=ACTIVATION_CLASSES[c.activations[0]], act2=ACTIVATION_CLASSES[c.activations[1]], init=init_lines)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _cnn_class(run: RunResult) -> str:
    flow = {step.layer: step.shape for step in shape_flow(run.config)}
    blocks, in_channels = [], 1
    for i, (spec, out_channels, pool_pad) in enumerate(zip(conv_specs(run.config), CNN_CHANNELS, POOL_PADDING), 1):
        pool = "nn.MaxPool2d(2, 2)" if pool_pad == 0 else f"nn.MaxPool2d(2, 2, padding={pool_pad})"
        blocks.append(f"# block {i}: conv -> {_shape(flow[f'conv{i}'])}, pool -> {_shape(flow[f'pool{i}'])}\n"
                      f"            nn.Conv2d({in_channels}, {out_channels}, kernel_size={spec.kernel_size}, "
                      f"stride={spec.stride}, padding={spec.padding}), {pool}, nn.ReLU(),")
        in_channels = out_channels
    return _code('''
        class CNN(nn.Module):
            def __init__(self):
                super().__init__()
                # Each block: a convolution, a 2x2 max-pool, then ReLU. (The seed's order is conv, ReLU, pool;
                # max and ReLU commute exactly, and the ReLU is cheaper on the pooled quarter.)
                self.features = nn.Sequential(
                    $blocks
                )
                self.fc1 = nn.Linear($flat, $fc)  # $flat = the last block's values, flattened
                self.fc2 = nn.Linear($fc, 10)
                nn.init.xavier_uniform_(self.fc1.weight)
                nn.init.xavier_uniform_(self.fc2.weight)

            def forward(self, x):
                x = torch.relu(self.fc1(self.features(x).flatten(1)))
                if self.training and KEEP_PROB < 1:
                    # Dropout, written out: keep each value with probability KEEP_PROB and scale the kept ones
                    # up, so that their mean stays the same. nn.Dropout(p=1 - KEEP_PROB) does the same with
                    # other rounding, which training can amplify into other numbers than the app's.
                    keep = torch.empty_like(x).bernoulli_(KEEP_PROB)
                    x = x * keep / KEEP_PROB
                return self.fc2(x)
        ''', blocks="\n            ".join(blocks), flat=flow["flatten"][0], fc=CNN_FC)


def _forward(run: RunResult, x: str) -> str:
    """The line that computes logits: under bf16 autocast for a bf16 run, as the engine does (its
    continuation indented for the two places it goes, both 8 spaces deep)."""
    if run.config.precision == "bf16":
        return f"with torch.autocast(DEVICE, dtype=torch.bfloat16):\n            logits = model({x}).float()"
    return f"logits = model({x})"


def _optimizer(run: RunResult) -> str:
    c = run.config
    args = ["model.parameters()", "lr=LEARNING_RATE"]
    if c.optimizer in ("sgd", "rmsprop"):
        args.append("momentum=MOMENTUM")
    # fused: the whole step in one kernel, as the app computes it (same numbers as the plain loop, to rounding)
    args.append('fused=DEVICE in ("cpu", "cuda")' if c.optimizer in FUSED_OPTIMIZERS else "foreach=True")
    return f"optimizer = torch.optim.{OPTIMIZER_CLASSES[c.optimizer]}({', '.join(args)})"


def _app_metrics(run: RunResult) -> str:
    rows = [{k: v for k, v in asdict(m).items() if k not in ("seconds", "samples_per_second")} for m in run.epochs]
    return "APP_METRICS = [\n" + "".join(f"    {json.dumps(row)},\n" for row in rows) + "]"


def to_notebook(run: RunResult, device: str | None = None) -> dict[str, Any]:
    """The run as an nbformat v4 notebook (JSON as a dict). `device`: where the notebook trains ("cpu", or
    "cuda" where there is one); by default where the run trained (an mps run trains on the CPU)."""
    c = run.config
    device = device or ("cuda" if run.device == "cuda" else "cpu")
    spec = DATASETS[c.dataset]
    model_class = "MLP" if c.model == "mlp" else "CNN"
    weights = weights_name(run)
    final = run.final
    headline = (f"its test accuracy after epoch {final.epoch} was **{final.test_acc:.2%}** "
                f"on {measured_on(c)}" if final else "it has no finished epoch")
    if run.status == "diverged":
        headline += (f"; in epoch {run.diverged_epoch} its loss became infinite or NaN and training stopped "
                     "(the notebook stops there too)")
    sample_source = inspect.getsource(balanced_test_sample)  # the engine's own code: the same sample, always
    scored = ("All 10,000 test images are scored after each epoch." if c.test_size >= MNIST_TEST_SIZE else
              f"After each epoch the model is scored on {c.test_size:,} test images: a fixed, class-balanced sample "
              "(each class in its share of the test set), the same for every run of the lab.")
    cells = [
        _markdown(f'''
            # {spec.title}: {model_class}, trained again step by step

            This notebook trains the lab's run `{run.key}` again in plain PyTorch:
            {c.describe()}. In the app {headline}.

            Run the cells top to bottom. Every number that shapes the run is here: the seed, the initial weights,
            the order of the training images, the optimizer and the test images it is scored on, so the last
            cells can compare your numbers with the app's, epoch by epoch. They should agree to within
            floating-point rounding (the last digits move with the CPU, its instruction set and the number of
            threads). Then the run's trained weights (`{weights}`, beside this notebook) read a test image.

            It needs `torch`, `numpy`, `pandas`, `altair` and `safetensors` (`pip install torch numpy pandas altair
            safetensors`), and the four {spec.title} files, which it reads from a folder without going online.'''),
        _markdown(f'''
            ## 1. Where the data is

            The four standard files (`train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
            `t10k-images-idx3-ubyte.gz`, `t10k-labels-idx1-ubyte.gz`; `.gz` or not). Set `DATA_DIR` to their
            folder. A folder where torchvision's `datasets.{spec.torchvision}(root, download=True)` saved them works
            too (they are in `root/{spec.torchvision}/raw/`).'''),
        _code('''
            import gzip
            import hashlib
            import math
            import os
            from pathlib import Path

            import numpy as np
            import torch
            from torch import nn
            from torch.nn import functional as F

            DATA_DIR = Path(os.environ.get("$env", "data"))
            ''', env=spec.env),
        _markdown('''
            ## 2. The run's settings

            Exactly the app's, so that the numbers come out the same. Change one after a first run through,
            and see what it does: that is the lab's question.'''),
        _code(_settings(run, device)),
        _markdown(f'''
            ## 3. Reading the files

            An IDX file is a tiny header (a magic number whose last byte is the number of dimensions, then the size
            of each dimension) followed by the bytes: one per pixel (0 = background, 255 = ink) or one per label.
            torchvision's `datasets.{spec.torchvision}` reads the same files; reading them here keeps the notebook
            offline and shows what is in them. The checksum tells whether these are the files the app trained on.'''),
        _code('''
            FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


            def find(name):
                for folder in (DATA_DIR, DATA_DIR / "$torchvision" / "raw"):
                    for path in (folder / name, folder / f"{name}.gz"):
                        if path.is_file():
                            return path
                raise FileNotFoundError(f"{name}(.gz) is not in {DATA_DIR}: set DATA_DIR in the first cell")


            def read_idx(path):
                raw = path.read_bytes()
                if path.suffix == ".gz":
                    raw = gzip.decompress(raw)
                ndim = raw[3]
                shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
                return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


            train_images, train_labels, test_images, test_labels = (read_idx(find(name)) for name in FILES)
            print("training images", train_images.shape, "test images", test_images.shape)

            checksum = hashlib.sha256()
            for array in (train_images, train_labels, test_images, test_labels):
                checksum.update(array.tobytes())
            if checksum.hexdigest() == "$data_id":
                print("The same files as the app's run.")
            else:
                print("These files differ from the app's: the numbers below will not match its run.")
            ''', torchvision=spec.torchvision, data_id=run.data_id),
        _markdown(f'''
            ## 4. From pixels to tensors

            Pixels become numbers around 0: divided by 255, minus {MEAN}, divided by {STD} (MNIST's mean and
            standard deviation; the lab uses them for every dataset). The whole training subset and the test sample
            live as tensors on the device; a batch is picked out of them by index, with no `DataLoader`.

            {scored}'''),
        _code('''
            MEAN, STD = $mean, $std


            def to_tensor(images):
                """uint8 (N, 28, 28) -> float (N, 1, 28, 28), normalised."""
                return ((torch.from_numpy(images.copy()).float() / 255 - MEAN) / STD).unsqueeze(1)


            TEST_SAMPLE_SEED = $test_seed


            $sample_source

            train_x = to_tensor(train_images[:TRAIN_SIZE]).to(DEVICE)
            train_y = torch.from_numpy(train_labels[:TRAIN_SIZE].astype(np.int64)).to(DEVICE)
            all_test_y = torch.from_numpy(test_labels.astype(np.int64))
            sample = balanced_test_sample(all_test_y, TEST_SIZE)
            test_x = to_tensor(test_images[sample.numpy()]).to(DEVICE)
            test_y = all_test_y[sample].to(DEVICE)
            print("train", tuple(train_x.shape), "test", tuple(test_x.shape))
            ''', mean=MEAN, std=STD, test_seed=TEST_SAMPLE_SEED, sample_source=sample_source.strip()),
        _markdown(_model_text(run)),
        _mlp_class(run) if c.model == "mlp" else _cnn_class(run),
        _markdown(_setup_text(run)),
        _code(_setup_code(run)),
        _markdown(f'''
            ## 7. Training

            One epoch: shuffle, then for each batch of {c.batch_size:,} images: forward, the mean cross-entropy of
            the batch, backward, one optimizer step. The training loss and accuracy of an epoch are those of its
            batches as they were trained (the model changing along the way, with dropout on); after the epoch the
            model is scored on the test images, in batches of {EVAL_BATCH:,}, with dropout off.'''),
        _code('''
            @torch.no_grad()
            def evaluate(model, x, y):
                """Mean cross-entropy and accuracy of the model on (x, y)."""
                model.eval()
                loss_sum, correct = 0.0, 0
                for start in range(0, len(x), $eval_batch):
                    xb, yb = x[start:start + $eval_batch], y[start:start + $eval_batch]
                    $eval_forward
                    loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
                    correct += (logits.argmax(1) == yb).sum().item()
                return loss_sum / len(x), correct / len(x)


            history = []
            n = len(train_x)
            for epoch in range(1, EPOCHS + 1):
                model.train()
                order = torch.randperm(n, generator=shuffle).to(DEVICE)
                loss_sum, correct = 0.0, 0
                for start in range(0, n, BATCH_SIZE):
                    batch = order[start:start + BATCH_SIZE]
                    xb, yb = train_x[batch], train_y[batch]
                    $train_forward
                    loss = F.cross_entropy(logits, yb)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.item() * len(batch)
                    correct += (logits.argmax(1) == yb).sum().item()
                train_loss, train_acc = loss_sum / n, correct / n
                if not math.isfinite(train_loss):
                    print(f"epoch {epoch}: the loss is {train_loss}: training diverged")
                    break
                test_loss, test_acc = evaluate(model, test_x, test_y)
                history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                                "test_loss": test_loss, "test_acc": test_acc})
                print(f"epoch {epoch}: train loss {train_loss:.4f}, accuracy {train_acc:.4f} | "
                      f"test loss {test_loss:.4f}, accuracy {test_acc:.4f}")
            ''', eval_batch=EVAL_BATCH, eval_forward=_forward(run, "xb"), train_forward=_forward(run, "xb")),
        _markdown('''
            ## 8. The curves

            Loss and accuracy per epoch, on the training images and on the test images. A test loss that turns up
            while the training loss keeps falling is overfitting.'''),
        _code('''
            import altair as alt
            import pandas as pd

            frame = pd.DataFrame(history)
            loss = frame.melt("epoch", ["train_loss", "test_loss"], var_name="measured on", value_name="loss")
            accuracy = frame.melt("epoch", ["train_acc", "test_acc"], var_name="measured on", value_name="accuracy")
            chart = alt.Chart(loss).mark_line(point=True).encode(x="epoch:O", y="loss:Q", color="measured on:N")
            chart | alt.Chart(accuracy).mark_line(point=True).encode(x="epoch:O", y="accuracy:Q", color="measured on:N")
            '''),
        _markdown('''
            ## 9. The same numbers as the app?

            The app's numbers for this run, beside this notebook's. Only floating-point rounding separates them:
            on another CPU, instruction set or number of threads the last digits move, and a loss may differ by a
            fraction of a percent after a few epochs.'''),
        _code('''
            $app_metrics

            app = pd.DataFrame(APP_METRICS).set_index("epoch")
            ours = pd.DataFrame(history).set_index("epoch")
            loss_gap = max((ours[k] / app[k] - 1).abs().max() for k in ("train_loss", "test_loss"))
            accuracy_gap = max((ours[k] - app[k]).abs().max() for k in ("train_acc", "test_acc"))
            print(f"Largest difference: {loss_gap:.3%} of a loss, {accuracy_gap * 100:.2f} points of accuracy.")
            pd.concat({"app": app, "this notebook": ours}, axis=1).round(4)
            ''', app_metrics=_app_metrics(run)),
        _markdown(f'''
            ## 10. The app's trained weights read a test image

            `{weights}` holds the weights the app trained (safetensors: tensors only, nothing that runs code when
            loaded). They go into a fresh `{model_class}`, which scores the same test images as above and then
            reads one. Change `index` to read another.'''),
        _code('''
            from PIL import Image
            from safetensors.torch import load_file

            CLASSES = $classes

            trained = $model_class()
            trained.load_state_dict(load_file("$weights"))
            trained = trained.to(DEVICE).eval()
            trained_loss, trained_acc = evaluate(trained, test_x, test_y)
            print(f"The app's weights: test accuracy {trained_acc:.4f} on these {len(test_x):,} test images.")

            index = 0  # any test image, 0 to 9,999
            with torch.no_grad():
                probabilities = torch.softmax(trained(to_tensor(test_images[index:index + 1]).to(DEVICE)), dim=1)[0]
            guess = int(probabilities.argmax())
            print(f"Test image {index}: the model reads {CLASSES[guess]} ({probabilities[guess]:.1%} sure); "
                  f"its label is {CLASSES[test_labels[index]]}.")
            Image.fromarray(test_images[index]).resize((112, 112), Image.NEAREST)
            ''', classes=json.dumps(list(spec.classes)), model_class=model_class, weights=weights),
    ]
    for number, cell in enumerate(cells, 1):
        cell["id"] = f"cell-{number}"  # nbformat 4.5 wants an id per cell
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def _model_text(run: RunResult) -> str:
    c = run.config
    if c.model == "mlp":
        return (f"## 5. The model\n\nThe seed's MLP: 784 pixels, two hidden layers of {c.hidden} units "
                f"({c.activations[0]}, then {c.activations[1]}), 10 scores, one per class. The layers are created in "
                "this order, then initialised, so that the seed gives the app's initial weights.")
    return ("## 5. The model\n\nThe seed's CNN: three blocks of convolution and 2x2 max-pooling (32, 64 and 128 "
            f"filters), a fully connected layer of {CNN_FC} units with dropout, and 10 scores. The shapes: "
            f"{' -> '.join(str(s) for s in shape_flow(c))}.")


def _setup_text(run: RunResult) -> str:
    text = ("## 6. Seeds, model and optimizer\n\nThe seed makes the initial weights; the order of the training "
            "images comes from a random generator of its own, seeded with the same number.")
    if run.config.model == "cnn":
        text += (" Dropout's random masks come from PyTorch's global generator, seeded with the seed + 1 after the "
                 "model is made, as the app seeds a generator of the run's own. The CNN is kept in channels_last, the memory "
                 "layout the app trains it in; it changes only the last bits of a result.")
    text += (" Tiny numbers are flushed to zero, as in the app: the seed's normal(0, 1) init pushes softmax into "
             "them, and a CPU computes them slowly.")
    return text


def _setup_code(run: RunResult) -> str:
    c = run.config
    lines = ["torch.set_flush_denormal(True)", "", "torch.manual_seed(SEED)  # the initial weights"]
    if c.model == "mlp":
        lines.append("model = MLP().to(DEVICE)")
    else:
        lines += ["model = CNN().to(DEVICE, memory_format=torch.channels_last)",
                  "torch.manual_seed(SEED + 1)  # dropout's masks, from here on"]
    lines += [_optimizer(run), "shuffle = torch.Generator().manual_seed(SEED)  # the order of the training images",
              "model"]
    return "\n".join(lines)


# -- files -----------------------------------------------------------------------------------------

def notebook_bytes(run: RunResult) -> bytes:
    return (json.dumps(to_notebook(run), indent=1, ensure_ascii=False) + "\n").encode()


def weights_bytes(run: RunResult) -> bytes:
    """The run's weights as safetensors, its record (config and metrics) as JSON in the header."""
    from safetensors.torch import save  # torch loads only here

    if run.weights is None:
        raise ValueError("the run was read without its weights")
    return save({k: v.contiguous() for k, v in run.weights.items()}, metadata={"run": json.dumps(run.to_json())})


def write(run: RunResult, out: Path) -> tuple[Path, Path]:
    """Writes the notebook to `out` and the weights beside it as `<key>.safetensors`; returns both paths."""
    weights = out.parent / weights_name(run)
    weights.write_bytes(weights_bytes(run))
    out.write_bytes(notebook_bytes(run))
    return out, weights


def zip_bytes(run: RunResult) -> bytes:
    """A zip of one folder named by the run's key: the notebook and the weights, for a download."""
    buffer = io.BytesIO()
    folder = check_key(run.key)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{folder}/{NOTEBOOK_NAME}", notebook_bytes(run))
        z.writestr(f"{folder}/{weights_name(run)}", weights_bytes(run))
    return buffer.getvalue()
