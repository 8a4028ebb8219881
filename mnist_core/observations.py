"""What a comparison's runs show, in sentences: a DataFrame in, a list of sentences out.

Every sentence is computed from the runs (change the runs and the sentences change); none is written
for a particular outcome. The frames are compare.py's: `metrics_frame` (one row per value and epoch),
`final_frame` (one row per value), `timing_frame` (one row per run). All wording lives in TEMPLATES:
complete English sentences with named placeholders, marked for translation; their Korean is in the
catalog (mnist_core/locales), and `say(lang, key, ...)` fills in either.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from .i18n import LANGUAGES, N_, gettext

LANGS = tuple(LANGUAGES)
CHANCE = 0.2          # below this a 10-class classifier is guessing: the run collapsed
UNIFORM_LOSS = math.log(10)  # the loss of predicting 1/10 for every digit: 2.30
SPREAD = 0.10         # seeds whose final accuracies span more than 10 points: the value is at the mercy of chance
SAME_TIME_RATIO = 1.5  # "the same time per step" holds if the slowest step is within this factor of the fastest
OVERFIT_RISE = 0.02    # test loss must rise 2% above its minimum to call it overfitting, not wobble
LEVELS = (0.99, 0.98, 0.97, 0.95, 0.9, 0.8, 0.5)  # accuracy thresholds for "epochs to reach"

PARAM_NAMES = {"lr": N_("learning rate"), "epochs": N_("epochs"), "batch_size": N_("batch size"),
               "activations": N_("activations"), "stride": N_("stride"), "kernel_size": N_("filter size"),
               "seed": N_("random seed")}

TEMPLATES: dict[str, str] = {
    "best": N_("{name} {best} ends with the best test accuracy, {best_acc}, {margin} points ahead of {name} "
               "{second} ({second_acc}); the noise of {test_size} test images is about ±{noise} points."),
    "best_tie": N_("{name} {best} ({best_acc}) and {second} ({second_acc}) tie: {margin} points apart, within the "
                   "noise of {test_size} test images (about ±{noise} points)."),
    "best_only": N_("Only {name} {best} has a result: test accuracy {best_acc}."),
    "diverged": N_("{name} {value} diverged in epoch {epoch}: its loss became infinite or NaN."),
    "collapsed": N_("{name} {value} collapsed: its test accuracy peaked at {best_acc} in epoch {best_epoch}, fell "
                    "below {chance} from epoch {epoch} and ended at {final_acc} (a 10-digit guess scores 10%)."),
    "never_learned": N_("{name} {value} never learned: its best test accuracy was {best_acc} (epoch {best_epoch}), "
                        "below {chance}, and it ended at {final_acc} after {epochs} (a 10-digit guess scores 10%)."),
    "collapsed_uniform": N_("Its test loss ended at {loss}, that is ln 10 = 2.30, the loss of answering 1/10 for "
                            "every digit: the network stopped telling digits apart."),
    "repeats": N_("{name} {value} with {count} seeds ended at test accuracy {accs}."),
    "repeats_robust": N_("All {count} seeds collapsed: the failure of {name} {value} is robust, not chance."),
    "repeats_none": N_("None of the {count} seeds collapsed: the failure of {name} {value} is not reproduced here."),
    "repeats_chance": N_("{failed} of {count} seeds collapsed: whether {name} {value} fails is chance (the seed "
                         "of the run), not the learning rate alone."),
    "repeats_spread": N_("Across the seeds the final accuracy spans {low} to {high}: at {name} {value} the seed of "
                         "the run decides the result as much as the {name} does."),
    "seed_agrees": N_("The seed reports {what} {seed_value}; we measure {ours}: this agrees."),
    "seed_disagrees": N_("The seed reports {what} {seed_value}; we measure {ours}: the seed's claim does not hold "
                         "here. Likely reason: {reason}"),
    "overfit": N_("Test loss bottoms out at epoch {epoch} ({best_loss}) and rises to {last_loss} by epoch {last} "
                  "while the training loss keeps falling ({train_then} → {train_last}): the model overfits from "
                  "epoch {epoch}."),
    "no_overfit": N_("Within {last} epochs the test loss does not turn up (lowest {best_loss} at epoch {epoch}, "
                     "last {last_loss}) while the training loss falls to {train_last}: no overfitting in this range."),
    "acc_fell": N_("Test accuracy peaked at {best_acc} in epoch {best_epoch} and ended at {last_acc}: more epochs "
                   "lowered it, as the seed warned."),
    "acc_held": N_("Test accuracy at the last epoch ({last_acc}) is within noise of its best ({best_acc}, epoch "
                   "{best_epoch}): the seed's 'very many epochs can lower accuracy' is not seen within {last} epochs."),
    "gains": N_("Training accuracy at {points}: the gains shrink ({gains}), as in the seed (+0.0918, +0.009, "
                "+0.0054)."),
    "gains_not_shrinking": N_("Training accuracy at {points}: the gains ({gains}) do not shrink steadily, unlike "
                              "the seed's (+0.0918, +0.009, +0.0054)."),
    "step_times": N_("Measured time per step (epoch time incl. its test pass ÷ steps): {items}."),
    "step_item": N_("batch {value}: {step_ms} ms × {steps} steps = {epoch_s} s/epoch"),
    "same_step_holds": N_("A step at batch {big} takes {ratio}× the time of one at batch {small}: about the same, so "
                          "the seed's 'one step takes the same time whatever the batch size' holds here."),
    "same_step_fails": N_("A step at batch {big} takes {ratio}× the time of one at batch {small} ({big_ms} vs "
                          "{small_ms} ms): the seed's claim that one step takes the same time whatever the batch size "
                          "does not hold here. Likely reason: on a CPU a step's work grows with the batch; a GPU "
                          "leaves small batches idle."),
    "same_step_fails_gpu": N_("A step at batch {big} takes {ratio}× the time of one at batch {small} ({big_ms} vs "
                              "{small_ms} ms) on this GPU: the seed's claim that one step takes the same time whatever "
                              "the batch size does not hold here. Likely reason: at batch {big} a step has enough work "
                              "to keep this GPU busy, so its time grows with the batch."),
    "seed_own_steps": N_("The seed's own times do not show it either: batch {big}'s epoch took as long as batch "
                         "{mid}'s with {fewer}× fewer steps, so each of its steps took {ratio}× longer."),
    "seed_own_steps_but": N_("The seed's own times do not bear its claim out, though: batch {big}'s epoch took as "
                             "long as batch {mid}'s with {fewer}× fewer steps, so each of its steps took {ratio}× "
                             "longer."),
    "bigger_faster": N_("Per epoch, batch {big} is {speedup}× faster than batch {small} ({big_s} vs {small_s} s); "
                        "the seed measured {seed_speedup}× (5:26 vs 15:53) on its GPU."),
    "bigger_not_faster": N_("Per epoch, batch {big} is not faster than batch {small} ({big_s} vs {small_s} s), "
                            "unlike the seed's {seed_speedup}× on its GPU."),
    "tradeoff": N_("The trade-off: the fastest, batch {fast} ({fast_s} s/epoch), ends at {fast_acc}, {gap} points "
                   "below batch {best} ({best_acc}, {best_s} s/epoch) after the same {epochs} epochs."),
    "no_tradeoff": N_("Batch {best} is both the fastest per epoch ({best_s} s) and the most accurate ({best_acc})."),
    "reach": N_("Epochs to reach {level} test accuracy: {items}."),
    "reach_item": N_("{value} {epochs}"),
    "reach_never": N_("{value} not within {epochs}"),
    "reach_none": N_("No run reaches 50% test accuracy."),
    "shapes": N_("Values into the classifier (flatten): {items}."),
    "shape_item": N_("{name} {value}: {size:,} ({shape})"),
    "shapes_ratio": N_("{name} {small} hands the classifier {ratio}× fewer values than {name} {big}."),
    "model_inputs": N_("Like the seed's CNN (4×4×128 = {seed_value} values, line 219), ours hands {ours} values to its "
                       "classifier at {name} {value}: a property of the network's layers, the same before and after "
                       "training."),
    "model_inputs_differ": N_("The seed's CNN hands {seed_value} values to its classifier (line 219); ours at {name} "
                              "{value} hands {ours}: the two networks' layers differ."),
    "speed": N_("{name} {fast} trains {ratio}× faster per epoch than {name} {slow} ({fast_s} vs {slow_s} s)."),
    "silent": N_("The seed shows only its pictures here (lost) and states no result; the numbers above are ours."),
    "seed_item": N_("{acc} (seed {seed})"),
    "one_epoch": N_("{n} epoch"),
    "many_epochs": N_("{n} epochs"),
}

# Why a seed's number may differ from ours, as the repeats with other seeds show it (repeat_verdict).
REASONS = {
    "chance": N_("with the seed's normal(0, 1) init, lr 0.1 is chaotic: where it ends depends on the run's seed "
                 "and the last bits of rounding (see the repeats)."),
    "none": N_("none of our seeds collapsed at lr 0.1 (see the repeats), so the post's collapse is not reproduced "
               "here; its run may differ in what the post does not state, such as its data loading or its "
               "framework's version."),
    "robust": N_("our seeds collapsed too (see the repeats), but each collapse ends at a loss and accuracy of its "
                 "own."),
    "untested": N_("the repeats with other seeds are not trained yet, so whether lr 0.1 fails by chance here is not "
                   "known."),
}


def say(lang: str, key: str, **values: Any) -> str:
    """The sentence `key` in `lang` (English as written here, Korean from the catalog), filled in."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGS)}")
    return gettext(TEMPLATES[key], lang, **values)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def points(x: float) -> str:
    return f"{100 * x:.1f}"


