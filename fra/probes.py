"""Induction probes: token sequences with marked (query, target) pairs.

A query is a position in the second occurrence of a repeated segment; its *target* is the key
right after the earlier occurrence of the query's token (exact repeats) or of another member of
its concept (concept repeats): the position an induction head should attend to. Every query has a
``group`` label (e.g. the planted class of its token) so statistics can be kept per group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from fra.errors import FRAError


@dataclass
class Probes:
    kind: str  # e.g. "random_repeat", "concept_repeat"
    tokens: Int[Tensor, "seq pos"]
    seq: Int[Tensor, " query"]  # sequence of each query
    query: Int[Tensor, " query"]
    target: Int[Tensor, " query"]
    group: np.ndarray  # [query] str label

    def __post_init__(self) -> None:
        n = len(self.seq)
        if not (len(self.query) == len(self.target) == len(self.group) == n) or n == 0:
            raise FRAError(f"probe set `{self.kind}` needs one query, target and group per query and at least one query")
        if not ((self.target >= 1) & (self.target < self.query)).all():
            raise FRAError(f"probe set `{self.kind}`: every target must be a causal key after BOS (1 <= target < query)")

    @property
    def groups(self) -> list[str]:
        return sorted(set(self.group.tolist()))

    def batches(self, size: int):
        """Yield ``(tokens, seq_in_batch, query, target, group)`` for ``size`` sequences at a time."""
        for s0 in range(0, len(self.tokens), size):
            s1 = min(s0 + size, len(self.tokens))
            sel = ((self.seq >= s0) & (self.seq < s1)).numpy()
            yield self.tokens[s0:s1], self.seq[sel] - s0, self.query[sel], self.target[sel], self.group[sel]


def repeated_random(
    d_vocab: int, bos: int, n_seq: int, n_min: int, n_max: int, seed: int, exclude: tuple[int, ...] = ()
) -> Probes:
    """``[BOS] r_1..r_N r_1..r_N`` with N drawn per sequence from ``n_min..n_max`` (so no fixed offset).

    Shorter sequences are padded at the end with fresh random tokens (no queries there). Query
    ``N + k`` (the second copy of r_k, k = 1..N-1) has target ``k + 1`` (the earlier r_{k+1}).
    """
    pool = np.array([t for t in range(d_vocab) if t != bos and t not in set(exclude)])
    if len(pool) < n_max or n_min < 2:
        raise FRAError(f"repeats of {n_min}..{n_max} distinct tokens need n_min >= 2 and a vocabulary of at least {n_max}")
    rng = np.random.default_rng(seed)
    length = 1 + 2 * n_max
    tokens, seq, query, target = [], [], [], []
    for s in range(n_seq):
        n = int(rng.integers(n_min, n_max + 1))
        r = rng.choice(pool, n, replace=False)
        tail = rng.choice(pool, length - 1 - 2 * n)
        tokens.append(np.concatenate([[bos], r, r, tail]))
        k = np.arange(1, n)
        seq += [s] * len(k)
        query += list(n + k)
        target += list(k + 1)
    t = lambda x: torch.tensor(np.asarray(x), dtype=torch.long)  # noqa: E731
    return Probes("random_repeat", t(np.stack(tokens)), t(seq), t(query), t(target), np.array(["all"] * len(seq)))
