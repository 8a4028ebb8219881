"""`python -m mnist_core`: train, sweep, shapes, predict, explain, export, cache. The same engine and cache as the app.

Bad input ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from .cache import Cancelled, RunCache, UnknownRunError, check_key
from .config import FIELD_TYPES, MAX_EPOCHS, PRESETS, SWEEPABLE, ConfigError, RunConfig, parse_values
from .ctrl_c import CTRL_C
from .errors import DataNotFoundError, DeviceError, ImageError
from .jobs import RequestRefused
from .results import RunResult

# torch (and the data, models and engine that need it) load inside the commands that train or
# predict: `cache list` and `cache show` answer without it, in a fraction of a second.

CONFIG_FLAGS = {  # flag -> (config field, help)
    "--model": ("model", "mlp or cnn"),
    "--dataset": ("dataset", "mnist (digits, the default) or fashion-mnist (clothing)"),
    "--lr": ("lr", "learning rate, e.g. 0.001"),
    "--epochs": ("epochs", f"passes over the training set (1-{MAX_EPOCHS})"),
    "--batch-size": ("batch_size", "images per step"),
    "--optimizer": ("optimizer", "adam, sgd, rmsprop or adamw"),
    "--momentum": ("momentum", "momentum for sgd/rmsprop"),
    "--activations": ("activations", "MLP activations after hidden layers 1,2, e.g. relu,sigmoid"),
    "--init": ("init", "MLP weight init: normal (the seed's), xavier_uniform, kaiming_uniform, default"),
    "--hidden": ("hidden", "MLP hidden width (default 256)"),
    "--kernel-size": ("kernel_size", "CNN filter size"),
    "--stride": ("stride", "CNN stride"),
    "--padding": ("padding", "CNN padding"),
    "--conv-layers": ("conv_layers", "which CNN conv layers take kernel/stride/padding: first or all"),
    "--keep-prob": ("keep_prob", "CNN dropout keep probability"),
    "--train-size": ("train_size", "training images to use (max 60000)"),
    "--test-size": ("test_size", "test images scored after each epoch (100-10000)"),
    "--seed": ("seed", "random seed"),
    "--precision": ("precision", "fp32, or bf16 autocast (only where the device computes bf16 natively)"),
    "--device": ("device", "auto, cpu, cuda or mps"),
}


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mnist_core", description="Train and compare MLPs and CNNs on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        for flag, (field, help_text) in CONFIG_FLAGS.items():
            p.add_argument(flag, dest=field, default=None, help=help_text)
        p.add_argument("--data-dir", help="folder with the chosen dataset's four files (default: $MNIST_DATA_DIR, "
                                          "or $FASHION_MNIST_DATA_DIR for fashion-mnist)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return p

    def with_dask(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--dask", metavar="ADDRESS",
                       help="train on a Dask cluster: a scheduler address (tcp://127.0.0.1:8786), or 'local' for "
                            "two worker processes on this machine")
        return p

    with_dask(with_config_flags(sub.add_parser("train", help="train one config (or fetch it from the cache)")))
    sweep = with_dask(with_config_flags(sub.add_parser("sweep", help="train a config for several values of one "
                                                                   "hyperparameter")))
    sweep.add_argument("--preset", choices=sorted(PRESETS), help="one of the seed's experiments")
    sweep.add_argument("--param", help="the hyperparameter to vary, e.g. lr")
    sweep.add_argument("--values", help="its values, e.g. 0.1,0.01 (activations: 'relu,relu;sigmoid,relu')")
    sweep.add_argument("--param2", help="a second hyperparameter: the sweep becomes a grid of every pair of values "
                                        "(at most 6 x 6), e.g. batch_size")
    sweep.add_argument("--values2", help="the second hyperparameter's values, e.g. 10,100,1000")
    with_config_flags(sub.add_parser("shapes", help="print a CNN config's shape flow"))
    predict = sub.add_parser("predict", help="read digits from image files with a cached run")
    predict.add_argument("--run", required=True, help="run key (see 'cache list')")
    predict.add_argument("images", nargs="+", help="image files")
    predict.add_argument("--json", action="store_true")
    explain = sub.add_parser("explain", help="see inside a cached run: each layer's output for one image, as PNG grids")
    explain.add_argument("--run", required=True, help="run key (see 'cache list')")
    explain.add_argument("image", help="an image file of one digit")
    explain.add_argument("--out", help="folder for the PNGs (default: ./explain-KEY)")
    explain.add_argument("--json", action="store_true")
    export = sub.add_parser("export", help="write a cached run as a plain PyTorch notebook that trains it again, "
                                           "with its weights beside it")
    export.add_argument("--run", required=True, help="run key (see 'cache list')")
    export.add_argument("--out", default="run.ipynb", help="the notebook, FILE.ipynb (default: run.ipynb); the "
                                                           "weights go beside it as KEY.safetensors")
    cache = sub.add_parser("cache", help="list, show, pin or check cached runs")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    cache_sub.add_parser("list", help="every cached run, newest first").add_argument("--json", action="store_true")
    show = cache_sub.add_parser("show", help="one run's epochs")
    show.add_argument("key")
    show.add_argument("--json", action="store_true")
    for name, verb in (("pin", "never evict"), ("unpin", "allow evicting again")):
        pin = cache_sub.add_parser(name, help=f"{verb}: runs by key, or a preset's runs on this machine")
        pin.add_argument("keys", nargs="*", metavar="KEY")
        pin.add_argument("--preset", choices=sorted(PRESETS), help="all runs of one of the seed's experiments")
        pin.add_argument("--data-dir", help="folder with the preset's dataset files (default: $MNIST_DATA_DIR)")
    check = cache_sub.add_parser("check", help="read every entry; move damaged ones to quarantine/ and list problems")
    check.add_argument("--json", action="store_true")
    report = with_dask(sub.add_parser("report", help="rerun the seed's six experiments and its lr x batch grid; write what they show"))
    report.add_argument("--size", choices=("full", "quick", "tiny"), default="quick",
                        help="full: the presets as they are; quick: fewer images and epochs (minutes on 2 cores); "
                             "tiny: seconds, to check the whole path (its numbers say little)")
    report.add_argument("--lang", choices=("en", "ko"), default="en")
    report.add_argument("--out", help="write the study to FILE.html (self-contained) or FILE.md (PNGs beside it)")
    report.add_argument("--json", action="store_true", help="print one JSON object per section")
    report.add_argument("--no-train", action="store_true", help="use cached runs only; say what the rest would cost")
    report.add_argument("--data-dir", help="folder with the four MNIST files (default: $MNIST_DATA_DIR)")
    return parser


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None) -> RunConfig:
    given = {field: getattr(args, field) for field, _ in CONFIG_FLAGS.values() if getattr(args, field, None) is not None}
    if base is None:
        return RunConfig.from_dict(given)
    return base.replace(**given)


# -- output ----------------------------------------------------------------------------------------

def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(nothing)"
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return "" if v is None else str(v)


def summary_row(r: RunResult, label: str | None = None) -> dict[str, Any]:
    final = r.final
    return {
        **({"value": label} if label is not None else {}),
        "key": r.key, "status": r.status, "epochs": len(r.epochs),
        "test_acc": final.test_acc if final else None, "test_loss": final.test_loss if final else None,
        "seconds": round(r.total_seconds, 1), "s/epoch": round(r.total_seconds / max(len(r.epochs), 1), 2),
        "steps/epoch": r.steps_per_epoch, "device": r.device, "cached": r.cached,
    }


class Bars:
    """tqdm bars on stderr, one per training (only on a terminal)."""

    def __init__(self, labels: list[str], epochs: list[int]):
        from tqdm import tqdm
        self.tqdm, self.labels, self.epochs, self.bars = tqdm, labels, epochs, {}

    def update(self, index: int, epoch: int, fraction: float, metrics: dict[str, Any]) -> None:
        bar = self.bars.get(index)
        if bar is None:
            bar = self.bars[index] = self.tqdm(total=self.epochs[index], desc=self.labels[index], unit="epoch",
                                               file=sys.stderr, leave=False, disable=None,
                                               bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total} ep {postfix}")
        bar.n = epoch - 1 + fraction
        bar.set_postfix_str(f"loss {metrics.get('train_loss', float('nan')):.4f}", refresh=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


# -- commands --------------------------------------------------------------------------------------

def _data_and_cache(args: argparse.Namespace, configs: list[RunConfig]):
    from .data import load_dataset
    from .train import bf16_native, resolve_device
    if getattr(args, "dask", None) and configs[0].device in ("cuda", "mps"):
        # The cluster's workers train on the device named (a GPU worker for cuda); here the data only makes keys.
        return load_dataset(configs[0].dataset, "cpu", args.data_dir), RunCache()
    device = resolve_device(configs[0].device)
    if any(c.precision == "bf16" for c in configs):
        native, reason = bf16_native(device)
        if not native:  # emulated bf16 is slower than the seed's fp32 loop: never worth it
            raise UsageError(f"--precision bf16 is off on {device}: {reason}. Use --precision fp32.")
    return load_dataset(configs[0].dataset, device, args.data_dir), RunCache()


def run_jobs(args: argparse.Namespace, configs: list[RunConfig], labels: list[str]) -> list[RunResult | None]:
    """Trains `configs` through the job service, as the app does: in threads of this process, or on the
    Dask cluster of --dask. Shows progress bars; Ctrl-C cancels this command's jobs (raises Cancelled
    once they have stopped). Runs whose job failed are None, after a line on stderr saying why."""
    from .jobs import dask_service, embedded_service, results_for
    data, cache = _data_and_cache(args, configs)  # a Ctrl-C up to here ends the process: nothing is submitted yet
    owner = f"cli-{os.getpid()}"
    bars = Bars(labels, [c.epochs for c in configs])
    serves: dict[str, list[int]] = {}  # run key -> the configs it is (a 1,000-value sweep: found once, not per poll)
    for i, config in enumerate(configs):
        serves.setdefault(cache.key_for(config, data), []).append(i)
    with CTRL_C.submitting() as interrupted:
        service = dask_service(args.dask, cache, data) if args.dask else embedded_service(cache, data)
        try:
            ids = [] if interrupted.is_set() else [job.id for job in service.submit(configs, owner)]
            while not interrupted.is_set() and not service.wait(ids, timeout=0.2):
                for job in service.jobs(owner=owner, active_only=True):
                    for i in (i for key in job.keys for i in serves.get(key, ())):
                        if job.state == "running" and job.epoch and job.epoch <= configs[i].epochs:
                            metrics = {"train_loss": job.running_loss if job.running_loss is not None else float("nan")}
                            bars.update(i, job.epoch, job.fraction, metrics)
            jobs = [service.job(job_id) for job_id in ids]
        finally:
            bars.close()
            service.shutdown()  # cancels whatever is still active and waits for it to stop
        if interrupted.is_set():
            raise Cancelled("interrupted")
    for job in jobs:
        if job.state == "failed":
            print(f"error: {job.config.describe()}: {job.message}", file=sys.stderr)
    return results_for(service, configs, jobs)


def run_json(r: RunResult) -> dict[str, Any]:
    """A run as --json prints it: the cache's JSON and the worker that trained it (None: from the cache)."""
    return {**r.to_json(), "worker": None if r.cached else r.machine.get("worker")}


