"""The seed's study regenerated: its six experiments run through the engine and cache, each with the
seed's setting and stated result (seed_claims.py) next to our charts, tables and observations.

A size scales the presets: `full` is the presets as they are; `quick` trains on fewer images and
epochs so that a 2-core CPU finishes the whole study in minutes; TINY is for the tests. Every section
states its scaling. The chaotic value (lr 0.1 with the seed's normal(0, 1) init) is repeated with
more seeds, so the report can say what is robust and what is chance.

No Streamlit here: the CLI (`python -m mnist_core report`) and the Study page both call build_study;
report.py turns the sections into HTML, Markdown or JSON.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from . import observations as obs
from .cache import RunCache
from .compare import (PARAM_TITLES, Entry, Estimate, entries, estimate, final_frame, make_comparison, format_values,
                      metrics_frame, timing_frame)
from .config import FIELD_LABELS, PRESETS, ConfigError, Preset, RunConfig
from .data import MnistData
from .i18n import N_, Duration, Text, gettext
from .results import RunResult
from .seed_claims import SEED, SeedExperiment

ORDER = ("mlp-lr", "mlp-epochs", "mlp-batch", "mlp-activation", "cnn-stride", "cnn-filter")
CHAOTIC = {"mlp-lr": 0.1}  # values repeated with more seeds: where they end depends on the seed


@dataclass(frozen=True)
class StudySize:
    """How a study scales the presets: per preset, the config fields to change and the values to compare."""
    name: str
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    values: dict[str, tuple] = field(default_factory=dict)
    extra_seeds: tuple[int, ...] = (1, 2)


_QUICK_MLP = {"train_size": 10_000, "test_size": 2_000}
_QUICK_CNN = {"train_size": 3_000, "test_size": 1_000, "epochs": 3}
SIZES = {
    "full": StudySize("full"),
    # Measured on this project's 2-core CPU (see the report of issue 11): about 3 minutes from an empty cache.
    "quick": StudySize("quick", {
        "mlp-lr": {**_QUICK_MLP, "epochs": 15},
        "mlp-epochs": _QUICK_MLP,  # all of the seed's epoch counts (one 100-epoch run), fewer images
        "mlp-batch": {**_QUICK_MLP, "epochs": 5},
        "mlp-activation": {**_QUICK_MLP, "epochs": 10},
        "cnn-stride": _QUICK_CNN,
        "cnn-filter": _QUICK_CNN,
    }),
}
SIZE_NAMES = {"quick": N_("quick"), "full": N_("full")}  # on screen
_TINY = {"train_size": 300, "test_size": 100, "epochs": 2}
TINY = StudySize("tiny", {p: _TINY for p in ORDER}, {"mlp-epochs": (1, 2), "mlp-batch": (10, 100, 300)},
                 extra_seeds=(1,))  # for the tests

TITLES = {  # per preset: the section's title and its question
    "mlp-lr": (N_("MLP: learning rate"), N_("How does the learning rate change what the MLP learns, and how fast?")),
    "mlp-epochs": (N_("MLP: epochs"), N_("What do more epochs buy, and when does the model start to overfit?")),
    "mlp-batch": (N_("MLP: batch size"), N_("Are bigger batches faster, and what do they cost in accuracy?")),
    "mlp-activation": (N_("MLP: activation functions"),
                       N_("Which activations after the two hidden layers learn best, and how fast?")),
    "cnn-stride": (N_("CNN: stride"), N_("What does a stride of 5 in the first conv layer do to the shapes, the "
                                         "accuracy and the time?")),
    "cnn-filter": (N_("CNN: filter size"), N_("What does a 10×10 filter in the first conv layer change?")),
}
SCALING = N_("Scaled ({size}): {changes}.")
SCALING_NONE = N_("Full size: the seed's settings as in the preset.")
CHANGE = N_("{field} {before} → {after}")
MISSING = N_("Not trained yet: {name} {values}. Training them would take about {cost}.")
FIELD_NAMES = {"train_size": N_("training images"), "test_size": N_("test images per epoch"), "epochs": N_("epochs"),
               "values": N_("values"), "train_images": N_("training images"), "flatten": N_("values into the classifier"),
               "device": N_("trained on")}


@dataclass
class Section:
    preset: Preset
    size: str
    lang: str
    items: list[Entry]                 # the compared values
    results: list[RunResult | None]
    repeats: list[Entry]               # the chaotic value with other seeds
    repeat_results: list[RunResult | None]
    seed: SeedExperiment
    scaling: str
    estimate: Estimate | None = None   # what the missing runs would cost
    observations: list[str] = field(default_factory=list)

    @property
    def param(self) -> str:
        return self.preset.param

    @property
    def title(self) -> str:
        return gettext(TITLES[self.preset.name][0], self.lang)

    @property
    def question(self) -> str:
        return gettext(TITLES[self.preset.name][1], self.lang)

    @property
    def test_size(self) -> int:
        return self.items[0].config.test_size

    @property
    def missing(self) -> list[str]:
        return [e.label for e, r in zip(self.items + self.repeats, self.results + self.repeat_results) if r is None]

    def metrics(self) -> pd.DataFrame:
        return metrics_frame(self.items, self.results)

    def finals(self) -> pd.DataFrame:
        return final_frame(self.items, self.results)

    def timing(self) -> pd.DataFrame:
        return timing_frame(self.items, self.results)

    def repeat_frame(self) -> pd.DataFrame:
        """The chaotic value's runs (the compared one and its repeats): seed, final accuracy, status."""
        rows = [{"seed": r.config.seed, "test_acc": r.final.test_acc if r.final else float("nan"), "status": r.status}
                for r in self._chaotic_runs()]
        return pd.DataFrame(rows, columns=["seed", "test_acc", "status"])

    def repeat_metrics(self) -> pd.DataFrame:
        runs = self._chaotic_runs()
        labels = [Entry(gettext(N_("seed {seed}"), self.lang, seed=r.config.seed), r.config.seed, r.config)
                  for r in runs]
        return metrics_frame(labels, runs)

    def _chaotic_runs(self) -> list[RunResult]:
        value = CHAOTIC.get(self.preset.name)
        main = [r for e, r in zip(self.items, self.results) if e.value == value and r is not None]
        return main + [r for r in self.repeat_results if r is not None]

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.title, "preset": self.preset.name, "size": self.size,
                "values": [e.label for e in self.items], "param": self.param, "scaling": self.scaling,
                "runs": [r.key for r in self.results + self.repeat_results if r is not None],
                "repeats": [{"seed": e.config.seed, "value": e.label} for e in self.repeats],
                "seed": self.seed.to_json(), "observations": self.observations, "missing": self.missing,
                "estimated_seconds": self.estimate.seconds if self.estimate else None}


