"""A comparison as the app sees it: a base config, one hyperparameter, the values to try.

Everything here is plain Python and pandas, so the pages only lay out widgets and the tests need
no browser: turning a comparison into configs (with an error per value that cannot work), planning
it against the cache (runs, cached, estimated time), the tidy tables the charts draw, and the
comparison's round trip through a URL's query parameters.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .cache import RunCache
from .config import (FIELD_LABELS, FIELD_TYPES, label, MODELS, SWEEPABLE, ConfigError, RunConfig,
                     option_label,
                     check_no_repeats, coerce, split_values)
from .data import MnistData
from .i18n import N_, Translator, format_percent, gettext
from .models import shape_flow
from .sweep import plan
from .results import on_this_server
from .train import RunResult

MAX_VALUES = 8             # more lines than this on one chart stop being readable
MAX_URL_VALUE_CHARS = 200  # a URL parameter longer than this is not one of ours


# What each comparable setting is called on screen, and the values a comparison starts from.
PARAM_TITLES = FIELD_LABELS
DEFAULT_VALUES = {
    "lr": "0.1, 0.01, 0.001, 0.0001", "epochs": "5, 10, 15", "batch_size": "10, 30, 100, 1000",
    "activations": "sigmoid,sigmoid; sigmoid,relu; relu,sigmoid; relu,relu", "optimizer": "adam, sgd, rmsprop, adamw",
    "init": "normal, xavier_uniform, kaiming_uniform", "hidden": "64, 256, 1024", "momentum": "0, 0.9",
    "seed": "1, 2, 3", "train_size": "1000, 10000, 60000", "stride": "1, 2, 5", "kernel_size": "3, 5, 10",
    "padding": "0, 1, 2", "conv_layers": "first, all", "keep_prob": "0.5, 1.0", "precision": "fp32, bf16",
}


# -- from settings to configs ----------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    base: RunConfig
    param: str
    values: tuple

    @property
    def model(self) -> str:
        return self.base.model


@dataclass(frozen=True)
class Entry:
    """One compared value: its config, or why that value cannot be trained."""
    label: str
    value: Any
    config: RunConfig | None
    error: str | None = None
    cause: ConfigError | None = field(default=None, compare=False)  # the error, for a page to translate


def value_label(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "/".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def format_values(param: str, values: Iterable[Any]) -> str:
    """The text a student would type for `values` (what parse_values reads back)."""
    if param == "activations":
        return "; ".join(",".join(v) for v in values)
    return ", ".join(value_label(v) for v in values)


def make_comparison(base: RunConfig, param: str, values_text: str) -> Comparison:
    """Reads the "compare by" settings; raises ConfigError with a message for the student."""
    if param not in SWEEPABLE[base.model]:
        raise ConfigError(N_("The {setting} cannot be compared for the {model}. Choose one of: {choices}."),
                          setting=label(param), model=base.model.upper(),
                          choices=", ".join(SWEEPABLE[base.model]))
    values = []
    for chunk in split_values(param, values_text or ""):
        try:
            values.append(coerce(param, chunk))
        except ConfigError:  # kept as typed: entries() gives it its own error, and the other values still run
            values.append(chunk)
    check_no_repeats(param, values, values_text)
    if len(values) > MAX_VALUES:
        raise ConfigError(N_("Compare at most {most} values at once (got {count})."), most=MAX_VALUES,
                          count=len(values))
    return Comparison(base, param, tuple(values))


def entries(comparison: Comparison) -> list[Entry]:
    """One entry per value. A value whose config is invalid gets an error, and the others still run."""
    out = []
    for value in comparison.values:
        label = value_label(value)
        try:
            config = comparison.base.replace(**{comparison.param: value})
            if config.model == "cnn":
                shape_flow(config)  # a filter that no longer fits fails here, before any training
        except ConfigError as e:
            out.append(Entry(label, value, None, str(e), e))
        else:
            out.append(Entry(label, value, config))
    return out


# -- before running: how much work, how long -------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    runs: int                 # valid configs in the comparison
    cached: int               # of which already in the cache
    trainings: int            # trainings still needed (an epochs comparison needs one for all values)
    seconds: float            # the trainings' time on this device (speed.estimate_seconds)
    cached_labels: tuple[str, ...] = ()


def estimate(items: Sequence[Entry], data: MnistData, cache: RunCache, history: Sequence[RunResult] | None = None) -> Estimate:
    from .speed import estimate_seconds
    valid = [e for e in items if e.config is not None]
    configs = [e.config for e in valid]
    hits, jobs = plan(configs, data, cache) if configs else ({}, [])
    history = list(cache.list() if history is None and jobs else history or [])
    seconds = sum(estimate_seconds(job.config, history, data.device.type, len(data.test_x)) for job in jobs)
    return Estimate(len(configs), len(hits), len(jobs), seconds, tuple(valid[i].label for i in sorted(hits)))


# -- after running: tidy tables --------------------------------------------------------------------

def series_label(entry: Entry, result: RunResult) -> str:
    """The legend's name for a run; a diverged run says so, and where."""
    if result.status == "diverged":
        return f"{entry.label} (diverged at epoch {result.diverged_epoch})"
    return entry.label


