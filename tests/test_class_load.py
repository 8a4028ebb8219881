"""bench/class_load.py, run tiny: three light clients (Streamlit's websocket protocol) and one Chromium page
against a real `streamlit run app.py`, each student's whole script once, with tiny runs. Its invariants,
not its timings: every Run ends done, nothing is lost or left spinning, every student saw feedback, and
the results carry the figures the issue asks for. The queue and throughput arithmetic is checked on
made-up jobs."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import class_load  # noqa: E402
from conftest import user_environ  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def test_a_tiny_class_loses_nothing_and_records_every_figure(tmp_path, monkeypatch):
    for variable in set(os.environ) - set(user_environ()):  # the server and the alone runs train as the app does
        monkeypatch.delenv(variable)
    browsers = 1 if Path(CHROMIUM).exists() else 0  # without Chromium the light clients still run
    out = tmp_path / "class_load.json"
    link = dict(class_load.LINK)
    try:
        class_load.main(["--students", "4", "--browsers", str(browsers), "--minutes", "2", "--think", "0.1",
                         "--alone", "1", "--epochs", "1", "--train-size", "500", "--warm-up-training",
                         "--watchers", "3", "--watch-size", "1000",
                         "--out", str(out)])
    finally:
        class_load.LINK.update(link)
        class_load.WATCH_SIZE["train_size"] = "20000"
    results = json.loads(out.read_text())
    assert {"date", "machine", "alone", "classes", "headline"} <= set(results)
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu_capability"]
    c = results["classes"][-1]
    assert c["students"] == 4 and c["browsers"] == browsers

    lost = c["nothing_lost"]
    assert lost["outcomes"] == {"done": 4}, c["per_student"]
    for field in ("lost_or_error", "not_done_by_the_cap", "spinner_left", "exception_boxes",
                  "done_but_runs_not_in_cache"):
        assert lost[field] == [], (field, c["per_student"])
    assert lost["runs_trained"] == 8  # each student's own two runs, trained once
    assert results["headline"]["nothing_lost"] is True

    for student in c["per_student"]:
        assert any(name == "run" for name, _ in student["feedback"]), student
        assert len(student["page_loads"]) == 6, student  # home, link, home, back, draw, classmate's link
        assert all(seconds >= 0 for _, seconds in student["page_loads"] + student["feedback"])
    light = c["light"]
    assert light["students"] == 4 - browsers and light["run_click_feedback_s"]["n"] == 4 - browsers
    assert 0 < light["page_load_s"]["p50"] <= light["page_load_s"]["p95"]
    assert c["queue"]["first_job_wait_s"]["n"] == 4 and c["queue"]["first_job_wait_fcfs_simulated_s"]["n"] == 4
    assert len(c["jobs"]) == 8
    assert c["server"]["peak_rss_mb_sampled"] > 100 and c["server"]["cpu_s"] > 0
    assert c["load_generator"]["own_cpu_s"] > 0
    assert c["throughput"]["runs_compared"] == 2 and c["throughput"]["ratio"] > 0  # student 0's runs, alone too
    watched = c["watched"]
    assert watched["watchers"] == 3 and not watched["watcher_errors"], watched
    assert watched["throughput"]["runs_compared"] == 1 and watched["throughput"]["ratio"] > 0


def test_queue_figures_against_first_come_first_served():
    """Students 0, 1, 2 click at 0, 1, 2 s; each has two 10 s jobs. Fair share ran 0, 1, 2, then their
    second jobs; first come, first served would have run both of 0's, then 1's, then 2's."""
    students = [class_load.Student(i, "light") for i in range(3)]
    for i, st in enumerate(students):
        st.run_clicked = 100.0 + i
    starts = {(0, 0): 100, (1, 0): 110, (2, 0): 120, (0, 1): 130, (1, 1): 140, (2, 1): 150}
    runs = [{"seed": class_load.SEED0 + i, "lr": j, "start": s, "end": s + 10, "seconds": 10.0}
            for (i, j), s in starts.items()]
    q = class_load.queue_figures(students, runs)
    assert q["per_student_wait_s"] == {"0": 0.0, "1": 9.0, "2": 18.0}
    assert q["first_job_wait_fcfs_simulated_s"]["max"] == 38.0  # behind 0's two jobs and 1's two
    assert q["most_jobs_of_one_classmate_waited_behind"] == 1


def test_throughput_compares_the_same_runs():
    alone = [{"seed": 1, "lr": 0.1, "images_per_second": 1000.0}, {"seed": 1, "lr": 0.1, "images_per_second": 3000.0}]
    loaded = [{"seed": 1, "lr": 0.1, "images_per_second": 1000.0}, {"seed": 2, "lr": 0.1, "images_per_second": 1.0}]
    assert class_load.throughput(alone, loaded) == {"runs_compared": 1, "alone_images_per_second_median": 2000,
                                                   "during_load_median": 1000, "ratio": 0.5}
