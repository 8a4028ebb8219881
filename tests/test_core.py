"""The engine's contract: configs, keys, shapes, training, the run cache and its lock.

Unit tests run on small synthetic tensors; test_core_mnist.py holds the real-MNIST checks.
"""
import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

from mnist_core import config as config_module
from mnist_core import sweep as sweep_module
from mnist_core.cache import RunCache, UnknownRunError, check_key
from mnist_core.config import PRESETS, ConfigError, RunConfig, parse_values, run_key, measured_on
from mnist_core.data import MEAN, STD, normalize, scored_test_images
from mnist_core.models import MLP, build_model, format_flow, multiply_adds, shape_flow
from mnist_core.sweep import run_sweep
from mnist_core.train import FusedOptimizer, evaluate, make_optimizer, seeded_model, torch_optimizer, train

pytestmark = pytest.mark.numerics

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(train_size=512, batch_size=64, epochs=2, init="xavier_uniform", lr=0.003)


# -- configs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, words", [
    ({"lr": 0}, "learning rate must be a positive"),
    ({"lr": -0.1}, "learning rate must be a positive"),
    ({"lr": float("nan")}, "learning rate must be a positive"),
    ({"lr": float("inf")}, "learning rate must be a positive"),
    ({"epochs": 0}, "number of epochs must be between 1"),
    ({"epochs": 10_000}, "number of epochs must be between 1 and 200"),
    ({"batch_size": 0}, "batch size must be between 1"),
    ({"batch_size": 70_000}, "batch size must be between 1 and the number of training images"),
    ({"train_size": 100, "batch_size": 101}, "number of training images (100)"),
    ({"activations": ("relu", "swish")}, "Unknown activation function 'swish'"),
    ({"activations": ("relu",)}, "two activations"),
    ({"init": "zeros"}, "Unknown weight init 'zeros'"),
    ({"optimizer": "lbfgs"}, "Unknown optimizer 'lbfgs'"),
    ({"model": "transformer"}, "Unknown model"),
    ({"momentum": 1.0}, "momentum must be at least 0"),
    ({"keep_prob": 0}, "dropout keep probability"),
    ({"epochs": 2.5}, "epochs must be a whole number"),
])
def test_nonsense_configs_raise_one_error_type_with_a_readable_message(changes, words):
    with pytest.raises(ConfigError) as e:
        RunConfig(**changes)
    assert words in str(e.value)
    assert "Traceback" not in str(e.value)


def test_from_dict_coerces_loose_values_and_rejects_unknown_or_malformed_ones():
    c = RunConfig.from_dict({"lr": "0.01", "epochs": "3", "activations": "sigmoid,relu", "model": " MLP "})
    assert (c.lr, c.epochs, c.activations, c.model) == (0.01, 3, ("sigmoid", "relu"), "mlp")
    assert RunConfig.from_dict({"activations": "tanh"}).activations == ("tanh", "tanh")
    assert RunConfig.from_dict(c.to_dict()) == c  # JSON round trip
    with pytest.raises(ConfigError, match="Unknown setting"):
        RunConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="learning rate must be a number"):
        RunConfig.from_dict({"lr": "fast"})
    with pytest.raises(ConfigError, match="epochs must be a whole number"):
        RunConfig.from_dict({"epochs": "ten"})


def test_config_is_immutable():
    with pytest.raises(Exception):
        RunConfig().lr = 0.5  # type: ignore[misc]


def test_parse_values():
    assert parse_values("lr", "0.1, 0.01") == [0.1, 0.01]
    assert parse_values("activations", "relu,relu; sigmoid,relu") == [("relu", "relu"), ("sigmoid", "relu")]
    with pytest.raises(ConfigError, match="repeat"):
        parse_values("epochs", "5,5")
    with pytest.raises(ConfigError, match="at least one value"):
        parse_values("lr", " , ")


def test_run_key_is_stable_and_changes_with_what_changes_the_result(monkeypatch):
    base = RunConfig()
    key = run_key(base, "data-a", "cpu")
    assert key == run_key(RunConfig.from_dict({"lr": "0.001"}), "data-a", "cpu")  # same config, typed differently
    assert key == run_key(base.replace(device="cpu"), "data-a", "cpu")  # "auto" resolved to cpu is cpu
    assert check_key(key) == key
    different = {
        run_key(base.replace(lr=0.01), "data-a", "cpu"),
        run_key(base.replace(epochs=16), "data-a", "cpu"),
        run_key(base.replace(seed=1), "data-a", "cpu"),
        run_key(base.replace(activations=("relu", "tanh")), "data-a", "cpu"),
        run_key(base, "data-b", "cpu"),  # other data files
        run_key(base, "data-a", "cuda"),  # other hardware
    }
    assert key not in different and len(different) == 6
    monkeypatch.setattr(config_module, "ENGINE_VERSION", config_module.ENGINE_VERSION + 1)
    assert run_key(base, "data-a", "cpu") != key