def _pairs(items: Sequence[Entry], results: Sequence[RunResult | None]):
    for order, (entry, result) in enumerate(zip(items, results)):
        if entry.config is not None and result is not None:
            yield order, entry, result


METRIC_COLUMNS = ["value", "series", "order", "epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                  "seconds", "status"]


def metrics_frame(items: Sequence[Entry], results: Sequence[RunResult | None]) -> pd.DataFrame:
    """One row per (value, epoch). A diverged run has rows up to its last finite epoch."""
    rows = [{"value": entry.label, "series": series_label(entry, result), "order": order, "epoch": m.epoch,
             "train_loss": m.train_loss, "train_acc": m.train_acc, "test_loss": m.test_loss,
             "test_acc": m.test_acc, "seconds": m.seconds, "status": result.status}
            for order, entry, result in _pairs(items, results) for m in result.epochs]
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def final_frame(items: Sequence[Entry], results: Sequence[RunResult | None]) -> pd.DataFrame:
    """One row per value: where it ended. A run that diverged in its first epoch has no accuracy."""
    rows = []
    for order, entry, result in _pairs(items, results):
        last = result.final
        rows.append({"value": entry.label, "series": series_label(entry, result), "order": order,
                     "status": result.status, "epochs": len(result.epochs),
                     "test_acc": last.test_acc if last else float("nan"),
                     "test_loss": last.test_loss if last else float("nan"),
                     "train_loss": last.train_loss if last else float("nan")})
    return pd.DataFrame(rows, columns=["value", "series", "order", "status", "epochs", "test_acc", "test_loss",
                                       "train_loss"])


TIMING_COLUMNS = ["value", "total_s", "s_per_epoch", "steps_per_epoch", "samples_per_s", "batch_size",
                  "device", "trained_on", "created", "status", "key"]


def machine_label(machine: Mapping[str, str], device: str = "", text: Translator | None = None) -> str:
    """Where a run was trained, in one line (the same config takes longer on a slower machine), in the
    language of `text` (English by default). A run cached before runs recorded it: "" or, given its
    device, that it was not recorded."""
    text = text or Translator("en")
    if not machine:
        return text(N_("not recorded ({device})"), device=device) if device else ""
    parts = [machine.get("device_name") or machine.get("cpu") or device]
    if machine.get("cpu_capability") and "gpu" not in machine:
        parts.append(machine["cpu_capability"])
    parts.append(f"torch {machine.get('torch', '?')}")
    worker = machine.get("worker")
    parts.append(text(N_("this server")) if on_this_server(worker) else text(N_("worker {address}"), address=worker))
    return " · ".join(parts)


def timing_frame(items: Sequence[Entry], results: Sequence[RunResult | None]) -> pd.DataFrame:
    """How long each run took when it was trained; cached runs keep their original timing."""
    rows = []
    for _, entry, result in _pairs(items, results):
        epochs = len(result.epochs)
        trained = sum(m.seconds for m in result.epochs) or result.total_seconds
        rows.append({"value": entry.label, "total_s": round(trained, 2),
                     "s_per_epoch": round(trained / epochs, 2) if epochs else None,
                     "steps_per_epoch": result.steps_per_epoch,
                     "samples_per_s": round(result.config.train_size * epochs / trained) if epochs and trained else None,
                     "batch_size": result.config.batch_size, "device": result.device,
                     "trained_on": machine_label(result.machine, result.device), "created": result.created,
                     "status": result.status, "key": result.key})
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def shape_flow_frame(items: Sequence[Entry]) -> pd.DataFrame:
    """The CNN's shapes layer by layer (rows), one column per valid compared value."""
    flows = {e.label: shape_flow(e.config) for e in items if e.config is not None and e.config.model == "cnn"}
    if not flows:
        return pd.DataFrame(columns=["layer"])
    layers = [step.layer for step in next(iter(flows.values()))]
    table = {"layer": layers}
    for label, flow in flows.items():
        table[label] = [" × ".join(map(str, step.shape)) for step in flow]
    return pd.DataFrame(table)


# -- sharing: a comparison in the URL --------------------------------------------------------------

URL_PARAM = "compare"
URL_VALUES = "values"
URL_LANG = "lang"  # the language a link was shared in; not part of the comparison
URL_PARAM2, URL_VALUES2 = "compare2", "values2"  # a grid's second hyperparameter (read by grid.from_query_params)


def to_query_params(comparison: Comparison) -> dict[str, str]:
    """Every base setting, the compared parameter and its values, all as strings."""
    params = {name: ",".join(value) if name == "activations" else str(value)
              for name, value in comparison.base.to_dict().items()}
    params[URL_PARAM] = comparison.param
    params[URL_VALUES] = format_values(comparison.param, comparison.values)
    return params


def from_query_params(params: Mapping[str, Any], model: str | None = None) -> Comparison:
    """The comparison a shared link describes. Anything wrong raises ConfigError, never anything else."""
    clean: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, (list, tuple)):  # a parameter given twice: the last one wins, as in Streamlit
            value = value[-1] if value else ""
        if not isinstance(value, str) or len(value) > MAX_URL_VALUE_CHARS:
            raise ConfigError(N_("The link's setting '{name}' is not valid."), name=str(name)[:40])
        clean[str(name)] = value
    unknown = sorted(set(clean) - set(FIELD_TYPES) - {URL_PARAM, URL_VALUES, URL_LANG, URL_PARAM2, URL_VALUES2})
    if unknown:
        raise ConfigError(N_("The link has settings this app does not know: {names}."),
                          names=", ".join(n[:40] for n in unknown))
    if URL_PARAM not in clean or URL_VALUES not in clean:
        raise ConfigError(N_("The link does not say what to compare (it needs 'compare' and 'values')."))
    settings = {name: value for name, value in clean.items() if name in FIELD_TYPES}
    settings.setdefault("model", model or "mlp")
    if settings["model"].strip().lower() not in MODELS:
        raise ConfigError(N_("The link's model '{model}' is not one of: {choices}."), model=settings["model"][:40],
                          choices=", ".join(MODELS))
    if model is not None and settings["model"].strip().lower() != model:
        raise ConfigError(N_("This link is a {model} comparison; open it on the {model} page."),
                          model=settings["model"].upper())
    base = RunConfig.from_dict(settings)
    return make_comparison(base, clean[URL_PARAM].strip(), clean[URL_VALUES])