def times(x: float) -> str:
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def _epochs(lang: str, n: int) -> str:
    return say(lang, "one_epoch" if n == 1 else "many_epochs", n=n)


def _name(lang: str, param: str) -> str:
    return gettext(PARAM_NAMES[param], lang) if param in PARAM_NAMES else param


def _noise(p: float, n: int) -> float:
    """Two standard errors of a difference of two accuracies measured on n images each."""
    return 2 * math.sqrt(2 * p * (1 - p) / n)


# -- any experiment --------------------------------------------------------------------------------

def best_value(finals: pd.DataFrame, param: str, test_size: int, lang: str = "en") -> list[str]:
    """The value with the best final test accuracy, its margin over the next, and whether that is noise."""
    ranked = finals[finals["test_acc"].notna()].sort_values(["test_acc", "order"], ascending=[False, True])
    if ranked.empty:
        return []
    best = ranked.iloc[0]
    if len(ranked) == 1:
        return [say(lang, "best_only", name=_name(lang, param), best=best["value"], best_acc=pct(best["test_acc"]))]
    second = ranked.iloc[1]
    margin = best["test_acc"] - second["test_acc"]
    noise = _noise((best["test_acc"] + second["test_acc"]) / 2, test_size)
    key = "best_tie" if margin <= noise else "best"
    return [say(lang, key, name=_name(lang, param), best=best["value"], best_acc=pct(best["test_acc"]),
                second=second["value"], second_acc=pct(second["test_acc"]), margin=points(margin),
                test_size=f"{test_size:,}", noise=points(noise))]