def test_presets_cover_the_seed_experiments():
    expected = {"mlp-lr": ("lr", (0.1, 0.01, 0.001, 0.0001)), "mlp-epochs": ("epochs", (5, 30, 50, 100)),
                "mlp-batch": ("batch_size", (10, 30, 100, 1000)), "cnn-stride": ("stride", (1, 5)),
                "cnn-filter": ("kernel_size", (3, 10))}
    for name, (param, values) in expected.items():
        assert (PRESETS[name].param, PRESETS[name].values) == (param, values)
    assert PRESETS["mlp-lr"].base.epochs == 50 and PRESETS["mlp-lr"].base.batch_size == 100
    assert PRESETS["mlp-epochs"].base.lr == 0.0001
    assert PRESETS["mlp-activation"].values == (("sigmoid", "sigmoid"), ("sigmoid", "relu"), ("relu", "sigmoid"), ("relu", "relu"))
    for preset in PRESETS.values():
        assert preset.description
        for c in preset.configs():
            if c.model == "cnn":
                shape_flow(c)  # every seed experiment is a CNN that works


# -- models -------------------------------------------------------------------------------------

def test_seed_cnn_shape_flow_ends_in_2048():
    flow = shape_flow(RunConfig(model="cnn"))
    assert format_flow(flow) == ("input (1, 28, 28) -> conv1 (32, 28, 28) -> pool1 (32, 14, 14) -> conv2 (64, 14, 14) "
                                 "-> pool2 (64, 7, 7) -> conv3 (128, 7, 7) -> pool3 (128, 4, 4) -> flatten 2048 "
                                 "-> fc1 625 -> fc2 10")


@pytest.mark.parametrize("changes", [{}, {"stride": 5}, {"kernel_size": 10}, {"kernel_size": 5, "conv_layers": "all"},
                                     {"stride": 2, "conv_layers": "all"}, {"padding": 0}])
def test_shape_flow_matches_the_real_network(changes):
    config = RunConfig(model="cnn", **changes)
    model = build_model(config).eval()
    seen = []
    for layer in model.features:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            layer.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[1:])))
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    flow = shape_flow(config)
    assert seen == [s.shape for s in flow if s.layer.startswith(("conv", "pool"))]
    assert model.fc1.in_features == next(s.shape[0] for s in flow if s.layer == "flatten")


def test_a_collapsing_cnn_is_rejected_before_training_with_the_flow_and_failing_layer():
    with pytest.raises(ConfigError) as e:
        shape_flow(RunConfig(model="cnn", kernel_size=10, conv_layers="all"))
    message = str(e.value)
    assert "at conv3" in message and "10x10 filter is larger" in message
    assert "pool2 (64, 1, 1)" in message  # the flow up to the failure
    with pytest.raises(ConfigError, match="at pool1, the 2x2 max-pool gets a 1x1 input"):
        build_model(RunConfig(model="cnn", kernel_size=28, padding=0))  # the model refuses it too


def test_mlp_layers_activations_and_inits():
    model = MLP(RunConfig(activations=("sigmoid", "gelu"), init="normal"))
    assert [tuple(p.shape) for p in model.parameters()] == [(256, 784), (256,), (256, 256), (256,), (10, 256), (10,)]
    assert isinstance(model.act1, torch.nn.Sigmoid) and isinstance(model.act2, torch.nn.GELU)
    assert 0.95 < model.fc1.weight.std().item() < 1.05  # the seed's normal(0, 1)
    xavier = MLP(RunConfig(init="xavier_uniform"))
    assert xavier.fc1.weight.abs().max().item() <= math.sqrt(6 / (784 + 256)) + 1e-6
    assert MLP(RunConfig(hidden=32)).fc2.weight.shape == (32, 32)
    assert multiply_adds(RunConfig()) == 784 * 256 + 256 * 256 + 2560


def test_one_normalisation():
    pixels = torch.tensor([0, 255], dtype=torch.uint8)
    assert torch.allclose(normalize(pixels), torch.tensor([-MEAN / STD, (1 - MEAN) / STD]))
    assert torch.allclose(normalize(pixels), normalize(pixels.float() / 255))


# -- training -----------------------------------------------------------------------------------

