"""Concept notes: a few sentences on each idea a student meets in the lab, next to where it matters.

The notes themselves are prose, in notes.md beside this file: each is English text whose Korean is in the
catalog, like every other text (`python -m mnist_core.i18n update` reads notes.md too). A note may end with a sentence that quotes the student's own runs: `from_runs` picks the numbers
out of a comparison's final results, so the note says "in your comparison, lr 0.001 reached 97.1%"
rather than a number written for a particular outcome.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .i18n import N_, gettext


NOTES_FILE = Path(__file__).with_name("notes.md")


@dataclass(frozen=True)
class Note:
    title: str
    body: str


def read_notes(path: Path = NOTES_FILE) -> dict[str, Note]:
    """The notes of notes.md: a line `## key: Title`, then the text (line breaks are spaces), in file order."""
    notes: dict[str, tuple[str, list[str]]] = {}
    key = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            key, title = line[3:].split(": ", 1)
            notes[key] = (title, [])
        elif key is not None and line.strip():
            notes[key][1].append(line.strip())
    return {key: Note(title, " ".join(lines)) for key, (title, lines) in notes.items()}


NOTES = read_notes()

# The sentence that ties a note to the student's own comparison.
FROM_RUNS = N_("In your comparison, {best} reached {best_acc} test accuracy and {worst} reached {worst_acc}, "
               "after {epochs} epoch(s).")


def note(topic: str, lang: str, finals: pd.DataFrame | None = None) -> tuple[str, str]:
    """(title, text) of a note in `lang`, ending with the student's own numbers when `finals` has two runs."""
    n = NOTES[topic]
    body = gettext(n.body, lang)
    if finals is not None and (numbers := from_runs(finals)) is not None:
        body += " " + gettext(FROM_RUNS, lang, **numbers)
    return gettext(n.title, lang), body


def from_runs(finals: pd.DataFrame) -> dict[str, str] | None:
    """The best and the worst final test accuracy of a comparison (compare.final_frame's columns), or None."""
    done = finals.dropna(subset=["test_acc"])
    if len(done) < 2:
        return None
    best, worst = done.loc[done["test_acc"].idxmax()], done.loc[done["test_acc"].idxmin()]
    return {"best": str(best["value"]), "best_acc": f"{100 * best['test_acc']:.1f}%",
            "worst": str(worst["value"]), "worst_acc": f"{100 * worst['test_acc']:.1f}%",
            "epochs": str(int(done["epochs"].max()))}


# Which notes belong next to which compared setting.
FOR_PARAM = {"lr": ("lr",), "batch_size": ("batch_size",), "epochs": ("epochs",), "activations": ("activations",),
             "init": ("init", "softmax"), "stride": ("stride_filter", "conv_size"),
             "kernel_size": ("stride_filter", "conv_size"), "padding": ("conv_size",), "keep_prob": ("dropout",)}
