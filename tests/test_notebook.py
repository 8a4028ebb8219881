"""Take a run home: the exported notebook, executed in a real Jupyter kernel, trains the run to the app's numbers.

Each run is trained through the engine and cached, exported with `python -m mnist_core export`, and the
notebook runs top to bottom with nbclient in an ipykernel of this interpreter, from the folder it was
written to (it reads the data from the dataset's variable, as a student's first cell does). Its per-epoch
metrics must agree with the run's within the golden test's tolerance, and its last cells must load the
exported weights and read a test image as the app's model does.
"""
import io
import json
import zipfile

import nbformat
import pytest
from nbclient import NotebookClient
from safetensors.torch import load

from mnist_core.cache import RunCache
from mnist_core.cli import main
from mnist_core.config import RunConfig
from mnist_core.evaluate import load_model, probabilities
from mnist_core.notebook import notebook_bytes, weights_name, zip_bytes
from test_golden import ACC_ATOL, out_of_tolerance

pytestmark = pytest.mark.numerics

RUNS = {
    # the seed's MLP (normal init) with a sigmoid layer, on MNIST; the seed's CNN (dropout on) on Fashion-MNIST
    "mlp": RunConfig(model="mlp", activations=("relu", "sigmoid"), epochs=2, train_size=2000, test_size=500),
    "cnn": RunConfig(model="cnn", dataset="fashion-mnist", epochs=2, batch_size=50, train_size=1000, test_size=500),
    # the other branches the notebook writes: SGD with momentum, another init and activations, a last batch
    # smaller than the others, all 10,000 test images; RMSprop, bf16 autocast, every conv strided, dropout 0.3
    "mlp-sgd": RunConfig(model="mlp", optimizer="sgd", momentum=0.9, lr=0.01, init="kaiming_uniform",
                         activations=("gelu", "tanh"), hidden=64, epochs=2, batch_size=64, train_size=1000),
    "cnn-bf16": RunConfig(model="cnn", optimizer="rmsprop", precision="bf16", stride=2, conv_layers="all",
                          keep_prob=0.7, epochs=2, batch_size=50, train_size=500, test_size=500),
}
# Added to the executed copy only: what the notebook computed, for the test to read.
REPORT = 'import json\nprint(json.dumps({"history": history, "index": index, "guess": guess, "trained_acc": trained_acc}))'


def execute(path):
    """Runs the notebook top to bottom in a fresh kernel of this interpreter, from its folder; returns what it computed."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    nb.cells.append(nbformat.v4.new_code_cell(REPORT))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return json.loads(nb.cells[-1].outputs[0]["text"])


def largest_deviation(app, notebook):
    """The largest relative deviation of a loss and the largest absolute deviation of an accuracy."""
    pairs = list(zip(app, notebook))
    loss = max(abs(b[k] - a[k]) / abs(a[k]) for a, b in pairs for k in ("train_loss", "test_loss"))
    acc = max(abs(b[k] - a[k]) for a, b in pairs for k in ("train_acc", "test_acc"))
    return loss, acc


@pytest.mark.parametrize("name", RUNS)
def test_the_exported_notebook_trains_the_run_to_the_apps_numbers(name, request, tmp_path, capsys):
    config = RUNS[name]
    data = request.getfixturevalue("mnist" if config.dataset == "mnist" else "fashion")
    run = RunCache().get_or_train(config, data)
    assert run.status == "ok" and len(run.epochs) == 2

    out = tmp_path / "run.ipynb"
    assert main(["export", "--run", run.key, "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run.ipynb", weights_name(run)])
    sources = [c.source for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"]
    assert not any("mnist_core" in s for s in sources), "the notebook is plain PyTorch: it must not need the lab"

    got = execute(out)

    app = [{k: getattr(m, k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")} for m in run.epochs]
    far = out_of_tolerance({"runs": {name: {"epochs": app}}}, {"runs": {name: {"epochs": got["history"]}}})
    assert not far, "the notebook's numbers differ from the app's run:\n" + "\n".join(far)
    loss_gap, acc_gap = largest_deviation(app, got["history"])
    with capsys.disabled():
        print(f"\n{name}: notebook vs app, largest deviation {loss_gap:.2e} relative in loss, {acc_gap:.4f} in accuracy")

    # the exported weights are the run's: they score the run's final accuracy and read the image as the app's model
    assert got["trained_acc"] == pytest.approx(run.final.test_acc, abs=ACC_ATOL)
    model = load_model(run.config, RunCache().weights(run.key))
    index = got["index"]
    assert got["guess"] == int(probabilities(model, data.test_x[index:index + 1]).argmax())


def test_the_download_holds_the_notebook_and_the_weights(mnist):
    run = RunCache().get_or_train(RUNS["mlp"], mnist)
    run = RunCache().get(run.key, weights=True)
    with zipfile.ZipFile(io.BytesIO(zip_bytes(run))) as z:
        assert sorted(z.namelist()) == sorted([f"{run.key}/run.ipynb", f"{run.key}/{weights_name(run)}"])
        assert z.read(f"{run.key}/run.ipynb") == notebook_bytes(run)
        weights = load(z.read(f"{run.key}/{weights_name(run)}"))
    assert weights.keys() == run.weights.keys() and all((weights[k] == run.weights[k]).all() for k in weights)


def test_export_refuses_a_bad_key_or_a_bad_out_in_one_line(tmp_path, capsys):
    missing = "mlp-0123456789abcdef"
    cases = [["--run", "../../etc/passwd", "--out", str(tmp_path / "run.ipynb")],
             ["--run", missing, "--out", str(tmp_path / "run.ipynb")],
             ["--run", missing, "--out", str(tmp_path / "run.txt")],
             ["--run", missing, "--out", str(tmp_path / "no-such-folder" / "run.ipynb")],
             ["--run", missing, "--out", str(tmp_path)]]
    for argv in cases:
        assert main(["export", *argv]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: "), (argv, err)
    assert list(tmp_path.iterdir()) == []


def test_a_run_on_the_mlp_page_downloads_as_a_notebook(monkeypatch):
    # The page hands Streamlit a callable that builds the zip when clicked; record what it registered.
    from streamlit.runtime.media_file_manager import MediaFileManager
    from test_app import open_page, run_and_wait, set_mlp
    registered = {}
    add_deferred = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        registered[file_name] = data_callable
        return add_deferred(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.01", seed=41)
    run_and_wait(at)
    assert [b.proto.label for b in at.get("download_button") if b.proto.label == "Download as notebook"]
    [key] = [RunCache().get(k.removesuffix(".zip")).key for k in registered if k and k.endswith(".zip")]
    with zipfile.ZipFile(io.BytesIO(registered[f"{key}.zip"]())) as z:
        assert sorted(z.namelist()) == [f"{key}/{key}.safetensors", f"{key}/run.ipynb"]
        notebook = nbformat.reads(z.read(f"{key}/run.ipynb").decode(), as_version=4)
    nbformat.validate(notebook)
