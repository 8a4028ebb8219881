"""The fast paths give the answers of the plain ones: stacked == separate, a reused prefix == a real run,
bf16 learns, and no step reads a number back from the device. Correctness only: speed is bench/run.py's job."""

import pytest
import torch

from mnist_core.config import RunConfig
from mnist_core.data import MnistData
from mnist_core.stacked import StackedMLP, stack_key, train_stacked
from mnist_core import sweep
from mnist_core.sweep import run_sweep
from mnist_core.train import seeded_model, train

# Learning rates up to 0.003: Adam turns a rounding-sized gradient into a step of up to lr (g / (|g| + eps)),
# and from lr 0.01 on, 20 steps grow that into visible differences. That is chaos, not a bug; the stacked
# and separate runs are compared where rounding stays rounding.
TINY = dict(train_size=400, batch_size=40, epochs=2, init="xavier_uniform")


@pytest.fixture(scope="module")
def small_mnist(mnist):
    """Real MNIST with a 1,000-image test set, so each epoch's test pass is cheap."""
    return MnistData(mnist.train_x, mnist.train_y, mnist.test_x[:1000], mnist.test_y[:1000], mnist.data_id, mnist.source)


def assert_same_run(stacked, separate, test_size):
    """Equal up to float rounding: a batched matmul sums in another order than a single one."""
    assert stacked.status == separate.status and stacked.diverged_epoch == separate.diverged_epoch
    assert stacked.steps_per_epoch == separate.steps_per_epoch and len(stacked.epochs) == len(separate.epochs)
    for a, b in zip(stacked.epochs, separate.epochs):
        assert a.epoch == b.epoch
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-4, abs=1e-5)
        assert a.test_loss == pytest.approx(b.test_loss, rel=1e-4, abs=1e-5)
        assert abs(a.train_acc - b.train_acc) <= 1 / 400 + 1e-9  # at most one image flips
        assert abs(a.test_acc - b.test_acc) <= 1 / test_size + 1e-9
    assert set(stacked.weights) == set(separate.weights)
    for name, w in separate.weights.items():
        torch.testing.assert_close(stacked.weights[name], w, rtol=1e-3, atol=1e-4, equal_nan=True)


def test_stacked_models_start_from_their_separate_runs_initial_weights():
    configs = [RunConfig(init=i, seed=s) for i, s in (("normal", 1), ("xavier_uniform", 2), ("default", 1))]
    model = StackedMLP(configs, "cpu")
    for k, config in enumerate(configs):
        expected = seeded_model(config, "cpu").state_dict()
        assert all(torch.equal(model.state_dict(k)[n], expected[n]) for n in expected)


@pytest.mark.parametrize("variants", [
    pytest.param([dict(lr=v) for v in (0.003, 0.001, 0.0003, 0.0001)], id="lr-sweep"),
    pytest.param([dict(optimizer="sgd", lr=0.05, momentum=0.9), dict(optimizer="adamw", seed=3),
                  dict(activations=("sigmoid", "gelu"), seed=5, init="normal"), dict(optimizer="sgd", lr=0.1),
                  dict(activations=("tanh", "leaky_relu"), lr=0.002)], id="mixed"),
])
def test_stacked_training_equals_separate_runs(small_mnist, variants):
    configs = [RunConfig(**{**TINY, **v}) for v in variants]
    seen = {}
    stacked = train_stacked(configs, small_mnist, progress=lambda k, e, f, m: seen.setdefault(k, []).append((e, f)))
    for k, (config, (result, _)) in enumerate(zip(configs, stacked)):
        expected, _ = train(config, small_mnist)
        assert_same_run(result, expected, len(small_mnist.test_x))
        assert result.config == config
        assert seen[k][-1] == (2, 1.0) and len(seen[k]) == 2 * 10  # 9 in-epoch reports + the epoch's end, twice


def test_a_diverging_model_stops_alone_and_the_others_go_on(synthetic):
    # test_core's diverging config, beside a sane one of the same shape
    base = dict(train_size=512, batch_size=64, epochs=6, optimizer="sgd", momentum=0.9, init="normal")
    configs = [RunConfig(**base, lr=0.05), RunConfig(**base, lr=0.0005)]
    (wild, _), (sane, _) = train_stacked(configs, synthetic)
    wild_alone, _ = train(configs[0], synthetic)
    sane_alone, _ = train(configs[1], synthetic)
    assert wild.status == "diverged" and sane.status == "ok" and len(sane.epochs) == 6
    assert_same_run(wild, wild_alone, len(synthetic.test_x))
    assert_same_run(sane, sane_alone, len(synthetic.test_x))


