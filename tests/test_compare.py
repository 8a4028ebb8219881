"""mnist_core.compare: configs per value, the plan and estimate, the tidy tables, the URL round trip."""
from __future__ import annotations

import math

import pytest

from mnist_core import ConfigError, RunConfig, run_sweep
from mnist_core.compare import (entries, estimate, final_frame, from_query_params,
                                make_comparison, metrics_frame, shape_flow_frame, timing_frame, to_query_params)
from mnist_core.train import EpochMetrics, RunResult

pytestmark = pytest.mark.numerics

TINY = RunConfig(model="mlp", init="xavier_uniform", epochs=2, train_size=512, batch_size=64)


def test_each_value_gets_its_config_or_its_own_error():
    items = entries(make_comparison(TINY, "lr", "0.01, 20, 0.001"))
    assert [e.label for e in items] == ["0.01", "20", "0.001"]
    assert items[0].config.lr == 0.01 and items[2].config.lr == 0.001
    assert items[1].config is None and "too large" in items[1].error


def test_a_cnn_whose_image_collapses_is_an_error_for_that_value_only():
    base = RunConfig(model="cnn", padding=0, epochs=1, train_size=100)
    items = entries(make_comparison(base, "kernel_size", "3, 28"))
    assert items[0].config is not None and items[0].error is None
    assert items[1].config is None and "pool1" in items[1].error
    flow = shape_flow_frame(items)
    assert list(flow.columns) == ["layer", "3"]
    assert flow.set_index("layer").loc["conv1", "3"] == "32 × 26 × 26"


@pytest.mark.parametrize("param, values, message", [
    ("kernel_size", "3, 5", "cannot be compared for the MLP"),
    ("lr", "", "at least one value"),
    ("lr", "0.1, 0.1", "repeat"),
    ("lr", ", ".join(str(0.001 * i) for i in range(1, 10)), "at most 8"),
])
def test_bad_compare_settings_say_what_is_wrong(param, values, message):
    with pytest.raises(ConfigError, match=message):
        make_comparison(TINY, param, values)


@pytest.mark.parametrize("values", ["abc, -1", "0.01, -1", "fast, 0.1"])
def test_each_bad_value_is_an_entry_with_its_own_error_and_the_rest_still_run(values):
    items = entries(make_comparison(TINY, "lr", values))
    assert [e.label for e in items] == [v.strip() for v in values.split(",")]
    for entry, typed in zip(items, values.split(",")):
        bad = typed.strip() in ("abc", "fast", "-1")
        assert (entry.config is None) == bad and (entry.error is not None) == bad
        if typed.strip() in ("abc", "fast"):
            assert entry.error == f"The learning rate must be a number, got '{typed.strip()}'."
            assert entry.cause is not None and entry.cause.template.startswith("The {setting} must be a number")


@pytest.mark.parametrize("comparison", [
    make_comparison(TINY, "lr", "0.1, 0.0003"),
    make_comparison(TINY, "lr", "abc, 0.001"),  # a bad value stays in the link as typed
    make_comparison(TINY.replace(activations="tanh,gelu"), "activations", "sigmoid,relu; relu,relu"),
    make_comparison(RunConfig(model="cnn", keep_prob=0.75, conv_layers="all"), "stride", "1, 5"),
])
def test_a_comparison_survives_the_url(comparison):
    params = to_query_params(comparison)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
    assert from_query_params(params, model=comparison.model) == comparison


@pytest.mark.parametrize("change", [
    {"lr": "abc"}, {"lr": "-1"}, {"epochs": "100000"}, {"batch_size": "1.5"}, {"values": ""},
    {"compare": "kernel_size"}, {"compare": "../../etc/passwd"}, {"model": "rnn"}, {"model": "cnn"},
    {"hacker": "1"}, {"values": "1" * 500}, {"activations": "relu,relu,relu"}, {"init": ["normal", "zeros"]},
])
def test_a_bad_link_is_a_config_error_never_a_crash(change):
    params = {**to_query_params(make_comparison(TINY, "lr", "0.1, 0.01")), **change}
    with pytest.raises(ConfigError):
        from_query_params(params, model="mlp")


