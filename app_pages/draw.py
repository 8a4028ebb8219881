"""Draw page: draw a digit (or upload a photo of one) and see what the trained models read.

By default it asks the most accurate cached MLP and CNN on MNIST (mnist_core.evaluate.best_runs), not
the newest runs; a link's `?run=KEY` (the Explore page's "use it on the Draw page") puts that run first.
Each model's answer shows all ten probabilities, so a model that is "100% sure" (the seed's normal(0, 1)
init saturates softmax) is visible as such, with a concept note that says why.
An upload may go to any model, Fashion-MNIST's too: the answers then name its classes.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mnist_core import RunConfig
from mnist_core.charts import probability_chart
from mnist_core.compare import run_label
from mnist_core.data import DATASETS
from mnist_core.evaluate import SURE, best_runs, predict, probability_table, saturates
from mnist_core.notes import note
from mnist_core.preprocess import ImageError, load_image_bytes, to_mnist
from app_pages.inside import inside_section
from mnist_core.jobs import ACTIVE
from app_pages.shared import dataset_or_error, keep, may_train, restore, run_cache, tr, trained_model
from app_pages.watcher import failed_block, remembered_jobs, submit, watcher

# The seed's MLP (N(0, 1) init, Adam, lr 0.001, batch 100) for a few epochs: under a minute on a laptop CPU.
STARTER = RunConfig(model="mlp", epochs=3)
MODELS_PER_ROW = 4
RUNS_KEY = "draw.cfg.runs"


def class_names(run_key: str, known: dict) -> list[str]:
    """The run's classes in the student's language: digits, or Fashion-MNIST's clothes."""
    _ = tr()
    return [_(c) for c in DATASETS[known[run_key].config.dataset].classes]


def picker_labels(runs: list) -> dict[str, str]:
    """A line per run for the picker, each different: runs that differ only in their seed say their seed."""
    _ = tr()
    labels = {r.key: f"{DATASETS[r.config.dataset].title} · {run_label(r, lang=_.lang)}" for r in runs}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {r.key: labels[r.key] if counts[labels[r.key]] == 1 else
            _("{label} · seed {seed} ({key})", label=labels[r.key], seed=r.config.seed, key=r.key[-6:])
            for r in runs}


_ = tr()
st.title(_("Draw a digit"))
st.caption(_("Draw with the mouse or a finger, or upload a photo. The drawing is prepared the way MNIST's digits "
             "were (cropped to the ink, scaled into 20×20, centred by its centre of mass in 28×28) and shown to the "
             "models."))

data = dataset_or_error()
if data is None:
    st.stop()
cache = run_cache()
runs = [r for r in cache.list() if r.status == "ok" and r.final is not None]

if not runs:
    cache_key = cache.key_for(STARTER, data)
    jobs = remembered_jobs("draw.starter", [cache_key])
    st.info(_("No trained model yet. Train the seed's MLP for a few epochs to start (about {duration} on a CPU), "
              "or run a comparison on the MLP or CNN page.", duration=_.duration(STARTER.epochs * 2)))
    failed_block(jobs)
    if any(job.state in ACTIVE for job in jobs):
        watcher("draw.starter", [cache_key], lambda job: _("The seed's MLP"))
    elif st.button(_("Train a starter model"), type="primary", key="draw.train_starter", disabled=not may_train()):
        if refused := submit("draw.starter", [STARTER]):
            st.error(refused)
            st.stop()
        st.rerun()
    st.stop()

drawing, seen = st.columns([3, 2], gap="large")
with drawing:
    # The canvas's toolbar shows above its top edge (2.65rem) while the pointer is on it: room for it, so
    # it covers nothing of the page.
    st.container(height=48, border=False)
    canvas = st_canvas(stroke_width=22, stroke_color="#FFFFFF", background_color="#000000", height=280, width=280,
                       drawing_mode="freedraw", return_image_data=True, key="draw.canvas")
    st.caption(_("Point at the black square to show its toolbar above it: undo, redo and clear."))
    upload = st.file_uploader(_("…or upload an image of one digit"),
                              type=["png", "jpg", "jpeg", "bmp", "gif", "webp"], key="draw.upload")

