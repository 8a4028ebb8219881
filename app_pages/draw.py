"""Draw page: draw a digit (or upload a photo of one) and see what the trained models read."""
from __future__ import annotations

import numpy as np
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mnist_core import RunConfig
from mnist_core.charts import probability_chart
from mnist_core.compare import run_label
from mnist_core.evaluate import predict, probability_table
from mnist_core.preprocess import ImageError, load_image_bytes, to_mnist
from app_pages.inside import inside_section
from app_pages.shared import (ACTIVE, dataset_or_error, job_line, job_service, keep, may_train, owner, remember,
                              remembered_jobs, restore, run_cache, trained_model)
from mnist_core.jobs import RequestRefused

# The seed's MLP (N(0, 1) init, Adam, lr 0.001, batch 100) for a few epochs: under a minute on a laptop CPU.
STARTER = RunConfig(model="mlp", epochs=3)
MODELS_PER_ROW = 4
DEFAULT_MODELS = 3  # the newest runs: often the values of the comparison just made, side by side
RUNS_KEY = "draw.cfg.runs"



@st.fragment(run_every=1.0)
def starter_watcher(cache_key: str) -> None:
    """The starter model's training (it goes on if the student leaves); the page reruns when it is done."""
    jobs = remembered_jobs("draw.starter", [cache_key])
    if not any(job.state in ACTIVE for job in jobs):
        st.rerun()
    for job in jobs:
        st.progress(job.progress, text=job_line(job, "The seed's MLP"))


st.title("Draw a digit")
st.caption("Draw with the mouse or a finger, or upload a photo. The drawing is prepared the way MNIST's digits were "
           "(cropped to the ink, scaled into 20×20, centred by its centre of mass in 28×28) and shown to the models.")

data = dataset_or_error()
if data is None:
    st.stop()
cache = run_cache()
runs = [r for r in cache.list() if r.status == "ok" and r.final is not None]

if not runs:
    service, cache_key = job_service(), cache.key_for(STARTER, data)
    jobs = remembered_jobs("draw.starter", [cache_key])
    st.info("No trained model yet. Train the seed's MLP for a few epochs to start (about "
            f"{STARTER.epochs * 2} s on a CPU), or run a comparison on the MLP or CNN page.")
    for job in jobs:
        if job.state == "failed":
            st.error(job.message)
    if any(job.state in ACTIVE for job in jobs):
        starter_watcher(cache_key)
    elif st.button("Train a starter model", type="primary", key="draw.train_starter", disabled=not may_train()):
        try:
            remember("draw.starter", service.submit([STARTER], owner()))
        except RequestRefused as e:
            st.error(str(e))
            st.stop()
        st.rerun()
    st.stop()

drawing, seen = st.columns([3, 2], gap="large")
with drawing:
    canvas = st_canvas(stroke_width=22, stroke_color="#FFFFFF", background_color="#000000", height=280, width=280,
                       drawing_mode="freedraw", return_image_data=True, key="draw.canvas")
    st.caption("Use the canvas toolbar to undo or clear.")
    upload = st.file_uploader("…or upload an image of one digit", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
                              key="draw.upload")

image, problem = None, None
if upload is not None:
    try:
        image = load_image_bytes(upload.getvalue(), name=upload.name)
    except ImageError as e:
        problem = str(e)
elif canvas is not None and canvas.image_data is not None:
    image = canvas.image_data
digit = to_mnist(image) if image is not None else None

with seen:
    if problem:
        st.error(problem)
    elif digit is None:
        st.info("Draw a digit on the black square (or upload an image) and the models will say what they read.")
    else:
        st.image(np.kron(digit, np.ones((6, 6))), clamp=True, width=168,
                 caption="What the models see: 28×28" + (f", from {upload.name}" if upload is not None else ""))

known = {r.key: r for r in runs}
# Runs chosen earlier may have left the cache since; a multiselect must not hold unknown options.
remembered = [k for k in restore(RUNS_KEY, []) if k in known]
st.session_state[RUNS_KEY] = remembered or [r.key for r in runs[:DEFAULT_MODELS]]
chosen = keep(RUNS_KEY, st.multiselect(
    "Models to ask", list(known), key=RUNS_KEY, format_func=lambda k: run_label(known[k]),
    help="Runs in the cache, newest first. Pick several, e.g. the four runs of an activation comparison, to see "
         "them side by side."))

if digit is not None and chosen:
    for start in range(0, len(chosen), MODELS_PER_ROW):
        for column, run_key in zip(st.columns(MODELS_PER_ROW), chosen[start:start + MODELS_PER_ROW]):
            probs = predict(trained_model(run_key), digit)[0]
            with column.container(border=True):
                st.metric("Reads", int(probs.argmax()), f"{probs.max():.0%} sure", delta_color="off")
                st.caption(run_label(known[run_key]))
                st.altair_chart(probability_chart(probability_table(probs)), width="stretch")

if chosen:
    inside_section(chosen, digit, data)
