"""The comparison screen the MLP and CNN pages share.

Sidebar: the dataset, the base config and "compare by". Main area, top to bottom: the plan (runs,
cached, estimated time) with the Run button, the comparison's trainings while they run, then the
results of the comparison the sidebar describes, read from the run cache.

Run submits the configs to the server's training service and remembers the job ids under the
comparison. The job watcher (app_pages/watcher.py) shows them (progress per job and overall, the loss
chart growing per epoch, place in line, estimate, Cancel for the owner); when they end it reruns the
whole page, which then draws the results. Changing a widget, switching pages or closing the tab
leaves the training alone; the same comparison shown again, or opened from its link by anyone,
finds its running jobs by their run keys. Session state holds job ids, never weights.

The URL always holds the sidebar's comparison, so the address bar is a link to share; opening a
link shows whatever of it is cached at once and trains nothing until the visitor presses Run
(a link must not start minutes of training on a shared server by itself).
"""
from __future__ import annotations

import functools
import io
import json
import logging

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core import PRESETS, ConfigError, RunConfig
from mnist_core.cache import UnknownRunError
from mnist_core.config import SettingsError, coerce, read_settings
from mnist_core.charts import confusion_chart, final_accuracy_chart, metric_chart, series_order, timing_chart
from mnist_core.compare import (DEFAULT_VALUES, PARAM_TITLES, Comparison, Entry, entries, estimate, final_frame,
                                format_values, from_query_params, make_comparison, metrics_frame, shape_flow_frame,
                                machine_label, settings_text, timing_frame, to_query_params, value_label)
from mnist_core.config import (ACTIVATIONS, CONV_LAYERS, DATASETS, INITS, MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, OPTIMIZERS,
                               PRECISIONS, SWEEPABLE, option_label)
from mnist_core.data import DATASETS as DATASET_INFO
from mnist_core.evaluate import SURE, confusion_table, saturates
from mnist_core.i18n import N_, Translator, keep_words, markdown_literal
from mnist_core.jobs import ACTIVE, Job
from mnist_core.notebook import zip_bytes
from mnist_core.notes import FOR_PARAM, note
from mnist_core.results import EpochMetrics, RunResult
from mnist_core.train import bf16_native, resolve_device
from app_pages.inside import inside_this_run
from app_pages.shared import ago, dataset_or_error, keep, may_train, restore, run_cache, test_set_report, tr
from app_pages.watcher import failed_block, remembered_jobs, submit, watcher

log = logging.getLogger(__name__)

QUICK_LOOK_SIZE = 5_000
QUICK_LOOK_TEST_SIZE = 2_000  # a quick CNN epoch would otherwise spend most of its time scoring 10,000 test images
PRESET_BUTTONS = {"mlp-lr": N_("Learning rate"), "mlp-epochs": N_("Epochs"), "mlp-batch": N_("Batch size"),
                  "mlp-activation": N_("Activations"), "cnn-stride": N_("Stride"), "cnn-filter": N_("Filter size")}
MISTAKES_PER_ROW = 6

