"""The comparison screen the MLP and CNN pages share.

Sidebar: the base config and "compare by". Main area, top to bottom: the plan (runs, cached,
estimated time), the Run button (training shows live progress and a Cancel button), then the
results of the comparison the sidebar describes, served from the run cache.

The URL always holds the sidebar's comparison, so the address bar is a link to share; opening a
link shows whatever of it is cached at once and trains nothing until the visitor presses Run
(a link must not start minutes of training on a shared server by itself).
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import streamlit as st

from mnist_core import PRESETS, ConfigError, RunConfig, run_sweep
from mnist_core.charts import final_accuracy_chart, metric_chart, series_order, timing_chart
from mnist_core.compare import (DEFAULT_VALUES, PARAM_TITLES, Comparison, Entry, entries, estimate, final_frame,
                                format_values, from_query_params, make_comparison, metrics_frame, shape_flow_frame,
                                timing_frame, to_query_params)
from mnist_core.config import (ACTIVATIONS, CONV_LAYERS, INITS, MAX_EPOCHS, MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, OPTIMIZERS,
                               PRECISIONS, SWEEPABLE)
from mnist_core.evaluate import confusion_table
from mnist_core.charts import confusion_chart
from mnist_core.train import EpochMetrics, RunResult, bf16_native, resolve_device
from app_pages.shared import (OverTheCap, dataset_or_error, keep, percent, restore, run_cache, test_set_report,
                              training_turn)

log = logging.getLogger(__name__)

QUICK_LOOK_SIZE = 5_000
QUICK_LOOK_TEST_SIZE = 2_000  # a quick CNN epoch would otherwise spend most of its time scoring 10,000 test images
PRESET_BUTTONS = {"mlp-lr": "Learning rate", "mlp-epochs": "Epochs", "mlp-batch": "Batch size",
                  "mlp-activation": "Activations", "cnn-stride": "Stride", "cnn-filter": "Filter size"}
PROGRESS_INTERVAL = 0.1   # seconds between progress-bar updates: fast enough to look live, light on the socket
HEARTBEAT_INTERVAL = 0.25

# The sidebar's widgets, per config field: (label, kind, options or (min, max, step, format), help).
FIELDS: dict[str, tuple[str, str, Any, str]] = {
    "hidden": ("Hidden width", "int", (1, 4096, 32, None), "Units in each of the two hidden layers (the seed: 256)."),
    "init": ("Weight init", "select", INITS, "normal = the seed's N(0, 1), which starts the loss in the hundreds."),
    "kernel_size": ("Filter size", "int", (1, 28, 1, None), "Kernel of the first conv layer (or all, see below)."),
    "stride": ("Stride", "int", (1, 28, 1, None), "Step of the filter; 5 shrinks the image fast."),
    "padding": ("Padding", "int", (0, 14, 1, None), "Zeros added around the image before the conv."),
    "conv_layers": ("Conv layers changed", "select", CONV_LAYERS, "Which conv layers take the filter/stride/padding above."),
    "keep_prob": ("Dropout keep probability", "float", (0.05, 1.0, 0.05, "%.2f"), "1.0 turns dropout off."),
    "optimizer": ("Optimizer", "select", OPTIMIZERS, ""),
    "lr": ("Learning rate", "float", (0.0, 10.0, 0.0001, "%g"), "Typical: 0.0001 to 0.01."),
    "momentum": ("Momentum", "float", (0.0, 0.99, 0.1, "%.2f"), "Used by sgd and rmsprop only."),
    "epochs": ("Epochs", "int", (1, MAX_EPOCHS, 1, None), "Passes over the training images."),
    "batch_size": ("Batch size", "int", (1, MNIST_TRAIN_SIZE, 10, None), "Images per step: smaller = more steps."),
    "train_size": ("Training images", "int", (1, MNIST_TRAIN_SIZE, 1000, None), "Fewer images = faster, less accurate."),
    "test_size": ("Test images per epoch", "int", (100, MNIST_TEST_SIZE, 1000, None),
                  "Scored after each epoch; fewer = faster curves (a fixed sample, balanced across the digits). "
                  "Mistakes and the confusion matrix use all 10,000."),
    "seed": ("Random seed", "int", (0, 2**31 - 1, 1, None), "Same seed, same run."),
    "precision": ("Precision", "select", PRECISIONS, "bf16 autocasts matmuls where the device supports it."),
}
MODEL_FIELDS = {
    "mlp": ("hidden", "init", "optimizer", "lr", "momentum", "epochs", "batch_size", "train_size", "test_size", "seed",
            "precision"),
    "cnn": ("kernel_size", "stride", "padding", "conv_layers", "keep_prob", "optimizer", "lr", "momentum", "epochs",
            "batch_size", "train_size", "test_size", "seed", "precision"),
}
PAGE_TEXT = {
    "mlp": ("MLP: compare hyperparameters",
            "A 784-256-256-10 multilayer perceptron, as in the seed post. Pick one hyperparameter, give the values to "
            "try, and compare their loss and accuracy epoch by epoch."),
    "cnn": ("CNN: compare hyperparameters",
            "The seed's three-block CNN (3x3 convs, 2x2 max-pools, a 625-unit layer with dropout). Change the stride "
            "or filter size of its first conv layer and see what it does to the shapes, the accuracy and the time."),
}


def key(model: str, name: str) -> str:
    """Widget keys: stable and readable, for the browser tests too (e.g. 'mlp.cfg.lr')."""
    return f"{model}.cfg.{name}"


# -- state: defaults, presets, links ---------------------------------------------------------------

def load_into_sidebar(model: str, comparison: Comparison) -> None:
    base = comparison.base
    for field in MODEL_FIELDS[model]:
        st.session_state[key(model, field)] = getattr(base, field)
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
    load_into_sidebar(model, Comparison(quick_look,
                                        first_preset.param, tuple(first_preset.values)))


def load_preset(model: str, name: str) -> None:
    preset = PRESETS[name]
    load_into_sidebar(model, Comparison(preset.base, preset.param, tuple(preset.values)))
    st.session_state[f"{model}.preset"] = name


def set_train_size(model: str, size: int, test_size: int) -> None:
    st.session_state[key(model, "train_size")] = size
    st.session_state[key(model, "test_size")] = test_size
    st.session_state[key(model, "batch_size")] = min(st.session_state[key(model, "batch_size")], size)


def reset_values(model: str) -> None:
    st.session_state[key(model, "values")] = DEFAULT_VALUES[st.session_state[key(model, "param")]]


def apply_link(model: str) -> str | None:
    """Loads a shared link's comparison into the sidebar, once per link. Returns an error to show."""
    params = st.query_params.to_dict()
    if not params or params == st.session_state.get(f"{model}.link"):
        return None
    st.session_state[f"{model}.link"] = params
    if params.get("model", model).strip().lower() != model and "compare" in params:
        return None  # the other comparison page's link, carried over by a page switch: not for this page
    try:
        load_into_sidebar(model, from_query_params(params, model=model))
    except ConfigError as e:
        return f"This link does not describe a comparison this page can show: {e}"
    st.session_state.pop(f"{model}.preset", None)
    return None


