"""What a run produced, as plain data: readable without torch, so that reading the cache is fast."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .config import RunConfig
from .i18n import N_

STATUS_TEXT = {"ok": N_("finished"), "diverged": N_("diverged"), "cancelled": N_("cancelled")}  # a run's status, on screen

ProgressFn = Callable[[int, float, dict[str, Any]], None]  # (epoch, fraction of the epoch, latest metrics)
StopFn = Callable[[], bool]


def on_this_server(worker: str | None) -> bool:
    """Whether a run's worker is this machine: a thread of the server ("local"), the app's private worker
    processes (on 127.0.0.1), or not recorded. Students read "this server", not an address."""
    return worker in (None, "", "local") or worker.startswith(("tcp://127.0.0.1:", "tcp://localhost:"))


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float
    samples_per_second: float


@dataclass
class RunResult:
    """What a run produced. `weights` is the final state dict (CPU tensors); not part of the JSON."""
    config: RunConfig
    status: str                      # "ok", "diverged" or "cancelled"
    epochs: list[EpochMetrics]
    total_seconds: float
    steps_per_epoch: int
    device: str
    diverged_epoch: int | None = None
    key: str = ""
    cached: bool = False
    data_id: str = ""
    created: float = field(default_factory=time.time)
    # Where it was trained: device name (GPU or CPU model), cpu_capability, torch version, worker
    # ("local" or a Dask worker's address). Empty for runs cached before this was recorded.
    machine: dict[str, str] = field(default_factory=dict)
    weights: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def final(self) -> EpochMetrics | None:
        return self.epochs[-1] if self.epochs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "cached": self.cached, "status": self.status, "config": self.config.to_dict(),
            "total_seconds": self.total_seconds, "steps_per_epoch": self.steps_per_epoch, "device": self.device,
            "diverged_epoch": self.diverged_epoch, "data_id": self.data_id, "created": self.created,
            "machine": self.machine, "epochs": [asdict(m) for m in self.epochs],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RunResult":
        return cls(config=RunConfig.from_dict(d["config"]), status=d["status"],
                   epochs=[EpochMetrics(**m) for m in d["epochs"]], total_seconds=float(d["total_seconds"]),
                   steps_per_epoch=int(d["steps_per_epoch"]), device=d["device"], diverged_epoch=d.get("diverged_epoch"),
                   key=d["key"], cached=bool(d.get("cached", False)), data_id=d.get("data_id", ""),
                   created=float(d.get("created", 0.0)), machine=dict(d.get("machine") or {}))

    def prefix(self, epochs: int, weights: dict[str, Any]) -> "RunResult":
        """The first `epochs` epochs of this run as a run of its own (an epoch sweep's shorter values)."""
        kept = self.epochs[:epochs]
        return RunResult(config=self.config.replace(epochs=epochs), status="ok", epochs=kept,
                         total_seconds=sum(m.seconds for m in kept), steps_per_epoch=self.steps_per_epoch,
                         device=self.device, data_id=self.data_id, created=self.created, machine=self.machine,
                         weights=weights)