def failed_runs(metrics: pd.DataFrame, finals: pd.DataFrame, param: str, lang: str = "en") -> list[str]:
    """Runs that diverged (loss inf/NaN) or collapsed to guessing, and when."""
    out = []
    for row in finals.sort_values("order").itertuples():
        curve = metrics[metrics["value"] == row.value].sort_values("epoch")
        if row.status == "diverged":
            out.append(say(lang, "diverged", name=_name(lang, param), value=row.value, epoch=int(row.epochs) + 1))
            continue
        if curve.empty or row.test_acc >= CHANCE:
            continue
        above = curve[curve["test_acc"] >= CHANCE]["epoch"]
        since = int(above.max()) + 1 if len(above) else int(curve["epoch"].min())
        peak = curve.loc[curve["test_acc"].idxmax()]
        key = "collapsed" if peak["test_acc"] >= CHANCE else "never_learned"
        out.append(say(lang, key, epochs=_epochs(lang, int(curve["epoch"].max())), name=_name(lang, param), value=row.value, best_acc=pct(peak["test_acc"]),
                       best_epoch=int(peak["epoch"]), chance=pct(CHANCE), epoch=since, final_acc=pct(row.test_acc)))
        if abs(row.test_loss - UNIFORM_LOSS) < 0.05:
            out.append(say(lang, "collapsed_uniform", loss=f"{row.test_loss:.3f}"))
    return out


