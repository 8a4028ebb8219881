"""What every page shares: the dataset and the run cache (one per server process), and widget values
that survive switching pages.

Not a page itself: app.py lists the pages with st.navigation, so this file is only imported.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import streamlit as st

from mnist_core import DataNotFoundError, MnistData, RunCache, RunConfig, load_mnist, resolve_device
from mnist_core.hosting import HostingLimits, TrainingSlots
from mnist_core.sweep import plan
from mnist_core.cache import check_key
from mnist_core.evaluate import EvaluationReport, evaluate_test_set, load_model

# Streamlit forgets a widget's value while another page is shown. Pages keep a copy under a key that
# no widget owns, and put it back before they draw the widget again.
def keep(key: str, value: Any) -> Any:
    """Keeps `value`, the widget `key`'s value this run, for when the page is shown again."""
    st.session_state[f"{key}.kept"] = value
    return value


def restore(key: str, default: Any) -> Any:
    """The widget `key`'s value: its current one, else the one last kept, else `default`. Call it before
    drawing the widget (without a value= argument: the value comes from here)."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(f"{key}.kept", default)
    return st.session_state[key]


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


class OverTheCap(Exception):
    """A request bigger than this shared server allows (hosted mode)."""


@st.cache_resource
def hosting() -> HostingLimits:
    """Set by the operator in the environment (MNIST_LAB_HOSTED, ...): no visitor can change it."""
    return HostingLimits.from_env()


@st.cache_resource
def run_cache() -> RunCache:
    return RunCache(max_bytes=hosting().cache_max_bytes)


@st.cache_resource
def training_slots() -> TrainingSlots:
    # One per server process: every session's trainings queue here, first come, first served.
    return TrainingSlots(hosting().max_concurrent)


@contextmanager
def training_turn(configs: list[RunConfig], data: MnistData, cache: RunCache,
                  status: Callable[[str], None]) -> Iterator[None]:
    """The way into training on a shared server: hosted-mode caps, then a place in line.

    Raises OverTheCap with a message for the student if the trainings still needed cost more than
    hosted mode allows. Runs that are all cached skip the line. Showing the place touches Streamlit,
    so a student who closes the tab or presses Cancel while waiting leaves the line at once.
    """
    _, jobs = plan(configs, data, cache)
    if message := hosting().check([job.config for job in jobs]):
        raise OverTheCap(message)
    if not jobs:
        yield
        return
    slots = training_slots()

    def show_place(place: int) -> None:
        status(f"Waiting for a free training slot: you are number {place} in line "
               f"({slots.running} training now on this server).")

    with slots.slot(on_wait=show_place):
        yield


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
