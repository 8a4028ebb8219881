"""Concept notes: a few sentences on each idea a student meets in the lab, next to where it matters.

Each note is English text marked for translation (its Korean is in the catalog, like every other
text), and may end with a sentence that quotes the student's own runs: `from_runs` picks the numbers
out of a comparison's final results, so the note says "in your comparison, lr 0.001 reached 97.1%"
rather than a number written for a particular outcome.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .i18n import N_, gettext


@dataclass(frozen=True)
class Note:
    title: str
    body: str


NOTES = {
    "lr": Note(N_("Learning rate"), N_(
        "Each step moves every weight against its gradient, scaled by the learning rate. Too small, and the loss "
        "falls slowly; too large, and a step jumps past the valley and lands somewhere worse. With the seed's "
        "normal(0, 1) init the first losses are huge, so at 0.1 Adam's steps knock many ReLU units dead and the "
        "network can get stuck near chance (10%): the seed saw exactly that. Small values such as 0.001 are safe "
        "but need more epochs.")),
    "batch_size": Note(N_("Batch size"), N_(
        "An epoch shows every training image once, in steps of one batch. A batch of 10 means 6,000 steps per "
        "epoch on 60,000 images, a batch of 1,000 only 60. Each step has a fixed cost (Python, launching "
        "kernels, the optimizer), so small batches take longer per epoch; their gradients are noisier, which "
        "can help or hurt. Compare steps per epoch and seconds per epoch in the timing table.")),
    "epochs": Note(N_("Epochs and overfitting"), N_(
        "One epoch is one pass over the training images. With more epochs the training loss keeps falling, "
        "because the network memorises its training images. The test loss is what matters: when it stops "
        "falling and starts to rise while the training loss still falls, the network is overfitting, and more "
        "epochs make it worse, not better.")),
    "activations": Note(N_("Activation functions"), N_(
        "Without an activation between them, stacked layers are one linear map. Sigmoid squashes every input "
        "into 0 to 1: far from zero it is flat, its gradient nearly 0 (it saturates), so saturated units learn "
        "slowly. ReLU keeps positive inputs as they are, so its gradient does not vanish, but a unit that is "
        "never positive never learns again (a dead unit).")),
    "init": Note(N_("Weight initialisation"), N_(
        "The seed draws every weight from normal(0, 1). With 784 inputs, each first-layer unit then sums "
        "hundreds of terms, so the outputs are in the hundreds and the first loss is huge. Softmax turns such "
        "outputs into probabilities of 0 and 1, so every prediction reads \"100% sure\", right or wrong. Xavier or "
        "Kaiming init scale the weights by the number of inputs and start the loss near 2.3 (chance).")),
    "softmax": Note(N_("Softmax and cross-entropy"), N_(
        "The network's ten outputs are scores. Softmax turns them into probabilities that add up to 1; "
        "cross-entropy is minus the log of the probability given to the right class: 2.30 when all ten get 10% "
        "(the seed's stuck loss), near 0 when the right class gets almost 100%. A confident wrong answer costs a "
        "lot, which is why a few mistakes can raise the test loss while the accuracy stays the same.")),
    "conv_size": Note(N_("Output size of a convolution"), N_(
        "A filter of size F slides over an input of width W with stride S after P zeros of padding on each "
        "side. It fits (W - F + 2P) / S + 1 times across (rounded down), which is the output's width. With W = 28, "
        "F = 3, P = 1, S = 1 the image stays 28x28; with S = 5 it shrinks to 6x6. The shape flow table applies "
        "this formula layer by layer.")),
    "stride_filter": Note(N_("Stride and filter size"), N_(
        "The stride is how far the filter moves between two positions: stride 5 looks at every fifth position, "
        "so the first layer's maps are 25 times smaller and the classifier gets 128 values instead of 2,048. "
        "The filter size is how much of the image one output sees: a 10x10 filter sees a whole stroke at once "
        "but has 11 times as many weights as a 3x3 one, and the image shrinks more.")),
    "dropout": Note(N_("Dropout"), N_(
        "During training, dropout switches off each unit of the 625-unit layer with probability 1 - keep "
        "(keep 0.5: half of them, chosen anew at every step), so no unit can rely on another. At test time all "
        "units are on. It fights overfitting: the training accuracy is lower than without it, the test accuracy "
        "often higher.")),
    "lr_batch": Note(N_("Learning rate and batch size"), N_(
        "A step follows the gradient averaged over its batch. A batch of 1,000 averages away most of the noise of "
        "single images, a batch of 10 keeps much of it, so a bigger batch can take a bigger step without being "
        "thrown off course. It also has to: in the same number of epochs it takes fewer steps (60 per epoch on "
        "60,000 images at batch 1,000, 6,000 at batch 10), so each step must go further. With plain SGD the rule of "
        "thumb is to scale the learning rate with the batch size; Adam divides each weight's step by its own "
        "gradient's size, so its best learning rate moves less. A grid of both shows it: read the best learning "
        "rate at each batch size.")),
}

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