def test_training_learns_and_reports_every_epoch(synthetic):
    calls = []
    result, _ = train(RunConfig(**{**SMALL, "epochs": 3}), synthetic, progress=lambda *a: calls.append(a))
    assert result.status == "ok" and [m.epoch for m in result.epochs] == [1, 2, 3]
    assert result.epochs[-1].test_acc > 0.9 and result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert result.steps_per_epoch == 8 and result.device == "cpu" and result.total_seconds > 0
    assert all(m.samples_per_second > 0 for m in result.epochs)
    ends = [(epoch, metrics["test_acc"]) for epoch, fraction, metrics in calls if fraction == 1.0]
    assert ends == [(m.epoch, m.test_acc) for m in result.epochs]
    assert all(0 < fraction <= 1 for _, fraction, _ in calls)


def test_same_config_and_seed_give_the_same_run(synthetic):
    for config in (RunConfig(**SMALL), RunConfig(model="cnn", **{**SMALL, "train_size": 256, "epochs": 1})):
        a, _ = train(config, synthetic)
        b, _ = train(config, synthetic)
        strip = lambda r: [(m.train_loss, m.train_acc, m.test_loss, m.test_acc) for m in r.epochs]  # noqa: E731
        assert strip(a) == strip(b)
        assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
        c, _ = train(config.replace(seed=1), synthetic)
        assert strip(c) != strip(a)


def test_training_flushes_denormal_floats_in_the_thread_that_trains(synthetic):
    # Streamlit trains in each session's own thread, and the flag is per thread: start from one without it.
    seen = {}

    def session():
        seen["supported"] = torch.set_flush_denormal(False)
        tiny = torch.tensor(1e-39)  # a denormal float32: x86 computes with these many times slower
        seen["before"] = (tiny * 2).item()
        train(RunConfig(**{**SMALL, "epochs": 1}), synthetic)
        seen["after"] = (tiny * 2).item()

    worker = threading.Thread(target=session)
    worker.start()
    worker.join(60)
    if not seen["supported"]:
        pytest.skip("this CPU cannot flush denormals")
    assert seen["before"] > 0 and seen["after"] == 0


@pytest.mark.parametrize("changes", [dict(optimizer="adam"), dict(optimizer="adamw"), dict(model="cnn"),
                                     dict(optimizer="sgd", momentum=0.9), dict(optimizer="sgd", momentum=0.0)])
def test_the_fused_optimizer_steps_exactly_as_torch_optim_does(changes):
    config = RunConfig(lr=0.01, init="xavier_uniform", **changes)
    ours, theirs = seeded_model(config, "cpu").eval(), seeded_model(config, "cpu").eval()  # eval: no dropout draws
    fast = make_optimizer(config, ours.parameters(), "cpu")
    reference = torch_optimizer(config, theirs.parameters(), "cpu")
    assert isinstance(fast, FusedOptimizer)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for _ in range(4):
        for model, optimizer in ((ours, fast), (theirs, reference)):
            optimizer.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            optimizer.step()
    for mine, ref in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(mine, ref)
    assert not torch.equal(next(ours.parameters()), next(seeded_model(config, "cpu").parameters()))  # it trained


def test_a_diverging_run_stops_as_diverged_and_keeps_its_curves(synthetic):
    config = RunConfig(train_size=512, batch_size=64, epochs=6, optimizer="sgd", lr=0.05, momentum=0.9, init="normal")
    result, _ = train(config, synthetic)
    assert result.status == "diverged"
    assert result.diverged_epoch is not None and len(result.epochs) == result.diverged_epoch - 1 < 6
    assert all(math.isfinite(m.train_loss) for m in result.epochs)


def test_cancel_stops_between_steps_and_nothing_is_cached(synthetic, cache):
    steps = []

    def stop():
        steps.append(1)
        return len(steps) > 3

    result = cache.get_or_train(RunConfig(**SMALL), synthetic, should_stop=stop)
    assert result.status == "cancelled" and result.epochs == []
    assert cache.list() == [] and not list(cache.root.glob("*.tmp"))


