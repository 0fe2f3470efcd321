"""Sharded work on one machine or on Ray, with the same result either way.

``map_shards(fn, shards, shared=...)`` returns ``[fn(shared, s) for s in shards]`` in shard order.
The ``local`` backend is that loop; the ``ray`` backend (the optional ``fra[ray]`` extra) stores
``shared`` once in Ray's object store and runs one single-CPU task per shard, so callers reduce the
list to the same tables whichever backend ``params.yaml``'s ``parallel`` section picks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
from tqdm import tqdm

from fra.errors import FRAError

S = TypeVar("S")
T = TypeVar("T")
BACKENDS = ("local", "ray")


def _run_shard(fn: Callable[[Any, S], T], shared: Any, shard: S) -> T:
    """One Ray task: one CPU, so torch gets one thread and ``workers`` tasks use ``workers`` cores."""
    torch.set_num_threads(1)
    return fn(shared, shard)


def map_shards(fn: Callable[[Any, S], T], shards: Iterable[S], *, shared: Any = None, backend: str = "local",
               workers: int = 2, address: str | None = None, desc: str | None = None) -> list[T]:
    """``[fn(shared, s) for s in shards]``, in shard order, run by ``backend`` ("local" or "ray").

    With "ray", a Ray instance already running in this process is used as it is; otherwise this call
    starts one (``workers`` CPUs, or joins the cluster at ``address``) and shuts it down afterwards.
    ``fn`` must be picklable (a module-level function) for Ray.
    """
    if backend not in BACKENDS:
        raise FRAError(f"parallel backend must be one of {list(BACKENDS)}, got {backend!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FRAError(f"parallel workers must be an integer >= 1, got {workers!r}")
    shards = list(shards)
    if backend == "local":
        return [fn(shared, s) for s in tqdm(shards, desc=desc)]
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
        pending = list(refs)
        with tqdm(total=len(refs), desc=desc) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
        return ray.get(refs)
    finally:
        if started:
            ray.shutdown()