def read_sidebar(model: str) -> Comparison:
    """The sidebar's comparison; ConfigError if a setting is wrong."""
    values = {field: st.session_state[key(model, field)] for field in MODEL_FIELDS[model]}
    values["activations"] = (st.session_state[key(model, "act1")], st.session_state[key(model, "act2")])
    base = RunConfig.from_dict({"model": model, **values})
    comparison = make_comparison(base, st.session_state[key(model, "param")], st.session_state[key(model, "values")])
    if "bf16" in (base.precision, *(comparison.values if comparison.param == "precision" else ())):
        native, reason = bf16_native(resolve_device("auto"))
        if not native:  # emulated bf16 is slower than the seed's fp32 loop
            raise ConfigError(f"bf16 precision is off on this machine: {reason}. Use fp32.")
    return comparison


# -- sidebar ---------------------------------------------------------------------------------------

def sidebar(model: str) -> None:
    with st.sidebar:
        st.subheader("Seed experiments")
        presets = [p for p in PRESETS.values() if p.base.model == model]
        columns = st.columns(2)
        for i, preset in enumerate(presets):
            columns[i % 2].button(PRESET_BUTTONS.get(preset.name, preset.title), key=f"{model}.preset.{preset.name}",
                                  on_click=load_preset, args=(model, preset.name), width="stretch",
                                  help=preset.description)

        st.subheader("Compare by")
        st.selectbox("Hyperparameter", SWEEPABLE[model], key=key(model, "param"),
                     format_func=lambda p: PARAM_TITLES.get(p, p), on_change=reset_values, args=(model,))
        param = st.session_state[key(model, "param")]
        example = "e.g. relu,relu; sigmoid,relu" if param == "activations" else f"e.g. {DEFAULT_VALUES[param]}"
        st.text_input("Values to try", key=key(model, "values"),
                      help=f"Separate values with commas ({example}). Activation pairs: separate pairs with ';'.")

        st.subheader("Base settings")
        st.caption(f"Every run uses these; the compared {PARAM_TITLES.get(param, param)} overrides its own.")
        quick, full = st.columns(2)
        quick.button(f"Quick: {QUICK_LOOK_SIZE // 1000}k", key=f"{model}.quick", on_click=set_train_size,
                     args=(model, QUICK_LOOK_SIZE, QUICK_LOOK_TEST_SIZE), width="stretch",
                     help=f"Quick look: train on {QUICK_LOOK_SIZE:,} images and score {QUICK_LOOK_TEST_SIZE:,} test "
                          "images per epoch, for results in seconds, a few points less accurate.")
        full.button(f"Full: {MNIST_TRAIN_SIZE // 1000}k", key=f"{model}.full", on_click=set_train_size,
                    args=(model, MNIST_TRAIN_SIZE, MNIST_TEST_SIZE), width="stretch")
        if model == "mlp":
            first, second = st.columns(2)
            first.selectbox("Activation 1", ACTIVATIONS, key=key(model, "act1"), help="After hidden layer 1.")
            second.selectbox("Activation 2", ACTIVATIONS, key=key(model, "act2"), help="After hidden layer 2.")
        bf16, bf16_reason = bf16_native(resolve_device("auto"))
        for field in MODEL_FIELDS[model]:
            label, kind, spec, help_text = FIELDS[field]
            if kind == "select":
                off = field == "precision" and not bf16  # the option says why it is off
                st.selectbox(label, spec, key=key(model, field), disabled=off,
                             help=f"bf16 is off: {bf16_reason}." if off else help_text or None)
            else:
                low, high, step, fmt = spec
                cast = int if kind == "int" else float
                st.number_input(label, min_value=cast(low), max_value=cast(high), step=cast(step), format=fmt,
                                key=key(model, field), help=help_text or None)


