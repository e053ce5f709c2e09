"""Run one method of a zoo over many items in worker processes, each leaving its result in the shared store.

joblib is the only API; its backend is the preset's ``fan_out_backend``:

* ``loky`` (default): local worker processes, ``n_jobs`` of them, each with an equal share of the cores.
* ``dask``: a ``dask.distributed`` cluster at ``scheduler_address`` (``tcp://host:8786``), or, with no address, a
  ``LocalCluster`` of ``n_jobs`` single-threaded worker processes. On a GPU cluster start one worker per GPU
  (``dask-cuda``'s ``dask cuda worker``, or ``dask worker --nworkers 1 --nthreads 1`` per device), so a task owns
  one GPU.
* ``ray``: a Ray cluster at ``scheduler_address`` (``ray://host:10001`` or ``auto``), or a local one; with
  ``device="cuda"`` each task asks Ray for one GPU.

Every worker must see the same artifact cache (``PROVLIB_CACHE_DIR`` on a shared file system): workers read
finished inputs from it and write their results into it, atomically, so a lost worker only loses its own task.
"""
from __future__ import annotations

import os

import torch
from joblib import Parallel, delayed, parallel_config

from provlib.core.errors import ParameterError
from provlib.core.progress import tqdm

_CLUSTERS: dict = {}  # one client per (backend, address) per process: a cluster is started once, not per fan-out


def fan_out(owner, method: str, items: list, n_jobs: int, desc: str) -> None:
    """Call ``owner.<method>(item)`` for every item, in ``n_jobs`` workers of the preset's backend (1 = here).

    ``owner`` is any zoo built as ``type(owner)(preset, cache_root, show_progress)``; each worker rebuilds it and
    leaves its results in the shared artifact store.
    """
    if not items:
        return
    runtime = owner.p.runtime
    # a trained model's bits depend on the torch thread count it trained with (reductions split by thread), so each
    # item gets the cores' share that the asked-for n_jobs gives, however many items are pending: a resumed run with
    # one item left builds it as the cold run did
    threads = max(1, available_cores() // max(1, n_jobs))
    asked, n_jobs = n_jobs, max(1, min(n_jobs, len(items)))
    if n_jobs == 1 and runtime.fan_out_backend == "loky":
        iterator = (call_with_threads(threads if asked > 1 else None, getattr(owner, method), item) for item in items)
    else:
        backend = runtime.fan_out_backend
        threads = threads if backend == "loky" else 1
        with backend_config(runtime, n_jobs):
            results = Parallel(n_jobs=n_jobs, return_as="generator_unordered" if backend == "loky" else "list")(
                delayed(_run_in_worker)(type(owner), owner.p, str(owner.cache_root), method, item, threads)
                for item in items)
        iterator = iter(results)
    for _ in tqdm(iterator, total=len(items), desc=desc, disable=not owner.show_progress):
        pass


def available_cores() -> int:
    """The cores this process may run on (a ``taskset`` or container limit), not every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def backend_config(runtime, n_jobs: int):
    """joblib's ``parallel_config`` for the preset's backend, connecting to (or starting) its cluster."""
    backend, address = runtime.fan_out_backend, runtime.scheduler_address
    if backend == "loky":
        return parallel_config(backend="loky")
    if backend == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as error:
            raise ParameterError("fan_out_backend", "'loky', or 'dask' with dask[distributed] installed "
                                 "(pip install -e '.[cluster]')", backend) from error
        key = ("dask", address or f"local-{n_jobs}")
        if key not in _CLUSTERS or _CLUSTERS[key].status != "running":
            _CLUSTERS[key] = Client(address) if address else Client(
                LocalCluster(n_workers=n_jobs, threads_per_worker=1, processes=True, dashboard_address=None))
        return parallel_config(backend="dask", wait_for_workers_timeout=60)
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as error:
        raise ParameterError("fan_out_backend", "'loky', or 'ray' with ray installed (pip install 'ray[default]')",
                             backend) from error
    if not ray.is_initialized():
        ray.init(address=address or None, ignore_reinit_error=True)
    register_ray()
    gpu = {"num_gpus": 1} if runtime.device == "cuda" else {}
    return parallel_config(backend="ray", ray_remote_args=gpu)


def shutdown_clusters() -> None:
    """Close the clients (and local clusters) this process started."""
    for client in _CLUSTERS.values():
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()
    _CLUSTERS.clear()


def call_with_threads(threads: int | None, function, *args):
    """``function(*args)`` with torch on ``threads`` threads (None: as it is), the count restored afterwards."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return function(*args)
    finally:
        torch.set_num_threads(previous)


def _run_in_worker(owner_class, preset, cache_root: str, method: str, item, threads: int) -> None:
    torch.set_num_threads(threads)
    getattr(owner_class(preset, cache_root, show_progress=False), method)(item)
