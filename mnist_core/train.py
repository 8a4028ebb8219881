"""The training engine: one function trains one config on tensors that already live on the device.

Reads top to bottom: pick the device, build the model with the config's seed, then for each epoch
shuffle indices, index batches out of the resident tensors, step, and evaluate on the test set.
Losses are summed on the device and read back a few times per epoch, never every step.
"""
from __future__ import annotations

import math
import os
import platform
import threading
import time
from dataclasses import asdict
from typing import Any, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from .config import RunConfig
from .data import MnistData, scored_test_images
from .errors import DeviceError
from .i18n import N_, Message
from .models import build_model
from .results import EpochMetrics, ProgressFn, RunResult, StopFn  # noqa: F401  (the engine's public types)

PROGRESS_UPDATES_PER_EPOCH = 20
EVAL_BATCH = 1000  # keeps the CNN's test pass under ~100 MB of activations


def flush_denormals() -> None:
    """Float values below 1e-38 count as zero in the calling thread from now on.

    The seed's normal init gives logits in the thousands, and softmax then underflows into denormal
    floats, which x86 CPUs compute many times slower than normal ones. Flushing them left every metric
    we compared bit-identical and made the default MLP's epoch about 10% faster. The flag is per
    thread, so each engine sets it where it trains (Streamlit trains in the session's own thread).
    """
    torch.set_flush_denormal(True)


def resolve_device(name: str = "auto") -> str:
    """"auto" -> cuda if there is a GPU, else Apple's mps, else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device cuda was asked for, but this machine has no CUDA GPU. Use --device auto or cpu.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device mps was asked for, but this machine has no Apple GPU. Use --device auto or cpu.")
    return name


# oneDNN's ISA limits below AVX512_CORE_BF16: with one of these it emulates bf16, slower than fp32.
ONEDNN_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_has_bf16_instructions() -> bool:
    """Whether this CPU has bf16 instructions at all (AVX512-BF16 or AMX), whatever limits PyTorch's use."""
    flags = [getattr(torch.cpu, name, lambda: False) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(has() for has in flags)


def bf16_native(device: str) -> tuple[bool, Message]:
    """Whether `device` computes bf16 natively, and why (or why not), in words for a student (a Message: a
    page shows it in the student's language, `str()` reads English).

    bf16 autocast is only worth offering where it is native: on a CPU without it, oneDNN emulates
    bf16 and a CNN epoch took 6.7x longer than the seed's plain fp32 loop. On a CPU, the bf16 matmuls
    and convolutions run in oneDNN, which picks its kernels from the CPU's instructions (AVX512-BF16
    or AMX) and from ONEDNN_MAX_CPU_ISA, not from ATEN_CPU_CAPABILITY: so the CPU's flags decide, and
    an ONEDNN_MAX_CPU_ISA below AVX512_CORE_BF16 turns it off. (torch.ops.mkldnn's own check alone
    is not enough: it says yes for any AVX-512 CPU, where bf16 measured slower than fp32 here.)
    """
    if device == "cuda":
        if not torch.cuda.is_available():
            return False, Message(N_("this machine has no CUDA GPU"))
        if torch.cuda.is_bf16_supported():
            return True, Message(N_("{gpu} computes bf16 natively"), gpu=torch.cuda.get_device_name(0))
        return False, Message(N_("this GPU has no native bf16 (it needs compute capability 8.0 or newer)"))
    if device != "cpu":
        return False, Message(N_("bf16 autocast is not used on {device}"), device=device)
    if not cpu_has_bf16_instructions():
        return False, Message(N_("this CPU has no native bf16 (AVX512-BF16 or AMX); emulated bf16 is slower than fp32"))
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    if limit in ONEDNN_WITHOUT_BF16 or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        if limit:
            return False, Message(N_("ONEDNN_MAX_CPU_ISA={limit} keeps PyTorch from this CPU's bf16 instructions; emulated "
                                     "bf16 is slower than fp32"), limit=limit)
        return False, Message(N_("this PyTorch build's oneDNN keeps PyTorch from this CPU's bf16 instructions; emulated "
                                 "bf16 is slower than fp32"))
    return True, Message(N_("this CPU computes bf16 natively (AVX512-BF16 or AMX)"))


_init_lock = threading.Lock()


def seeded_model(config: RunConfig, device: str) -> nn.Module:
    """The config's model with its seed's initial weights; other threads' random streams are left alone."""
    with _init_lock, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config)
    model = model.to(device)
    if config.model == "cnn":
        model = model.to(memory_format=torch.channels_last)
    return model