# -- the page --------------------------------------------------------------------------------------

def comparison_page(model: str) -> None:
    init_state(model)
    link_error = apply_link(model)
    sidebar(model)
    for k in widget_keys(model):
        keep(k, st.session_state[k])

    title, intro = PAGE_TEXT[model]
    st.title(title)
    st.caption(intro)
    if link_error:
        st.error(link_error)
    if notice := st.session_state.pop(f"{model}.notice", None):
        st.warning(notice)
    if done := st.session_state.pop(f"{model}.done", None):
        st.success(done)
    if (preset := st.session_state.get(f"{model}.preset")) is not None:
        st.info(f"**{PRESETS[preset].title}.** {PRESETS[preset].description}")

    data = dataset_or_error()
    if data is None:
        return
    try:
        comparison = read_sidebar(model)
    except ConfigError as e:
        st.error(f"**Check the settings in the sidebar.** {e}")
        return
    params = to_query_params(comparison)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    st.session_state[f"{model}.link"] = params

    items = entries(comparison)
    param_title = PARAM_TITLES.get(comparison.param, comparison.param)
    for entry in items:
        if entry.error:
            st.error(f"**{param_title} = {entry.label}** cannot run: {entry.error}")
    valid = [e for e in items if e.config is not None]
    cache = run_cache()

    plan_section(model, items, data, cache)
    if model == "cnn" and valid:
        with st.expander("Shape flow: the image's shape after each layer", expanded=True):
            st.dataframe(shape_flow_frame(items), hide_index=True, width="stretch")

    run_column, cancel_column, _ = st.columns([2, 1, 5])
    clicked = run_column.button("Run comparison", type="primary", key=f"{model}.run", disabled=not valid,
                                width="stretch")
    if clicked:
        train_section(model, comparison, valid, data, cache, cancel_column.empty())

    results_section(model, comparison, items, data, cache)


