"""What every page shares: the dataset and the run cache (one per server process), and settings
that survive switching pages.

Not a page itself: app.py lists the pages with st.navigation, so this file is only imported.
"""
from __future__ import annotations

import streamlit as st

from mnist_core import DataNotFoundError, MnistData, RunCache, load_mnist, resolve_device
from mnist_core.cache import check_key
from mnist_core.evaluate import EvaluationReport, evaluate_test_set, load_model

@st.cache_resource(show_spinner="Loading MNIST onto the training device…")
def dataset() -> MnistData:
    # One copy for every user of this server: the training images are ~190 MB as float tensors.
    return load_mnist(resolve_device("auto"))


def dataset_or_error() -> MnistData | None:
    """The dataset, or None after showing the student why it is missing and how to fix it."""
    try:
        return dataset()
    except DataNotFoundError as e:
        st.error(f"**MNIST is not available.** {e}")
        return None


@st.cache_resource
def run_cache() -> RunCache:
    return RunCache()


@st.cache_resource(max_entries=16)
def trained_model(key: str):
    """A cached run's model, on the training device, ready to predict."""
    cache = run_cache()
    run = cache.get(check_key(key))
    if run is None:
        raise KeyError(key)
    return load_model(run.config, cache.weights(key), dataset().device.type)


@st.cache_resource(max_entries=8, show_spinner="Running the model on the 10,000 test images…")
def test_set_report(key: str) -> EvaluationReport:
    return evaluate_test_set(trained_model(key), dataset(), limit=24)


def percent(x: float | None) -> str:
    return "–" if x is None or x != x else f"{100 * x:.1f}%"