# -- configs ---------------------------------------------------------------------------------------

def scaled_preset(name: str, size: StudySize) -> tuple[Preset, list[Entry], list[Entry]]:
    """The preset at this size: its entries, and the chaotic value's repeats with other seeds."""
    preset = PRESETS[name]
    base = preset.base.replace(**size.changes.get(name, {}))
    values = size.values.get(name, preset.values)
    comparison = make_comparison(base, preset.param, format_values(preset.param, values))
    items = entries(comparison)
    if errors := [f"{e.label}: {e.error}" for e in items if e.config is None]:
        raise ConfigError(f"The {name} study at size {size.name} cannot run: {'; '.join(errors)}")
    repeats = []
    if name in CHAOTIC:
        chaotic = base.replace(**{preset.param: CHAOTIC[name]})
        repeats = [Entry(f"{preset.param}={CHAOTIC[name]:g} seed {s}", CHAOTIC[name], chaotic.replace(seed=s))
                   for s in size.extra_seeds if s != chaotic.seed]
    return Preset(name, preset.title, preset.description, base, preset.param, tuple(values)), items, repeats


def scaling_text(name: str, size: StudySize, lang: str) -> str:
    preset, changes = PRESETS[name], size.changes.get(name, {})
    parts = [gettext(CHANGE, lang, field=Text(FIELD_NAMES.get(f, f)), before=_number(getattr(preset.base, f)),
                     after=_number(v))
             for f, v in changes.items() if getattr(preset.base, f) != v]
    if name in size.values and tuple(size.values[name]) != tuple(preset.values):
        parts.append(gettext(CHANGE, lang, field=Text(FIELD_NAMES["values"]),
                             before=format_values(preset.param, preset.values),
                             after=format_values(preset.param, size.values[name])))
    if not parts:
        return gettext(SCALING_NONE, lang)
    return gettext(SCALING, lang, size=Text(SIZE_NAMES.get(size.name, size.name)), changes="; ".join(parts))


