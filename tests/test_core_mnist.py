"""The engine on real MNIST (MNIST_DATA_DIR): the accuracies the seed and the lab code lead us to expect."""
import gzip
import re
import math
import shutil

import pytest
import torch

from mnist_core.config import RunConfig
from mnist_core.data import FILES, DataNotFoundError, load_mnist, locate, balanced_test_sample
from mnist_core.models import build_model
from mnist_core.train import train

pytestmark = pytest.mark.numerics


def test_the_dataset_is_whole_and_normalised_once(mnist):
    assert mnist.train_x.shape == (60_000, 1, 28, 28) and mnist.test_x.shape == (10_000, 1, 28, 28)
    assert sorted(mnist.train_y.unique().tolist()) == list(range(10))
    assert abs(mnist.train_x.mean().item()) < 0.01 and abs(mnist.train_x.std().item() - 1) < 0.01
    assert abs(mnist.test_x.mean().item()) < 0.05  # the test set goes through the same normalisation
    assert load_mnist("cpu") is mnist  # loaded once per process


@pytest.mark.parametrize("init", ["xavier_uniform", "default"])
def test_seed_mlp_reaches_95_percent_after_one_epoch(mnist, init):
    result, _ = train(RunConfig(model="mlp", activations=("relu", "relu"), init=init, epochs=1), mnist)
    assert result.status == "ok"
    assert result.epochs[0].test_acc >= 0.95, result.epochs


def test_lr_01_with_the_seeds_normal_init_ends_far_below_lr_0001(mnist):
    # The seed: lr 0.1 ended at accuracy 0.10 with the loss stuck near 2.30; normal(0, 1) init.
    accuracy = {}
    for lr in (0.1, 0.001):
        result, _ = train(RunConfig(init="normal", lr=lr, epochs=2, seed=777), mnist)
        assert result.status == "ok"  # stuck, not diverged
        accuracy[lr] = result.epochs[-1].test_acc
    assert accuracy[0.1] <= accuracy[0.001] - 0.15, accuracy


def test_seed_cnn_reaches_97_percent_after_one_epoch_on_20k_images(mnist):
    result, _ = train(RunConfig(model="cnn", epochs=1, train_size=20_000), mnist)
    assert result.epochs[0].test_acc >= 0.97, result.epochs


def test_uncompressed_files_load_the_same_data(tmp_path, mnist):
    for name in FILES:
        with gzip.open(mnist.source + f"/{name}.gz") as src, open(tmp_path / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    _, digest, folder = locate(tmp_path)
    assert digest == mnist.data_id and folder == tmp_path


def test_missing_or_broken_data_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="MNIST was not found.*nowhere.*set MNIST_DATA_DIR"):
        load_mnist("cpu")
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="missing train-images-idx3-ubyte"):
        load_mnist("cpu")
    for name in FILES:
        (tmp_path / name).write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 12)
    with pytest.raises(DataNotFoundError, match=r"holds shape \[0, 0, 0\], expected \[60000, 28, 28\]"):
        load_mnist("cpu")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"GIF89a")
    with pytest.raises(DataNotFoundError, match="not an MNIST-format file"):
        load_mnist("cpu")


def test_a_damaged_file_is_named_in_words_not_in_the_exceptions_own_text(tmp_path, monkeypatch):
    from mnist_core.i18n import translate
    for name in FILES:
        (tmp_path / f"{name}.gz").write_bytes(b"\x1f\x8b\x08\x00cut short")  # a gzip header, then nothing whole
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError) as caught:
        load_mnist("cpu")
    assert "it is damaged or cut short. Replace it with a good copy" in str(caught.value)
    assert not re.search(r"Errno|Compressed file|gzip|EOF", str(caught.value).split(": ", 1)[1]), str(caught.value)
    assert "손상" in translate(caught.value, "ko")
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as caught:
        load_mnist("cpu")
    assert "nowhere (no such folder)" in str(caught.value) and "폴더" in translate(caught.value, "ko")


# -- the test images a run scores -----------------------------------------------------------------

@pytest.mark.parametrize("n", [100, 1000, 2000, 5000, 9999])
def test_the_test_sample_is_class_balanced_fixed_and_spread_over_the_test_set(mnist, n):
    indices = balanced_test_sample(mnist.test_y, n)
    assert len(indices) == n == len(set(indices.tolist())) and torch.equal(indices, indices.sort().values)
    assert torch.equal(indices, balanced_test_sample(mnist.test_y, n))  # the same for every run
    per_class = torch.bincount(mnist.test_y[indices], minlength=10)
    proportional = torch.bincount(mnist.test_y, minlength=10) * n / len(mnist.test_y)
    assert ((per_class - proportional).abs() < 1).all(), (per_class, proportional)
    first_half = (indices < 5000).sum().item()  # MNIST's two halves come from different writers
    assert abs(first_half - n / 2) <= 4 * math.sqrt(n / 4)


def test_a_test_sample_reads_like_the_whole_test_set_and_the_first_images_do_not(mnist):
    # The case: MLP, xavier, 1 epoch on 3,000 images, seeds 11-13, 2,000 test images scored.
    n, whole = 2000, len(mnist.test_y)
    sample = balanced_test_sample(mnist.test_y, n)
    for seed in (11, 12, 13):
        result, _ = train(RunConfig(init="xavier_uniform", epochs=1, train_size=3000, test_size=n, seed=seed), mnist)
        model = build_model(result.config)
        model.load_state_dict(result.weights)
        with torch.no_grad():
            right = (model.eval()(mnist.test_x).argmax(1) == mnist.test_y).double()
        p = right.mean().item()
        # the standard error of a sample of n drawn without replacement from the whole: a bound from n
        # alone (stratifying by class only narrows it); 4 of them leave a fair draw 1 chance in 15,000 to fail
        bound = 4 * math.sqrt(p * (1 - p) / n * (whole - n) / (whole - 1))
        assert abs(result.final.test_acc - p) <= bound, (seed, result.final.test_acc, p, bound)
        assert result.final.test_acc == right[sample].mean().item()
        first = right[:n].mean().item()
        assert abs(first - p) > abs(result.final.test_acc - p), (seed, first, p)
