"""The study's observations on synthetic run tables: each case must produce its sentence, and the
opposite case must not (a diverging run, a collapse, an overfitting curve, a tie, the seed's batch claim)."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from mnist_core import observations as obs


def curves(runs: dict[str, list[tuple[float, float, float, float]]], status: dict[str, str] | None = None) -> pd.DataFrame:
    """runs: value -> per epoch (train_loss, train_acc, test_loss, test_acc), in metrics_frame's columns."""
    rows = []
    for order, (value, epochs) in enumerate(runs.items()):
        for epoch, (train_loss, train_acc, test_loss, test_acc) in enumerate(epochs, 1):
            rows.append({"value": value, "series": value, "order": order, "epoch": epoch, "train_loss": train_loss,
                         "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc, "seconds": 1.0,
                         "status": (status or {}).get(value, "ok")})
    return pd.DataFrame(rows)


def finals_of(metrics: pd.DataFrame, status: dict[str, str] | None = None) -> pd.DataFrame:
    last = metrics.sort_values("epoch").groupby("value", as_index=False).tail(1).sort_values("order")
    return pd.DataFrame({"value": last["value"], "series": last["series"], "order": last["order"],
                         "status": [(status or {}).get(v, "ok") for v in last["value"]],
                         "epochs": last["epoch"], "test_acc": last["test_acc"], "test_loss": last["test_loss"],
                         "train_loss": last["train_loss"]}).reset_index(drop=True)


