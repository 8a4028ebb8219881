"""The app through Streamlit's AppTest: every page renders; a comparison's Run submits it to the server's
training service, whose jobs outlive the page (switching pages, changing widgets) and whose results the
page then reads from the cache; the class view lists everyone's jobs without names; Cancel withdraws only
one's own request (a job stops when nobody wants it); a watched job is not dropped as abandoned; the class
code goes with every request; bad input and bad links show st.error; the Draw page reads an uploaded digit.

AppTest runs the app in this process, so the tests reach the same job service (shared.job_service) and
wait on it for real trainings, then rerun the page as the fragment's timer would."""
from __future__ import annotations

import io
import json
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from mnist_core import RunConfig
from mnist_core.compare import make_comparison, to_query_params
from mnist_core.jobs import RequestRefused
from mnist_core.train import bf16_native, cpu_has_bf16_instructions, resolve_device

APP = "../app.py"
TIMEOUT = 120


def open_page(page: str | None = None, query: dict[str, str] | None = None, owner: str | None = None) -> AppTest:
    """A new browser session (as `owner`, if given: the same student in a second tab) on `page`."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if owner:
        at.session_state["lab.owner"] = owner
    at.run()
    if page:
        at.switch_page(page)
        if query:
            at.query_params.update(query)
        at.run()
    assert not at.exception, at.exception
    return at


def set_mlp(at: AppTest, values: str, seed: int, param: str = "lr") -> None:
    at.text_input(key="mlp.cfg.train_size").set_value("1000")
    at.text_input(key="mlp.cfg.epochs").set_value("2")
    at.text_input(key="mlp.cfg.seed").set_value(str(seed))  # a seed of each test's own: cache hits are the test's own
    at.selectbox(key="mlp.cfg.param").set_value(param).run()
    at.text_input(key="mlp.cfg.values").set_value(values).run()


def service():
    from app_pages.shared import job_service
    return job_service()


def job_ids(at: AppTest) -> list[str]:
    """The jobs this session started (the page remembers their ids, never their results)."""
    remembered = at.session_state["lab.jobs"] if "lab.jobs" in at.session_state else {}
    return [i for ids in remembered.values() for i in ids]


def run_and_wait(at: AppTest, model: str = "mlp") -> None:
    """Presses Run, waits for the service to finish the jobs, and reruns the page (as the watcher does)."""
    at.button(key=f"{model}.run").click().run()
    assert not at.exception, at.exception
    assert service().wait(job_ids(at), timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def chart_titles(at: AppTest) -> set[str]:
    return {s.get("title", {}).get("text") if isinstance(s.get("title"), dict) else s.get("title")
            for s in chart_specs(at)}


def timing_table(at: AppTest):
    return next(df.value for df in at.dataframe if "s_per_epoch" in df.value.columns)


def test_home_page_shows_device_dataset_and_cache():
    at = open_page()
    assert at.title[0].value == "MNIST hyperparameter lab"
    device = resolve_device("auto")  # a GPU machine must say so, with the GPU's name
    line = next(m.value for m in at.markdown if "Training runs on" in m.value)
    assert f"Training runs on **{device}**" in line
    if device == "cuda":
        assert torch.cuda.get_device_name(0) in line
    assert any(s.value.startswith("MNIST found in") for s in at.success)
    assert not at.error


def test_home_page_explains_missing_data(tmp_path, monkeypatch):
    from app_pages import shared
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "nowhere"))
    shared.dataset.clear()
    try:
        at = open_page()
        assert len(at.error) == 1
        assert "MNIST was not found" in at.error[0].value and "MNIST_DATA_DIR" in at.error[0].value
    finally:
        monkeypatch.undo()
        shared.dataset.clear()


@pytest.mark.parametrize("page, title", [("app_pages/mlp.py", "MLP on MNIST: compare hyperparameters"),
                                         ("app_pages/cnn.py", "CNN on MNIST: compare hyperparameters"),
                                         ("app_pages/draw.py", "Draw a digit")])
def test_each_page_renders(page, title):
    at = open_page(page)
    assert at.title[0].value == title
    assert not at.error


def test_mlp_comparison_trains_in_the_service_draws_charts_and_then_comes_from_the_cache():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.01, 0.001", seed=11)
    assert metric(at, "Runs") == "2" and metric(at, "Already cached") == "0 of 2"

    at.button(key="mlp.run").click().run()
    assert not at.exception and not at.error
    assert len(job_ids(at)) == 2  # one job per value, owned by this session
    assert all(service().job(i).watchers == [at.session_state["lab.owner"]] for i in job_ids(at))
    assert service().wait(job_ids(at), timeout=TIMEOUT)
    at.run()  # what the watcher's rerun does when the jobs end
    assert not at.exception and not at.error
    assert {"Train loss (log scale)", "Test loss (log scale)", "Test accuracy", "Final test accuracy"} <= chart_titles(at)
    timing = timing_table(at)
    assert timing["value"].tolist() == ["0.01", "0.001"]
    assert timing["trained"].str.fullmatch(r"\d+ sec ago").all() and (timing["steps_per_epoch"] == 10).all()
    assert timing["machine"].str.contains(f"torch {torch.__version__}", regex=False).all()  # where each run was trained
    assert timing["machine"].str.contains("this server", regex=False).all()
    assert any(s.value.startswith("Done: 2 run(s) trained in") for s in at.success)
    assert any("measured on a fixed balanced sample of 2,000 test images of MNIST" in c.value for c in at.caption)
    assert at.get("download_button")

    # the inspected run (lr 0.01, the seed's normal(0, 1) init): when most of its mistakes read ~100%, one sentence
    # says why; the count is the report's own
    from app_pages.shared import test_set_report
    from mnist_core.evaluate import SURE
    report = test_set_report(service().job(job_ids(at)[0]).keys[0])
    certain = sum(m.confidence >= SURE for m in report.mistakes)
    why = [c.value for c in at.caption if "softmax saturates" in c.value]
    assert why == ([f"{certain} of these {len(report.mistakes)} mistakes read (almost) 100%: the seed's normal(0, 1) "
                    "init makes this MLP's outputs so large that softmax saturates, so it is as sure of a wrong answer "
                    "as of a right one (see the concept notes on softmax and weight init)."]
                   if certain * 2 > len(report.mistakes) else [])

    at.selectbox(key="lab.lang").set_value("ko").run()  # the same results, read in Korean
    assert not at.exception
    header = next(m.value for m in at.markdown if m.value.startswith("**가장 자신 있게 틀린 이미지**"))
    assert not re.search(r"%\s*장", header), header  # no counter after a percentage
    captions = [c for image in at.get("image") for c in image.captions if "→" in c]
    assert captions and all("예\u2060측" in c for c in captions), captions[:2]  # 예측 is never split by a line break

    again = open_page("app_pages/mlp.py", query=to_query_params(
        make_comparison(RunConfig(model="mlp", epochs=2, train_size=1000, test_size=2000, seed=11), "lr", "0.01, 0.001")))
    assert metric(again, "Already cached") == "2 of 2" and metric(again, "Estimated time") == "instant"
    # a reload (a new session): the runs just trained still say so, and when, not that they came from the cache
    assert any(s.value.startswith("Done: 2 run(s) trained in") for s in again.success)
    assert timing_table(again)["trained"].str.endswith(" ago").all()


def test_training_goes_on_while_the_student_switches_pages_and_changes_widgets():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.02, 0.003", seed=15)
    at.button(key="mlp.run").click().run()
    ids = job_ids(at)
    assert ids and not at.exception
    assert at.button(key="mlp.run").disabled  # "Training…": the same comparison is not submitted twice

    at.switch_page("app_pages/draw.py").run()              # another page
    at.switch_page("app_pages/mlp.py").run()
    at.text_input(key="mlp.cfg.epochs").set_value("3").run()  # another comparison: nothing of it cached
    assert any("No results for these settings yet" in i.value for i in at.info)
    assert all(service().job(i).state in ("queued", "running", "done") for i in ids)  # nobody stopped it
    at.text_input(key="mlp.cfg.epochs").set_value("2").run()  # back to the one that trains

    assert service().wait(ids, timeout=TIMEOUT)
    assert all(service().job(i).state == "done" for i in ids)
    at.run()
    assert not at.exception and not at.error
    assert timing_table(at)["value"].tolist() == ["0.02", "0.003"]  # without pressing Run again
    assert any(s.value.startswith("Done: 2 run(s) trained") for s in at.success)


def test_the_class_view_lists_two_students_jobs_and_only_who_asked_can_cancel():
    big = to_query_params(make_comparison(RunConfig(model="mlp", epochs=20, train_size=20000, seed=41), "lr", "0.005"))
    small = to_query_params(make_comparison(RunConfig(model="mlp", epochs=1, train_size=500, seed=42), "lr", "0.005"))
    alice = open_page("app_pages/mlp.py", query=big)
    alice.button(key="mlp.run").click().run()
    [alices] = job_ids(alice)
    bob = open_page("app_pages/mlp.py", query=small)
    bob.button(key="mlp.run").click().run()
    [bobs] = job_ids(bob)
    assert service().job(alices).watchers != service().job(bobs).watchers

    home = open_page(owner=alice.session_state["lab.owner"])  # Alice's Home page, in another tab
    table = next(df.value for df in home.dataframe if "yours" in df.value.columns)
    mine = table[table["yours"]]
    assert len(table) >= 2 and len(mine) == 1
    assert mine["settings"].iloc[0] == "MLP ReLU/ReLU, normal(0, 1) init · seed 41 · Adam lr 0.005 · batch 100 · 20 ep " \
                                       "on 20,000 images"  # in words, the seed early: it is not the default
    assert set(table["state"]) <= {"training", "waiting"} and "waiting" in set(table["state"])
    assert list(table.columns)[:6] == ["yours", "state", "place in line", "progress", "estimate", "started"]
    assert list(table.columns)[-1] == "settings"  # the long text last: what a student looks for fits the screen
    running = table[table["state"] == "training"]
    assert (running["place in line"] == "–").all() and not table.isna().any().any()  # no "None" in a cell
    assert not any("session:" in str(v) for v in table.to_numpy().ravel())  # nobody's identity is shown

    # Bob opens Alice's link: he watches her job but has no Cancel for it; Alice has one.
    bob_watching = open_page("app_pages/mlp.py", query=big, owner=bob.session_state["lab.owner"])
    assert not [b for b in bob_watching.button if b.key == f"cancel.{alices}"]
    assert any("started by someone else" in c.value for c in bob_watching.caption)
    assert [b for b in alice.button if b.key == f"cancel.{alices}"]
    alice.button(key=f"cancel.{alices}").click().run()
    assert service().wait([alices, bobs], timeout=TIMEOUT)
    assert service().job(alices).state == "cancelled" and service().job(bobs).state == "done"
    alice.run()
    assert any(w.value.startswith("Cancelled.") for w in alice.warning)
    assert metric(alice, "Already cached") == "0 of 1"  # nothing of a cancelled job is kept


def test_when_the_student_who_started_a_job_withdraws_the_other_who_asked_keeps_it_with_her_cancel():
    big = to_query_params(make_comparison(RunConfig(model="mlp", epochs=20, train_size=20000, seed=44), "lr", "0.005"))
    alice = open_page("app_pages/mlp.py", query=big)
    alice.button(key="mlp.run").click().run()
    [job_id] = job_ids(alice)
    cleo_id = "session:cleo-44"
    # Cleo pressed Run on the same settings at the same moment (after that her Run says "Training…"):
    (same,) = service().submit(service().job(job_id).configs, cleo_id)
    assert same.id == job_id
    cleo = open_page("app_pages/mlp.py", query=big, owner=cleo_id)
    assert [b for b in cleo.button if b.key == f"cancel.{job_id}"]  # hers too: she has a Cancel
    alice.button(key=f"cancel.{job_id}").click().run()  # alice withdraws; cleo still wants it
    assert service().job(job_id).state in ("queued", "running") and service().job(job_id).watchers == [cleo_id]
    assert not [b for b in alice.button if b.key == f"cancel.{job_id}"]
    cleo.run()
    assert [b for b in cleo.button if b.key == f"cancel.{job_id}"] and not cleo.warning  # still hers, going on
    cleo.button(key=f"cancel.{job_id}").click().run()
    assert service().wait([job_id], timeout=TIMEOUT) and service().job(job_id).state == "cancelled"


def test_a_korean_page_names_every_option_in_korean_and_keeps_its_value():
    at = open_page("app_pages/cnn.py", query={"lang": "ko"})
    shown = {name: at.selectbox(key=f"cnn.cfg.{name}") for name in ("optimizer", "conv_layers", "precision")}
    assert shown["conv_layers"].options == ["첫 합성곱 층만", "합성곱 층 세 개 모두"]
    assert shown["conv_layers"].value == "first" and shown["optimizer"].value == "adam"
    assert shown["precision"].options[0] == "fp32 (32비트)"
    at.switch_page("app_pages/mlp.py").run()
    init = at.selectbox(key="mlp.cfg.init")
    assert init.options[0] == "정규분포 N(0, 1)" and init.value == "normal"
    assert at.selectbox(key="mlp.cfg.act1").options[1] == "시그모이드"


def test_the_home_pages_runs_read_in_korean_and_runs_differing_by_seed_read_apart(monkeypatch):
    from app_pages import shared
    from mnist_core.results import EpochMetrics, RunResult
    service()  # the server's training service exists before the page's cache is replaced below
    epochs = [EpochMetrics(e, 0.5, 0.9, 0.5, 0.9, 1.0, 5000.0) for e in (1, 2, 3)]
    quick = RunConfig(epochs=3, train_size=5000)
    runs = [RunResult(config=config, status=status, epochs=epochs, total_seconds=3.0, steps_per_epoch=50, device="cpu")
            for config, status in ((quick, "ok"), (quick.replace(seed=5), "ok"), (quick.replace(lr=0.1), "diverged"))]

    class Cache:
        def list(self):
            return runs

        def size_bytes(self):
            return 3_000_000

    monkeypatch.setattr(shared, "run_cache", lambda: Cache())
    at = open_page()
    at.selectbox(key="lab.lang").set_value("ko").run()
    table = next(df.value for df in at.dataframe if "실행" in df.value.columns)
    described = table["실행"].tolist()
    assert len(set(described)) == 3 and "시드" not in described[0]
    assert described[0].startswith("MLP ReLU/ReLU, 정규분포 N(0, 1) 초기화 · Adam 학습률 0.001 · 배치 100")
    assert described[1].startswith("MLP ReLU/ReLU, 정규분포 N(0, 1) 초기화 · 시드 5 · ")  # early: a narrow column shows it
    assert not any(re.search(r"\b(ep|images|init|batch)\b", d) for d in described), described
    assert table["상태"].tolist() == ["완료", "완료", "발산"]


def test_switching_pages_keeps_the_settings():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.05, 0.005", seed=12)
    at.switch_page("app_pages/draw.py").run()
    at.switch_page("app_pages/mlp.py").run()
    assert at.text_input(key="mlp.cfg.values").value == "0.05, 0.005"
    assert at.text_input(key="mlp.cfg.seed").value == "12"


def test_switching_pages_keeps_how_the_results_are_viewed():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.01, 0.002", seed=14)
    run_and_wait(at)
    at.toggle(key="mlp.view.log").set_value(False).run()
    at.selectbox(key="mlp.view.inspect").set_value("0.002").run()
    at.switch_page("app_pages/draw.py").run()
    at.switch_page("app_pages/mlp.py").run()
    assert not at.exception
    assert at.toggle(key="mlp.view.log").value is False
    assert at.selectbox(key="mlp.view.inspect").value == "0.002"
    assert "Train loss" in chart_titles(at) and "Train loss (log scale)" not in chart_titles(at)


def test_switching_pages_keeps_the_models_chosen_on_the_draw_page():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.01, 0.002", seed=31)
    run_and_wait(at)
    at.switch_page("app_pages/draw.py").run()
    from app_pages.shared import run_cache
    default = at.multiselect(key="draw.cfg.runs").value  # the best run of each kind (tests/test_draw.py)
    chosen = [r.key for r in run_cache().list() if r.key not in default][:1]  # lr 0.01 and 0.002: one kind, one default
    at.multiselect(key="draw.cfg.runs").set_value(chosen).run()
    at.switch_page("app_pages/mlp.py").run()
    at.switch_page("app_pages/draw.py").run()
    assert not at.exception
    assert sorted(at.multiselect(key="draw.cfg.runs").value) == sorted(chosen)


def test_a_batch_size_comparison_shows_more_steps_for_smaller_batches():
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "10, 500", seed=13, param="batch_size")
    run_and_wait(at)
    timing = timing_table(at).set_index("value")
    assert timing.loc["10", "steps_per_epoch"] == 100 and timing.loc["500", "steps_per_epoch"] == 2
    assert timing.loc["10", "s_per_epoch"] > timing.loc["500", "s_per_epoch"]


@pytest.mark.parametrize("values, errors, runs", [
    ("0.01, -1", ["learning rate = -1** cannot run: The learning rate must be a positive number"], "1"),
    ("abc, -1", ["learning rate = abc** cannot run: The learning rate must be a number, got 'abc'",
                 "learning rate = -1** cannot run: The learning rate must be a positive number"], "0"),
    ("0.01, abc", ["learning rate = abc** cannot run: The learning rate must be a number, got 'abc'"], "1"),
])
def test_each_bad_value_gets_its_own_error_and_the_rest_still_run(values, errors, runs):
    at = open_page("app_pages/mlp.py")
    at.text_input(key="mlp.cfg.values").set_value(values).run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"**{text}" for text in errors] or \
        all(any(text in e.value for e in at.error) for text in errors) and len(at.error) == len(errors)
    assert metric(at, "Runs") == runs
    assert at.button(key="mlp.run").disabled == (runs == "0")


def test_empty_values_show_an_error_and_nothing_crashes():
    at = open_page("app_pages/mlp.py")
    at.text_input(key="mlp.cfg.values").set_value("").run()
    assert not at.exception
    assert any("at least one value" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("vega_lite_chart")


@pytest.mark.parametrize("field, typed, named", [
    ("lr", "abc", "The learning rate must be a number, got 'abc'."),
    ("lr", "1e-300", "A learning rate of 1e-300 is far too small"),
    ("lr", "1e9", "A learning rate of 1000000000.0 is far too large"),
    ("epochs", "0", "The number of epochs must be between 1 and 200, got 0."),
    ("epochs", "2.5", "The epochs must be a whole number, got '2.5'."),
    ("train_size", "-1", "The number of training images must be between 1 and 60,000, got -1."),
    ("seed", "", "The random seed must be a whole number, got ''."),
])
def test_a_setting_that_cannot_be_used_is_named_and_nothing_runs_with_an_old_value(field, typed, named):
    at = open_page("app_pages/mlp.py")
    at.text_input(key=f"mlp.cfg.{field}").set_value(typed).run()
    assert not at.exception
    assert [e.value for e in at.error] == [f"**Check the settings in the sidebar.** {named}"] or \
        len(at.error) == 1 and named in at.error[0].value, [e.value for e in at.error]
    assert not [b for b in at.button if b.key == "mlp.run"]  # no Run: nothing trains with the value shown before
    at.selectbox(key="lab.lang").set_value("ko").run()
    [korean] = at.error
    assert "설정" in korean.value and "must" not in korean.value


def test_every_setting_that_cannot_be_used_gets_its_own_message_and_a_fixed_one_runs_again():
    at = open_page("app_pages/mlp.py")
    at.text_input(key="mlp.cfg.lr").set_value("0").run()
    at.text_input(key="mlp.cfg.epochs").set_value("many").run()
    assert len(at.error) == 2 and "learning rate" in at.error[0].value and "epochs" in at.error[1].value
    at.text_input(key="mlp.cfg.lr").set_value("0.01").run()
    at.text_input(key="mlp.cfg.epochs").set_value("2").run()
    assert not at.error and not at.button(key="mlp.run").disabled
    at.text_input(key="mlp.cfg.batch_size").set_value("5000").run()
    at.text_input(key="mlp.cfg.train_size").set_value("1,000").run()  # a training set smaller than the batch
    assert len(at.error) == 1 and "batch size must be between 1 and the number of training images (1,000)" in \
        at.error[0].value
    at.button(key="mlp.quick").click().run()  # the quick look's size: the batch follows the training set down
    assert not at.error and at.text_input(key="mlp.cfg.batch_size").value == "5000"


def test_when_no_value_to_try_can_run_the_plan_says_there_is_nothing_to_run():
    at = open_page("app_pages/mlp.py")
    at.text_input(key="mlp.cfg.values").set_value("-1, 1e-300, abc").run()
    assert len(at.error) == 3 and metric(at, "Runs") == "0" and metric(at, "Estimated time") == "–"
    assert at.button(key="mlp.run").disabled
    assert any(c.value.startswith("Nothing to run") for c in at.caption)
    assert not any("Everything is cached" in c.value or "instant" in c.value for c in at.caption)


def test_the_preset_banner_shows_only_while_the_sidebar_equals_the_preset():
    at = open_page("app_pages/mlp.py")
    at.button(key="mlp.preset.mlp-lr").click().run()
    assert any("From the seed post" in i.value and "The seed saw lr 0.1" in i.value for i in at.info)
    at.text_input(key="mlp.cfg.epochs").set_value("49").run()
    assert not any("From the seed post" in i.value for i in at.info)


def test_concept_notes_sit_next_to_the_compared_setting():
    at = open_page("app_pages/mlp.py")
    at.selectbox(key="mlp.cfg.param").set_value("batch_size").run()
    labels = [e.label for e in at.expander]
    assert "Concept: Batch size" in labels and "Concept: Learning rate" not in labels


def test_a_shared_link_shows_the_same_comparison_from_the_cache():
    base = RunConfig(model="mlp", epochs=2, train_size=1000, seed=14)
    link = to_query_params(make_comparison(base, "lr", "0.01, 0.001"))
    first = open_page("app_pages/mlp.py", query=link)
    assert first.text_input(key="mlp.cfg.values").value == "0.01, 0.001"
    assert first.text_input(key="mlp.cfg.seed").value == "14"
    run_and_wait(first)

    classmate = open_page("app_pages/mlp.py", query=link)
    assert metric(classmate, "Already cached") == "2 of 2"
    assert timing_table(classmate)["trained"].str.endswith(" ago").all()
    assert len(chart_specs(classmate)) >= 4


def test_a_link_alone_trains_nothing():
    link = to_query_params(make_comparison(RunConfig(model="mlp", epochs=2, train_size=1000, seed=16), "lr", "0.01"))
    at = open_page("app_pages/mlp.py", query=link)
    assert not at.get("vega_lite_chart") and not job_ids(at)
    assert any("not in the cache" in i.value for i in at.info)


def test_a_bad_link_shows_an_error():
    link = {**to_query_params(make_comparison(RunConfig(), "lr", "0.1")), "lr": "fast"}
    at = open_page("app_pages/mlp.py", query=link)
    assert any("This link does not describe a comparison" in e.value and "learning rate must be a number" in e.value
               for e in at.error)


def test_a_link_in_korean_keeps_its_language_across_pages():
    link = {**to_query_params(make_comparison(RunConfig(), "lr", "0.1")), "lang": "ko"}
    at = open_page("app_pages/mlp.py", query=link)
    assert at.selectbox(key="lab.lang").value == "ko" and at.query_params["lang"] == ["ko"] or \
        at.query_params["lang"] == "ko"
    at.switch_page("app_pages/draw.py").run()
    assert at.selectbox(key="lab.lang").value == "ko"
    at.selectbox(key="lab.lang").set_value("en").run()
    assert at.selectbox(key="lab.lang").value == "en" and "lang" not in at.query_params


def test_bf16_is_offered_only_where_native_and_says_why_not(monkeypatch):
    native, _ = bf16_native(resolve_device("auto"))
    at = open_page("app_pages/cnn.py")
    assert at.selectbox(key="cnn.cfg.precision").disabled == (not native)
    # held to AVX2 instructions, oneDNN has no native bf16 on any CPU: the option is off, and a link asking
    # for bf16 is told why (on a GPU the device decides, and bf16 stays on where it is native)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    if resolve_device("auto") != "cpu":
        pytest.skip("training runs on a GPU here; the CPU's bf16 does not matter")
    link = to_query_params(make_comparison(RunConfig(model="cnn", train_size=200), "precision", "fp32, bf16"))
    at = open_page("app_pages/cnn.py", query=link)
    option = at.selectbox(key="cnn.cfg.precision")
    # the reason names what stands in the way: the CPU itself where it has no bf16 instructions at all (an
    # AVX2-only EPYC), else the limit this test set
    reason = "ONEDNN_MAX_CPU_ISA=AVX2" if cpu_has_bf16_instructions() else "this CPU has no native bf16"
    assert option.disabled and "bf16 is off" in option.help and reason in option.help, option.help
    assert any("bf16 precision is off on this machine" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("vega_lite_chart")


def test_cnn_invalid_value_is_an_error_while_the_other_value_runs():
    at = open_page("app_pages/cnn.py")
    at.text_input(key="cnn.cfg.train_size").set_value("200")
    at.text_input(key="cnn.cfg.epochs").set_value("1")
    at.text_input(key="cnn.cfg.padding").set_value("0")
    at.selectbox(key="cnn.cfg.param").set_value("kernel_size").run()
    at.text_input(key="cnn.cfg.values").set_value("3, 28").run()
    assert metric(at, "Runs") == "1"
    [error] = at.error
    assert "filter size = 28" in error.value and "cannot work" in error.value
    flow = next(df.value for df in at.dataframe if "layer" in df.value.columns)
    assert list(flow.columns) == ["layer", "3"] and flow["3"].iloc[1] == "32 × 26 × 26"
    assert any("Output size of a convolution" in m.value for m in at.markdown)  # beside the shape flow

    run_and_wait(at, "cnn")
    assert timing_table(at)["value"].tolist() == ["3"]
    assert len(at.error) == 1  # still only the 28's error
    assert any("Confusion matrix" in json.dumps(s) for s in chart_specs(at))


def test_a_fashion_mnist_comparison_names_its_dataset_and_classes():
    at = open_page("app_pages/mlp.py")
    at.selectbox(key="mlp.cfg.dataset").set_value("fashion-mnist").run()
    set_mlp(at, "0.01", seed=17)
    assert at.title[0].value == "MLP on Fashion-MNIST: compare hyperparameters"
    assert at.query_params["dataset"] in ("fashion-mnist", ["fashion-mnist"])  # part of the link
    run_and_wait(at)
    assert any("of Fashion-MNIST after each epoch" in c.value for c in at.caption)
    matrix = next(s for s in chart_specs(at) if "Confusion matrix" in json.dumps(s))
    assert "Ankle boot" in json.dumps(matrix) and "True class" in json.dumps(matrix)


def digit_png(mnist, index: int) -> bytes:
    from mnist_core.data import denormalize
    image = (denormalize(mnist.test_x[index, 0]).numpy() * 255).astype(np.uint8)
    big = Image.fromarray(255 - image).resize((200, 200))  # black ink on white paper, as a photo would be
    buffer = io.BytesIO()
    big.save(buffer, format="PNG")
    return buffer.getvalue()


def test_draw_page_trains_a_starter_and_reads_an_uploaded_digit(mnist, tmp_path, monkeypatch):
    from app_pages import shared
    monkeypatch.setattr("mnist_core.cache.CACHE_DIR", tmp_path)  # an empty cache: the page offers a starter model
    shared.run_cache.clear()
    shared.job_service.clear()  # a service that stores into that cache
    try:
        at = open_page("app_pages/draw.py")
        assert any("No trained model yet" in i.value for i in at.info)
        at.button(key="draw.train_starter").click().run()
        assert not at.exception
        assert service().wait(job_ids(at), timeout=TIMEOUT)
        at.run()
        assert len(at.multiselect(key="draw.cfg.runs").value) == 1
        assert any("Draw a digit on the black square" in i.value for i in at.info)

        at.file_uploader[0].set_value(("not-a-digit.png", b"hello", "image/png")).run()
        assert any("not an image that can be read" in e.value for e in at.error)

        index = next(i for i in range(100) if int(mnist.test_y[i]) == 7)
        at.file_uploader[0].set_value(("seven.png", digit_png(mnist, index), "image/png")).run()
        assert not at.error
        [reading] = [m for m in at.metric if m.label == "Reads"]
        assert reading.value == "7"
    finally:
        monkeypatch.undo()
        shared.run_cache.clear()
        shared.job_service.clear()


def _fresh_server_resources():
    from app_pages import shared
    for resource in (shared.hosting, shared.run_cache, shared.job_service):
        resource.clear()


def test_hosted_mode_refuses_a_request_over_the_cap_and_trains_nothing(monkeypatch):
    monkeypatch.setenv("MNIST_LAB_HOSTED", "1")
    monkeypatch.setenv("MNIST_LAB_MAX_REQUEST_SECONDS", "1")
    _fresh_server_resources()
    try:
        at = open_page("app_pages/mlp.py")
        set_mlp(at, "0.02, 0.002", seed=18)
        at.text_input(key="mlp.cfg.train_size").set_value("20000")  # 2 runs x 50 epochs x 20,000 images: far over 1 s
        at.text_input(key="mlp.cfg.epochs").set_value("50").run()
        at.button(key="mlp.run").click().run()
        assert not at.exception
        assert any("allows 1 sec per request" in e.value for e in at.error), [e.value for e in at.error]
        assert metric(at, "Already cached") == "0 of 2" and not job_ids(at)
    finally:
        monkeypatch.undo()
        _fresh_server_resources()


def test_a_class_code_is_needed_to_train_but_not_to_watch(monkeypatch):
    monkeypatch.setenv("MNIST_LAB_CLASS_CODE", "maple-42")
    _fresh_server_resources()
    try:
        at = open_page("app_pages/mlp.py")
        set_mlp(at, "0.007", seed=46)
        assert at.button(key="mlp.run").disabled and not at.error
        at.text_input(key="lab.class_code").set_value("maple").run()
        assert at.button(key="mlp.run").disabled
        assert any("not this class's code" in e.value for e in at.sidebar.error)
        at.text_input(key="lab.class_code").set_value("maple-42").run()
        assert not at.button(key="mlp.run").disabled
        with pytest.raises(RequestRefused, match="enter the class code"):  # the service checks it, not just the button
            service().submit([RunConfig(model="mlp", epochs=1, train_size=500, seed=46)], owner="outsider")
        run_and_wait(at)  # the code she typed goes with her request
        assert not at.error and timing_table(at)["value"].tolist() == ["0.007"]
    finally:
        monkeypatch.undo()
        _fresh_server_resources()


def test_a_queued_job_its_student_watches_is_not_dropped_as_abandoned(monkeypatch):
    monkeypatch.setenv("MNIST_LAB_ABANDONED_AFTER_SECONDS", "3")
    _fresh_server_resources()
    (blocker,) = service().submit([RunConfig(model="mlp", epochs=200, train_size=10000, batch_size=10, seed=47)],
                                  owner="carl")  # holds the one slot
    try:
        at = open_page("app_pages/mlp.py")
        set_mlp(at, "0.008", seed=47)
        at.button(key="mlp.run").click().run()
        [job_id] = job_ids(at)
        while time.time() - service().job(job_id).submitted < 4:  # she watches it wait: her page refreshes
            assert service().job(job_id).state == "queued"
            at.run()
        assert service().cancel(blocker.id, "carl")
        assert service().wait([job_id], timeout=TIMEOUT) and service().job(job_id).state == "done"
    finally:
        service().cancel(blocker.id, "carl")
        monkeypatch.undo()
        _fresh_server_resources()


def test_after_a_server_restart_the_page_forgets_its_jobs_and_says_the_runs_are_not_cached():
    from app_pages import shared
    at = open_page("app_pages/mlp.py")
    set_mlp(at, "0.004", seed=43)
    at.text_input(key="mlp.cfg.train_size").set_value("30000")
    at.text_input(key="mlp.cfg.epochs").set_value("30").run()  # long enough to be still training below
    at.button(key="mlp.run").click().run()
    [job_id] = job_ids(at)
    before = service()
    shared.job_service.clear()  # the server restarted: a new service that knows no jobs
    try:
        at.run()
        assert not at.exception and not at.error
        assert not job_ids(at)  # the unknown id is dropped without a word
        assert not [b for b in at.button if b.key == f"cancel.{job_id}"]
        assert any("not in the cache" in i.value for i in at.info)
        assert not at.button(key="mlp.run").disabled  # Run trains it again
    finally:
        before.cancel(job_id, at.session_state["lab.owner"])
        before.wait([job_id], timeout=TIMEOUT)