def test_a_link_needs_something_to_compare():
    params = to_query_params(make_comparison(TINY, "lr", "0.1"))
    del params["compare"]
    with pytest.raises(ConfigError, match="what to compare"):
        from_query_params(params, model="mlp")


def test_tables_from_a_real_batch_size_comparison(synthetic, cache):
    items = entries(make_comparison(TINY, "batch_size", "8, 256"))
    results = run_sweep([e.config for e in items], synthetic, cache)

    metrics = metrics_frame(items, results)
    assert len(metrics) == 4 and set(metrics["value"]) == {"8", "256"}
    assert metrics["epoch"].tolist() == [1, 2, 1, 2]
    assert metrics["train_loss"].map(math.isfinite).all()

    timing = timing_frame(items, results).set_index("value")
    assert timing.loc["8", "steps_per_epoch"] == 64 and timing.loc["256", "steps_per_epoch"] == 2
    # time per epoch is the benchmark's to compare (bench/run.py), never a test's: it is rounded and noisy
    assert (timing["s_per_epoch"] > 0).all()
    assert (timing["device"] == "cpu").all()

    again = timing_frame(items, run_sweep([e.config for e in items], synthetic, cache))
    assert again["created"].tolist() == timing["created"].tolist()  # from the cache: when they were trained
    finals = final_frame(items, results)
    assert finals["test_acc"].between(0, 1).all() and finals["epochs"].tolist() == [2, 2]


def test_the_estimate_counts_cached_runs_and_measures_this_device(synthetic, cache):
    items = entries(make_comparison(TINY, "lr", "0.01, 0.001"))
    before = estimate(items, synthetic, cache)  # a fresh cache: the device's measured speed, never "unknown"
    assert (before.runs, before.cached, before.trainings) == (2, 0, 2) and before.seconds > 0

    run_sweep([items[0].config], synthetic, cache)
    after = estimate(items, synthetic, cache)
    assert (after.runs, after.cached, after.trainings) == (2, 1, 1)
    assert after.cached_labels == ("0.01",) and after.seconds > 0

    epochs = estimate(entries(make_comparison(TINY.replace(seed=1), "epochs", "1, 2, 4")), synthetic, cache)
    assert (epochs.runs, epochs.trainings) == (3, 1)  # one 4-epoch run serves all three


def _run(config: RunConfig, seconds_per_epoch: float, status: str = "ok", epochs: int | None = None,
         diverged_epoch: int | None = None) -> RunResult:
    n = config.epochs if epochs is None else epochs
    history = [EpochMetrics(e, 0.5, 0.9, 0.5, 0.9, seconds_per_epoch, 1000.0) for e in range(1, n + 1)]
    return RunResult(config=config, status=status, epochs=history, total_seconds=n * seconds_per_epoch,
                     steps_per_epoch=10, device="cpu", diverged_epoch=diverged_epoch, key="mlp-0123456789abcdef")


def test_a_diverged_run_is_drawn_up_to_where_it_diverged_and_labelled():
    items = entries(make_comparison(TINY.replace(epochs=5), "lr", "5, 0.001"))
    results = [_run(items[0].config, 1.0, status="diverged", epochs=2, diverged_epoch=3), _run(items[1].config, 1.0)]
    metrics = metrics_frame(items, results)
    diverged = metrics[metrics["value"] == "5"]
    assert diverged["epoch"].tolist() == [1, 2]
    assert set(diverged["series"]) == {"5 (diverged at epoch 3)"}
    assert len(metrics[metrics["value"] == "0.001"]) == 5
    assert final_frame(items, results).set_index("value").loc["5", "status"] == "diverged"


def test_a_run_trained_by_the_apps_own_worker_process_reads_this_server():
    from mnist_core.compare import machine_label
    from mnist_core.i18n import Translator
    machine = {"cpu": "Some CPU", "cpu_capability": "AVX2", "torch": "2.14.1"}
    for worker in ("local", "tcp://127.0.0.1:40123", None):  # threads, the private cluster, not recorded
        assert machine_label({**machine, "worker": worker}).endswith("this server")
    assert machine_label({**machine, "worker": "tcp://10.0.0.7:8786"}).endswith("worker tcp://10.0.0.7:8786")
    assert "서버" in machine_label({**machine, "worker": "tcp://127.0.0.1:40123"}, text=Translator("ko"))
