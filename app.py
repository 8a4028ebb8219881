"""MNIST hyperparameter lab: `streamlit run app.py`.

The entry point: lists the pages and draws the home page (what the app does, the device it trains
on, where the dataset is, the runs already cached). The pages live in app_pages/ (not pages/: see
README); the work in mnist_core/.
"""
from __future__ import annotations

import os

# Before torch loads: on a shared server many sessions and the training compete for few cores, and
# OpenMP's default spin-waiting threads then slow everyone 10-100x (measured in bench/run.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402
import torch  # noqa: E402

from app_pages.shared import dataset_or_error, run_cache  # noqa: E402
from mnist_core import resolve_device  # noqa: E402
from mnist_core.compare import run_label  # noqa: E402


def home() -> None:
    st.title("MNIST hyperparameter lab")
    st.markdown(
        "Train small neural networks on handwritten digits and change **one hyperparameter at a time**, as in the "
        "blog post this lab grew from: learning rate, epochs, batch size and activations for an MLP; stride and "
        "filter size for a CNN. Each comparison shows its loss and accuracy curves side by side, how long each run "
        "took, and which digits it gets wrong. Then draw your own digit and see what the models read.")
    cols = st.columns(3)
    cols[0].page_link(MLP_PAGE, label="**MLP**: learning rate, batch size, …", icon=":material/show_chart:")
    cols[1].page_link(CNN_PAGE, label="**CNN**: stride, filter size", icon=":material/grid_on:")
    cols[2].page_link(DRAW_PAGE, label="**Draw**: test the models", icon=":material/draw:")

    st.subheader("This machine")
    device = resolve_device("auto")
    names = {"cuda": lambda: torch.cuda.get_device_name(0), "mps": lambda: "Apple GPU (mps)",
             "cpu": lambda: f"CPU, {torch.get_num_threads()} threads"}
    st.markdown(f"Training runs on **{device}**: {names[device]()} · PyTorch {torch.__version__}")

    st.subheader("Dataset")
    data = dataset_or_error()
    if data is not None:
        st.success(f"MNIST found in `{data.source}`: {len(data.train_x):,} training and {len(data.test_x):,} test "
                   f"images, loaded on {data.device.type}.")

    st.subheader("Runs in the cache")
    cache = run_cache()
    runs = cache.list()  # damaged entries are the operator's business: server log and `cache check`, not here
    if not runs:
        st.info("Nothing trained yet. Open the MLP page and press **Run comparison**; every finished run is kept, so "
                "asking again (or a classmate asking the same) costs nothing.")
        return
    st.caption(f"{len(runs)} runs, {cache.size_bytes() / 1e6:.1f} MB. Newest first.")
    st.dataframe(pd.DataFrame([{
        "run": run_label(r, with_accuracy=False), "model": r.config.model.upper(), "status": r.status, "epochs": len(r.epochs),
        "test accuracy": r.final.test_acc if r.final else None, "seconds": round(r.total_seconds, 1),
        "device": r.device, "key": r.key} for r in runs]), hide_index=True, width="stretch",
        column_config={"test accuracy": st.column_config.ProgressColumn("test accuracy", format="percent",
                                                                         min_value=0.0, max_value=1.0)})


st.set_page_config(page_title="MNIST hyperparameter lab", page_icon="🔢", layout="wide")
HOME_PAGE = st.Page(home, title="Home", icon=":material/home:", default=True)
MLP_PAGE = st.Page("app_pages/mlp.py", title="MLP", icon=":material/show_chart:", url_path="mlp")
CNN_PAGE = st.Page("app_pages/cnn.py", title="CNN", icon=":material/grid_on:", url_path="cnn")
DRAW_PAGE = st.Page("app_pages/draw.py", title="Draw", icon=":material/draw:", url_path="draw")
STUDY_PAGE = st.Page("app_pages/study.py", title="Study", icon=":material/menu_book:", url_path="study")
st.navigation([HOME_PAGE, MLP_PAGE, CNN_PAGE, DRAW_PAGE, STUDY_PAGE]).run()
