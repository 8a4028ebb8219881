"""The study end to end at a tiny size (300 training images, 2 epochs, 100 test images): six sections and the
learning rate × batch size grid, observations from the runs, JSON, a self-contained HTML file that shows its charts
and heatmaps in Chromium with the network blocked, and Markdown whose PNGs exist. Plus `python -m mnist_core report`
as a subprocess."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import train_through_the_service
from mnist_core.cache import RunCache
from mnist_core.report import results_table, to_html, to_json, write_markdown
from mnist_core.study import ORDER, TINY, build_study, legend_title, study_configs
from mnist_core.study_grid import NAME as GRID, build_grid_section, grid_configs

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def study_cache(tmp_path_factory):
    return RunCache(tmp_path_factory.mktemp("study") / "runs")


@pytest.fixture(scope="module")
def trained(mnist, study_cache):
    train_through_the_service([config for _, config in study_configs(TINY)], mnist, study_cache)
    return build_study(TINY, mnist, study_cache)


@pytest.fixture(scope="module")
def grid(mnist, study_cache):
    """The tiny grid section (2 learning rates × 2 batch sizes, 1 epoch), trained: what `report` adds to the six."""
    named = grid_configs(TINY)
    assert [name for name, _ in named] == ["mlp-lr-batch: lr 0.01, batch 30", "mlp-lr-batch: lr 0.01, batch 300",
                                           "mlp-lr-batch: lr 0.001, batch 30", "mlp-lr-batch: lr 0.001, batch 300"]
    train_through_the_service([config for _, config in named], mnist, study_cache)
    return build_grid_section(TINY, mnist, study_cache)


def test_without_training_every_section_says_what_is_missing_and_what_it_costs(mnist, tmp_path):
    sections = build_study(TINY, mnist, RunCache(tmp_path / "empty"))
    assert [s.preset.name for s in sections] == list(ORDER)
    for s in sections:
        assert s.missing == [e.label for e in s.items + s.repeats]
        assert s.estimate is not None and s.estimate.trainings >= 1
        if s.preset.base.model == "mlp":
            assert s.observations == []  # nothing to observe without runs
        else:  # the CNN's shape flow needs no run
            assert s.observations[0].startswith("Values into the classifier (flatten)")
    assert sections[0].missing[-1] == "lr=0.1 seed 1"  # the chaotic value's repeat


def test_what_missing_runs_cost_reads_as_a_duration_in_the_students_language(mnist, tmp_path):
    import dataclasses
    from mnist_core.study import build_section, missing_text
    section = build_section("mlp-lr", TINY, mnist, RunCache(tmp_path / "empty"))
    section.estimate = dataclasses.replace(section.estimate, seconds=125.0)  # as if measured on this machine
    assert missing_text(section, "en").endswith("Training them would take about 2 min 5 sec.")
    korean = missing_text(section, "ko")
    assert "약 2분 5초" in korean and not re.search(r"\d ?(min|sec|s)\b", korean), korean


def test_the_tiny_study_trains_and_observes_every_section(trained, study_cache, mnist):
    assert [s.preset.name for s in trained] == list(ORDER)
    for s in trained:
        assert s.missing == [] and s.estimate is None
        assert s.observations, s.preset.name
        assert s.scaling.startswith("Scaled (tiny): training images 60,000 → 300")
    by_name = {s.preset.name: s for s in trained}
    lr = by_name["mlp-lr"].observations
    assert any(o.startswith("learning rate 0.1 with 2 seeds ended at test accuracy") for o in lr)
    assert any(o.startswith("The seed reports lr 0.1 accuracy 0.10; we measure") for o in lr)
    assert any(o.startswith("Measured time per step") for o in by_name["mlp-batch"].observations)
    assert any("Values into the classifier (flatten): stride 1: 2,048 (128×4×4); stride 5: 128 (128×1×1)." == o
               for o in by_name["cnn-stride"].observations)
    assert not any(o.startswith("The seed reports") for o in by_name["cnn-stride"].observations)  # not a result
    assert any(o.startswith("Like the seed's CNN (4×4×128 = 2,048 values") for o in by_name["cnn-stride"].observations)
    # the reason for lr 0.1 is the one its repeats show; the seed's own timings follow our verdict on them
    from mnist_core import observations as obs
    verdict = obs.repeat_verdict(by_name["mlp-lr"].repeat_frame())
    disagree = [o for o in lr if "does not hold here" in o]
    assert all(o.endswith(obs.gettext(obs.REASONS[verdict], "en")) for o in disagree)
    batch = by_name["mlp-batch"].observations
    held = any("holds here" in o for o in batch)
    assert not (held and any("do not show it either" in o for o in batch))
    for s in trained:  # the tables the page shows: one column per name (Streamlit refuses duplicates)
        columns = list(results_table(s).columns)
        assert len(columns) == len(set(columns)) and columns[0] == legend_title(s.param), columns
    # cached now: building again trains nothing and finds the same runs
    again = build_study(TINY, mnist, study_cache)
    assert [s.to_json()["runs"] for s in again] == [s.to_json()["runs"] for s in trained]


def test_korean_observations_use_the_seeds_vocabulary(mnist, study_cache, trained):
    sections = build_study(TINY, mnist, study_cache, lang="ko")
    text = " ".join(o for s in sections for o in s.observations)
    for word in ("학습률", "배치 크기", "스트라이드", "필터 크기", "정확도", "에폭"):
        assert word in text
    assert sections[0].title == "MLP: 학습률" and sections[0].scaling.startswith("축소 설정 (tiny)")


def test_json_has_one_object_per_section(trained, grid, study_cache):
    out = json.loads(json.dumps(to_json(trained, grid=grid)))
    assert [o["preset"] for o in out] == [*ORDER, GRID]
    for o in out:  # the grid's too
        assert {"experiment", "preset", "size", "values", "runs", "seed", "observations", "missing",
                "estimated_seconds"} <= set(o)
        assert o["size"] == "tiny" and o["missing"] == [] and o["observations"] and o["estimated_seconds"] is None
        assert all(study_cache.get(key) is not None for key in o["runs"])
    grid_json = out.pop()
    assert grid_json["values"] == ["0.01", "0.001"] and grid_json["values2"] == ["30", "300"]
    assert len(grid_json["runs"]) == 4 and grid_json["seed"]["crosses"] == ["mlp-lr", "mlp-batch"]
    assert [(c["lr"], c["batch_size"]) for c in grid_json["cells"]] == [(0.01, 30), (0.01, 300), (0.001, 30),
                                                                       (0.001, 300)]
    assert all(c["status"] in ("ok", "diverged") and c["epochs"] == 1 and c["test_acc"] is not None
               for c in grid_json["cells"])
    assert grid_json["observations"][0].startswith("Best learning rate per batch size in your grid: batch 30: lr ")
    assert grid_json["note"]["title"] == "Learning rate and batch size"
    for o in out:
        assert o["seed"]["quotes"] and o["seed"]["lines"][0] < o["seed"]["lines"][1]
    assert out[2]["values"] == ["10", "100", "300"] and out[2]["seed"]["numbers"]["times_s"]["10"] == 953


def test_markdown_references_png_files_that_exist(trained, grid, tmp_path):
    path = tmp_path / "study.md"
    pngs = write_markdown(trained, path, grid=grid)
    text = path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(pngs) >= 6 * 4 + 2
    for link in links:
        png = tmp_path / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    assert text.count("\n## ") == 7 and "\n## MLP: learning rate × batch size\n" in text
    assert {f"study_files/{GRID}-heatmap_test_acc.png", f"study_files/{GRID}-heatmap_s_per_epoch.png"} <= set(links)
    assert "### Concept: Learning rate and batch size" in text and grid.observations[0] in text


@pytest.fixture(scope="module")
def html_file(trained, grid, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "study.html"
    path.write_text(to_html(trained, grid=grid), encoding="utf-8")
    return path


def test_html_names_the_post_and_its_settings_in_words(html_file, trained, grid, mnist, study_cache):
    text = html_file.read_text()
    assert "shared/seed" not in text and ".txt" not in text  # no developer's path
    assert "“[PyTorch 실습] MLP, CNN” by Hyungseop Lee, section “Hyper Parameter - Learning Rate” (lines 51–86)" in text
    assert "Its setting: epochs 50 · batch size 100 · learning rate compared: 0.1, 0.01, 0.001, 0.0001" in text
    assert "{&quot;" not in text and '{"' not in text  # no raw JSON
    assert "its learning-rate experiment ran lr 0.1, 0.01, 0.001, 0.0001 at batch 100 (lines 51–86)" in text
    korean = to_html(trained[3:5], "ko", grid=build_grid_section(TINY, mnist, study_cache, lang="ko"))
    assert "비교한 활성화 함수: sigmoid/sigmoid, sigmoid/relu" in korean
    assert "분류기에 들어가는 값 4×4×128" in korean and "작성자 Hyungseop Lee" in korean
    grid_part = korean[korean.index(f"<section id='{GRID}'>"):]  # the grid's section, with its runs, in Korean
    assert "<h2>MLP: 학습률 × 배치 크기</h2>" in grid_part and "<h3>개념: 학습률과 배치 크기</h3>" in grid_part
    assert "<li>여러분의 그리드에서 배치 크기별 가장 좋은 학습률: 배치 30: lr " in grid_part
    assert grid_part.count("data:image/svg+xml;base64,") == 2 and "class='missing'" not in grid_part


def test_html_is_self_contained(html_file):
    text = html_file.read_text()
    assert text.count("<section") == 7
    assert "<script" not in text and not re.search(r"(src|href)=['\"]https?:", text)
    assert text.count("data:image/svg+xml;base64,") >= 6 * 4 + 2
    grid_part = text[text.index(f"<section id='{GRID}'>"):]  # last: its heatmaps, concept note and observations
    assert re.findall(r"<img class='chart' alt='([^']+)' src='data:image/svg\+xml;base64,", grid_part) == \
        ["heatmap_test_acc", "heatmap_s_per_epoch"]
    assert "<h3>Concept: Learning rate and batch size</h3>" in grid_part and "class='missing'" not in grid_part
    assert "<li>The best pair is lr " in grid_part


def test_html_shows_its_charts_in_chromium_with_the_network_blocked(html_file):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    blocked = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def only_files(route):
                if route.request.url.startswith(("file:", "data:")):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()
            page.route("**/*", only_files)
            page.goto(html_file.as_uri())
            page.wait_for_load_state("load")
            sizes = page.eval_on_selector_all(
                "img.chart", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width, "
                             "i.getBoundingClientRect().height])")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "study-tiny.png"), full_page=False)
        finally:
            browser.close()
    assert len(sizes) >= 6 * 4 + 2  # the grid's two heatmaps too
    assert all(complete and natural > 0 and w > 100 and h > 100 for complete, natural, w, h in sizes), sizes
    assert blocked == []  # it asked for nothing over the network


def test_report_command_without_training_lists_what_is_missing(tmp_path):
    env = {**os.environ, "MNIST_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    html = tmp_path / "study.html"  # nothing cached: its only charts are the grid's two heatmaps, all grey
    done = subprocess.run([sys.executable, "-m", "mnist_core", "report", "--size", "quick", "--no-train", "--json",
                           "--lang", "ko", "--out", str(html)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    sections = json.loads(done.stdout)
    assert [s["preset"] for s in sections] == [*ORDER, GRID]
    grid = sections.pop()  # the 4 × 4 grid, none of it trained: its cells and what they would cost
    assert grid["experiment"] == "MLP: 학습률 × 배치 크기" and grid["runs"] == [] and grid["observations"] == []
    assert grid["missing"][:5] == ["0.1 × 10", "0.1 × 30", "0.1 × 100", "0.1 × 1000", "0.01 × 10"]
    assert len(grid["missing"]) == 16 and grid["estimated_seconds"] > 0
    assert grid["scaling"].startswith("축소 설정 (빠르게): 학습 이미지 60,000 → 10,000")
    text = html.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html><html lang='ko'>") and text.count("<section") == 7
    assert "<script" not in text and not re.search(r"(src|href)=['\"]https?:", text)
    grid_part = text[text.index(f"<section id='{GRID}'>"):]
    assert "아직 학습하지 않음: 그리드의 실행 16개 중 16개." in grid_part and "<h3>개념: 학습률과 배치 크기</h3>" in grid_part
    assert grid_part.count("data:image/svg+xml;base64,") == text.count("data:image/svg+xml;base64,") == 2
    assert sections[0]["missing"] == ["0.1", "0.01", "0.001", "0.0001", "lr=0.1 seed 1", "lr=0.1 seed 2"]
    assert sections[0]["scaling"].startswith("축소 설정 (빠르게): 학습 이미지 60,000 → 10,000")
    assert sections[0]["runs"] == [] and sections[0]["observations"] == []
    assert sections[4]["observations"][0] == "분류기(flatten)로 들어가는 값의 수: 스트라이드 1: 2,048개 (128×4×4); 스트라이드 5: 128개 (128×1×1)."
    bad = subprocess.run([sys.executable, "-m", "mnist_core", "report", "--out", "study.pdf", "--no-train"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --out must end in .html or .md"


def test_report_trains_what_is_missing_through_the_job_service(tmp_path):
    env = {**os.environ, "MNIST_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "mnist_core", "report", "--size", "tiny", "--json"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    sections = json.loads(done.stdout)
    assert [s["preset"] for s in sections] == [*ORDER, GRID] and all(s["missing"] == [] for s in sections)
    assert all(s["observations"] for s in sections)
    assert sections[-1]["observations"][0].startswith("Best learning rate per batch size in your grid: batch 30: lr ")
    # Jobs of the service, like the Study page's: each run trained records the worker that trained it.
    cache = RunCache(tmp_path / "runs")
    runs = cache.list()
    configs = {config for _, config in study_configs(TINY) + grid_configs(TINY)}
    assert len(runs) >= len(configs) - 1  # (an epochs snapshot needs no job)
    assert {run.machine.get("worker") for run in runs if run.config.epochs == 2 or run.config.model == "cnn"} == {"local"}
    assert len(sections[-1]["runs"]) == 4 and {cache.get(key).machine.get("worker") for key in sections[-1]["runs"]} \
        == {"local"}  # the grid's runs were trained by the same request's jobs
