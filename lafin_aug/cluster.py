"""Where generate's shard jobs run: local joblib processes, or a Dask cluster through joblib's dask backend.

`scheduler` is "" (the `workers` local processes), "local:N" (a dask.distributed LocalCluster of N
single-threaded worker processes started for the run and closed after it) or the address of a running
scheduler ("tcp://host:8786"). On a cluster, each worker thread runs one shard job at a time; the
workers write shard files into the output directory, which they must share with the client (a network
filesystem), and read the inpainter checkpoint from the same absolute path. Only the client process
writes the manifest and run.json, so no lock has to work across machines. dask[distributed] is the
optional extra `lafin-aug[dask]`.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import ModuleType

from joblib import parallel_config

_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"([a-z0-9+]+://)?[^\s:/]+:\d+")
WORKER_WAIT_S = 60


@dataclass(frozen=True)
class Backend:
    """The joblib settings of one run: how many jobs at once and, on a cluster, its description."""

    n_jobs: int
    cluster: str = ""


def check_scheduler(scheduler: str, workers: int, world: int) -> None:
    """ValueError unless `scheduler` is "", local:N (N >= 1) or host:port with an optional protocol, and
    it is used alone (not with --workers > 1, not under torchrun)."""
    if not scheduler:
        return
    local = _LOCAL.fullmatch(scheduler)
    if local is not None:
        valid = int(local.group(1)) >= 1
    else:
        valid = not scheduler.startswith("local:") and _ADDRESS.fullmatch(scheduler) is not None
    if not valid:
        raise ValueError(f"--scheduler {scheduler!r}: expected local:N (N >= 1) or a scheduler address such as "
                         f"tcp://host:8786")
    if workers > 1:
        raise ValueError(f"--scheduler {scheduler} runs the shard jobs on the cluster's workers: drop --workers")
    if world > 1:
        raise ValueError(f"--scheduler {scheduler} under torchrun ({world} ranks): use one or the other")


def _distributed() -> ModuleType:
    """dask.distributed, or a ValueError saying how to install it."""
    try:
        import distributed
    except ImportError as error:
        raise ValueError("--scheduler needs dask.distributed: pip install 'lafin-aug[dask]'") from error
    return distributed


@contextmanager
def job_backend(scheduler: str, workers: int) -> Iterator[Backend]:
    """Run the Parallel calls inside on `scheduler`, checked by `check_scheduler` (see the module
    docstring); yields the Backend.

    ValueError (one line naming --scheduler) for a scheduler that cannot be reached or has no worker
    within WORKER_WAIT_S seconds, a missing dask extra, and a worker dying repeatedly on the jobs (Dask
    gives up on a job after its `allowed-failures`): rerunning the command finishes the work.
    """
    if not scheduler:
        yield Backend(workers)
        return
    distributed = _distributed()
    local = _LOCAL.fullmatch(scheduler)
    with ExitStack() as stack:
        if local is not None:
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=int(local.group(1)), threads_per_worker=1, processes=True, dashboard_address=":0"))
            address = cluster.scheduler_address
        else:
            address = scheduler
        try:
            client = stack.enter_context(distributed.Client(address, timeout="30s"))
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"--scheduler {scheduler}: no scheduler with a worker answered within the time limit "
                             f"({type(error).__name__}: {error})") from error
        threads = sum(client.nthreads().values())
        stack.enter_context(parallel_config(backend="dask"))
        try:
            yield Backend(max(1, threads), f"dask {address} ({len(client.nthreads())} workers, {threads} threads)")
        except distributed.KilledWorker as error:
            raise ValueError(f"--scheduler {scheduler}: Dask workers kept dying on a shard job ({error}); rerun the "
                             f"same command to finish the directory") from error
