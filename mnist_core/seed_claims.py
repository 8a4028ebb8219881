"""What the seed blog post (`../shared/seed/mlp-cnn-blog.txt`) set up and concluded, as data.

One entry per experiment (keyed by its preset): the settings the post states, the numbers it
reports, and its conclusions as short Korean quotes with an English paraphrase and the line of the
post they come from. The study (study.py) shows these next to our runs, and the observations
(observations.py) check the numeric claims against them. The post's pictures did not survive, so
its stride, filter-size and activation sections are headings with nothing stated under them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SOURCE = "../shared/seed/mlp-cnn-blog.txt"  # where this project keeps the post (for developers; never shown)
TITLE, AUTHOR = "[PyTorch 실습] MLP, CNN", "Hyungseop Lee"  # the post as its readers know it (2023-04-06)


@dataclass(frozen=True)
class Quote:
    line: int          # line in mlp-cnn-blog.txt
    korean: str        # the post's words, shortened
    english: str       # our paraphrase


@dataclass(frozen=True)
class SeedExperiment:
    preset: str
    section: str                      # the post's heading
    lines: tuple[int, int]            # where the section is in the file
    setting: dict[str, Any]           # what the post states (values it does not state are absent)
    numbers: dict[str, Any] = field(default_factory=dict)  # numeric results it reports
    quotes: tuple[Quote, ...] = ()
    silent: bool = False              # the post states no result here (its pictures are lost)

    def to_json(self) -> dict[str, Any]:
        return {"section": self.section, "lines": list(self.lines), "setting": self.setting, "numbers": self.numbers,
                "quotes": [{"line": q.line, "ko": q.korean, "en": q.english} for q in self.quotes],
                "states_results": not self.silent}


SEED: dict[str, SeedExperiment] = {e.preset: e for e in [
    SeedExperiment(
        "mlp-lr", "Hyper Parameter - Learning Rate", (51, 86),
        {"epochs": 50, "batch_size": 100, "values": [0.1, 0.01, 0.001, 0.0001]},
        {"lr_0.1_accuracy": 0.10, "lr_0.1_loss": 2.30},
        (Quote(53, "training_epochs = 50, batch_size = 100로 똑같은 조건에서 Learning Rate만 바꿔서",
               "50 epochs and batch 100 for every run; only the learning rate changes"),
         Quote(59, "accuracy = 0.10이 나왔었다", "lr 0.1 ended at accuracy 0.10"),
         Quote(62, "Global Minimum에 가지 못하고 발산하여 Local Minimum(2.30x)에 수렴하여 못 빠져나오는 것 같다",
               "lr 0.1 diverged and got stuck at a loss of 2.30, a 'local minimum'"),
         Quote(69, "Loss값이 빠르게 0으로 수렴하는 것을 알 수 있고", "lr 0.01 and 0.001: the loss falls quickly toward 0"),
         Quote(76, "좀 더 부드럽게 Loss값이 줄어드는 것을 알 수 있다", "0.001 lowers the loss more smoothly than 0.01"),
         Quote(82, "LR = 0.01, 0.001보다 학습이 천천히 진행된 것을 알 수 있다",
               "0.0001 learns more slowly than 0.01 and 0.001, but not wrongly"))),
    SeedExperiment(
        "mlp-epochs", "Hyper Parameter - Epoch", (88, 119),
        {"lr": 0.0001, "batch_size": 100, "values": [5, 30, 50, 100]},
        {"train_acc_gains": [0.0918, 0.009, 0.0054]},
        (Quote(90, "learning_rate = 0.0001, batch_size = 100로 똑같은 조건에서 total_epochs만 바꿔서",
               "lr 0.0001 and batch 100 for every run; only the number of epochs changes"),
         Quote(113, "Train Set에 대해서 Loss값이 0에 수렴해진다", "more epochs drive the training loss toward 0"),
         Quote(114, "Accuracy가 점점 증가하긴 하는데, 증가하는 크기가 점점 감소한다",
               "accuracy keeps rising, by less each time (+0.0918, +0.009, +0.0054, ...)"),
         Quote(118, "Epoch 수를 매우 많이 늘린다면 Accuracy 증가가 아니라 감소가 되어 Accuracy가 작아질 수 있다",
               "with very many epochs accuracy could fall instead (overfitting)"),
         Quote(119, "Epoch이 클수록 학습 시간이 오래 걸린다", "more epochs take longer"))),
    SeedExperiment(
        "mlp-batch", "Hyper Parameter - Batch Size", (121, 176),
        {"values": [10, 30, 100, 1000], "train_images": 60_000, "device": "GPU"},
        {"times_s": {10: 15 * 60 + 53, 30: 8 * 60 + 22, 100: 5 * 60 + 26, 1000: 5 * 60 + 26},
         "steps_per_epoch": {10: 6000, 30: 2000, 100: 600, 1000: 60}},
        (Quote(125, "batch size를 10로 했을 때, 15분 53초", "batch 10 took 15 min 53 s (30: 8:22, 100 and 1000: 5:26)"),
         Quote(127, "1 Epoch에 6,000번 반복을 수행한다", "batch 10 means 6,000 steps per epoch on 60,000 images"),
         Quote(153, "batch size = 1이거나 batch size = 1000이거나 한 번의 학습을 수행하는 데는 똑같은 시간이 걸린다",
               "on a GPU one step takes the same time whatever the batch size"),
         Quote(156, "따라서 Batch Size가 클수록 빠르다", "so bigger batches are faster"),
         Quote(166, "Test Set에 대한 Generalization이 떨어지게 된다",
               "but a very large batch generalises worse to the test set"),
         Quote(173, "학습이 더디게 진행된다", "and a very small batch follows outliers, so learning is slower"))),
    SeedExperiment(
        "mlp-activation", "Hyper Parameter - Activation Function", (178, 187),
        {"values": ["sigmoid,sigmoid", "sigmoid,relu", "relu,sigmoid", "relu,relu"]},
        {},
        (Quote(180, "sigmoid, sigmoid / sigmoid, ReLU / ReLU, sigmoid / ReLU, ReLU",
               "four pairs of activations after the two hidden layers; the post shows only pictures, no conclusion"),),
        silent=True),
    SeedExperiment(
        "cnn-stride", "Hyper Parameter - stride", (239, 243),
        {"values": [1, 5], "flatten": "4×4×128"},
        {"classifier_inputs_stride_1": 2048},
        (Quote(219, "L4 FC 4x4x128 inputs -> 625 outputs", "the seed's CNN hands 4×4×128 = 2,048 values to its classifier"),
         Quote(241, "stride = 1 / stride = 5", "stride 1 against 5; the post shows only pictures, no conclusion")),
        silent=True),
    SeedExperiment(
        "cnn-filter", "Hyper Parameter - filter size", (245, 249),
        {"values": [3, 10], "padding": 1},
        {},
        (Quote(201, "Conv2d(1, 32, kernel_size=3, stride=1, padding=1)", "the seed's first conv: 3×3 filter, padding 1"),
         Quote(247, "filter size = 3 / filter size = 10", "filter 3 against 10; the post shows only pictures, no conclusion")),
        silent=True),
]}
