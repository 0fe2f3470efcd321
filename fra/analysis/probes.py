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

# probes whose earlier occurrence is the query's own token
EXACT_PROBES = ("random_repeat", "frequent_repeat", "text_repeat", "token_repeat")


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
            raise FRAError(f"probe set `{self.kind}` needs one query, target and group "
                           "per query and at least one query")
        if not ((self.target >= 1) & (self.target < self.query)).all():
            raise FRAError(f"probe set `{self.kind}`: every target must be a causal key "
                           "after BOS (1 <= target < query)")

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
    pool: Int[np.ndarray, " n_pool"], bos: int, n_seq: int, n_min: int, n_max: int, seed: int,
    kind: str = "random_repeat",
) -> Probes:
    """``[BOS] r_1..r_N r_1..r_N`` with N drawn per sequence from ``n_min..n_max`` (so no fixed offset).

    Shorter sequences are padded at the end with fresh random tokens (no queries there). Query
    ``N + k`` (the second copy of r_k, k = 1..N-1) has target ``k + 1`` (the earlier r_{k+1}).
    Tokens come from ``pool``: the ordinary tokens (:func:`fra.analysis.heads.token_pool`, ``random_repeat``) or the
    most frequent ones of a corpus (:func:`frequent_pool`, ``frequent_repeat``).
    """
    pool = np.asarray(pool)
    if len(pool) < n_max or n_min < 2:
        raise FRAError(f"repeats of {n_min}..{n_max} distinct tokens need n_min >= 2 and a "
                       f"vocabulary of at least {n_max}")
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n_seq):
        n = int(rng.integers(n_min, n_max + 1))
        parts.append((rng.choice(pool, n, replace=False), rng.choice(pool, 2 * (n_max - n))))
    return _doubled(kind, bos, parts)


def frequent_pool(corpus: Int[Tensor, "seq pos"], allowed: Int[np.ndarray, " n_pool"], n: int) -> Int[np.ndarray, " n"]:
    """The ``n`` most frequent tokens of ``corpus`` among ``allowed`` (ties: the smaller id), for repeats whose tokens
    each recur at many targets: a token- or class-tied channel can then meet ``min_queries`` held-out targets, which
    repeats drawn from a whole vocabulary of tens of thousands never give it."""
    counts = np.bincount(corpus.flatten().numpy(), minlength=int(allowed.max()) + 1)[allowed]
    order = np.lexsort((allowed, -counts))
    return np.sort(allowed[order[:n]])


def _long(x) -> Tensor:
    return torch.tensor(np.asarray(x), dtype=torch.long)