def cmd_train(args: argparse.Namespace) -> int:
    from .models import shape_flow
    config = config_from_args(args)
    if config.model == "cnn":
        shape_flow(config)  # reject a collapsing CNN before loading anything
    (result,) = run_jobs(args, [config], [config.describe()[:40]])
    if result is None:
        return 1
    if args.json:
        print(json.dumps(run_json(result), indent=2))
    else:
        print(config.describe())
        print(table([{k: v for k, v in m.__dict__.items()} for m in result.epochs]))
        print(table([summary_row(result)]))
    return 0


def sweep_configs(args: argparse.Namespace) -> tuple[str, list[Any], list[RunConfig]]:
    if args.preset:
        preset = PRESETS[args.preset]
        base, param, values = config_from_args(args, preset.base), preset.param, list(preset.values)
        if args.param or args.values:
            raise UsageError("give either --preset or --param/--values, not both")
    else:
        if not (args.param and args.values):
            raise UsageError("sweep needs --preset NAME, or --param NAME --values V1,V2,...")
        param = args.param.replace("-", "_")
        base = config_from_args(args)
        if param not in SWEEPABLE[base.model]:
            raise UsageError(f"--param {args.param} cannot be varied for the {base.model}; "
                             f"choose one of: {', '.join(SWEEPABLE[base.model])}")
        values = parse_values(param, args.values)
    from .models import shape_flow
    configs = [base.replace(**{param: v}) for v in values]
    for c in configs:
        if c.model == "cnn":
            shape_flow(c)
    return param, values, configs


