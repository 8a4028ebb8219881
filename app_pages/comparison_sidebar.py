"""The comparison pages' sidebar: the seed experiments, "compare by", the base settings; and its state: the
first visit's defaults, presets, the quick/full sizes and a shared link's comparison loaded into it.
Widget keys are `<model>.cfg.<name>`: share links, the browser tests and kept values depend on them."""
from __future__ import annotations

import streamlit as st

from mnist_core import PRESETS, ConfigError, RunConfig
from mnist_core.compare import (DEFAULT_VALUES, PARAM_TITLES, Comparison, format_values, make_comparison,
                                value_label)
from mnist_core.config import (ACTIVATIONS, CONV_LAYERS, DATASETS, INITS, MNIST_TEST_SIZE, MNIST_TRAIN_SIZE, OPTIMIZERS,
                               PRECISIONS, SWEEPABLE, coerce, option_label, read_settings)
from mnist_core.data import DATASETS as DATASET_INFO
from mnist_core.grid import MAX_SIDE, Grid, from_query_params as link_to_grid, make_grid
from mnist_core.i18n import N_, Translator
from mnist_core.train import bf16_native, resolve_device
from app_pages.shared import restore


QUICK_LOOK_SIZE = 5_000
QUICK_LOOK_TEST_SIZE = 2_000  # a quick CNN epoch would otherwise spend most of its time scoring 10,000 test images
PRESET_BUTTONS = {"mlp-lr": N_("Learning rate"), "mlp-epochs": N_("Epochs"), "mlp-batch": N_("Batch size"),
                  "mlp-activation": N_("Activations"), "cnn-stride": N_("Stride"), "cnn-filter": N_("Filter size")}

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

def key(model: str, name: str) -> str:
    """Widget keys: stable and readable, for the browser tests too (e.g. 'mlp.cfg.lr')."""
    return f"{model}.cfg.{name}"


# -- state: defaults, presets, links ---------------------------------------------------------------

def load_into_sidebar(model: str, comparison: Comparison, grid: Grid | None = None) -> None:
    base = comparison.base
    for field in MODEL_FIELDS[model]:
        typed = FIELDS[field][1] is None
        st.session_state[key(model, field)] = value_label(getattr(base, field)) if typed else getattr(base, field)
    st.session_state[key(model, "act1")], st.session_state[key(model, "act2")] = base.activations
    st.session_state[key(model, "param")] = comparison.param
    st.session_state[key(model, "values")] = format_values(comparison.param, comparison.values)
    st.session_state[key(model, "param2")] = grid.param2 if grid else ""  # "": one hyperparameter, no grid
    st.session_state[key(model, "values2")] = format_values(grid.param2, grid.values2) if grid else ""


def widget_keys(model: str) -> list[str]:
    return [key(model, name) for name in (*MODEL_FIELDS[model], "act1", "act2", "param", "values", "param2", "values2")]


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


def reset_values2(model: str) -> None:
    param2 = st.session_state[key(model, "param2")]
    st.session_state[key(model, "values2")] = DEFAULT_VALUES[param2] if param2 else ""


def apply_link(model: str) -> ConfigError | None:
    """Loads a shared link's comparison into the sidebar, once per link. Returns an error to show."""
    params = {k: v for k, v in st.query_params.to_dict().items() if k != "lang"}
    if "compare" not in params or params == st.session_state.get(f"{model}.link"):
        return None
    st.session_state[f"{model}.link"] = params
    if params.get("model", model).strip().lower() != model:
        return None  # the other comparison page's link, carried over by a page switch: not for this page
    try:
        linked = link_to_grid(params, model=model)
        if isinstance(linked, Grid):
            load_into_sidebar(model, linked.rows, linked)
        else:
            load_into_sidebar(model, linked)
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


def read_grid(model: str, comparison: Comparison) -> Grid | None:
    """The sidebar's grid, when a second hyperparameter is chosen; ConfigError if it cannot be one."""
    param2 = st.session_state[key(model, "param2")]
    return make_grid(comparison, param2, st.session_state[key(model, "values2")]) if param2 else None


def current_preset(comparison: Comparison) -> str | None:
    """The seed experiment the sidebar shows, while it still shows exactly that (any dataset)."""
    for name, preset in PRESETS.items():
        ours = Comparison(preset.base.replace(dataset=comparison.base.dataset), preset.param, tuple(preset.values))
        if ours == comparison:
            return name
    return None


# -- the sidebar -----------------------------------------------------------------------------------

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
        st.selectbox(_("Second hyperparameter (optional)"), ("", *SWEEPABLE[model]), key=key(model, "param2"),
                     format_func=lambda p: _(PARAM_TITLES.get(p, p)) if p else _("none"), on_change=reset_values2,
                     args=(model,), help=_("Pick one to try every pair of values: a grid of at most {n} × {n} runs.",
                                           n=MAX_SIDE))
        # always drawn (a widget left out of a run loses its value): off while there is no second hyperparameter
        st.text_input(_("Its values"), key=key(model, "values2"), disabled=not st.session_state[key(model, "param2")])

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