# The sidebar's widgets, per config field: (label, options, help). A field without options is typed as text and
# read by the config (RunConfig.from_dict), which alone knows the bounds: whatever is typed reaches the page, and
# a value it cannot use is named in a message (a number field's own range check would keep the old value silently).
FIELDS: dict[str, tuple[str, tuple[str, ...] | None, str]] = {
    "dataset": (N_("Dataset"), DATASETS,
                N_("MNIST: handwritten digits. Fashion-MNIST: ten kinds of clothing in the same 28x28 layout, harder, "
                   "so differences between settings show more.")),
    "hidden": (N_("Hidden width"), None, N_("Units in each of the two hidden layers (the seed: 256).")),
    "init": (N_("Weight init"), INITS, N_("normal = the seed's N(0, 1), which starts the loss in the hundreds.")),
    "kernel_size": (N_("Filter size"), None, N_("Kernel of the first conv layer (or all, see below).")),
    "stride": (N_("Stride"), None, N_("Step of the filter; 5 shrinks the image fast.")),
    "padding": (N_("Padding"), None, N_("Zeros added around the image before the conv.")),
    "conv_layers": (N_("Conv layers changed"), CONV_LAYERS, N_("Which conv layers take the filter/stride/padding above.")),
    "keep_prob": (N_("Dropout keep probability"), None, N_("1.0 turns dropout off.")),
    "optimizer": (N_("Optimizer"), OPTIMIZERS, ""),
    "lr": (N_("Learning rate"), None, N_("Typical: 0.0001 to 0.01.")),
    "momentum": (N_("Momentum"), None, N_("Used by sgd and rmsprop only.")),
    "epochs": (N_("Epochs"), None, N_("Passes over the training images.")),
    "batch_size": (N_("Batch size"), None,
                   N_("Images per step: smaller = more steps. At most the number of training images.")),
    "train_size": (N_("Training images"), None, N_("Fewer images = faster, less accurate.")),
    "test_size": (N_("Test images per epoch"), None,
                  N_("Scored after each epoch: all 10,000, or a fixed balanced sample of them; fewer = faster curves. "
                     "Mistakes and the confusion matrix use all 10,000.")),
    "seed": (N_("Random seed"), None, N_("Same seed, same run.")),
    "precision": (N_("Precision"), PRECISIONS, N_("bf16 autocasts matmuls where the device supports it.")),
}
MODEL_FIELDS = {
    "mlp": ("dataset", "hidden", "init", "optimizer", "lr", "momentum", "epochs", "batch_size", "train_size",
            "test_size", "seed", "precision"),
    "cnn": ("dataset", "kernel_size", "stride", "padding", "conv_layers", "keep_prob", "optimizer", "lr", "momentum",
            "epochs", "batch_size", "train_size", "test_size", "seed", "precision"),
}
PAGE_TITLES = {"mlp": N_("MLP on {dataset}: compare hyperparameters"),
               "cnn": N_("CNN on {dataset}: compare hyperparameters")}
PAGE_INTROS = {
    "mlp": N_("A 784-256-256-10 multilayer perceptron, as in the seed post. Pick one hyperparameter, give the values "
              "to try, and compare their loss and accuracy epoch by epoch."),
    "cnn": N_("The seed's three-block CNN (3x3 convs, 2x2 max-pools, a 625-unit layer with dropout). Change the stride "
              "or filter size of its first conv layer and see what it does to the shapes, the accuracy and the time."),
}


def key(model: str, name: str) -> str:
    """Widget keys: stable and readable, for the browser tests too (e.g. 'mlp.cfg.lr')."""
    return f"{model}.cfg.{name}"


# -- state: defaults, presets, links ---------------------------------------------------------------

def load_into_sidebar(model: str, comparison: Comparison) -> None:
    base = comparison.base
    for field in MODEL_FIELDS[model]:
        typed = FIELDS[field][1] is None
        st.session_state[key(model, field)] = value_label(getattr(base, field)) if typed else getattr(base, field)
    st.session_state[key(model, "act1")], st.session_state[key(model, "act2")] = base.activations
    st.session_state[key(model, "param")] = comparison.param
    st.session_state[key(model, "values")] = format_values(comparison.param, comparison.values)


def widget_keys(model: str) -> list[str]:
    return [key(model, name) for name in (*MODEL_FIELDS[model], "act1", "act2", "param", "values")]


def init_state(model: str) -> None:
    """Fills the sidebar's widgets: as the student left them (see shared.keep), else the first seed
    experiment, quick-look sized."""
    if all(restore(k, None) is not None for k in widget_keys(model)):
        return
    first_preset = next(p for p in PRESETS.values() if p.base.model == model)
    quick_look = RunConfig(model=model, train_size=QUICK_LOOK_SIZE, test_size=QUICK_LOOK_TEST_SIZE, epochs=3)
    load_into_sidebar(model, Comparison(quick_look, first_preset.param, tuple(first_preset.values)))