def grid_configs(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """The grid of --param/--values and --param2/--values2: (the grid, its cells). Values that are not values are
    usage errors; a pair that cannot work (a CNN whose shapes collapse) is a cell with its reason."""
    from .compare import Comparison, format_values
    from .grid import cells, make_grid
    if args.preset or not (args.param and args.values and args.param2 and args.values2):
        raise UsageError("a grid needs --param NAME --values V1,V2,... and --param2 NAME --values2 V1,V2,... "
                         "(not --preset)")
    param, param2 = args.param.replace("-", "_"), args.param2.replace("-", "_")
    base = config_from_args(args)
    for flag, name in (("--param", param), ("--param2", param2)):
        if name not in SWEEPABLE[base.model]:
            raise UsageError(f"{flag} {name} cannot be varied for the {base.model}; "
                             f"choose one of: {', '.join(SWEEPABLE[base.model])}")
    values, values2 = parse_values(param, args.values), parse_values(param2, args.values2)  # strict: no typos run
    grid = make_grid(Comparison(base, param, tuple(values)), param2, format_values(param2, values2))
    return grid, cells(grid)


def cmd_grid(args: argparse.Namespace) -> int:
    """sweep with --param2: every pair of values; a pair that cannot work is named on stderr and skipped."""
    grid, grid_cells = grid_configs(args)
    for cell in grid_cells:
        if cell.entry.config is None:
            print(f"skipped {grid.param}={cell.row_label} {grid.param2}={cell.column_label}: {cell.entry.error}",
                  file=sys.stderr)
    valid = [c for c in grid_cells if c.entry.config is not None]
    if not valid:
        raise UsageError("no pair of values in this grid can work (see above)")
    results = run_jobs(args, [c.entry.config for c in valid],
                       [f"{grid.param}={c.row_label} {grid.param2}={c.column_label}" for c in valid])
    done = [(c, r) for c, r in zip(valid, results) if r is not None]
    if args.json:
        print(json.dumps([{**run_json(r), "grid": {grid.param: _label(c.entry.value[0]),
                                                   grid.param2: _label(c.entry.value[1])}} for c, r in done], indent=2))
    else:
        print(f"{grid.param} x {grid.param2} grid, base: {valid[0].entry.config.describe()}")
        print(table([{grid.param: c.row_label, grid.param2: c.column_label, **summary_row(r)} for c, r in done]))
    return 0 if len(done) == len(grid_cells) else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.param2 or args.values2:
        return cmd_grid(args)
    param, values, configs = sweep_configs(args)
    results = run_jobs(args, configs, [f"{param}={_label(v)}" for v in values])
    done = [(v, r) for v, r in zip(values, results) if r is not None]
    if args.json:
        print(json.dumps([run_json(r) for _, r in done], indent=2))
    else:
        print(f"{param} sweep, base: {configs[0].describe()}")
        print(table([summary_row(r, _label(v)) for v, r in done]))
    return 0 if len(done) == len(configs) else 1


def _label(v: Any) -> str:
    return ",".join(v) if isinstance(v, tuple) else f"{v:g}" if isinstance(v, float) else str(v)


def cmd_shapes(args: argparse.Namespace) -> int:
    from .models import shape_flow
    config = config_from_args(args, RunConfig(model="cnn"))
    if config.model != "cnn":
        raise UsageError("shapes shows the CNN's shape flow; the MLP is always 784 -> 256 -> 256 -> 10")
    flow = shape_flow(config)
    if args.json:
        print(json.dumps([{"layer": s.layer, "shape": list(s.shape), "detail": s.detail} for s in flow], indent=2))
    else:
        print(table([{"layer": s.layer, "shape": " x ".join(map(str, s.shape)), "detail": s.detail} for s in flow]))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .data import DATASETS
    from .evaluate import load_model, predict
    from .preprocess import load_image, to_mnist
    cache = RunCache()
    key = check_key(args.run)
    run = cache.get(key)
    if run is None:
        raise UnknownRunError(f"No cached run {key} (see 'cache list').")
    model = load_model(run.config, cache.weights(key))
    classes = DATASETS[run.config.dataset].classes  # digits, or the clothing a fashion-mnist model tells apart
    out = []
    for path in args.images:
        image = to_mnist(load_image(path))
        if image is None:
            out.append({"image": path, "digit": None, "message": "no digit found (the image is blank)"})
            continue
        probs = predict(model, image)[0]
        out.append({"image": path, "digit": int(probs.argmax()), "class": classes[int(probs.argmax())],
                    "probabilities": [round(float(p), 4) for p in probs]})
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for o in out:
            if o["digit"] is None:
                print(f"{o['image']}: {o['message']}")
            else:
                probs = "  ".join(f"{d}:{p:.2f}" for d, p in enumerate(o["probabilities"]))
                print(f"{o['image']}: {o['class']}  ({probs})")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path
    from .explain import explain_image
    from .preprocess import load_image
    key = check_key(args.run)
    cache = RunCache()
    run = cache.get(key)
    if run is None:
        raise UnknownRunError(f"No cached run {key} (see 'cache list').")
    image = load_image(args.image)
    out = Path(args.out) if args.out else Path(f"explain-{key}")
    result = explain_image(run.config, cache.weights(key), image, out)
    if args.json:
        print(json.dumps(result.rows, indent=2))
    else:
        print(table([{**row, "shape": " x ".join(map(str, row["shape"]))} for row in result.rows]))
        print("(saturated_fraction: outputs in a flat tail, for layers that have one: sigmoid, tanh, probabilities)")
        print(f"reads {result.digit}; {len(result.pictures)} pictures in {out}/")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path
    from .notebook import write
    out = Path(args.out)
    if out.suffix != ".ipynb" or out.is_dir():
        raise UsageError(f"--out must name a notebook file ending in .ipynb, got '{args.out}'")
    if not out.parent.is_dir():
        raise UsageError(f"--out: the folder {out.parent} does not exist")
    key = check_key(args.run)
    run = RunCache().get(key, weights=True, touch=True)
    if run is None:
        raise UnknownRunError(f"No cached run {key} (see 'cache list').")
    try:
        notebook, weights = write(run, out)
    except OSError as e:  # a read-only folder, a full disk: the student's to fix, in one line
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"wrote {notebook} and {weights}", file=sys.stderr)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    cache = RunCache()
    if args.cache_command == "list":
        runs, pinned = cache.list(), _pins(cache)
        if args.json:
            print(json.dumps([{**r.to_json(), "pinned": r.key in pinned} for r in runs], indent=2))
        else:
            print(table([{**summary_row(r), "pinned": r.key in pinned, "config": r.config.describe()} for r in runs]))
        return 0
    if args.cache_command in ("pin", "unpin"):
        return _pin(args, cache)
    if args.cache_command == "check":
        rows = cache.check()
        print(json.dumps(rows, indent=2) if args.json else table(rows) if rows else
              f"{len(cache.entries())} entries, all whole; nothing in quarantine.")
        return 1 if any(r["state"] in ("damaged", "unreadable") for r in rows) else 0
    key = check_key(args.key)
    run = cache.get(key)  # the operator looking: not a use
    if run is None:
        raise UnknownRunError(f"No cached run {key} (see 'cache list').")
    if args.json:
        print(json.dumps(run.to_json(), indent=2))
    else:
        print(run.config.describe())
        print(table([m.__dict__ for m in run.epochs]))
        print(table([summary_row(run)]))
    return 0


