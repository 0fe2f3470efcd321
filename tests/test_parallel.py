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


def waits_for_shard_0(folder: Path, shard: int) -> tuple[int, bool]:
    """Shard 1 waits (up to 10 s) for shard 0's second step: it ends in time only if that step started while shard
    1's first step was still running."""
    if shard == 1:
        deadline = time.monotonic() + 10
        while not (folder / "0").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return shard, (folder / "0").exists()


def second_step(folder: Path, first: tuple[int, bool]) -> tuple[int, bool]:
    (folder / str(first[0])).touch()
    return first


def shared_matrix(rendezvous: Path | None = None) -> tuple[torch.Tensor, Path | None]:
    """Small integers: their row sums are exact in any order, so spawned tasks (one torch thread) and this process
    (any number) give the same floats bit for bit."""
    return torch.randint(-99, 100, (8, 5), generator=torch.Generator().manual_seed(0)).double(), rendezvous


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


def test_then_chains_each_shard_and_starts_as_its_first_step_ends(tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    assert map_shards(waits_for_shard_0, [0, 1, 2], shared=local, then=second_step)[:2] == [(0, False), (1, True)]
    spawned = tmp_path / "spawned"
    spawned.mkdir()
    # two workers: shard 0 ends at once, and its second step must run beside shard 1, not after every first step
    out = map_shards(waits_for_shard_0, [0, 1, 2], shared=spawned, then=second_step, backend="processes", workers=2)
    assert [shard for shard, _ in out] == [0, 1, 2] and out[1] == (1, True)


def test_ray_matches_local_on_two_workers(tmp_path):
    import ray  # scripts/setup.sh installs the `ray` extra: its absence is a failure, not a skip

    local = map_shards(row_sums, SHARDS, shared=shared_matrix())
    remote = map_shards(row_sums, SHARDS, shared=shared_matrix(tmp_path), backend="ray", workers=2, desc="test")
    assert [values for values, _ in remote] == [values for values, _ in local]
    pids = {pid for _, pid in remote}
    assert len(pids) == 2 and os.getpid() not in pids
    out = map_shards(waits_for_shard_0, [0, 1, 2], shared=tmp_path, then=second_step, backend="ray", workers=2)
    assert [shard for shard, _ in out] == [0, 1, 2] and out[1] == (1, True)
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