def load_preset(model: str, name: str) -> None:
    preset = PRESETS[name]
    dataset = st.session_state.get(key(model, "dataset"), "mnist")  # a preset keeps the dataset chosen
    load_into_sidebar(model, Comparison(preset.base.replace(dataset=dataset), preset.param, tuple(preset.values)))


def set_train_size(model: str, size: int, test_size: int) -> None:
    st.session_state[key(model, "train_size")] = value_label(size)
    st.session_state[key(model, "test_size")] = value_label(test_size)
    try:  # a batch larger than the new training set would be refused: it follows the set down
        batch = coerce("batch_size", st.session_state[key(model, "batch_size")])
        st.session_state[key(model, "batch_size")] = value_label(min(batch, size))
    except ConfigError:
        pass  # the batch size's own message says what is wrong with it


def reset_values(model: str) -> None:
    st.session_state[key(model, "values")] = DEFAULT_VALUES[st.session_state[key(model, "param")]]


def apply_link(model: str) -> ConfigError | None:
    """Loads a shared link's comparison into the sidebar, once per link. Returns an error to show."""
    params = {k: v for k, v in st.query_params.to_dict().items() if k != "lang"}
    if "compare" not in params or params == st.session_state.get(f"{model}.link"):
        return None
    st.session_state[f"{model}.link"] = params
    if params.get("model", model).strip().lower() != model:
        return None  # the other comparison page's link, carried over by a page switch: not for this page
    try:
        load_into_sidebar(model, from_query_params(params, model=model))
    except ConfigError as e:
        return e
    return None


def read_sidebar(model: str) -> Comparison:
    """The sidebar's comparison; SettingsError naming every setting that is wrong, or ConfigError."""
    values = {field: st.session_state[key(model, field)] for field in MODEL_FIELDS[model]}
    values["activations"] = (st.session_state[key(model, "act1")], st.session_state[key(model, "act2")])
    base = read_settings({"model": model, **values})
    comparison = make_comparison(base, st.session_state[key(model, "param")], st.session_state[key(model, "values")])
    if "bf16" in (base.precision, *(comparison.values if comparison.param == "precision" else ())):
        native, reason = bf16_native(resolve_device("auto"))
        if not native:  # emulated bf16 is slower than the seed's fp32 loop
            raise ConfigError(N_("bf16 precision is off on this machine: {reason}. Use fp32."), reason=reason)
    return comparison


def current_preset(comparison: Comparison) -> str | None:
    """The seed experiment the sidebar shows, while it still shows exactly that (any dataset)."""
    for name, preset in PRESETS.items():
        ours = Comparison(preset.base.replace(dataset=comparison.base.dataset), preset.param, tuple(preset.values))
        if ours == comparison:
            return name
    return None


# -- sidebar ---------------------------------------------------------------------------------------