def _pins(cache: RunCache) -> set[str]:
    try:
        return cache.pinned()
    except (OSError, ValueError) as e:
        print(f"warning: {e}", file=sys.stderr)
        return set()


def _pin(args: argparse.Namespace, cache: RunCache) -> int:
    if bool(args.keys) == bool(args.preset):
        raise UsageError(f"cache {args.cache_command} needs run keys or --preset NAME (one of the two)")
    keys = [check_key(k) for k in args.keys]
    if args.preset:  # the keys depend on this machine's device and the data's checksum
        configs = PRESETS[args.preset].configs()
        data, _ = _data_and_cache(args, configs)
        keys = [cache.key_for(c, data) for c in configs]
    try:
        pins = cache.pin(keys) if args.cache_command == "pin" else cache.unpin(keys)
    except ValueError as e:  # a damaged pins file: say so rather than overwrite the operator's pins
        raise UsageError(str(e)) from None
    cached = {p.name.removesuffix(".safetensors") for p in cache.entries()}
    for key in keys:
        note = "" if key in cached else " (not cached yet)"
        print(f"{'pinned' if key in pins else 'unpinned'} {key}{note}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path
    from .report import to_html, to_json, write_markdown
    from .study import SIZES, TINY, build_study, missing_text, study_configs
    from . import study_grid
    size = TINY if args.size == "tiny" else SIZES[args.size]
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".html", ".md"):
        raise UsageError("--out must end in .html or .md")
    if not args.no_train:  # through the job service, as the Study page trains them (Ctrl-C cancels): one request
        named = study_configs(size) + study_grid.grid_configs(size)
        run_jobs(args, [config for _, config in named], [name for name, _ in named])
    data, cache = _data_and_cache(args, [RunConfig()])
    sections = build_study(size, data, cache, lang=args.lang)
    grid = study_grid.build_grid_section(size, data, cache, lang=args.lang)
    if out is not None and out.suffix.lower() == ".html":
        out.write_text(to_html(sections, args.lang, grid=grid), encoding="utf-8")
    elif out is not None:
        write_markdown(sections, out, args.lang, grid=grid)
    if args.json:
        print(json.dumps(to_json(sections, grid=grid), indent=2, ensure_ascii=False))
    elif out is None:
        for s in sections:
            print(f"\n## {s.title}\n{s.scaling}")
            if s.missing:
                print(missing_text(s, args.lang))
            print("\n".join(f"- {o}" for o in s.observations))
        print(f"\n## {grid.title}\n{grid.scaling}")
        if grid.missing:
            print(study_grid.missing_text(grid, args.lang))
        print("\n".join(f"- {o}" for o in grid.observations))
    if out is not None:
        print(f"wrote {out}", file=sys.stderr)
    return 0


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "shapes": cmd_shapes, "predict": cmd_predict, "explain": cmd_explain,
            "report": cmd_report, "cache": cmd_cache, "export": cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, DataNotFoundError, UnknownRunError, ImageError, UsageError, DeviceError,
            RequestRefused) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head` closed our output: nothing left to say
        sys.stdout = open(os.devnull, "w")
        return 0


assert set(CONFIG_FLAGS[f][0] for f in CONFIG_FLAGS) == set(FIELD_TYPES), "every config field has a CLI flag"
