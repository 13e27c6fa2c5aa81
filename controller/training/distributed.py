"""Data-parallel training with torch.distributed: one process per device, started by torch's elastic launcher.

``jetfleet train ... --nproc-per-node N`` runs the launcher in-process
(``torch.distributed.run``, the code behind ``torchrun``), which starts N
workers running ``python -m jetfleet.controller.training`` with the same
arguments; ``torchrun -m jetfleet.controller.training ...`` is the same thing
started by hand, and takes ``--nnodes``/``--rdzv-endpoint`` for several
machines. Each worker reads its place from the environment the launcher sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

- Backend: NCCL on CUDA (one GPU per local rank), gloo on CPU.
- Every collective has a timeout, so a rank that dies never leaves the others
  waiting forever; the launcher sees the dead worker, stops the rest and
  fails the run with its rank and exit code, or restarts all of them under
  ``--max-restarts`` (a restarted run resumes from ``last.pt``).
- Only rank 0 writes (checkpoints, history, plots, the registry version).
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from jetfleet.common.errors import JetfleetError

COLLECTIVE_TIMEOUT_S = 600  # a rank silent this long is dead: fail instead of hanging
RDZV_TIMEOUT_S = 300  # how long the launcher waits for every node to join


@dataclass(frozen=True)
class Placement:
    """Where this process sits in the job; one process (rank 0 of 1) when not launched by torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def placement_from_env(env: dict[str, str] | None = None) -> Placement:
    """The placement torchrun describes in ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``."""
    env = dict(os.environ) if env is None else env
    try:
        return Placement(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise JetfleetError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from exc


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_launcher() -> None:
    """Ask Linux to SIGKILL this worker when its launcher dies.

    torch's elastic agent starts each rank in its own session, so a launcher
    killed with SIGKILL (an OOM kill, ``kill -9``) would leave the ranks
    training on as orphans, still writing the run folder and registering a
    version that nobody asked for any more.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the launcher died before prctl took effect
        os._exit(1)


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init(place: Placement, device: torch.device) -> torch.device:
    """Join the process group; on CUDA each local rank takes its own GPU. Returns this rank's device."""
    if not place.enabled:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(place.local_rank)
        device = torch.device("cuda", place.local_rank)
    dist.init_process_group(backend_for(device), timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    return device


def shutdown(place: Placement) -> None:
    if place.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sums(values: list[float], device: torch.device, place: Placement) -> list[float]:
    """Element-wise sums over ranks (one collective for all of them)."""
    if not place.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def broadcast(obj: Any, place: Placement) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory, chosen once)."""
    if not place.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(place: Placement) -> None:
    if place.enabled:
        dist.barrier()


def oversubscription_warning(nproc: int, device: str) -> str | None:
    """Why ``--nproc-per-node`` exceeds what this machine has, or None."""
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        gpus = torch.cuda.device_count()
        if nproc > gpus:
            return f"--nproc-per-node {nproc} but this machine has {gpus} GPU(s): ranks will share devices"
        return None
    cores = os.cpu_count() or 1
    if nproc > cores:
        return f"--nproc-per-node {nproc} but this machine has {cores} CPU core(s): ranks will share them"
    return None


def launcher_args(
    train_argv: list[str],
    nproc: int,
    nnodes: str = "1",
    rdzv_endpoint: str | None = None,
    rdzv_timeout_s: int = RDZV_TIMEOUT_S,
    max_restarts: int = 0,
) -> list[str]:
    """torchrun's command line for ``python -m jetfleet.controller.training TRAIN_ARGV``."""
    args = [f"--nnodes={nnodes}", f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}"]
    if rdzv_endpoint:
        args += [
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-conf=join_timeout={rdzv_timeout_s}",
        ]
    else:
        args += ["--standalone"]
    return [*args, "-m", "jetfleet.controller.training", *train_argv]


def launch(args: list[str]) -> None:
    """Run torch's elastic launcher in this process; a failed rank becomes one clear error."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    try:
        run(get_args_parser().parse_args(args))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise JetfleetError(
            f"distributed training failed: rank {rank} exited with {failure.exitcode} "
            f"({len(exc.failures)} rank(s) failed)",
            hint="its log above says why; add --max-restarts N to restart the job from its last checkpoint",
        ) from None
    except Exception as exc:  # rendezvous timeouts and the like come as several torch types
        if "rendezvous" in type(exc).__name__.lower() or "Rendezvous" in str(exc):
            detail = f": {exc}" if str(exc) else ""
            raise JetfleetError(
                "distributed training could not start: not every node joined the rendezvous in time "
                f"({type(exc).__name__}{detail})",
                hint="start the same command on every machine (--nnodes, --rdzv-endpoint), or raise --rdzv-timeout",
            ) from None
        raise