def settings_text(config: RunConfig, lang: str = "en", epochs: int | None = None) -> str:
    """A run's settings in one short line a student reads, in `lang`: the network, what sets this run apart, then
    how it trained. Settings at their default (width 256, momentum 0, seed 777, fp32, ...) are left out, the others
    come early, so that a narrow column still tells two runs apart; `epochs`: those it ran."""
    _, c, default = Translator(lang), config, RunConfig(model=config.model)
    if c.model == "mlp":
        parts = [_(N_("MLP {activations}, {init} init"), init=_(option_label(c.init)),
                   activations="/".join(_(option_label(a)) for a in c.activations))]
        parts += [_(N_("{n} units per hidden layer"), n=c.hidden)] if c.hidden != default.hidden else []
    else:
        parts = [_(N_("CNN filter {size}, stride {stride}, padding {padding}"), size=c.kernel_size, stride=c.stride,
                   padding=c.padding)]
        parts += [_(option_label(c.conv_layers))] if c.conv_layers != default.conv_layers else []
        parts += [_(N_("dropout keep {p}"), p=f"{c.keep_prob:g}")] if c.keep_prob != default.keep_prob else []
    parts += [_(N_("seed {seed}"), seed=c.seed)] if c.seed != default.seed else []
    parts += [_(option_label(c.precision))] if c.precision != default.precision else []
    parts.append(_(N_("{optimizer} lr {lr}"), optimizer=_(option_label(c.optimizer)), lr=f"{c.lr:g}")
                 + (_(N_(", momentum {m}"), m=f"{c.momentum:g}") if c.momentum != default.momentum else ""))
    parts.append(_(N_("batch {batch}"), batch=_.number(c.batch_size)))
    parts.append(_(N_("{epochs} ep on {images} images"), epochs=c.epochs if epochs is None else epochs,
                   images=_.number(c.train_size)))
    return " · ".join(parts)


def run_label(run: RunResult, with_accuracy: bool = True, lang: str = "en") -> str:
    """A cached run in one short line, for pickers: what it is and how good it got, in `lang`."""
    line = settings_text(run.config, lang, epochs=len(run.epochs))
    if with_accuracy:
        final = run.final
        line += " · " + (format_percent(final.test_acc, lang) if final else gettext(N_("no epoch finished"), lang))
    return line + (" · " + gettext(N_("diverged"), lang) if run.status == "diverged" else "")