"""Comparisons: several configs that differ in one hyperparameter, trained as cheaply as possible.

Runs already cached cost nothing. Configs that differ only in their number of epochs are one run:
the longest is trained and the shorter ones are its first epochs, stored with their own weights
(the first E epochs of a run are, bit for bit, the E-epoch run). Every other run is trained alone
by train.train, so a run's numbers never depend on which other values were in the comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .cache import RunCache
from .config import RunConfig
from .data import MnistData
from .train import RunResult, StopFn
from .train import train as train_one

SweepProgressFn = Callable[[int, int, float, dict[str, Any]], None]  # (run index, epoch, fraction, metrics)


@dataclass
class Group:
    """One training that serves one or more of the sweep's runs (an epoch-prefix group: the longest trains)."""
    config: RunConfig
    serves: list[int]  # indices into the sweep's configs


def plan(configs: list[RunConfig], data: MnistData, cache: RunCache,
         touch: bool = False) -> tuple[dict[int, RunResult], list[Group]]:
    """Splits a sweep into runs already cached and the trainings still needed (`touch`: the hits are
    being served, so their use counts for eviction; an estimate only looks)."""
    cached: dict[int, RunResult] = {}
    by_prefix: dict[RunConfig, list[int]] = {}
    for i, config in enumerate(configs):
        hit = cache.get(cache.key_for(config, data), touch=touch)
        if hit is not None:
            cached[i] = hit
        else:
            by_prefix.setdefault(config.replace(epochs=1), []).append(i)
    groups = []
    for indices in by_prefix.values():
        longest = max(indices, key=lambda i: configs[i].epochs)
        groups.append(Group(configs[longest], sorted(indices, key=lambda i: configs[i].epochs)))
    return cached, groups


def run_sweep(configs: list[RunConfig], data: MnistData, cache: RunCache, *,
              progress: SweepProgressFn | None = None, should_stop: StopFn | None = None,
              on_result: Callable[[int, RunResult], None] | None = None) -> list[RunResult | None]:
    """Results in the order of `configs` (None for runs not reached because of a stop)."""
    cached, groups = plan(configs, data, cache, touch=True)
    results: list[RunResult | None] = [None] * len(configs)
    for i, hit in cached.items():
        results[i] = hit
        if on_result:
            on_result(i, hit)
    for group in groups:
        if should_stop is not None and should_stop():
            break
        snapshot_epochs = {configs[i].epochs for i in group.serves} - {group.config.epochs}

        def job_progress(epoch: int, fraction: float, metrics: dict[str, Any], serves=group.serves) -> None:
            for i in serves:
                if progress is not None and epoch <= configs[i].epochs:
                    progress(i, epoch, fraction, metrics)

        longest = cache.get_or_train(group.config, data, progress=job_progress, should_stop=should_stop,
                                     snapshot_epochs=snapshot_epochs, trainer=train_one)
        for i in group.serves:
            results[i] = _serve(configs[i], longest, data, cache)
            if on_result and results[i] is not None:
                on_result(i, results[i])
    return results


def _serve(config: RunConfig, longest: RunResult, data: MnistData, cache: RunCache) -> RunResult | None:
    """The result for `config` from the training of its longest twin."""
    if config.epochs == longest.config.epochs:
        return longest
    if (shorter := cache.get(cache.key_for(config, data), touch=True)) is not None:
        shorter.cached = longest.cached  # trained just now, as the first epochs of the longest run
        return shorter
    if longest.status == "diverged":  # it diverged before this run's last epoch: so would this run
        return _truncated(longest, config)
    return None


def _truncated(longest: RunResult, config: RunConfig) -> RunResult:
    """A shorter run whose longer twin diverged within its epochs: the same outcome."""
    return RunResult(config=config, status=longest.status, epochs=longest.epochs[:config.epochs],
                     total_seconds=longest.total_seconds, steps_per_epoch=longest.steps_per_epoch,
                     device=longest.device, diverged_epoch=longest.diverged_epoch, key=longest.key,
                     data_id=longest.data_id)