image, problem = None, None
if upload is not None:
    try:
        image = load_image_bytes(upload.getvalue(), name=upload.name)
    except ImageError as e:
        problem = _.error(e)
elif canvas is not None and canvas.image_data is not None:
    image = canvas.image_data
digit = to_mnist(image) if image is not None else None

with seen:
    if problem:
        st.error(problem)
    elif digit is None and upload is not None:
        st.warning(_("No digit found in {name}: the picture shows no ink that stands out from its background. Write "
                     "the digit darker, or crop the photo closer to it.", name=upload.name))
    elif digit is None:
        st.info(_("Draw a digit on the black square (or upload an image) and the models will say what they read."))
    else:
        # Grey frame: the 28x28 image's own edges, so a digit near them shows as such.
        framed = np.pad(np.kron(digit, np.ones((6, 6))), 2, constant_values=0.35)
        st.image(framed, clamp=True, width=172,
                 caption=(_("What the models see: 28×28, from {name}", name=upload.name) if upload is not None
                          else _("What the models see: 28×28")))

known = {r.key: r for r in runs}
labels = picker_labels(runs)
# Runs chosen earlier may have left the cache since; a multiselect must not hold unknown options.
remembered = [k for k in restore(RUNS_KEY, []) if k in known]
linked = st.query_params.get("run")  # the Explore page's "use it on the Draw page": that run first, once
if linked is not None:
    del st.query_params["run"]
    if linked in known:
        remembered = [linked] + [k for k in remembered if k != linked]
    else:
        st.warning(_("The run this link names is not in the cache (any more): here are the best cached models."))
st.session_state[RUNS_KEY] = remembered or [r.key for r in best_runs(runs)]
chosen = keep(RUNS_KEY, st.multiselect(
    _("Models to ask"), list(known), key=RUNS_KEY, format_func=labels.get,
    help=_("Runs in the cache, newest first; at first the most accurate MLP and CNN. Pick several, e.g. the four "
           "runs of an activation comparison, to see them side by side. Fashion-MNIST models answer with "
           "clothes: try them with an uploaded picture.")))

if digit is not None and chosen:
    sure = []
    for start in range(0, len(chosen), MODELS_PER_ROW):
        for column, run_key in zip(st.columns(MODELS_PER_ROW), chosen[start:start + MODELS_PER_ROW]):
            probs = predict(trained_model(run_key), digit)[0]
            names = class_names(run_key, known)
            top = int(probs.argmax())
            with column.container(border=True):
                st.metric(_("Reads"), names[top])
                st.caption(_("{p} sure · {run}", p=_.percent(float(probs.max()), 0),
                             run=run_label(known[run_key], lang=_.lang)))
                st.altair_chart(probability_chart(probability_table(probs), classes=names, text=_), width="stretch")
            if probs.max() >= SURE:
                sure.append(run_key)
    if sure:
        seed_init = [k for k in sure if saturates(known[k].config)]
        why = (_("{n} of them use the seed's normal(0, 1) weight init, which makes an MLP that sure of every answer, "
                 "right or wrong; the notes below say why.", n=len(seed_init)) if seed_init else
               _("A model trained well can be that sure of a clear drawing; the notes below say when such certainty "
                 "means little."))
        st.caption(_("{n} of {total} models give one class (almost) all of the probability.", n=len(sure),
                     total=len(chosen)) + " " + why)
    with st.expander(_("Why can a model be \"100% sure\"?"), expanded=bool(sure)):
        for topic in ("softmax", "init"):
            title, body = note(topic, _.lang)
            st.markdown(f"**{title}.** {body}")

if chosen:
    # One dataset at a time: the statistics inside a model are measured on test images of its own dataset.
    shown = known[chosen[0]].config.dataset
    same = [k for k in chosen if known[k].config.dataset == shown]
    left_out = "" if len(same) == len(chosen) else _("Only the {dataset} models are shown here, the dataset of the "
                                                     "first model chosen.", dataset=DATASETS[shown].title)
    own = data if shown == data.name else dataset_or_error(shown)
    if own is not None:
        inside_section(same, digit, own, note=left_out)
