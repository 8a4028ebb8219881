"""Concept notes: every note reads in both languages, and the sentence about the student's runs quotes them."""
import math

import pandas as pd
import pytest

from mnist_core.notes import FOR_PARAM, NOTES, from_runs, note


def finals(rows):
    return pd.DataFrame(rows, columns=["value", "test_acc", "epochs"])


@pytest.mark.parametrize("topic", sorted(NOTES))
def test_every_note_reads_in_english_and_korean(topic):
    title_en, body_en = note(topic, "en")
    title_ko, body_ko = note(topic, "ko")
    assert title_en and body_en.count(".") >= 2  # a few sentences
    assert title_ko != title_en and body_ko != body_en


def test_the_note_quotes_the_best_and_worst_run_of_the_comparison():
    table = finals([("0.1", 0.113, 3), ("0.001", 0.962, 3), ("0.01", 0.874, 3)])
    assert from_runs(table) == {"best": "0.001", "best_acc": "96.2%", "worst": "0.1", "worst_acc": "11.3%",
                                "epochs": "3"}
    _, body = note("lr", "en", table)
    assert body.endswith("In your comparison, 0.001 reached 96.2% test accuracy and 0.1 reached 11.3%, after 3 epoch(s).")
    assert "96.2%" in note("lr", "ko", table)[1] and "11.3%" in note("lr", "ko", table)[1]


def test_no_runs_sentence_without_two_finished_runs():
    one = finals([("0.1", math.nan, 0), ("0.001", 0.9, 2)])  # a run that diverged in its first epoch has no accuracy
    assert from_runs(one) is None
    assert note("lr", "en", one) == note("lr", "en")


def test_every_compared_setting_points_at_existing_notes():
    assert all(topic in NOTES for topics in FOR_PARAM.values() for topic in topics)
