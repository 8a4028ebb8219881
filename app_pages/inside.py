"""Inside the models: what each layer of a run makes of one digit, runs side by side, layer by layer.

Not a page: the Draw page and a comparison's "Inspect one run" call these functions. The numbers
come from mnist_core.explain (forward hooks on the cached models); here they are only drawn.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from mnist_core import MnistData
from mnist_core.charts import probability_chart
from mnist_core.data import denormalize
from mnist_core.evaluate import probability_table
from mnist_core.explain import (activation_histogram, as_input, capture, first_layer_filters, grid, hidden_stats,
                                layer_picture, most_activated_units, shape_text)
from mnist_core.config import option_label
from mnist_core.explain_charts import LAYER_NAMES, activation_histogram_chart, share_frame, unit_share_chart
from mnist_core.i18n import N_
from app_pages.shared import run_cache, tr, trained_model

MAX_SIDE_BY_SIDE = 4
CHANNEL_CHOICES = [4, 8, 16, 32, "all"]
UNIT_CHOICES = [8, 16, 32, 64]
BATCH = 1000  # test digits behind the activation statistics: enough for stable shares, a few ms for an MLP
LAYER_NOTES = {"conv": N_("conv + ReLU"), "pool": N_("2×2 max-pool")}
PICTURE_WIDTH = 360  # pixels drawn: the browser shrinks a picture to its column rather than blurring it up
FACTS = {"dead_units": N_("{share} dead"), "saturated_units": N_("{share} saturated"),
         "saturated_fraction": N_("{share} of outputs in a tail")}


def run_classes(key: str) -> tuple[str, ...]:
    """The run's class names (untranslated): digits, or Fashion-MNIST's clothes."""
    from mnist_core.data import DATASETS
    run = run_cache().get(key)
    return DATASETS[run.config.dataset if run else "mnist"].classes


def short_label(key: str) -> str:
    _ = tr()
    run = run_cache().get(key)
    if run is None:
        return key
    c = run.config
    what = (_("filter {size}, stride {stride}, padding {padding}", size=c.kernel_size, stride=c.stride,
              padding=c.padding) if c.model == "cnn"
            else _("{activations}, {init} init", activations="/".join(c.activations), init=c.init))
    return f"{what} · {_.percent(run.final.test_acc)}" if run.final else what


def sharp(picture: np.ndarray) -> np.ndarray:
    """Scaled up by whole pixels to at least PICTURE_WIDTH, so the browser shrinks it instead of blurring it up."""
    k = max(1, -(-PICTURE_WIDTH // picture.shape[1]))
    return picture.repeat(k, 0).repeat(k, 1)


def side_by_side(n: int) -> list:
    """n equal columns, one per run, each picture filling its own (so the rows line up and captions never run
    into the next run's); a single run takes half the width, not all of it."""
    return st.columns(max(n, 2))[:n]


def _headers(runs: list[str], labels: list[str]) -> None:
    for column, label in zip(side_by_side(len(runs)), labels):
        column.markdown(f"**{label}**")


def cnn_inside(runs: list[str], image: np.ndarray, labels: list[str] | None = None, key: str = "inside") -> None:
    """For each CNN run, side by side: every layer's maps for `image` (28x28 in [0, 1]), the 625 units, the
    10 outputs, and the first-layer filters. The runs share shape_flow's layer names, so rows align."""
    _ = tr()
    labels = labels or [short_label(k) for k in runs]
    choice = st.select_slider(_("Maps per layer (the most active first)"), CHANNEL_CHOICES, value=16,
                              key=f"{key}.cnn.top", format_func=lambda c: _("all") if c == "all" else str(c),
                              help=_("Each small square is one channel's output; bright means strongly active. "
                                     "All maps of a layer share one colour scale."))
    top = None if choice == "all" else int(choice)
    seen = {k: capture(trained_model(k), as_input(image)) for k in runs}
    _headers(runs, labels)
    names = [n for n in seen[runs[0]].layers if n not in ("input", "flatten", "fc2")]
    for name in names:
        for column, k in zip(side_by_side(len(runs)), runs):
            maps = seen[k].layers[name][0]
            note = next((_(v) for prefix, v in LAYER_NOTES.items() if name.startswith(prefix)), "")
            what = _("{n} units + ReLU, drawn as a square", n=maps.size) if maps.ndim == 1 else note
            if top and maps.ndim == 3 and top < len(maps):
                caption = _("{layer} · {shape} ({what}) · the {top} most active of {n}", layer=name,
                            shape=shape_text(maps.shape), what=what, top=top, n=len(maps))
            else:
                caption = _("{layer} · {shape} ({what})", layer=name, shape=shape_text(maps.shape), what=what)
            column.image(sharp(layer_picture(maps, top)), width="stretch", output_format="PNG", caption=caption)
    for column, k in zip(side_by_side(len(runs)), runs):
        probs = seen[k].probabilities[0]
        names = [_(c) for c in run_classes(k)]
        column.altair_chart(probability_chart(probability_table(probs), classes=names, text=_,
                                              title=_("fc2 · 10 outputs → reads {answer}",
                                                      answer=names[int(probs.argmax())])),
                            width="stretch")
    st.markdown(_("**The learned first-layer filters** (what each conv1 channel looks for)"))
    for column, k in zip(side_by_side(len(runs)), runs):
        filters = first_layer_filters(trained_model(k))
        column.image(sharp(grid(filters)), width="stretch", output_format="PNG",
                     caption=_("conv1 filters · {shape}", shape=shape_text(filters.shape)))


def mlp_inside(runs: list[str], image: np.ndarray, data: MnistData, labels: list[str] | None = None,
               key: str = "inside") -> None:
    """For each MLP run, side by side: the first hidden layer's weights as 28x28 images (the units `image`
    excites most first), and each hidden layer's activations over test digits, with dead and saturated shares."""
    _ = tr()
    labels = labels or [short_label(k) for k in runs]
    top = st.select_slider(_("Units shown"), UNIT_CHOICES, value=16, key=f"{key}.mlp.top")
    _headers(runs, labels)
    stats, histograms = {}, {}
    batch = data.test_x[:BATCH]
    for column, label, k in zip(side_by_side(len(runs)), labels, runs):
        model = trained_model(k)
        units = most_activated_units(model, capture(model, as_input(image)), top=top)
        weights = first_layer_filters(model)[units["unit"].to_numpy()]
        column.image(sharp(grid(weights)), width="stretch", output_format="PNG",
                     caption=_("Hidden layer 1's weights of the {n} units this digit excites most, strongest first "
                               "(yellow: pixels that excite the unit, purple: pixels that calm it)", n=len(units)))
        over_batch = capture(model, batch)
        stats[label], histograms[label] = hidden_stats(over_batch), activation_histogram(over_batch)
    st.markdown(_("**Activations over {n} test images** · dead: never positive on any of them (ReLU); "
                  "saturated: always in a flat tail, below 0.05 or above 0.95 (sigmoid), where almost no gradient "
                  "passes back", n=_.number(len(batch))))
    for layer in stats[labels[0]]["layer"]:
        for column, label in zip(side_by_side(len(runs)), labels):
            row = stats[label].set_index("layer").loc[layer]
            facts = [_(fact, share=_.percent(row[m], 0)) for m, fact in FACTS.items() if row[m] == row[m]]
            hist = histograms[label]
            column.markdown(f"**{_(LAYER_NAMES.get(layer, layer))}** ({_(option_label(row['activation']))}) · "
                            f"{', '.join(facts)}")
            column.altair_chart(activation_histogram_chart(hist[hist["layer"] == layer], text=_), width="stretch")
    st.altair_chart(unit_share_chart(share_frame(stats), text=_))


def inside_section(runs: list[str], digit: np.ndarray | None, data: MnistData, key: str = "draw",
                   note: str = "") -> None:
    """The Draw page's "Inside the models": the chosen runs' insides for the drawing, or for a test image of
    `data` (the runs' dataset: the activation statistics are measured on its test images)."""
    _ = tr()
    st.header(_("Inside the models"))
    if note:
        st.caption(note)
    sources = ["drawing", "test"]
    source = st.segmented_control(_("Look inside with"), sources, default=sources[0], key=f"{key}.inside.source",
                                  format_func=lambda s: _("the drawing") if s == "drawing" else _("a test digit"))
    if source == sources[1] or digit is None:
        index = st.number_input(_("Test digit (index)"), 0, len(data.test_x) - 1, 0, key=f"{key}.inside.index")
        digit = denormalize(data.test_x[index, 0]).cpu().numpy()
        answer = _(data.classes[int(data.test_y[index])])
        st.image(np.kron(digit, np.ones((3, 3))), clamp=True, width=84,
                 caption=(_("Nothing drawn yet: test digit {index}, a {answer}", index=index, answer=answer)
                          if source == sources[0] else _("test digit {index}, a {answer}", index=index,
                                                         answer=answer)))
    cnns = [k for k in runs if k.startswith("cnn-")]
    mlps = [k for k in runs if k.startswith("mlp-")]
    if len(cnns) > MAX_SIDE_BY_SIDE or len(mlps) > MAX_SIDE_BY_SIDE:
        st.caption(_("Side by side: the first {n} CNNs and MLPs of the models chosen above.", n=MAX_SIDE_BY_SIDE))
    cnns, mlps = cnns[:MAX_SIDE_BY_SIDE], mlps[:MAX_SIDE_BY_SIDE]
    if cnns:
        st.subheader(_("CNN: layer by layer"))
        cnn_inside(cnns, digit, key=key)
    if mlps:
        st.subheader(_("MLP: units and activations"))
        mlp_inside(mlps, digit, data, key=key)


def inside_this_run(model: str, runs: dict[str, str], choice: str, param_title: str, data: MnistData) -> None:
    """Under a comparison's "Inspect one run": the run's insides next to another run of the comparison."""
    _ = tr()
    if not st.toggle(_("Inside this run"), key=f"{model}.view.inside",
                     help=_("Each layer's output for one test image, next to another run of this comparison.")):
        return
    others = [label for label in runs if label != choice]
    left, right = st.columns(2)
    other = left.selectbox(_("Next to"), others, key=f"{model}.view.inside.other") if others else None
    index = right.number_input(_("Test image (index)"), 0, len(data.test_x) - 1, 0,
                               key=f"{model}.view.inside.index")
    image = denormalize(data.test_x[index, 0]).cpu().numpy()
    chosen = [choice] + ([other] if other else [])
    keys, labels = [runs[c] for c in chosen], [f"{param_title} = {c}" for c in chosen]
    if model == "cnn":
        cnn_inside(keys, image, labels, key=f"{model}.view")
    else:
        mlp_inside(keys, image, data, labels, key=f"{model}.view")