def _failed(finals: pd.DataFrame) -> int:
    return int(((finals["test_acc"].fillna(0.0) < CHANCE) | (finals["status"] == "diverged")).sum())


def repeat_verdict(finals: pd.DataFrame) -> str:
    """What one value trained with several seeds shows: "robust" (all collapsed), "none" (none did and they end
    close together), "chance" (some did, or the seed moves the result by more than SPREAD), "untested" (fewer than
    two seeds trained: one run says nothing about chance)."""
    if len(finals) < 2:
        return "untested"
    failed, accs = _failed(finals), finals["test_acc"].fillna(0.0)
    if 0 < failed < len(finals) or (failed == 0 and accs.max() - accs.min() > SPREAD):
        return "chance"
    return "robust" if failed else "none"


def repeats(finals: pd.DataFrame, param: str, value: str, lang: str = "en") -> list[str]:
    """One value trained with several seeds (rows: seed, test_acc, status): robust or chance?"""
    if len(finals) < 2:
        return []
    accs = finals["test_acc"].fillna(0.0)
    failed = _failed(finals)
    count = len(finals)
    listed = ", ".join(say(lang, "seed_item", acc=pct(a), seed=s) for s, a in zip(finals["seed"], accs))
    verdict = "repeats_robust" if failed == count else "repeats_none" if failed == 0 else "repeats_chance"
    name = _name(lang, param)
    out = [say(lang, "repeats", name=name, value=value, count=count, accs=listed),
           say(lang, verdict, name=name, value=value, count=count, failed=failed)]
    if accs.max() - accs.min() > SPREAD:
        out.append(say(lang, "repeats_spread", name=name, value=value, low=pct(accs.min()), high=pct(accs.max())))
    return out


def seed_number(what: str, seed_value: float, ours: float, tolerance: float, reason: str, lang: str = "en",
                fmt: str = "{:.2f}") -> list[str]:
    """One of the seed's numbers against ours: agrees within `tolerance`, else says so and why (`reason`: a key of
    REASONS, chosen from the runs, e.g. repeat_verdict)."""
    values = dict(what=what, seed_value=fmt.format(seed_value), ours=fmt.format(ours))
    if abs(ours - seed_value) <= tolerance:
        return [say(lang, "seed_agrees", **values)]
    return [say(lang, "seed_disagrees", reason=gettext(REASONS[reason], lang), **values)]


# -- epochs ----------------------------------------------------------------------------------------

def overfitting(curve: pd.DataFrame, test_size: int, lang: str = "en") -> list[str]:
    """One run's per-epoch metrics: where test loss bottoms out while training loss keeps falling."""
    curve = curve.sort_values("epoch")
    if len(curve) < 2:
        return []
    last = curve.iloc[-1]
    low = curve.loc[curve["test_loss"].idxmin()]
    values = dict(epoch=int(low["epoch"]), best_loss=f"{low['test_loss']:.4f}", last=int(last["epoch"]),
                  last_loss=f"{last['test_loss']:.4f}", train_then=f"{low['train_loss']:.4f}",
                  train_last=f"{last['train_loss']:.4f}")
    turned = (low["epoch"] < last["epoch"] and last["test_loss"] > low["test_loss"] * (1 + OVERFIT_RISE)
              and last["train_loss"] < low["train_loss"])
    out = [say(lang, "overfit" if turned else "no_overfit", **values)]
    peak = curve.loc[curve["test_acc"].idxmax()]
    fell = peak["test_acc"] - last["test_acc"] > _noise(peak["test_acc"], test_size)
    out.append(say(lang, "acc_fell" if fell else "acc_held", best_acc=pct(peak["test_acc"]),
                   best_epoch=int(peak["epoch"]), last_acc=pct(last["test_acc"]), last=int(last["epoch"])))
    return out