def plan_section(model: str, items: list[Entry], data, cache) -> None:
    plan = estimate(items, data, cache)
    runs, cached, time_left = st.columns(3)
    runs.metric("Runs", plan.runs)
    cached.metric("Already cached", f"{plan.cached} of {plan.runs}")
    if plan.trainings == 0:
        time_left.metric("Estimated time", "instant")
    elif plan.seconds is None:
        time_left.metric("Estimated time", "unknown")
    else:
        time_left.metric("Estimated time", f"≈ {format_seconds(plan.seconds)}")
    st.caption(f"Estimate: {plan.basis}." + (" An epochs comparison trains only its longest run; the shorter ones "
                                             "are its first epochs." if plan.trainings < plan.runs - plan.cached else ""))


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def mark_cancelled(model: str) -> None:
    st.session_state[f"{model}.notice"] = ("Cancelled. Runs that had finished are kept in the cache; the run in "
                                           "progress was discarded.")


def train_section(model: str, comparison: Comparison, valid: list[Entry], data, cache, cancel_slot) -> None:
    """Trains what is not cached, with a bar per run, one overall, and the loss chart growing per epoch.

    It runs in the script thread: a Cancel click or a closed tab makes Streamlit raise its stop
    exception inside a progress callback, which unwinds the training; the cache stores only finished runs.
    """
    configs = [e.config for e in valid]
    param_title = PARAM_TITLES.get(comparison.param, comparison.param)
    cancel_slot.button("Cancel", key=f"{model}.cancel", on_click=mark_cancelled, args=(model,),
                       width="stretch")
    area = st.empty()
    with area.container(border=True):
        overall = st.progress(0.0, text="Starting…")
        bars = [st.progress(0.0, text=f"{param_title} = {e.label}: waiting") for e in valid]
        live_chart = st.empty()
        heartbeat = st.empty()

    fractions = [0.0] * len(valid)
    finished: dict[int, RunResult] = {}
    epochs_so_far: dict[int, list[EpochMetrics]] = {i: [] for i in range(len(valid))}
    last_update = [0.0, time.monotonic()]  # progress bars, heartbeat
    started = time.monotonic()

    def draw_live() -> None:
        partial = [finished.get(i) or RunResult(config=c, status="ok", epochs=epochs_so_far[i], total_seconds=0,
                                                steps_per_epoch=0, device=data.device.type)
                   for i, c in enumerate(configs)]
        frame = metrics_frame(valid, partial)
        if len(frame):
            log_scale = restore(f"{model}.view.log", model == "mlp")
            live_chart.altair_chart(metric_chart(frame, "train_loss", log_scale=log_scale, legend_title=param_title),
                                    width="stretch")

    def update_overall() -> None:
        done = sum(fractions) / len(fractions)
        overall.progress(min(done, 1.0), text=f"Overall: {done:.0%} · {time.monotonic() - started:.0f} s")

    def on_result(i: int, result: RunResult) -> None:
        finished[i], fractions[i] = result, 1.0
        final = result.final
        state = ("cached" if result.cached else "done") if result.status == "ok" else \
            f"diverged at epoch {result.diverged_epoch}"
        bars[i].progress(1.0, text=f"{param_title} = {valid[i].label}: {state} · test accuracy "
                                   f"{percent(final.test_acc if final else None)}")
        update_overall()
        draw_live()

    def progress(i: int, epoch: int, fraction: float, metrics: dict[str, Any]) -> None:
        fractions[i] = (epoch - 1 + fraction) / configs[i].epochs
        now = time.monotonic()
        if fraction < 1.0 and now - last_update[0] < PROGRESS_INTERVAL:
            return
        last_update[0] = now
        bars[i].progress(min(fractions[i], 1.0), text=f"{param_title} = {valid[i].label}: epoch {epoch}/"
                                                      f"{configs[i].epochs} · train loss {metrics['train_loss']:.4g}")
        update_overall()
        if fraction == 1.0:
            epochs_so_far[i].append(EpochMetrics(**metrics))
            draw_live()

    def should_stop() -> bool:
        # Streamlit stops a script only when it touches st; while the engine waits for another session's
        # training of the same run, this gives it that chance a few times a second.
        now = time.monotonic()
        if now - last_update[1] > HEARTBEAT_INTERVAL:
            last_update[1] = now
            heartbeat.empty()
        return False

    try:
        with training_turn(configs, data, cache, lambda text: overall.progress(0.0, text=text)):
            results = run_sweep(configs, data, cache, progress=progress, should_stop=should_stop,
                                on_result=on_result)
    except OverTheCap as e:
        area.empty()
        cancel_slot.empty()
        st.error(str(e))
        return
    except Exception as e:  # a failure the student cannot fix by typing: say so plainly, keep the app alive
        log.exception("training failed")
        area.empty()
        cancel_slot.empty()
        st.error(f"Training stopped with an error: {e}")
        return
    area.empty()
    cancel_slot.empty()
    st.session_state[f"{model}.fresh"] = {id_of(r.config): r for r in results if r is not None}
    trained = sum(1 for r in results if r is not None and not r.cached)
    st.session_state[f"{model}.done"] = (f"Done: {trained} run(s) trained in "
                                         f"{format_seconds(time.monotonic() - started)}, "
                                         f"{len(results) - trained} served from the cache.")
    st.rerun()  # draw the page again from the top: the plan above now counts the new runs as cached