def _number(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


# -- what the study trains (through the job service: the Study page and `report` submit these) --------

def study_configs(size: StudySize, presets: Sequence[str] = ORDER) -> list[tuple[str, RunConfig]]:
    """Every run the study's sections need, named for a progress line ("mlp-lr: 0.1"), in section order."""
    out = []
    for name in presets:
        _, items, repeats = scaled_preset(name, size)
        out += [(f"{name}: {e.label}" + (f" (seed {e.config.seed})" if e in repeats else ""), e.config)
                for e in items + repeats if e.config is not None]
    return out


# -- sections --------------------------------------------------------------------------------------

def build_section(name: str, size: StudySize, data: MnistData, cache: RunCache, *, lang: str = "en") -> Section:
    """A section from the runs in the cache; what is missing says what it would cost (train it with the
    job service: `study_configs`)."""
    preset, items, repeats = scaled_preset(name, size)
    configs = [e.config for e in items + repeats]
    results = [cache.get(cache.key_for(c, data)) for c in configs]
    section = Section(preset, size.name, lang, items, results[:len(items)], repeats, results[len(items):],
                      SEED[name], scaling_text(name, size, lang))
    if section.missing:
        section.estimate = estimate(items + repeats, data, cache)
    section.observations = observe(section, lang)
    return section


def build_study(size: StudySize, data: MnistData, cache: RunCache, *, lang: str = "en",
                presets: Sequence[str] = ORDER) -> list[Section]:
    """Every section of the study, from the cache; missing runs stay missing and each section says what
    they would cost."""
    return [build_section(name, size, data, cache, lang=lang) for name in presets]


def seed_setting(section: Section, lang: str) -> str:
    """What the post states of its setting, in words: "epochs 50 · batch size 100 · learning rate compared: 0.1, ..."."""
    def name(key: str) -> Text:
        return Text(FIELD_NAMES.get(key) or FIELD_LABELS.get(key, key))

    def shown(value: Any) -> str:
        return value.replace(",", "/") if isinstance(value, str) else _number(value)  # "sigmoid,relu": a pair

    parts = [gettext(N_("{setting} {value}"), lang, setting=name(key), value=shown(value))
             for key, value in section.seed.setting.items() if key != "values"]
    compared = section.seed.setting.get("values")
    if compared:
        parts.append(gettext(N_("{setting} compared: {values}"), lang, setting=name(section.param),
                             values=", ".join(shown(v) for v in compared)))
    return " · ".join(parts)


def missing_text(section: Section, lang: str) -> str:
    est = section.estimate
    if est is None or not section.missing:
        return ""
    missing = [e.label for e, r in zip(section.items, section.results) if r is None]
    missing += [gettext(N_("{value} (seed {seed})"), lang, value=f"{e.value:g}", seed=e.config.seed)
                for e, r in zip(section.repeats, section.repeat_results) if r is None]
    what = dict(name=obs._name(lang, section.param), values=", ".join(missing))
    return gettext(MISSING, lang, cost=Duration(est.seconds), **what)


# -- observations: which findings each experiment reports ------------------------------------------

def observe(section: Section, lang: str) -> list[str]:
    name, param, seed = section.preset.name, section.param, section.seed
    metrics, finals, timing = section.metrics(), section.finals(), section.timing()
    out = obs.failed_runs(metrics, finals, param, lang) + obs.best_value(finals, param, section.test_size, lang)
    if name in CHAOTIC:
        value = CHAOTIC[name]
        label = f"{value:g}"
        out += obs.repeats(section.repeat_frame(), param, label, lang)
        row = finals[finals["value"] == label]
        if len(row) and row["test_acc"].notna().all():
            why = obs.repeat_verdict(section.repeat_frame())  # what the seeds show, not what we expect of lr 0.1
            out += obs.seed_number(gettext(N_("lr 0.1 accuracy"), lang), seed.numbers["lr_0.1_accuracy"],
                                   float(row["test_acc"].iloc[0]), 0.05, why, lang)
            out += obs.seed_number(gettext(N_("lr 0.1 training loss"), lang), seed.numbers["lr_0.1_loss"],
                                   float(row["train_loss"].iloc[0]), 0.05, why, lang)
    if name == "mlp-epochs" and len(metrics):
        longest = finals.sort_values("epochs").iloc[-1]["value"]
        curve = metrics[metrics["value"] == longest]
        out += obs.overfitting(curve, section.test_size, lang)
        out += obs.accuracy_gains(curve, [int(v) for v in section.preset.values], lang)
    if name == "mlp-batch":
        out += obs.step_times(timing, lang, (seed.numbers["times_s"], seed.numbers["steps_per_epoch"]))
        out += obs.batch_speed(timing, seed.numbers["times_s"], lang)
        out += obs.batch_tradeoff(finals, timing, lang)
    if name == "mlp-activation":
        out += obs.epochs_to_reach(metrics, lang)
    if name.startswith("cnn"):
        from .models import shape_flow
        flows = {e.label: next(s.shape for s in reversed(shape_flow(e.config)) if s.layer.startswith("pool"))
                 for e in section.items if e.config is not None}
        out += obs.classifier_inputs(flows, param, lang)
        if (stride_1 := next((e.label for e in section.items if e.config.stride == 1 and e.config.kernel_size == 3), None)):
            out += obs.model_inputs(SEED["cnn-stride"].numbers["classifier_inputs_stride_1"], math.prod(flows[stride_1]), param,
                                    stride_1, lang)
        out += obs.speed(timing, param, lang)
    if seed.silent and len(metrics):
        out.append(obs.say(lang, "silent"))
    return out


def legend_title(param: str) -> str:
    return PARAM_TITLES.get(param, param)
