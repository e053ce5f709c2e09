"""Run one method of a zoo over many items in worker processes (joblib), each leaving its result in the store."""
from __future__ import annotations

import os

import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm


def fan_out(owner, method: str, items: list, n_jobs: int, desc: str) -> None:
    """Call ``owner.<method>(item)`` for every item, in ``n_jobs`` worker processes (1 = in this process).

    ``owner`` is any zoo built as ``type(owner)(preset, cache_root, show_progress)``; each worker rebuilds it, gets
    an equal share of the cores and leaves its results in the shared artifact store.
    """
    if not items:
        return
    n_jobs = max(1, min(n_jobs, len(items)))
    if n_jobs == 1:
        iterator = (getattr(owner, method)(item) for item in items)
    else:
        threads = max(1, (os.cpu_count() or 1) // n_jobs)
        iterator = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_run_in_worker)(type(owner), owner.p, str(owner.cache_root), method, item, threads) for item in items)
    for _ in tqdm(iterator, total=len(items), desc=desc, disable=not owner.show_progress):
        pass


def _run_in_worker(owner_class, preset, cache_root: str, method: str, item, threads: int) -> None:
    torch.set_num_threads(threads)
    getattr(owner_class(preset, cache_root, show_progress=False), method)(item)
