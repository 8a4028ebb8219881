"""What every page shares: one training service, run cache and copy of each dataset per server process;
who the visitor is; the language; widget values that survive switching pages. Trainings, as pages submit
and watch them: app_pages/watcher.py.

Not a page itself: app.py lists the pages with st.navigation, so this file is only imported.
"""
from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

import streamlit as st

from mnist_core import DataNotFoundError, MnistData, RunCache, resolve_device
from mnist_core.cache import check_key
from mnist_core.data import DATASETS, load_dataset
from mnist_core.evaluate import EvaluationReport, evaluate_test_set, load_model
from mnist_core.hosting import HostingLimits, browser_identity
from mnist_core.i18n import LANGUAGES, Translator, pick_language
from mnist_core.jobs import APP_DEFAULT, JobService, service_from_env


# -- widget values across pages --------------------------------------------------------------------
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


# -- language --------------------------------------------------------------------------------------
LANG_KEY = "lab.lang"


def language() -> str:
    """The visitor's language: a link's ?lang= when it changes, else their choice, else the browser's."""
    asked = st.query_params.get("lang")
    if asked and asked != st.session_state.get(f"{LANG_KEY}.link"):
        st.session_state[f"{LANG_KEY}.link"] = asked
        st.session_state[LANG_KEY] = pick_language(asked, st.context.locale)
    if st.session_state.get(LANG_KEY) not in LANGUAGES:
        st.session_state[LANG_KEY] = pick_language(None, st.context.locale)
    return st.session_state[LANG_KEY]


def tr() -> Translator:
    """The session's translator: `_ = tr()`, then `_("Epochs")`, `_("{n} runs", n=3)`, `_.percent(x)`."""
    return Translator(language())


def language_switch() -> None:
    """The sidebar's language choice (app.py draws it on every page, so it keeps its value)."""
    language()
    lang = st.sidebar.selectbox("Language / 언어", list(LANGUAGES), key=LANG_KEY, format_func=LANGUAGES.get)
    # Links carry the language (?lang=ko) so that a shared link opens in it; English needs no parameter.
    if lang != "en" and st.query_params.get("lang") != lang:
        st.query_params["lang"] = lang
    elif lang == "en" and "lang" in st.query_params:
        del st.query_params["lang"]
    st.session_state[f"{LANG_KEY}.link"] = st.query_params.get("lang")


# -- server-wide resources -------------------------------------------------------------------------

@st.cache_resource(show_spinner=False)
def dataset(name: str = "mnist") -> MnistData:
    # One copy per dataset for every user of this server: the training images are ~190 MB as float tensors.
    # load_dataset keeps one per process, so the job service's copy is this one.
    return load_dataset(name, resolve_device("auto"))


def dataset_or_error(name: str = "mnist") -> MnistData | None:
    """The dataset, or None after showing the student why it is missing and how to fix it."""
    _ = tr()
    try:
        with st.spinner(_("Loading {title} onto the training device…", title=DATASETS[name].title)):
            return dataset(name)
    except DataNotFoundError as e:
        st.error(_("**{title} is not available.** {error}", title=DATASETS[name].title, error=_.error(e)))
        return None


@st.cache_resource
def hosting() -> HostingLimits:
    """Set by the operator in the environment (MNIST_LAB_HOSTED, ...): no visitor can change it."""
    return HostingLimits.from_env()


@st.cache_resource
def run_cache() -> RunCache:
    return RunCache(max_bytes=hosting().cache_max_bytes)


@st.cache_resource
def job_service() -> JobService:
    """The server's one training service: trainings of every session queue here (fair share between
    owners). They train in a worker process of this machine (a private Dask cluster: pages stay out of
    the training's way), on the Dask cluster MNIST_LAB_DASK_SCHEDULER names, or with it set to "none" in
    threads of this process."""
    return service_from_env(run_cache(), dataset("mnist"), hosting(), default=APP_DEFAULT)


# -- who is asking ---------------------------------------------------------------------------------

def owner() -> str:
    """Whose jobs these are, for the per-student limit, fair share and Cancel: the signed-in user where the
    operator turned on Streamlit's login (st.login, OIDC in .streamlit/secrets.toml); else this browser,
    the same in every tab and after a reload (hosting.browser_identity); else, with no browser cookie,
    this session (an unguessable token). Nothing of it is ever shown to anyone."""
    try:
        user = st.user
        if user.get("is_logged_in"):
            who = user.get("email") or user.get("sub")
            if who:
                return f"user:{who}"
    except Exception:  # no login configured: the browser it is
        pass
    if "lab.owner" not in st.session_state:
        st.session_state["lab.owner"] = (browser_identity(st.context.cookies.get("_streamlit_xsrf"))
                                         or f"session:{secrets.token_hex(12)}")
    return st.session_state["lab.owner"]


def class_code() -> str | None:
    """MNIST_LAB_CLASS_CODE: set by the operator so that a link that leaks out of the class cannot train."""
    return hosting().class_code


def entered_code() -> str:
    """The class code this visitor typed, for `JobService.submit` (which checks it): kept apart from the
    field, which is no longer drawn once the code is right."""
    return st.session_state.get("lab.class_code.entered", "")


def may_train() -> bool:
    """Whether this visitor may start trainings: always, unless a class code is set and not yet entered."""
    code = class_code()
    return code is None or hmac.compare_digest(entered_code().encode(), code.encode())


def _check_code() -> None:
    st.session_state["lab.class_code.entered"] = st.session_state.get("lab.class_code", "").strip()
    st.session_state["lab.class_tried"] = True


def class_code_box() -> None:
    """The sidebar's class-code field, while one is needed (watching needs none)."""
    if may_train():
        return
    _ = tr()
    st.sidebar.text_input(_("Class code"), type="password", key="lab.class_code", on_change=_check_code,
                          help=_("Your teacher gives it. Without it you can watch and read results, but not train."))
    if st.session_state.get("lab.class_tried"):
        st.sidebar.error(_("That is not this class's code."))


# -- time ------------------------------------------------------------------------------------------

def ago(seconds_since: float | None) -> str:
    _ = tr()
    if seconds_since is None:
        return "–"
    return _("{duration} ago", duration=_.duration(time.time() - seconds_since))


# -- models of cached runs -------------------------------------------------------------------------

@st.cache_resource(max_entries=16)
def trained_model(key: str):
    """A cached run's model, on the training device, ready to predict."""
    cache = run_cache()
    run = cache.get(check_key(key), touch=True)
    if run is None:
        raise KeyError(key)
    return load_model(run.config, cache.weights(key), resolve_device("auto"))


@st.cache_resource(max_entries=8, show_spinner=False)
def test_set_report(key: str) -> EvaluationReport:
    run = run_cache().get(check_key(key))
    if run is None:
        raise KeyError(key)
    return evaluate_test_set(trained_model(key), dataset(run.config.dataset), limit=24)


__all__ = ["keep", "restore", "tr", "language", "language_switch", "dataset", "dataset_or_error", "hosting",
           "run_cache", "job_service", "owner", "entered_code", "may_train", "class_code_box", "ago",
           "trained_model", "test_set_report"]