def test_a_sweep_stacks_what_it_can_and_caches_every_run_under_its_own_key(small_mnist, cache, monkeypatch):
    calls = []
    original = sweep.train_stacked
    monkeypatch.setattr(sweep, "train_stacked", lambda configs, *a, **k: calls.append(configs) or original(configs, *a, **k))
    lrs = (0.003, 0.001, 0.0001)
    configs = [RunConfig(**TINY, lr=lr) for lr in lrs] + [RunConfig(**{**TINY, "batch_size": 100})]  # can't stack
    results = run_sweep(configs, small_mnist, cache)
    assert [[c.lr for c in group] for group in calls] == [list(lrs)]
    assert all(r.status == "ok" and not r.cached for r in results)
    keys = {r.key for r in results}
    assert len(keys) == 4
    for result in results[:3]:
        stored = cache.get(result.key, weights=True)
        assert stored.config == result.config
        assert all(torch.equal(stored.weights[n], result.weights[n]) for n in result.weights)
        alone, _ = train(result.config, small_mnist)
        assert_same_run(stored, alone, len(small_mnist.test_x))
    again = run_sweep(configs, small_mnist, cache)
    assert len(calls) == 1 and all(r.cached for r in again)


def test_stacking_is_only_for_what_keeps_the_shape_and_the_steps():
    base = RunConfig(**TINY)
    key = stack_key(base, "cpu")
    for same in (dict(lr=0.1), dict(seed=1), dict(init="default"), dict(optimizer="sgd", momentum=0.5),
                 dict(activations=("tanh", "gelu"))):
        assert stack_key(base.replace(**same), "cpu") == key
    for other in (dict(batch_size=20), dict(train_size=200), dict(hidden=64), dict(epochs=3), dict(precision="bf16")):
        assert stack_key(base.replace(**other), "cpu") not in (None, key)
    assert stack_key(base.replace(model="cnn"), "cpu") is None
    assert stack_key(base.replace(optimizer="rmsprop"), "cpu") is None
    assert stack_key(base, "mps") is None


def test_a_stacked_epoch_sweep_serves_prefixes_equal_to_real_runs(small_mnist, cache):
    configs = [RunConfig(**{**TINY, "epochs": e}, lr=lr) for lr in (0.003, 0.0003) for e in (1, 3)]
    results = run_sweep(configs, small_mnist, cache)
    assert [len(r.epochs) for r in results] == [1, 3, 1, 3]
    for config in configs:
        served = cache.get(cache.key_for(config, small_mnist), weights=True)
        real, _ = train(config, small_mnist)
        assert served.config == config
        assert_same_run(served, real, len(small_mnist.test_x))


def test_a_reused_prefix_is_exactly_the_real_run(small_mnist, cache):
    configs = [RunConfig(**{**TINY, "epochs": e}) for e in (3, 1)]  # one job: no stacking, bit for bit
    run_sweep(configs, small_mnist, cache)
    served = cache.get(cache.key_for(configs[1], small_mnist), weights=True)
    real, _ = train(configs[1], small_mnist)
    assert [(m.train_loss, m.train_acc, m.test_loss, m.test_acc) for m in served.epochs] == \
           [(m.train_loss, m.train_acc, m.test_loss, m.test_acc) for m in real.epochs]
    assert all(torch.equal(served.weights[n], real.weights[n]) for n in real.weights)


def test_cancel_stops_a_stacked_sweep_and_caches_nothing(small_mnist, cache):
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


@pytest.mark.parametrize("stacked", [False, True])
def test_no_step_reads_a_number_back_from_the_device(small_mnist, monkeypatch, stacked):
    """On a GPU every .item() or .tolist() waits for the device; they may happen a few times per epoch only."""
    reads = []
    for name in ("item", "tolist"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, _o=original: reads.append(1) or _o(self))
    config = RunConfig(train_size=2000, batch_size=10, epochs=1)  # 200 steps
    if stacked:
        train_stacked([config, config.replace(lr=0.01)], small_mnist, progress=lambda *a: None)
    else:
        train(config, small_mnist, progress=lambda *a: None)
    assert 0 < len(reads) <= 60 < 200


def test_a_stacked_sweep_is_reproducible(synthetic):
    configs = [RunConfig(train_size=256, batch_size=32, epochs=2, lr=lr, init="normal") for lr in (0.1, 0.001)]
    first, again = train_stacked(configs, synthetic), train_stacked(configs, synthetic)
    for (a, _), (b, _) in zip(first, again):
        assert [(m.train_loss, m.test_acc) for m in a.epochs] == [(m.train_loss, m.test_acc) for m in b.epochs]
        assert all(torch.equal(a.weights[n], b.weights[n]) for n in a.weights)
