import os
import re
import sys
import time
from pathlib import Path

import pytest
import torch

from fra.config import load_params
from fra.errors import ConfigError, FRAError
from fra.parallel import map_shards

SHARDS = [(0, 2), (2, 5), (5, 6), (6, 8)]


def row_sums(shared: tuple[torch.Tensor, Path | None], rows: tuple[int, int]) -> tuple[list[float], int]:
    """A little torch work on the shared matrix, and the process that did it.

    With a rendezvous folder, each task first waits (up to 10 s) until two processes have checked in,
    so that two workers must take part.
    """
    matrix, rendezvous = shared
    if rendezvous is not None:
        (rendezvous / str(os.getpid())).touch()
        deadline = time.monotonic() + 10
        while len(list(rendezvous.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    return (matrix[rows[0]:rows[1]] @ torch.ones(matrix.shape[1], dtype=matrix.dtype)).tolist(), os.getpid()


def threads(shared: None, shard: int) -> int:
    return torch.get_num_threads()


def shared_matrix(rendezvous: Path | None = None) -> tuple[torch.Tensor, Path | None]:
    return torch.randn(8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64), rendezvous


def test_local_is_a_plain_loop():
    shared = shared_matrix()
    assert map_shards(row_sums, SHARDS, shared=shared) == [row_sums(shared, s) for s in SHARDS]


def test_processes_match_local_on_two_workers(tmp_path):
    local = map_shards(row_sums, SHARDS, shared=shared_matrix())
    spawned = map_shards(row_sums, SHARDS, shared=shared_matrix(tmp_path), backend="processes", workers=2)
    assert [values for values, _ in spawned] == [values for values, _ in local]
    pids = {pid for _, pid in spawned}
    assert len(pids) == 2 and os.getpid() not in pids
    assert map_shards(row_sums, [], backend="processes") == []
    assert map_shards(threads, [0, 1], backend="processes", workers=2) == [1, 1]  # one torch thread per task


def test_ray_matches_local_on_two_workers(tmp_path):
    import ray  # scripts/setup.sh installs the `ray` extra: its absence is a failure, not a skip

    local = map_shards(row_sums, SHARDS, shared=shared_matrix())
    remote = map_shards(row_sums, SHARDS, shared=shared_matrix(tmp_path), backend="ray", workers=2, desc="test")
    assert [values for values, _ in remote] == [values for values, _ in local]
    pids = {pid for _, pid in remote}
    assert len(pids) == 2 and os.getpid() not in pids
    assert not ray.is_initialized()  # started by the call, so shut down by it


@pytest.mark.parametrize("kwargs, match", [
    ({"workers": 0}, "workers must be an integer >= 1, got 0"),
    ({"backend": "rai"}, "backend must be one of ['local', 'processes', 'ray'], got 'rai'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(FRAError, match=re.escape(match)):
        map_shards(row_sums, SHARDS, **kwargs)


def test_missing_ray_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    with pytest.raises(FRAError, match=re.escape("pip install -e '.[ray]'")):
        map_shards(row_sums, SHARDS, backend="ray")


def test_params_backend_is_checked(tmp_path):
    (tmp_path / "p.yaml").write_text("parallel: {backend: rai}\n")
    with pytest.raises(ConfigError, match=re.escape("`parallel.backend` must be one of ['local', 'processes', 'ray']")):
        load_params(tmp_path / "p.yaml")