def _doubled(kind: str, bos: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> Probes:
    """``[BOS] w w tail`` per ``(w, tail)``; query ``N + k`` (the copy of w_k, k = 1..N-1) targets ``k + 1``."""
    tokens, seq, query, target = [], [], [], []
    for s, (w, tail) in enumerate(parts):
        n = len(w)
        tokens.append(np.concatenate([[bos], w, w, tail]))
        k = np.arange(1, n)
        seq += [s] * len(k)
        query += list(n + k)
        target += list(k + 1)
    return Probes(kind, _long(np.stack(tokens)), _long(seq), _long(query), _long(target), np.array(["all"] * len(seq)))


def repeated_text(corpus: Int[Tensor, "seq pos"], bos: int, n_seq: int, n_min: int, n_max: int, seed: int) -> Probes:
    """``[BOS] w w`` for windows ``w`` of ``n_min..n_max`` tokens cut from ``corpus`` (natural text).

    Padded at the end with the text that followed the window. Queries and targets as in
    :func:`repeated_random` (the copy's next token); tokens that also repeat inside ``w`` make
    some targets ambiguous, as in any repeated text.
    """
    body = corpus[:, 1:] if (corpus[:, 0] == bos).all() else corpus
    if body.shape[1] < 2 * n_max or n_min < 2:
        raise FRAError(f"text windows of {n_min}..{n_max} tokens need n_min >= 2 and corpus "
                       f"rows of >= {2 * n_max} tokens")
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(n_seq):
        row = body[int(rng.integers(len(body)))].numpy()
        n = int(rng.integers(n_min, n_max + 1))
        start = int(rng.integers(0, body.shape[1] - 2 * n_max + 1))
        parts.append((row[start : start + n], row[start + n : start + n + 2 * (n_max - n)]))
    return _doubled("text_repeat", bos, parts)


# Concept variants for real language models: x and x' name the same concept with different tokens.
CONCEPT_PAIRS = {
    "capitalisation": [(" cat", " Cat"), (" dog", " Dog"), (" house", " House"), (" river", " River"),
                       (" green", " Green"), (" table", " Table"), (" music", " Music"), (" water", " Water")],
    "numbers": [(" 2", " two"), (" 3", " three"), (" 4", " four"), (" 5", " five"), (" 6", " six"),
                (" 7", " seven"), (" 8", " eight"), (" 9", " nine")],
    "synonyms": [(" big", " large"), (" small", " little"), (" fast", " quick"), (" begin", " start"),
                 (" happy", " glad"), (" road", " street"), (" child", " kid"), (" shop", " store")],
    "names": [(" Robert", " Bob"), (" William", " Bill"), (" James", " Jim"), (" Michael", " Mike"),
              (" Thomas", " Tom"), (" Daniel", " Dan"), (" Joseph", " Joe"), (" Samuel", " Sam")],
}
FILLER_WORDS = (" the of and to in is was for on that with as by at from his her it an were are which this be"
                " or has had one their not but all new more when can also other time two there first after"
                " over some so out into only its these may such most him any them up then than").split(" ")[1:]


def single_token_ids(tokenizer, words: list[str]) -> dict[str, int]:
    """The words that the tokenizer encodes as exactly one token, with their ids."""
    out = {}
    for w in words:
        try:
            ids = tokenizer.encode(w, add_special_tokens=False)
        except Exception:  # a word-level vocabulary without an unknown token (the planted world's)
            continue
        if len(ids) == 1:
            out[w] = ids[0]
    return out


def concept_families(tokenizer) -> tuple[dict[str, list[tuple[int, int]]], list[int]]:
    """The families of :data:`CONCEPT_PAIRS` with >= 2 pairs of single tokens, and the filler words' ids; both
    empty when ``tokenizer`` does not write English as single tokens (no such family, or under 10 fillers)."""
    fillers = list(single_token_ids(tokenizer, [" " + w for w in FILLER_WORDS]).values())
    families = {}
    for family, pairs in CONCEPT_PAIRS.items():
        ids = single_token_ids(tokenizer, [w for p in pairs for w in p])
        usable = [(ids[a], ids[b]) for a, b in pairs if a in ids and b in ids]
        if len(usable) >= 2:
            families[family] = usable
    return (families, fillers) if families and len(fillers) >= 10 else ({}, [])


def concept_templates(tokenizer, bos: int, n_seq: int, seed: int, n_episodes: int = 4, length: int = 64) -> Probes:
    """``... x y ... x' -> y`` with x, x' a concept pair of :data:`CONCEPT_PAIRS`, grouped by family.

    Filler words surround the episodes; y is a filler word; the query is x', its target the y
    after x. Pairs whose words are not single tokens for ``tokenizer`` are left out.
    """
    families, fillers = concept_families(tokenizer)
    if not families:
        raise FRAError("no concept-pair family of English tokenizes to single tokens with this tokenizer; extend "
                       "CONCEPT_PAIRS, or for the planted world pass --ground-truth (its concept probes replace them)")
    rng = np.random.default_rng(seed)
    names = sorted(families)
    tokens, seq, query, target, group = [], [], [], [], []
    for s in range(n_seq):
        family = families[names[s % len(names)]]
        row = [bos] + list(rng.choice(fillers, length - 1))
        shift = int(rng.integers(length // 2 - 6, length // 2 + 1))  # varies: no fixed induction offset
        firsts = rng.choice(np.arange(2, length // 2 - 8, 3), n_episodes, replace=False)
        for i, first in zip(rng.choice(len(family), n_episodes, replace=len(family) < n_episodes), firsts):
            (x, x2), second = family[i], first + shift
            row[first], row[second], row[second + 1] = x, x2, row[first + 1]
            seq.append(s)
            query.append(second)
            target.append(first + 1)
            group.append(names[s % len(names)])
        tokens.append(row)
    return Probes("concept_templates", _long(tokens), _long(seq), _long(query), _long(target), np.array(group))