FUSED_OPTIMIZERS = ("adam", "adamw", "sgd")  # torch has one-pass kernels for these; rmsprop goes through torch.optim
FUSED_DEVICES = ("cpu", "cuda")  # where those kernels exist


def make_optimizer(config: RunConfig, params: Iterable[torch.Tensor],
                   device: str) -> FusedOptimizer | torch.optim.Optimizer:
    """The optimizer a run trains with: torch's fused kernel called directly where there is one."""
    params = list(params)
    if config.optimizer in FUSED_OPTIMIZERS and device in FUSED_DEVICES:
        return FusedOptimizer(config, params, device)
    return torch_optimizer(config, params, device)


def torch_optimizer(config: RunConfig, params: Iterable[torch.Tensor], device: str) -> torch.optim.Optimizer:
    # The fused kernels do a whole optimizer step in one pass over the weights: at small batches that
    # pass is most of the step's time.
    fast: dict[str, Any] = {"fused": True} if device in FUSED_DEVICES else {"foreach": True}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, **fast)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, **fast)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, **fast)
    return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, foreach=True)


class FusedOptimizer:
    """torch.optim's fused Adam, AdamW or SGD step without the Python around it.

    torch.optim spends about 0.3 ms a step grouping tensors and checking options before it calls the one
    kernel that does the work: a fifth of a batch-10 MLP step on a CPU. This calls the same kernel with
    the same state, so the weights match torch.optim's bit for bit (a test checks it). The settings
    (betas, eps, weight decay, dampening, ...) are read off the optimizer torch_optimizer builds, so
    nothing is restated here.
    """

    def __init__(self, config: RunConfig, params: list[torch.Tensor], device: str):
        probe = torch.zeros(1, device=device, requires_grad=True)
        group = torch_optimizer(config, [probe], device).param_groups[0]
        self.settings = {name: value for name, value in group.items() if name != "params"}
        self.params, self.sgd = params, config.optimizer == "sgd"
        zeros = lambda: [torch.zeros_like(p) for p in params]  # noqa: E731
        if self.sgd:
            self.momentum = zeros() if self.settings["momentum"] else []
            self.first_step = True
        else:
            self.exp_avg, self.exp_avg_sq = zeros(), zeros()
            self.step_count = torch.zeros((), dtype=torch.float32, device=device)  # torch's own dtype for it

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        s = self.settings
        if self.sgd:
            torch._fused_sgd_(self.params, grads, self.momentum, weight_decay=s["weight_decay"],
                              momentum=s["momentum"], lr=s["lr"], dampening=s["dampening"], nesterov=s["nesterov"],
                              maximize=s["maximize"], is_first_step=self.first_step and bool(self.momentum),
                              grad_scale=None, found_inf=None)
            self.first_step = False
            return
        self.step_count += 1  # one count serves every tensor: torch keeps equal ones per tensor
        fused = torch._fused_adamw_ if s["decoupled_weight_decay"] else torch._fused_adam_
        fused(self.params, grads, self.exp_avg, self.exp_avg_sq, [], [self.step_count] * len(self.params),
              amsgrad=False, lr=s["lr"], beta1=s["betas"][0], beta2=s["betas"][1], weight_decay=s["weight_decay"],
              eps=s["eps"], maximize=s["maximize"], grad_scale=None, found_inf=None)


def autocast(config: RunConfig, device: str):
    enabled = config.precision == "bf16" and device in ("cpu", "cuda")
    return torch.autocast(device_type=device if device != "mps" else "cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: RunConfig, device: str) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y)."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH]
        with autocast(config, device):
            logits = model(xb).float()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / len(x), correct.item() / len(x)


