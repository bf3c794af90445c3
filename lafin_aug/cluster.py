"""Where generate's shard jobs run: local joblib processes, or a Dask cluster through joblib's dask backend.

`scheduler` is "" (the `workers` local processes), "local:N" (a dask.distributed LocalCluster of N
single-threaded worker processes started for the run and closed after it) or the address of a running
scheduler ("tcp://host:8786"). On a cluster, each worker thread runs one shard job at a time; the
workers write shard files into the output directory, which they must share with the client (a network
filesystem), and read the inpainter checkpoint from the same path. Only the client process writes the
manifest and run.json, so no lock has to work across machines. dask[distributed] is the optional
extra `lafin-aug[dask]`.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from joblib import parallel_config

_LOCAL = re.compile(r"local:(\d+)")


@dataclass(frozen=True)
class Backend:
    """The joblib settings of one run: how many jobs at once and, on a cluster, its description."""

    n_jobs: int
    cluster: str = ""


def _distributed():  # noqa: ANN202 - the module, imported only when a cluster is asked for
    try:
        import distributed
    except ImportError as error:
        raise ValueError("--scheduler needs dask.distributed: pip install 'lafin-aug[dask]'") from error
    return distributed


@contextmanager
def job_backend(scheduler: str, workers: int) -> Iterator[Backend]:
    """Run the Parallel calls inside on `scheduler` (see the module docstring); yields the Backend.

    ValueError for a scheduler string that is neither "local:N" nor an address, an unreachable
    scheduler, or a missing dask extra.
    """
    if not scheduler:
        yield Backend(workers)
        return
    distributed = _distributed()
    local = _LOCAL.fullmatch(scheduler)
    if local is None and "://" not in scheduler and ":" not in scheduler:
        raise ValueError(f"--scheduler {scheduler!r}: expected local:N or a scheduler address such as "
                         f"tcp://host:8786")
    with ExitStack() as stack:
        if local is not None:
            processes = int(local.group(1))
            if processes < 1:
                raise ValueError(f"--scheduler {scheduler!r}: a local cluster needs at least one worker")
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=processes, threads_per_worker=1, processes=True, dashboard_address=":0"))
            address = cluster.scheduler_address
        else:
            address = scheduler
        try:
            client = stack.enter_context(distributed.Client(address, timeout="30s"))
        except OSError as error:
            raise ValueError(f"--scheduler {scheduler}: cannot reach the scheduler ({error})") from error
        cores = sum(client.ncores().values())
        stack.enter_context(parallel_config(backend="dask"))
        yield Backend(max(1, cores), f"dask {address} ({len(client.ncores())} workers, {cores} threads)")