def sidebar(model: str, _: Translator) -> None:
    with st.sidebar:
        st.subheader(_("Seed experiments"))
        presets = [p for p in PRESETS.values() if p.base.model == model]
        columns = st.columns(2)
        for i, preset in enumerate(presets):
            columns[i % 2].button(_(PRESET_BUTTONS.get(preset.name, preset.title)), key=f"{model}.preset.{preset.name}",
                                  on_click=load_preset, args=(model, preset.name), width="stretch",
                                  help=_(preset.description))

        st.subheader(_("Compare by"))
        st.selectbox(_("Hyperparameter"), SWEEPABLE[model], key=key(model, "param"),
                     format_func=lambda p: _(PARAM_TITLES.get(p, p)), on_change=reset_values, args=(model,))
        param = st.session_state[key(model, "param")]
        example = "relu,relu; sigmoid,relu" if param == "activations" else DEFAULT_VALUES[param]
        st.text_input(_("Values to try"), key=key(model, "values"),
                      help=_("Separate values with commas (e.g. {example}). Activation pairs: separate pairs with ';'.",
                             example=example))

        st.subheader(_("Base settings"))
        st.caption(_("Every run uses these; the compared {setting} overrides its own.",
                     setting=_(PARAM_TITLES.get(param, param))))
        quick, full = st.columns(2)
        quick.button(_("Quick: {n}k", n=QUICK_LOOK_SIZE // 1000), key=f"{model}.quick", on_click=set_train_size,
                     args=(model, QUICK_LOOK_SIZE, QUICK_LOOK_TEST_SIZE), width="stretch",
                     help=_("Quick look: train on {train} images and score {test} test images per epoch, for results "
                            "in seconds, a few points less accurate.", train=_.number(QUICK_LOOK_SIZE),
                            test=_.number(QUICK_LOOK_TEST_SIZE)))
        full.button(_("Full: {n}k", n=MNIST_TRAIN_SIZE // 1000), key=f"{model}.full", on_click=set_train_size,
                    args=(model, MNIST_TRAIN_SIZE, MNIST_TEST_SIZE), width="stretch")
        if model == "mlp":
            first, second = st.columns(2)
            first.selectbox(_("Activation 1"), ACTIVATIONS, key=key(model, "act1"), help=_("After hidden layer 1."),
                            format_func=lambda v: _(option_label(v)))
            second.selectbox(_("Activation 2"), ACTIVATIONS, key=key(model, "act2"), help=_("After hidden layer 2."),
                             format_func=lambda v: _(option_label(v)))
        bf16, bf16_reason = bf16_native(resolve_device("auto"))
        for field in MODEL_FIELDS[model]:
            label, options, help_text = FIELDS[field]
            if options:
                off = field == "precision" and not bf16  # the option says why it is off
                st.selectbox(_(label), options, key=key(model, field), disabled=off,
                             format_func=(lambda d: DATASET_INFO[d].title) if field == "dataset" else
                             (lambda v: _(option_label(v))),
                             help=_("bf16 is off: {reason}.", reason=bf16_reason) if off else
                             (_(help_text) if help_text else None))
            else:
                st.text_input(_(label), key=key(model, field), help=_(help_text) if help_text else None)


# -- the page --------------------------------------------------------------------------------------

def comparison_page(model: str) -> None:
    _ = tr()
    init_state(model)
    link_error = apply_link(model)
    sidebar(model, _)
    for k in widget_keys(model):
        keep(k, st.session_state[k])

    dataset = st.session_state[key(model, "dataset")]
    st.title(_(PAGE_TITLES[model], dataset=DATASET_INFO[dataset].title))
    st.caption(_(PAGE_INTROS[model]))
    if link_error:
        st.error(_("This link does not describe a comparison this page can show: {error}", error=_.error(link_error)))

    data = dataset_or_error(dataset)
    if data is None:
        return
    try:
        comparison = read_sidebar(model)
    except SettingsError as e:
        for error in e.errors:
            st.error(_("**Check the settings in the sidebar.** {error}", error=_.error(error)))
        return
    except ConfigError as e:
        st.error(_("**Check the settings in the sidebar.** {error}", error=_.error(e)))
        return
    params = to_query_params(comparison)
    st.session_state[f"{model}.link"] = dict(params)
    if _.lang != "en":
        params["lang"] = _.lang
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)

    items = entries(comparison)
    param_title = _(PARAM_TITLES.get(comparison.param, comparison.param))
    for entry in items:
        if entry.error:
            st.error(_("**{setting} = {value}** cannot run: {error}", setting=param_title,
                       value=markdown_literal(entry.label),  # as typed or linked: never Markdown
                       error=_.error(entry.cause) if entry.cause else markdown_literal(entry.error)))
    valid = [e for e in items if e.config is not None]
    cache = run_cache()
    results = lookup(items, data, cache)
    preset = current_preset(comparison)
    if preset is not None:
        preset_banner(preset, items, results, _)

    scope = json.dumps(to_query_params(comparison), sort_keys=True)  # one comparison, whatever page shows it
    keys = [cache.key_for(e.config, data) for e in valid]
    jobs = remembered_jobs(scope, keys)
    plan_section(model, comparison, items, valid, data, cache, jobs, scope, _)
    if scope in st.session_state.get("lab.asked", ()) and not st.session_state.get("lab.jobs", {}).get(scope):
        # Run found it all cached (a classmate's training of it may have ended just then)
        st.info(_("Everything was already in the cache: nothing to train."))
    ended_messages(jobs, _)
    if any(job.state in ACTIVE for job in jobs):
        names = {k: e.label for e, k in zip(valid, keys)}
        watcher(scope, keys, functools.partial(job_what, names, param_title, _.lang),
                overall=N_("Overall: {done} · {n} training(s) for this comparison"), cancel=True,
                chart=functools.partial(live_chart, names=names, model=model, param_title=param_title))
    results_section(model, comparison, items, results, jobs, data, _)


def lookup(items: list[Entry], data, cache) -> list[RunResult | None]:
    """Each value's run, from the cache (recording the use: these runs are being shown)."""
    return [cache.get(cache.key_for(e.config, data), touch=True) if e.config is not None else None for e in items]


def preset_banner(name: str, items: list[Entry], results: list[RunResult | None], _: Translator) -> None:
    """The seed experiment the sidebar equals: the seed's words as the seed's, and ours beside them."""
    preset = PRESETS[name]
    text = _("**{title}.** From the seed post: {description}", title=_(preset.title), description=_(preset.description))
    ours = [_("{value}: {accuracy}", value=e.label, accuracy=_.percent(r.final.test_acc))
            for e, r in zip(items, results) if r is not None and r.final is not None]
    if ours:
        text += "\n\n" + _("Ours, with these settings (final test accuracy): {runs}.", runs=" · ".join(ours))
    st.info(text)


def plan_section(model: str, comparison: Comparison, items: list[Entry], valid: list[Entry], data, cache,
                 jobs: list[Job], scope: str, _: Translator) -> None:
    plan = estimate(items, data, cache)
    run_column, runs, cached, time_left = st.columns([2, 1, 1, 1])
    runs.metric(_("Runs"), plan.runs)
    cached.metric(_("Already cached"), _("{n} of {total}", n=plan.cached, total=plan.runs))
    if not valid:
        time_left.metric(_("Estimated time"), "–")
    elif plan.trainings == 0:
        time_left.metric(_("Estimated time"), _("instant"))
    elif plan.seconds is None:
        time_left.metric(_("Estimated time"), _("unknown"))
    else:
        time_left.metric(_("Estimated time"), _("≈ {duration}", duration=_.duration(plan.seconds)))
    training = any(job.state in ACTIVE for job in jobs)
    allowed = may_train()
    clicked = run_column.button(
        _("Training…") if training else _("Run comparison"), type="primary", key=f"{model}.run",
        disabled=not valid or training or not allowed, width="stretch",
        help=None if allowed else _("Enter the class code in the sidebar to train."))
    if not valid:
        basis = _("Nothing to run: none of the values to try can be trained (see above).")
    elif plan.trainings == 0:
        basis = _("Everything is cached.")
    elif plan.seconds is None:
        basis = _("No finished {model} run on this {device} to measure its speed from yet; the first run measures it.",
                  model=model.upper(), device=data.device.type)
    else:
        basis = _("Estimated from the measured speed of a finished {model} run on this {device}.",
                  model=model.upper(), device=data.device.type)
    if plan.trainings and plan.trainings < plan.runs - plan.cached:
        basis += " " + _("An epochs comparison trains only its longest run; the shorter ones are its first epochs.")
    if valid:
        basis += " " + _("Training goes on while you change settings or visit other pages.")
    st.caption(basis)
    for topic in FOR_PARAM.get(comparison.param, ()):
        if topic != "conv_size" or model != "cnn":  # the CNN's is beside the shape-flow table, just below
            concept_note(topic, _, None)
    if model == "cnn" and valid:
        with st.expander(_("Shape flow: the image's shape after each layer")):
            st.dataframe(shape_flow_frame(items).rename(columns={"layer": _("layer")}), hide_index=True,
                         width="stretch")
            title, body = note("conv_size", _.lang)
            st.markdown(f"**{title}.** {body}")
    if clicked:
        if refused := submit(scope, [e.config for e in valid]):
            st.error(refused)
            return
        st.session_state.setdefault("lab.asked", set()).add(scope)
        st.rerun()  # from the top: the watcher shows the new jobs, the Run button says it is training


def concept_note(topic: str, _: Translator, finals) -> None:
    title, body = note(topic, _.lang, finals)
    with st.expander(_("Concept: {title}", title=title)):
        st.markdown(body)


def ended_messages(jobs: list[Job], _: Translator) -> None:
    """What became of this session's trainings of this comparison (until the next Run)."""
    failed_block(jobs, N_("A training of this comparison failed: {error}"))
    if any(j.state == "cancelled" for j in jobs):
        st.warning(_("Cancelled. Runs that had finished are kept in the cache; nothing of a cancelled training is "
                     "kept."))
    done = [j for j in jobs if j.state == "done"]
    if done and not any(j.state in ACTIVE for j in jobs) and not any(j.state == "failed" for j in jobs):
        started = min(j.started or j.submitted for j in done)
        finished = max(j.finished or started for j in done)
        runs = sum(len(j.keys) for j in done)
        st.success(_("Done: {runs} run(s) trained in {duration}.", runs=runs, duration=_.duration(finished - started)))


def job_what(names: dict[str, str], param_title: str, lang: str, job: Job) -> str:
    """A job's line in the watcher: the compared values it trains, else its settings."""
    _, values = Translator(lang), ", ".join(names[k] for k in job.keys if k in names)
    if values:
        return _("{setting} = {values}", setting=param_title, values=values)
    return settings_text(job.config, lang)


def live_chart(jobs: list[Job], names: dict[str, str], model: str, param_title: str) -> None:
    """The loss chart of the running jobs, growing epoch by epoch, below their lines in the watcher."""
    frame = live_frame(jobs, names)
    if len(frame):
        log_scale = restore(f"{model}.view.log", model == "mlp")
        st.vega_lite_chart(json.loads(live_spec(frame.to_csv(index=False), log_scale, param_title, tr().lang)),
                           width="stretch")


@functools.lru_cache(maxsize=256)
def live_spec(csv: str, log_scale: bool, legend_title: str, lang: str) -> str:
    """The live loss chart's Vega-Lite spec, built once per new epoch rather than at every watcher rerun:
    building and validating an Altair chart costs a few hundred ms on a busy server, five watching sessions
    then take the training thread's time (measured with bench/server_memory.py's five sessions)."""
    frame = pd.read_csv(io.StringIO(csv), dtype={"value": str, "series": str})
    return json.dumps(metric_chart(frame, "train_loss", log_scale=log_scale, legend_title=legend_title,
                                   text=Translator(lang)).to_dict())


def live_frame(jobs: list[Job], names: dict[str, str]):
    """The finished epochs of the running jobs, as a comparison's metrics table (a job's shorter-epoch runs
    are its first epochs)."""
    items, partial = [], []
    for job in jobs:
        for config, run_key in zip(job.configs, job.keys):
            if run_key not in names:
                continue
            epochs = [EpochMetrics(**{f: m[f] for f in EpochMetrics.__dataclass_fields__})
                      for m in job.epochs[:config.epochs]]
            items.append(Entry(names[run_key], None, config))
            partial.append(RunResult(config=config, status="ok", epochs=epochs, total_seconds=0, steps_per_epoch=0,
                                     device=job.device))
    return metrics_frame(items, partial)


def measured(config: RunConfig, _: Translator) -> str:
    """What a run's test accuracy was measured on (config.measured_on), in the student's language."""
    if config.test_size >= MNIST_TEST_SIZE:
        return _("all {n} test images", n=_.number(MNIST_TEST_SIZE))
    return _("a fixed balanced sample of {n} test images", n=_.number(config.test_size))


def results_section(model: str, comparison: Comparison, items: list[Entry], results: list[RunResult | None],
                    jobs: list[Job], data, _: Translator) -> None:
    param_title = _(PARAM_TITLES.get(comparison.param, comparison.param))
    missing = [e.label for e, r in zip(items, results) if e.config is not None and r is None]
    if all(r is None for r in results):
        if missing and not any(job.state in ACTIVE for job in jobs):
            st.info(_("No results for these settings yet: they are not in the cache. Press **Run comparison** to "
                      "train them."))
        return
    st.header(_("Results"))
    if missing:
        st.warning(_("Not in the cache yet: {setting} = {values}. The charts show what is cached.",
                     setting=param_title, values=", ".join(missing)))

    metrics = metrics_frame(items, results)
    finals = final_frame(items, results)
    timing = timing_frame(items, results)
    series = series_order(finals)  # every value, so each keeps its colour across the charts
    for row in finals.itertuples():
        if row.status == "diverged":
            run = results[row.order]
            if run.diverged_epoch > 1:
                drawn = _("**{setting} = {value}** diverged at epoch {epoch}: its loss became infinite or NaN, so it is "
                          "drawn up to epoch {last} only. A smaller learning rate (or another init) usually fixes that.",
                          setting=param_title, value=row.value, epoch=run.diverged_epoch, last=run.diverged_epoch - 1)
            else:
                drawn = _("**{setting} = {value}** diverged in its first epoch: its loss became infinite or NaN before "
                          "the epoch ended, so it has no curve. A smaller learning rate (or another init) usually "
                          "fixes that.", setting=param_title, value=row.value)
            st.warning(drawn)

    restore(f"{model}.view.log", model == "mlp")
    log_scale = keep(f"{model}.view.log", st.toggle(
        _("Log scale for the loss charts"), key=f"{model}.view.log",
        help=_("The seed's N(0, 1) init starts the loss in the hundreds; a log scale shows both that and the small "
               "losses later.")))
    if len(metrics):
        left, right = st.columns(2)
        left.altair_chart(metric_chart(metrics, "train_loss", log_scale=log_scale, legend_title=param_title,
                                       series=series, text=_), width="stretch")
        right.altair_chart(metric_chart(metrics, "test_loss", log_scale=log_scale, legend_title=param_title,
                                        series=series, text=_), width="stretch")
    left, right = st.columns(2)
    if len(metrics):
        left.altair_chart(metric_chart(metrics, "test_acc", legend_title=param_title, series=series, text=_),
                          width="stretch")
    right.altair_chart(final_accuracy_chart(finals, legend_title=param_title, text=_), width="stretch")
    st.caption(_("Test accuracy is measured on {what} of {dataset} after each epoch.",
                 what=measured(comparison.base, _), dataset=DATASET_INFO[comparison.base.dataset].title))
    left, right = st.columns(2)
    with left:
        concept_note("softmax", _, finals)
    with right:
        concept_note("init", _, finals)

    st.subheader(_("Time"))
    by_key = {r.key: r for r in results if r is not None}
    timing = timing.assign(machine=[machine_label(by_key[k].machine, by_key[k].device, _) if k in by_key else ""
                                    for k in timing["key"]],
                           trained=[ago(t) for t in timing["created"]])  # true after a reload, and for anyone
    st.dataframe(timing.drop(columns=["status", "key", "device", "trained_on", "created"]), hide_index=True,
                 width="stretch", column_config={
        "value": param_title, "total_s": st.column_config.NumberColumn(_("total (s)"), format="%.1f"),
        "s_per_epoch": st.column_config.NumberColumn(_("s / epoch"), format="%.2f"),
        "steps_per_epoch": _("steps / epoch"),
        "samples_per_s": st.column_config.NumberColumn(_("images / s"), format="%d"),
        "batch_size": _("batch"), "machine": st.column_config.TextColumn(_("trained on"), width="large"),
        "trained": _("trained")})
    left, right = st.columns([3, 2])
    left.caption(_("Times are from when each run was trained, on the machine named (cached runs keep theirs). Each "
                   "epoch also scores {n} test images. Smaller batches take more steps per epoch, and each step has a "
                   "fixed cost.", n=_.number(min(comparison.base.test_size, MNIST_TEST_SIZE))))
    right.altair_chart(timing_chart(timing, legend_title=param_title, text=_), width="stretch")

    st.download_button(_("Download every metric (CSV)"), metrics.to_csv(index=False).encode(), key=f"{model}.csv",
                       file_name=f"{model}-{comparison.param}-comparison.csv", mime="text/csv")
    inspect_section(model, items, results, param_title, _)


def inspect_section(model: str, items: list[Entry], results: list[RunResult | None], param_title: str,
                    _: Translator) -> None:
    """Where one run goes wrong: its most confident mistakes and the confusion matrix."""
    inspectable = {e.label: r.key for e, r in zip(items, results)
                   if r is not None and r.key and r.status == "ok" and e.config == r.config}
    if not inspectable:
        return
    st.subheader(_("Inspect one run"))
    labels = list(inspectable)
    if restore(f"{model}.view.inspect", labels[0]) not in labels:  # a run of other settings
        st.session_state[f"{model}.view.inspect"] = labels[0]
    choice = keep(f"{model}.view.inspect",
                  st.selectbox(_("Run ({setting})", setting=param_title), labels, key=f"{model}.view.inspect"))
    if choice not in inspectable:
        return
    run = next(r for r in results if r is not None and r.key == inspectable[choice])
    data = dataset_or_error(run.config.dataset)
    if data is None:
        return
    with st.spinner(_("Running the model on the {n} test images…", n=_.number(len(data.test_x)))):
        report = test_set_report(inspectable[choice])
    classes = [_(c) for c in data.classes]
    gallery, matrix = st.columns([3, 2])
    with gallery:
        wrong = int(report.confusion.sum() - np.trace(report.confusion))
        st.markdown(_("**Most confident mistakes** · {wrong} of {total} test images wrong ({right} right)",
                      wrong=_.number(wrong), total=_.number(int(report.confusion.sum())),
                      right=_.percent(report.accuracy)))
        for n, mistake in enumerate(report.mistakes):
            if n % MISTAKES_PER_ROW == 0:  # a row of its own: a caption that wraps further cannot push the next row
                columns = st.columns(MISTAKES_PER_ROW)
            big = np.kron(mistake.image, np.ones((3, 3)))  # sharp pixels instead of the browser's blur
            columns[n % MISTAKES_PER_ROW].image(big, clamp=True, width="stretch",
                                 caption=keep_words(_("true {true} → {predicted} ({confidence})",
                                                      true=classes[mistake.true_label],
                                                      predicted=classes[mistake.predicted],
                                                      confidence=_.percent(mistake.confidence, 0))))
        certain = sum(m.confidence >= SURE for m in report.mistakes)
        if saturates(run.config) and certain * 2 > len(report.mistakes):
            st.caption(_("{n} of these {total} mistakes read (almost) 100%: the seed's normal(0, 1) init makes this "
                         "MLP's outputs so large that softmax saturates, so it is as sure of a wrong answer as of a "
                         "right one (see the concept notes on softmax and weight init).", n=certain,
                         total=len(report.mistakes)))
    with matrix:
        st.altair_chart(confusion_chart(confusion_table(report.confusion), classes, text=_), width="stretch")
    notebook_button(inspectable[choice], _)
    inside_this_run(model, inspectable, choice, param_title, data)


def notebook_button(key: str, _: Translator) -> None:
    """The run as a notebook to take home, with its weights: built only when clicked (a CNN's zip is ~5 MB)."""
    cache = run_cache()

    def build() -> bytes:  # runs outside the page's script, when the student clicks: no st calls here
        run = cache.get(key, weights=True, touch=True)
        if run is None:  # evicted since the page was drawn
            raise UnknownRunError(f"No cached run {key}.")
        return zip_bytes(run)

    st.download_button(_("Download as notebook"), build, file_name=f"{key}.zip", mime="application/zip",
                       key=f"notebook.{key}", on_click="ignore",
                       help=_("A plain PyTorch notebook that trains this run again, step by step, to the same "
                              "numbers, and the run's trained weights beside it (a zip)."))