def accuracy_gains(curve: pd.DataFrame, at_epochs: Sequence[int], lang: str = "en") -> list[str]:
    """Training accuracy at the compared epoch counts and its gains between them (the seed's +0.0918, ...)."""
    at = curve.set_index("epoch")["train_acc"]
    reached = [e for e in at_epochs if e in at.index]
    if len(reached) < 3:
        return []
    accs = [at[e] for e in reached]
    gains = [b - a for a, b in zip(accs, accs[1:])]
    shrinking = all(abs(later) < abs(earlier) for earlier, later in zip(gains, gains[1:]))
    return [say(lang, "gains" if shrinking else "gains_not_shrinking",
                points=", ".join(f"{e} ({a:.4f})" for e, a in zip(reached, accs)),
                gains=" → ".join(f"{g:+.4f}" for g in gains))]


# -- batch size ------------------------------------------------------------------------------------

def step_times(timing: pd.DataFrame, lang: str = "en",
               seed: tuple[dict[int, float], dict[int, int]] | None = None) -> list[str]:
    """Time per step and per epoch for each batch size, and the seed's 'same time per step' claim, with the likely
    reason for the device the runs trained on; `seed`: the seed's own (seconds, steps) per batch, read per step
    after ours (seed_step_times)."""
    t = timing.dropna(subset=["s_per_epoch"]).sort_values("batch_size")
    if len(t) < 2:
        return []
    ms = 1000 * t["s_per_epoch"] / t["steps_per_epoch"]
    items = "; ".join(say(lang, "step_item", value=r.batch_size, step_ms=f"{m:.2f}", steps=f"{r.steps_per_epoch:,}",
                          epoch_s=f"{r.s_per_epoch:.2f}") for r, m in zip(t.itertuples(), ms))
    small, big = t.iloc[0], t.iloc[-1]
    ratio = ms.iloc[-1] / ms.iloc[0]
    out = [say(lang, "step_times", items=items)]
    held = ratio <= SAME_TIME_RATIO
    if held:
        out.append(say(lang, "same_step_holds", big=big["batch_size"], small=small["batch_size"], ratio=f"{ratio:.1f}"))
    else:
        on_cpu = set(t["device"]) <= {"cpu"}
        out.append(say(lang, "same_step_fails" if on_cpu else "same_step_fails_gpu", big=big["batch_size"],
                       small=small["batch_size"], ratio=times(ratio), big_ms=f"{ms.iloc[-1]:.2f}",
                       small_ms=f"{ms.iloc[0]:.2f}"))
    return out + (seed_step_times(*seed, lang, ours_held=held) if seed else [])


def seed_step_times(times_s: dict[int, float], steps: dict[int, int], lang: str = "en",
                    ours_held: bool = False) -> list[str]:
    """The seed's own batch timings read per step: its two largest batches. `ours_held`: whether our runs bore the
    claim out (then the seed's times contradict it; else they agree with ours)."""
    sizes = sorted(times_s)
    if len(sizes) < 2:
        return []
    mid, big = sizes[-2], sizes[-1]
    per_step = {b: times_s[b] / steps[b] for b in (mid, big)}
    ratio = per_step[big] / per_step[mid]
    if ratio <= SAME_TIME_RATIO:
        return []
    return [say(lang, "seed_own_steps_but" if ours_held else "seed_own_steps", big=f"{big:,}", mid=mid,
                fewer=f"{steps[mid] / steps[big]:g}", ratio=f"{ratio:.0f}")]


def batch_speed(timing: pd.DataFrame, seed_times: dict[int, float], lang: str = "en") -> list[str]:
    """Largest against smallest batch, per epoch, next to the seed's ratio."""
    t = timing.dropna(subset=["s_per_epoch"]).sort_values("batch_size")
    if len(t) < 2:
        return []
    small, big = t.iloc[0], t.iloc[-1]
    if min(small["s_per_epoch"], big["s_per_epoch"]) <= 0:  # too short to time (the table rounds to 0.01 s)
        return []
    seed_sizes = sorted(seed_times)
    seed_speedup = f"{seed_times[seed_sizes[0]] / seed_times[seed_sizes[-1]]:.1f}" if seed_sizes else "?"
    speedup = small["s_per_epoch"] / big["s_per_epoch"]
    key = "bigger_faster" if speedup > 1 else "bigger_not_faster"
    return [say(lang, key, big=big["batch_size"], small=small["batch_size"], speedup=f"{speedup:.1f}",
                big_s=f"{big['s_per_epoch']:.2f}", small_s=f"{small['s_per_epoch']:.2f}", seed_speedup=seed_speedup)]