def train(config: RunConfig, data: MnistData, *, progress: ProgressFn | None = None,
          should_stop: StopFn | None = None, snapshot_epochs: Iterable[int] = ()) -> tuple[RunResult, dict[int, dict]]:
    """Trains one config. Returns the result and the weights at each of `snapshot_epochs` reached.

    The same config and seed on the same device give the same metrics: weights come from the seed,
    the shuffling and the dropout from generators of their own.
    """
    device = str(data.device.type)
    flush_denormals()
    if config.dataset != data.name:
        raise ValueError(f"a {config.dataset} config was given {data.name} data")
    if config.train_size > len(data.train_x):
        raise ValueError(f"train_size {config.train_size} exceeds the {len(data.train_x)} training images")
    train_x, train_y = data.train_x[:config.train_size], data.train_y[:config.train_size]
    test_x, test_y = scored_test_images(data, config.test_size)
    n, batch = config.train_size, config.batch_size
    steps = math.ceil(n / batch)

    model = seeded_model(config, device)
    if hasattr(model, "dropout_generator"):
        model.dropout_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    optimizer = make_optimizer(config, model.parameters(), device)
    shuffle = torch.Generator().manual_seed(config.seed)
    report_every = max(1, steps // PROGRESS_UPDATES_PER_EPOCH)
    snapshot_epochs, snapshots = set(snapshot_epochs), {}

    history: list[EpochMetrics] = []
    status, diverged_epoch, started = "ok", None, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffle).to(data.device)
        epoch_y = train_y[order]
        # The bookkeeping stays on the device, one op per step each: reading a number back (.item())
        # would make a GPU wait for every step, and on a CPU each extra op costs a few microseconds.
        loss_sum = torch.zeros((), device=data.device)
        predicted = torch.empty(n, dtype=torch.long, device=data.device)
        seen = 0
        for step in range(steps):
            if should_stop is not None and should_stop():
                status = "cancelled"
                break
            lo, hi = step * batch, min(n, (step + 1) * batch)
            xb, yb = train_x.index_select(0, order[lo:hi]), epoch_y[lo:hi]
            with autocast(config, device):
                logits = model(xb).float()
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum.add_(loss.detach(), alpha=hi - lo)
            torch.argmax(logits.detach(), 1, out=predicted[lo:hi])
            seen = hi
            if (step + 1) % report_every == 0 and step + 1 < steps:
                running_loss = loss_sum.item() / seen
                if not math.isfinite(running_loss):
                    status = "diverged"
                    break
                if progress is not None:
                    running_acc = (predicted[:seen] == epoch_y[:seen]).sum().item() / seen
                    progress(epoch, (step + 1) / steps, {"train_loss": running_loss, "train_acc": running_acc})
        if status == "cancelled":
            break
        train_loss = loss_sum.item() / max(seen, 1)
        if status == "diverged" or not math.isfinite(train_loss):
            status, diverged_epoch = "diverged", epoch
            break
        test_loss, test_acc = evaluate(model, test_x, test_y, config, device)
        seconds = time.perf_counter() - epoch_start
        train_acc = (predicted[:seen] == epoch_y[:seen]).sum().item() / seen
        metrics = EpochMetrics(epoch, train_loss, train_acc, test_loss, test_acc, seconds, seen / seconds)
        history.append(metrics)
        if progress is not None:
            progress(epoch, 1.0, asdict(metrics))
        if epoch in snapshot_epochs and epoch < config.epochs:
            snapshots[epoch] = cpu_state(model)

    result = RunResult(config=config, status=status, epochs=history, total_seconds=time.perf_counter() - started,
                       steps_per_epoch=steps, device=device, diverged_epoch=diverged_epoch, data_id=data.data_id,
                       machine=machine_info(device), weights=cpu_state(model))
    return result, snapshots


def machine_info(device: str) -> dict[str, str]:
    """What trained a run, for the timing table: the same config is slower or faster by machine, and
    a CPU's instruction set (cpu_capability) can change its last bits."""
    info = {"cpu": _cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    info["device_name"] = info.get("gpu", info["cpu"])
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