def test_an_epoch_sweep_trains_only_its_longest_run_and_each_prefix_is_a_real_run(synthetic, cache, monkeypatch):
    trained = []
    monkeypatch.setattr(sweep_module, "train_one", lambda c, *a, **k: trained.append(c.epochs) or train(c, *a, **k))
    configs = [RunConfig(**{**SMALL, "epochs": e}) for e in (1, 3, 2)]
    results = run_sweep(configs, synthetic, cache)
    assert trained == [3]
    assert [len(r.epochs) for r in results] == [1, 3, 2] and all(r.status == "ok" for r in results)

    real, _ = train(configs[0], synthetic)  # a genuine 1-epoch run
    served = cache.get(cache.key_for(configs[0], synthetic), weights=True)
    assert served.config == configs[0]
    assert [(m.train_loss, m.test_acc) for m in served.epochs] == [(m.train_loss, m.test_acc) for m in real.epochs]
    assert all(torch.equal(served.weights[k], real.weights[k]) for k in real.weights)

    again = run_sweep(configs, synthetic, cache)
    assert trained == [3] and all(r.cached for r in again)


# -- the run cache ------------------------------------------------------------------------------

def test_cache_round_trip_keeps_metrics_and_weights(synthetic, cache):
    config = RunConfig(**SMALL)
    first = cache.get_or_train(config, synthetic)
    assert not first.cached
    hit = cache.get(first.key, weights=True)
    assert hit.cached and hit.to_json() == {**first.to_json(), "cached": True}
    assert all(torch.equal(hit.weights[k], first.weights[k]) for k in first.weights)
    assert [r.key for r in cache.list()] == [first.key]
    assert cache.get_or_train(config, synthetic).cached


def test_run_keys_from_users_never_become_arbitrary_paths(cache):
    for bad in ["../../etc/passwd", "mlp-../../x", "mlp-0123", "MLP-0123456789abcdef", "", "cnn-0123456789abcdeg"]:
        with pytest.raises(UnknownRunError):
            cache.path(bad)
    assert cache.get("mlp-0123456789abcdef") is None


def test_lru_eviction_keeps_the_cache_under_its_cap(synthetic, tmp_path):
    cache = RunCache(tmp_path / "runs")
    runs = [cache.get_or_train(RunConfig(**{**SMALL, "epochs": 1, "seed": s}), synthetic) for s in range(3)]
    entry = cache.path(runs[0].key).stat().st_size
    os.utime(cache.path(runs[1].key), (1, 1))  # run 1 is the least recently used
    capped = RunCache(tmp_path / "runs", max_bytes=int(entry * 2.5))
    assert capped.evict() == [runs[1].key]
    assert {r.key for r in capped.list()} == {runs[0].key, runs[2].key}


LOCK_CHILD = textwrap.dedent("""
    import json, sys, time
    from mnist_core.cache import RunCache
    from mnist_core.config import RunConfig
    from mnist_core.data import synthetic_data
    from mnist_core.train import train as real_train
    def slow_train(*a, **k):  # long enough for both processes to ask while it runs
        time.sleep(2)
        return real_train(*a, **k)
    cache = RunCache(sys.argv[1])
    start_at = float(sys.argv[2])
    time.sleep(max(0, start_at - time.time()))
    result = cache.get_or_train(RunConfig(train_size=512, batch_size=64, epochs=1, init="xavier_uniform"),
                                synthetic_data(512, 256), trainer=slow_train)
    print(json.dumps({"cached": result.cached, "key": result.key, "acc": result.epochs[-1].test_acc}))
""")


def test_two_processes_asking_for_the_same_run_train_it_once(tmp_path):
    import time
    start_at = str(time.time() + 8)  # both start asking at the same moment, after their imports
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", LOCK_CHILD, str(tmp_path / "runs"), start_at],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(json.loads(out))
    assert sorted(o["cached"] for o in outs) == [False, True]  # one trained, the other waited and read it
    assert outs[0]["key"] == outs[1]["key"] and outs[0]["acc"] == outs[1]["acc"]


def test_test_size_scores_the_balanced_sample(synthetic):
    small, _ = train(RunConfig(**{**SMALL, "epochs": 1, "test_size": 100}), synthetic)
    full, _ = train(RunConfig(**{**SMALL, "epochs": 1}), synthetic)  # all 256 synthetic test images
    assert small.epochs[0].train_loss == full.epochs[0].train_loss  # the training is the same
    x, y = scored_test_images(synthetic, 100)
    assert len(y) == 100 and not torch.equal(y, synthetic.test_y[:100])  # a sample, not the first 100
    model = seeded_model(small.config, "cpu")
    model.load_state_dict(small.weights)
    assert (small.epochs[0].test_loss, small.epochs[0].test_acc) == evaluate(model, x, y, small.config, "cpu")
    assert measured_on(small.config) == "100 test images (balanced sample)"
    assert measured_on(full.config) == "10,000 test images"
    with pytest.raises(ConfigError, match="number of test images"):
        RunConfig(test_size=20_000)