def batch_tradeoff(finals: pd.DataFrame, timing: pd.DataFrame, lang: str = "en") -> list[str]:
    """The fastest batch against the most accurate one, after the same number of epochs."""
    both = finals.merge(timing[["value", "s_per_epoch"]], on="value").dropna(subset=["test_acc", "s_per_epoch"])
    if len(both) < 2:
        return []
    fast = both.sort_values(["s_per_epoch", "order"]).iloc[0]
    best = both.sort_values(["test_acc", "order"], ascending=[False, True]).iloc[0]
    if fast["value"] == best["value"]:
        return [say(lang, "no_tradeoff", best=best["value"], best_s=f"{best['s_per_epoch']:.2f}",
                    best_acc=pct(best["test_acc"]))]
    return [say(lang, "tradeoff", fast=fast["value"], fast_s=f"{fast['s_per_epoch']:.2f}", fast_acc=pct(fast["test_acc"]),
                gap=points(best["test_acc"] - fast["test_acc"]), best=best["value"], best_acc=pct(best["test_acc"]),
                best_s=f"{best['s_per_epoch']:.2f}", epochs=int(best["epochs"]))]


# -- activations -----------------------------------------------------------------------------------

def epochs_to_reach(metrics: pd.DataFrame, lang: str = "en") -> list[str]:
    """For each value, the first epoch its test accuracy reaches a level that at least half the values reach."""
    if metrics.empty:
        return []
    peaks = metrics.groupby("value")["test_acc"].max()
    level = next((lv for lv in LEVELS if (peaks >= lv).sum() * 2 >= len(peaks)), None)
    if level is None:
        return [say(lang, "reach_none")]
    order = metrics.sort_values("order")["value"].drop_duplicates()
    items = []
    for value in order:
        curve = metrics[metrics["value"] == value].sort_values("epoch")
        hit = curve[curve["test_acc"] >= level]
        if len(hit):
            items.append(say(lang, "reach_item", value=value, epochs=_epochs(lang, int(hit["epoch"].iloc[0]))))
        else:
            items.append(say(lang, "reach_never", value=value, epochs=_epochs(lang, int(curve["epoch"].max()))))
    return [say(lang, "reach", level=pct(level), items="; ".join(items))]


# -- CNN -------------------------------------------------------------------------------------------

def classifier_inputs(flows: dict[str, tuple[int, ...]], param: str, lang: str = "en") -> list[str]:
    """flows: value label -> the last pool's (channels, h, w). How many values reach the classifier."""
    if not flows:
        return []
    name = _name(lang, param)
    sizes = {v: math.prod(shape) for v, shape in flows.items()}
    items = "; ".join(say(lang, "shape_item", name=name, value=v, size=sizes[v], shape="×".join(map(str, shape)))
                      for v, shape in flows.items())
    out = [say(lang, "shapes", items=items)]
    small, big = min(sizes, key=sizes.get), max(sizes, key=sizes.get)
    if sizes[small] < sizes[big]:
        out.append(say(lang, "shapes_ratio", name=name, small=small, big=big, ratio=times(sizes[big] / sizes[small])))
    return out


def model_inputs(seed_value: int, ours: int, param: str, value: str, lang: str = "en") -> list[str]:
    """The seed's CNN's classifier inputs next to ours: a property of the layers (no run needed), not a result."""
    return [say(lang, "model_inputs" if ours == seed_value else "model_inputs_differ", seed_value=f"{seed_value:,}",
                ours=f"{ours:,}", name=_name(lang, param), value=value)]


def speed(timing: pd.DataFrame, param: str, lang: str = "en") -> list[str]:
    """The fastest value against the slowest, per epoch."""
    t = timing.dropna(subset=["s_per_epoch"])
    if len(t) < 2:
        return []
    fast, slow = t.loc[t["s_per_epoch"].idxmin()], t.loc[t["s_per_epoch"].idxmax()]
    if fast["value"] == slow["value"]:
        return []
    return [say(lang, "speed", name=_name(lang, param), fast=fast["value"], slow=slow["value"],
                ratio=times(slow['s_per_epoch'] / fast['s_per_epoch']), fast_s=f"{fast['s_per_epoch']:.2f}",
                slow_s=f"{slow['s_per_epoch']:.2f}")]