def id_of(config: RunConfig) -> str:
    return repr(config)


def lookup(items: list[Entry], data, cache, fresh: dict[str, RunResult]) -> list[RunResult | None]:
    """Each value's run: this session's last training first (it knows what was trained just now rather
    than served from the cache, and keeps a shorter run whose longer twin diverged early, which is not
    stored), else the disk cache."""
    out = []
    for entry in items:
        if entry.config is None:
            out.append(None)
            continue
        out.append(fresh.get(id_of(entry.config)) or cache.get(cache.key_for(entry.config, data)))
    return out


def results_section(model: str, comparison: Comparison, items: list[Entry], data, cache) -> None:
    results = lookup(items, data, cache, st.session_state.get(f"{model}.fresh", {}))
    param_title = PARAM_TITLES.get(comparison.param, comparison.param)
    missing = [e.label for e, r in zip(items, results) if e.config is not None and r is None]
    if all(r is None for r in results):
        if missing:
            st.info("No results for these settings yet. Press **Run comparison** to train them.")
        return
    st.header("Results")
    if missing:
        st.warning(f"Not trained yet: {param_title} = {', '.join(missing)}. Press **Run comparison** to train "
                   "the rest; the charts show what is cached.")

    metrics = metrics_frame(items, results)
    finals = final_frame(items, results)
    timing = timing_frame(items, results)
    series = series_order(finals)  # every value, so each keeps its colour across the charts
    for row in finals.itertuples():
        if row.status == "diverged":
            run = results[row.order]
            drawn = (f"so it is drawn up to epoch {run.diverged_epoch - 1} only" if run.diverged_epoch > 1 else
                     "before its first epoch ended, so it has no curve")
            st.warning(f"**{param_title} = {row.value}** diverged at epoch {run.diverged_epoch}: its loss became "
                       f"infinite or NaN, {drawn}. A smaller learning rate (or another init) usually fixes that.")

    restore(f"{model}.view.log", model == "mlp")
    log_scale = keep(f"{model}.view.log", st.toggle(
        "Log scale for the loss charts", key=f"{model}.view.log",
        help="The seed's N(0, 1) init starts the loss in the hundreds; a log scale shows both that and the small "
             "losses later."))
    if len(metrics):
        left, right = st.columns(2)
        left.altair_chart(metric_chart(metrics, "train_loss", log_scale=log_scale, legend_title=param_title,
                                       series=series), width="stretch")
        right.altair_chart(metric_chart(metrics, "test_loss", log_scale=log_scale, legend_title=param_title,
                                        series=series), width="stretch")
    left, right = st.columns(2)
    if len(metrics):
        left.altair_chart(metric_chart(metrics, "test_acc", legend_title=param_title, series=series),
                          width="stretch")
    right.altair_chart(final_accuracy_chart(finals, legend_title=param_title), width="stretch")

    st.subheader("Time")
    left, right = st.columns([3, 2])
    left.dataframe(timing.drop(columns=["status", "key"]), hide_index=True, width="stretch", column_config={
        "value": param_title, "total_s": st.column_config.NumberColumn("total (s)", format="%.1f"),
        "s_per_epoch": st.column_config.NumberColumn("s / epoch", format="%.2f"),
        "steps_per_epoch": "steps / epoch", "samples_per_s": st.column_config.NumberColumn("images / s", format="%d"),
        "batch_size": "batch", "cached": st.column_config.CheckboxColumn("cached")})
    left.caption(f"Times are from when each run was trained (cached runs keep theirs). Each epoch also scores "
                 f"{comparison.base.test_size:,} test images. Smaller batches take more steps per epoch, and each "
                 "step has a fixed cost.")
    right.altair_chart(timing_chart(timing, legend_title=param_title), width="stretch")

    st.download_button("Download every metric (CSV)", metrics.to_csv(index=False).encode(), key=f"{model}.csv",
                       file_name=f"{model}-{comparison.param}-comparison.csv", mime="text/csv")
    inspect_section(model, items, results, param_title)


