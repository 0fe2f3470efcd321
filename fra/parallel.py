"""Sharded work on one machine or on Ray, with the same result either way.

``map_shards(fn, shards, shared=...)`` returns ``[fn(shared, s) for s in shards]`` in shard order (with ``then=g``:
``[g(shared, fn(shared, s)) for s in shards]``, each ``g`` task started as soon as its ``fn`` task ends, so that a
shard's second step fills a worker that would otherwise wait). The ``local`` backend is that loop; ``processes`` runs it
on ``workers`` spawned processes of this machine; the ``ray`` backend (the optional ``fra[ray]`` extra) stores
``shared`` once in Ray's object store and runs one single-CPU task per shard. Callers reduce the list to the same tables
whichever backend ``params.yaml``'s ``parallel`` section picks.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

import torch
from tqdm import tqdm

from fra.errors import FRAError

S = TypeVar("S")
T = TypeVar("T")
BACKENDS = ("local", "processes", "ray")


def _run_shard(fn: Callable[[Any, S], T], shared: Any, shard: S) -> T:
    """One task: one CPU, so torch gets one thread and ``workers`` tasks use ``workers`` cores."""
    torch.set_num_threads(1)
    return fn(shared, shard)


def _on_processes(fn: Callable[[Any, S], T], shards: list[S], shared: Any, workers: int, desc: str | None,
                  then: Callable[[Any, T], Any] | None) -> list:
    """Spawned, not forked: a fork of a process whose torch thread pool has started can hang. Tasks queue in
    submission order, so every ``fn`` task precedes the ``then`` tasks, which are submitted as their inputs arrive."""
    if not shards:
        return []
    context = multiprocessing.get_context("spawn")
    results: list = [None] * len(shards)
    with ProcessPoolExecutor(max_workers=min(workers, len(shards)), mp_context=context) as pool, \
            tqdm(total=len(shards), desc=desc) as bar:
        step: dict[Future, tuple[int, bool]] = {pool.submit(_run_shard, fn, shared, s): (i, True)
                                                for i, s in enumerate(shards)}
        pending = set(step)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                i, first = step.pop(future)
                if first and then is not None:
                    chained = pool.submit(_run_shard, then, shared, future.result())
                    step[chained] = (i, False)
                    pending.add(chained)
                else:
                    results[i] = future.result()
                    bar.update()
    return results


def map_shards(fn: Callable[[Any, S], T], shards: Iterable[S], *, shared: Any = None, backend: str = "local",
               workers: int = 2, address: str | None = None, desc: str | None = None,
               then: Callable[[Any, T], Any] | None = None) -> list:
    """``[fn(shared, s) for s in shards]``, in shard order, run by ``backend`` ("local", "processes" or "ray"); with
    ``then``, ``[then(shared, fn(shared, s)) for s in shards]``, a task per step.

    "processes" and "ray" give each task one torch thread. With "ray", a Ray instance already running
    in this process is used as it is; otherwise this call starts one (``workers`` CPUs, or joins the cluster at
    ``address``) and shuts it down afterwards. ``fn`` must be picklable (a module-level function) for Ray.
    """
    if backend not in BACKENDS:
        raise FRAError(f"parallel backend must be one of {list(BACKENDS)}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FRAError(f"parallel workers must be an integer >= 1, got {workers!r}")
    shards = list(shards)
    if backend == "local":
        return [then(shared, fn(shared, s)) if then else fn(shared, s) for s in tqdm(shards, desc=desc)]
    if backend == "processes":
        return _on_processes(fn, shards, shared, workers, desc, then)
    try:
        import ray  # optional: the fra[ray] extra
    except ImportError as exc:
        raise FRAError("parallel backend 'ray' needs Ray, which is not installed; "
                       "run `pip install -e '.[ray]'` or set parallel.backend to local") from exc
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=None if address else workers, address=address, include_dashboard=False,
                 ignore_reinit_error=True, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(_run_shard)
        shared_ref = ray.put(shared)
        refs = [task.remote(fn, shared_ref, s) for s in shards]
        if then is not None:  # Ray passes each first step's result to its second once it exists
            refs = [task.remote(then, shared_ref, ref) for ref in refs]
        pending = list(refs)
        with tqdm(total=len(refs), desc=desc) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
        return ray.get(refs)
    finally:
        if started:
            ray.shutdown()
