"""Fashion-MNIST, the second dataset: read and checked like MNIST, part of every run's identity, trained
by the same engine, and named by its classes."""
import json

import pytest

from mnist_core import cli
from mnist_core.config import RunConfig, run_key
from mnist_core.data import DATASETS, DataNotFoundError, load_dataset
from mnist_core.i18n import gettext
from mnist_core.train import train


def test_fashion_mnist_loads_whole_checked_and_apart_from_mnist(fashion, mnist):
    assert fashion.name == "fashion-mnist" and mnist.name == "mnist"
    assert fashion.train_x.shape == (60_000, 1, 28, 28) and fashion.test_x.shape == (10_000, 1, 28, 28)
    assert sorted(fashion.train_y.unique().tolist()) == list(range(10))
    assert fashion.data_id != mnist.data_id
    assert load_dataset("fashion-mnist", "cpu") is fashion  # loaded once per process
    assert fashion.classes[9] == "Ankle boot" and mnist.classes[7] == "7"


def test_the_dataset_is_part_of_a_runs_identity(fashion, mnist):
    digits, clothes = RunConfig(), RunConfig(dataset="fashion-mnist")
    assert run_key(digits, mnist.data_id, "cpu") != run_key(clothes, fashion.data_id, "cpu")
    assert run_key(digits, "same", "cpu") != run_key(clothes, "same", "cpu")  # even on identical files
    assert "fashion-mnist" in clothes.describe() and "mnist" not in digits.describe()


def test_a_config_never_trains_on_the_other_datasets_images(mnist):
    with pytest.raises(ValueError, match="fashion-mnist config was given mnist data"):
        train(RunConfig(dataset="fashion-mnist", train_size=100, epochs=1), mnist)


def test_the_seed_mlp_learns_clothes_and_finds_them_harder_than_digits(fashion, mnist):
    config = RunConfig(init="xavier_uniform", epochs=1, train_size=5_000, test_size=2_000)
    digits, _ = train(config, mnist)
    clothes, _ = train(config.replace(dataset="fashion-mnist"), fashion)
    # ten classes: chance is 0.1; Fashion-MNIST's published MLP results sit well below MNIST's
    assert 0.6 <= clothes.final.test_acc < digits.final.test_acc, (clothes.final, digits.final)


def test_missing_fashion_data_names_its_own_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError, match="Fashion-MNIST was not found.*nowhere.*FASHION_MNIST_DATA_DIR"):
        load_dataset("fashion-mnist", "cpu")


def test_an_unknown_dataset_is_a_clear_error():
    with pytest.raises(DataNotFoundError, match="Unknown dataset 'cifar'"):
        load_dataset("cifar", "cpu")


def test_cli_trains_fashion_mnist_and_predict_names_the_class(capsys, tmp_path, fashion):
    code = cli.main(["train", "--dataset", "fashion-mnist", "--train-size", "1000", "--test-size", "500",
                     "--epochs", "1", "--init", "xavier_uniform", "--json"])
    out = json.loads(capsys.readouterr().out)
    run = out[0] if isinstance(out, list) else out
    assert code == 0 and run["status"] == "ok" and run["key"].startswith("mlp-")
    from PIL import Image
    boot = fashion.test_x[(fashion.test_y == 9).nonzero()[0, 0], 0]
    Image.fromarray(((boot * 0.3081 + 0.1307).clamp(0, 1) * 255).byte().numpy()).save(tmp_path / "boot.png")
    assert cli.main(["predict", "--run", run["key"], str(tmp_path / "boot.png"), "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)[0]
    assert predicted["class"] == DATASETS["fashion-mnist"].classes[predicted["digit"]]


def test_class_names_read_in_korean():
    assert gettext("Ankle boot", "ko") != "Ankle boot" and gettext("Trouser", "ko") != "Trouser"