def inspect_section(model: str, items: list[Entry], results: list[RunResult | None], param_title: str) -> None:
    """Where one run goes wrong: its most confident mistakes and the confusion matrix."""
    inspectable = {e.label: r.key for e, r in zip(items, results)
                   if r is not None and r.key and r.status == "ok" and e.config == r.config}
    if not inspectable:
        return
    st.subheader("Inspect one run")
    labels = list(inspectable)
    if restore(f"{model}.view.inspect", labels[0]) not in labels:  # a run of other settings
        st.session_state[f"{model}.view.inspect"] = labels[0]
    choice = keep(f"{model}.view.inspect",
                  st.selectbox(f"Run ({param_title})", labels, key=f"{model}.view.inspect"))
    if choice not in inspectable:
        return
    report = test_set_report(inspectable[choice])
    gallery, matrix = st.columns([3, 2])
    with gallery:
        st.markdown(f"**Most confident mistakes** · {report.confusion.sum() - np.trace(report.confusion):,} of "
                    f"{report.confusion.sum():,} test digits wrong ({percent(report.accuracy)} right)")
        columns = st.columns(6)
        for n, mistake in enumerate(report.mistakes):
            big = np.kron(mistake.image, np.ones((3, 3)))  # sharp pixels instead of the browser's blur
            columns[n % 6].image(big, clamp=True, width="stretch",
                                 caption=f"true {mistake.true_label} → {mistake.predicted} ({mistake.confidence:.0%})")
    with matrix:
        st.altair_chart(confusion_chart(confusion_table(report.confusion)), width="stretch")
