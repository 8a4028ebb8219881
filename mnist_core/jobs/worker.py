"""A job where it trains (a thread of the server, or a Dask worker): `run_job`, and what it returns.

Workers load MNIST themselves (`load_mnist`, their own MNIST_DATA_DIR) and refuse to train if their
files hash differently from the server's (the keys would not agree). They return the metrics and the
weights (safetensors bytes, never a pickle of tensors); the server stores them atomically under the
keys' locks (RunCache.get_or_train_all, as every training does), so a worker never needs the
server's disk, and two server processes asking for the same run still train it once.

A worker that dies mid-job fails that job ("the machine training it stopped"); pressing Run again
submits a new job. Dask would run the task again elsewhere (allowed-failures, 3 by default): that
second attempt finds the job's "began" Event set and fails at once with the same message, so the
behaviour does not depend on the scheduler's settings (with allowed-failures=0 Dask raises
KilledWorker instead, which means the same). We fail rather than retry silently because a job that
kills its worker (out of memory, say) would otherwise take down every worker in turn.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from ..config import RunConfig
from ..i18n import N_
from ..results import RunResult
from .channels import DaskChannel, LocalChannel

UNEXPECTED = N_("The training stopped with an unexpected error (the server's log says which). Press Run to try again; "
                "if it happens again, tell your teacher.")
WORKER_LOST = N_("The machine training this stopped before it finished; press Run to train it again.")


# A private local cluster's workers share the machine's cores: each sets torch to its share before training.
TORCH_THREADS = "MNIST_LAB_TORCH_THREADS"


class JobFailed(Exception):
    """A job's training could not run; the message is meant for a student."""


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run a job: plain data, sent to a Dask worker as is."""
    config: RunConfig
    snapshot_epochs: tuple[int, ...]
    device: str
    data_id: str
    data_dir: str | None  # None: the worker's own MNIST_DATA_DIR


def run_job(spec: JobSpec, channel: LocalChannel | DaskChannel) -> dict[str, Any]:
    """Trains one job where it runs (a thread of the server, or a Dask worker) and returns its results:
    {"worker", "run": RunResult JSON, "weights": safetensors bytes, "snapshots": {epoch: bytes}}."""
    worker = _worker_address()
    if not channel.begin():
        raise JobFailed(WORKER_LOST)
    try:
        return _train(spec, channel, worker)
    finally:
        channel.finish()  # the last progress goes out before the result


def _train(spec: JobSpec, channel: LocalChannel | DaskChannel, worker: str) -> dict[str, Any]:
    import torch
    from safetensors.torch import save

    from ..data import DATASETS, load_dataset, loaded
    from ..train import resolve_device, train
    if os.environ.get(TORCH_THREADS) and worker != "local":
        torch.set_num_threads(int(os.environ[TORCH_THREADS]))
    try:
        device = resolve_device(spec.device)
        data = loaded(spec.data_id, device) or load_dataset(spec.config.dataset, device, spec.data_dir)
    except Exception as e:  # DataNotFoundError, DeviceError: the worker's setup, said plainly
        raise JobFailed(f"The machine {worker} cannot train this: {e}") from None
    if data.data_id != spec.data_id:
        raise JobFailed(f"The machine {worker} has different {DATASETS[spec.config.dataset].title} files from the server's (checked "
                        "by their hashes), so its runs would not match; give it the same files (MNIST_DATA_DIR, "
                        "FASHION_MNIST_DATA_DIR).")
    channel.put({"worker": worker})

    def progress(epoch: int, fraction: float, metrics: dict[str, Any]) -> None:
        channel.put({"epoch": epoch, "fraction": fraction, "metrics": metrics})

    result, snapshots = train(spec.config, data, progress=progress, should_stop=channel.should_stop,
                              snapshot_epochs=spec.snapshot_epochs)
    result.machine = {**result.machine, "worker": worker}
    return {"worker": worker, "run": result.to_json(), "weights": save(result.weights),
            "snapshots": {epoch: save(weights) for epoch, weights in snapshots.items()}}


def _worker_address() -> str:
    if "distributed" in sys.modules:
        from distributed import get_worker
        try:
            return get_worker().address
        except ValueError:  # not inside a Dask worker
            pass
    return "local"


def unpack(out: dict[str, Any]) -> tuple[RunResult, dict[int, dict]]:
    from safetensors.torch import load
    result = RunResult.from_json(out["run"])
    result.weights = load(out["weights"])
    return result, {int(epoch): load(blob) for epoch, blob in out["snapshots"].items()}


def student_message(error: BaseException) -> str:
    """A failure in words a student can act on (the details go to the server's log). The fixed sentences
    are catalog texts: a page shows a job's message through its translator."""
    if isinstance(error, JobFailed):
        return error.args[0] if error.args else WORKER_LOST  # a Message keeps its values, for the page to translate
    if type(error).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError"):
        return WORKER_LOST
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return N_("The training ran out of memory; try a smaller batch size or a smaller model.")
    return UNEXPECTED  # the exception itself goes to the operator's log (the driver logs it), not to a student