def timing_of(batches: dict[int, float], train_size: int = 60_000) -> pd.DataFrame:
    """batch -> seconds per step."""
    rows = []
    for order, (batch, step_s) in enumerate(batches.items()):
        steps = -(-train_size // batch)
        rows.append({"value": str(batch), "total_s": step_s * steps, "s_per_epoch": step_s * steps,
                     "steps_per_epoch": steps, "samples_per_s": None, "batch_size": batch, "device": "cpu",
                     "cached": False, "status": "ok", "key": ""})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("lang", obs.LANGS)
def test_every_template_formats_in_both_languages_with_the_same_placeholders(lang):
    """Each sentence is an English msgid with its translation in the catalog: both name the same values."""
    from mnist_core.i18n import catalog, placeholders
    for key, text in obs.TEMPLATES.items():
        translated = catalog(lang).gettext(text)
        assert placeholders(translated) == placeholders(text), key
        words = re.sub(r"\{[^}]*\}", "", text)
        if lang != "en" and any(c.isalpha() for c in words):  # "{value} {epochs}" reads the same in Korean
            assert translated != text, f"{key} has no {lang} translation"


def test_best_value_names_the_winner_and_its_margin():
    m = curves({"0.01": [(1.0, .8, 1.0, .80), (.5, .9, .6, .90)], "0.001": [(1.0, .7, 1.0, .70), (.6, .8, .7, .80)]})
    (sentence,) = obs.best_value(finals_of(m), "lr", test_size=10_000)
    assert sentence.startswith("learning rate 0.01 ends with the best test accuracy, 90.0%, 10.0 points ahead of "
                               "learning rate 0.001 (80.0%)")


def test_a_tie_within_the_test_sets_noise_is_called_a_tie():
    m = curves({"a": [(1, .9, 1, .951)], "b": [(1, .9, 1, .950)]})
    (sentence,) = obs.best_value(finals_of(m), "activations", test_size=2_000)
    assert "tie" in sentence and "a (95.1%) and b (95.0%)" in sentence
    (korean,) = obs.best_value(finals_of(m), "activations", test_size=2_000, lang="ko")
    assert "비겼다" in korean and "활성화 함수 a" in korean
    # two perfect scores have no noise at all, and are still a tie
    equal = curves({"a": [(1, 1, 1, 1.0)], "b": [(1, 1, 1, 1.0)]})
    assert "tie" in obs.best_value(finals_of(equal), "lr", test_size=100)[0]


def test_a_diverged_run_is_reported_with_its_epoch():
    m = curves({"0.1": [(300.0, .2, 250.0, .3)], "0.001": [(1, .8, 1, .8), (.5, .9, .5, .9)]})
    finals = finals_of(m, status={"0.1": "diverged"})  # diverged in epoch 2: one finite epoch
    out = obs.failed_runs(m, finals, "lr")
    assert out == ["learning rate 0.1 diverged in epoch 2: its loss became infinite or NaN."]
    assert "발산" in obs.failed_runs(m, finals, "lr", lang="ko")[0]


def test_a_collapse_says_when_and_recognises_the_uniform_guess_loss():
    m = curves({"0.1": [(9, .5, 8, .62), (3, .3, 2.5, .35), (2.31, .11, 2.3026, .11), (2.30, .10, 2.3026, .10)],
                "0.01": [(1, .8, 1, .8)] * 4})
    out = obs.failed_runs(m, finals_of(m), "lr")
    assert out[0] == ("learning rate 0.1 collapsed: its test accuracy peaked at 62.0% in epoch 1, fell below 20.0% "
                      "from epoch 3 and ended at 10.0% (a 10-digit guess scores 10%).")
    assert "ln 10 = 2.30" in out[1] and len(out) == 2
    # a run that never rose above chance did not collapse: it never learned
    never = curves({"x": [(3, .1, 3, .12), (3, .1, 3, .15)]})
    assert "never learned" in obs.failed_runs(never, finals_of(never), "lr")[0]


def test_repeats_say_robust_or_chance():
    frame = lambda accs: pd.DataFrame({"seed": range(len(accs)), "test_acc": accs, "status": ["ok"] * len(accs)})
    assert "robust" in obs.repeats(frame([.10, .11, .09]), "lr", "0.1")[1]
    assert "chance" in obs.repeats(frame([.10, .80, .09]), "lr", "0.1")[1]
    assert "not reproduced" in obs.repeats(frame([.90, .80, .85]), "lr", "0.1")[1]
    assert "우연" in obs.repeats(frame([.10, .80, .09]), "lr", "0.1", lang="ko")[1]


def test_seed_number_agrees_or_says_why_not():
    assert "agrees" in obs.seed_number("lr 0.1 accuracy", 0.10, 0.103, 0.05, "chance")[0]
    (no,) = obs.seed_number("lr 0.1 accuracy", 0.10, 0.45, 0.05, "chance")
    assert "0.10" in no and "0.45" in no and "does not hold here" in no and "normal(0, 1)" in no


def test_the_reason_for_lr_0_1_follows_what_the_seeds_show():
    frame = lambda accs: pd.DataFrame({"seed": range(len(accs)), "test_acc": accs, "status": ["ok"] * len(accs)})
    assert obs.repeat_verdict(frame([.10, .80, .09])) == "chance"
    assert obs.repeat_verdict(frame([.90, .50, .85])) == "chance"  # none collapsed, but the seed moves it 40 points
    assert obs.repeat_verdict(frame([.10, .11])) == "robust"
    assert obs.repeat_verdict(frame([.97])) == "untested" and obs.repeats(frame([.97]), "lr", "0.1") == []
    none = frame([.97, .96, .97])  # today's contradiction: no seed collapsed, yet the reason said lr 0.1 is chaotic
    assert obs.repeat_verdict(none) == "none"
    (no,) = obs.seed_number("lr 0.1 accuracy", 0.10, 0.97, 0.05, obs.repeat_verdict(none))
    assert "not reproduced" in no and "chaotic" not in no


def test_an_overfitting_curve_is_found_where_test_loss_bottoms_out():
    epochs = [(1.0, .80, .50, .85), (.5, .90, .30, .90), (.3, .95, .25, .92), (.1, .98, .28, .91), (.05, .99, .35, .89)]
    out = obs.overfitting(curves({"5": epochs})[lambda f: f["value"] == "5"], test_size=10_000)
    assert out[0].startswith("Test loss bottoms out at epoch 3 (0.2500) and rises to 0.3500 by epoch 5 while the "
                             "training loss keeps falling (0.3000 → 0.0500): the model overfits from epoch 3.")
    assert out[1].startswith("Test accuracy peaked at 92.0% in epoch 3 and ended at 89.0%")


def test_a_curve_still_improving_is_not_called_overfitting():
    epochs = [(1.0, .80, .50, .85), (.5, .90, .30, .90), (.3, .95, .25, .92), (.2, .96, .24, .925)]
    out = obs.overfitting(curves({"4": epochs}), test_size=10_000)
    assert out[0].startswith("Within 4 epochs the test loss does not turn up") and "overfits" not in out[0]
    assert "not seen within 4 epochs" in out[1]


def test_accuracy_gains_shrink_or_not():
    m = curves({"100": [(1, a, 1, a) for a in (.5, .8, .9, .95, .97)]})
    assert obs.accuracy_gains(m, [1, 2, 3, 5])[0].startswith("Training accuracy at 1 (0.5000), 2 (0.8000), 3 (0.9000), "
                                                             "5 (0.9700): the gains shrink (+0.3000 → +0.1000 → +0.0700)")
    bumpy = curves({"100": [(1, a, 1, a) for a in (.5, .6, .9, .95)]})
    assert "do not shrink" in obs.accuracy_gains(bumpy, [1, 2, 3, 4])[0]


def test_step_time_growing_with_the_batch_breaks_the_seeds_claim():
    out = obs.step_times(timing_of({10: 0.001, 100: 0.004, 1000: 0.030}))
    assert "batch 10: 1.00 ms × 6,000 steps = 6.00 s/epoch" in out[0]
    assert out[1].startswith("A step at batch 1000 takes 30× the time of one at batch 10 (30.00 vs 1.00 ms): the "
                             "seed's claim that one step takes the same time whatever the batch size does not hold here.")
    assert "성립하지 않는다" in obs.step_times(timing_of({10: 0.001, 1000: 0.030}), lang="ko")[1]
    gpu = obs.step_times(timing_of({10: 0.001, 1000: 0.030}).assign(device="cuda"))
    assert "does not hold here" in gpu[1] and "CPU" not in gpu[1] and "idle" not in gpu[1]  # the timing's own device


SEED_TIMES = ({10: 953, 30: 502, 100: 326, 1000: 326}, {10: 6000, 30: 2000, 100: 600, 1000: 60})


def test_the_seeds_own_times_are_read_against_our_verdict_not_appended_to_any():
    fails = obs.step_times(timing_of({10: 0.001, 1000: 0.030}), seed=SEED_TIMES)
    assert "does not hold here" in fails[1] and fails[2].startswith("The seed's own times do not show it either")
    holds = obs.step_times(timing_of({10: 0.010, 1000: 0.012}), seed=SEED_TIMES)
    assert "holds here" in holds[1] and "either" not in holds[2]
    assert holds[2].startswith("The seed's own times do not bear its claim out, though")


def test_step_time_flat_across_batches_confirms_the_seeds_claim():
    out = obs.step_times(timing_of({10: 0.010, 100: 0.011, 1000: 0.012}))
    assert "holds here" in out[1] and "1.2×" in out[1]
    speed = obs.batch_speed(timing_of({10: 0.010, 1000: 0.012}), {10: 953, 1000: 326})
    assert speed == ["Per epoch, batch 1000 is 83.3× faster than batch 10 (0.72 vs 60.00 s); the seed measured 2.9× "
                     "(5:26 vs 15:53) on its GPU."]


def test_runs_too_short_to_time_say_nothing_about_speed():
    rounded = timing_of({10: 0.001, 1000: 0.0}, train_size=100)  # the timing table rounds to 0.01 s
    assert obs.batch_speed(rounded, {10: 953, 1000: 326}) == []


def test_the_seeds_own_timings_read_per_step():
    (sentence,) = obs.seed_step_times({10: 953, 30: 502, 100: 326, 1000: 326}, {10: 6000, 30: 2000, 100: 600, 1000: 60})
    assert "batch 1,000's epoch took as long as batch 100's with 10× fewer steps, so each of its steps took 10× longer" \
        in sentence
    assert obs.seed_step_times({100: 100, 1000: 10}, {100: 600, 1000: 60}) == []


def test_batch_tradeoff_names_the_fastest_and_the_most_accurate():
    m = curves({"10": [(1, .9, 1, .97)], "1000": [(1, .8, 1, .90)]})
    out = obs.batch_tradeoff(finals_of(m), timing_of({10: 0.001, 1000: 0.030}))
    assert out[0].startswith("The trade-off: the fastest, batch 1000 (1.80 s/epoch), ends at 90.0%, 7.0 points below "
                             "batch 10 (97.0%, 6.00 s/epoch)")
    m = curves({"10": [(1, .9, 1, .90)], "1000": [(1, .8, 1, .97)]})
    assert "both the fastest" in obs.batch_tradeoff(finals_of(m), timing_of({10: 0.001, 1000: 0.030}))[0]


def test_epochs_to_reach_a_level_most_values_reach():
    m = curves({"sigmoid/sigmoid": [(1, .5, 1, a) for a in (.60, .85, .91)],
                "relu/relu": [(1, .5, 1, a) for a in (.92, .95, .96)],
                "relu/sigmoid": [(1, .5, 1, a) for a in (.5, .6, .7)]})
    assert obs.epochs_to_reach(m) == ["Epochs to reach 90.0% test accuracy: sigmoid/sigmoid 3 epochs; relu/relu "
                                      "1 epoch; relu/sigmoid not within 3 epochs."]
    flat = curves({"a": [(1, .1, 1, .1)], "b": [(1, .1, 1, .2)]})
    assert obs.epochs_to_reach(flat) == ["No run reaches 50% test accuracy."]


def test_classifier_inputs_and_speed():
    out = obs.classifier_inputs({"1": (128, 4, 4), "5": (128, 1, 1)}, "stride")
    assert out == ["Values into the classifier (flatten): stride 1: 2,048 (128×4×4); stride 5: 128 (128×1×1).",
                   "stride 5 hands the classifier 16× fewer values than stride 1."]
    (inputs,) = obs.model_inputs(2048, 2048, "stride", "1")  # the layers' property, not a result that agrees
    assert inputs.startswith("Like the seed's CNN (4×4×128 = 2,048 values, line 219), ours hands 2,048 values to its "
                             "classifier at stride 1") and "agrees" not in inputs and "shorter" not in inputs
    assert "layers differ" in obs.model_inputs(2048, 1152, "kernel_size", "3")[0]
    timing = timing_of({1: 0.002, 5: 0.0005}, train_size=1000).assign(value=["1", "5"])
    assert obs.speed(timing, "stride") == ["stride 5 trains 20× faster per epoch than stride 1 (0.10 vs 2.00 s)."]


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language"):
        obs.say("fr", "silent")


def test_repeats_spread_over_many_points_say_the_seed_decides():
    frame = pd.DataFrame({"seed": [777, 1, 2], "test_acc": [.277, .719, .213], "status": ["ok"] * 3})
    out = obs.repeats(frame, "lr", "0.1")
    assert out[2] == ("Across the seeds the final accuracy spans 21.3% to 71.9%: at learning rate 0.1 the seed of the "
                      "run decides the result as much as the learning rate does.")
    close = pd.DataFrame({"seed": [1, 2], "test_acc": [.90, .92], "status": ["ok"] * 2})
    assert len(obs.repeats(close, "lr", "0.1")) == 2
