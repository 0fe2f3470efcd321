"""Channel-level induction: which feature-pair channels ``FRA[:, :, a, b]`` of a head do induction.

For head h, channel c = (a, b) and probe queries q with induction targets t(q) (see ``fra.analysis.probes``),
write ``C[q, j] = FRA[q, j, a, b]`` (zero where a is inactive at q, b at j, or j > q). Then

* support(c) = sum_q |C[q, t]| / sum_q sum_terms |term[q, t]| over the queries where the channel
  is present at the target (C[q, t] != 0): its share of the head's |score| at the induction
  targets when it is there (all feature pairs plus bias/error terms in the denominator);
* channel induction CI(c) = sum_q C[q, t] / sum_q sum_{j<=q} |C[q, j]|, in [-1, 1]: how much of the
  channel's contribution to these queries falls on the target rather than on the other causal keys;
* softmax effect(c) = mean_q [A[q, t] - softmax(S[q] - C[q])[t]] over the queries where the channel
  is present: the attention to the target that is lost when its contribution is removed from S.

For models without rotary positions ``C[q, j] = alpha_a(q) beta_b(j) G_ab`` with one head-dependent
constant G_ab, so CI and the null p-value describe where the feature pair co-occurs and are the
same for every head (up to sign); support and softmax effect say how much the head uses it.

Null: each t(q) is replaced by a uniform random causal key in 1..q (keys shifted off the induction
target; the target itself included, as in a permutation test); the one-sided p-value of
``sum_q C[q, t]`` uses the exact permutation mean and variance and is never below the probability that the null
redraws every target (``fra.analysis.stats.null_terms``, the statistics core this search shares with the
chain-of-thought study); the matched null redraws it among the keys where the key feature is active. Candidates are
chosen on discovery probes (support >= min_support at >= min_queries targets, at most max_candidates per head and
group); CI, effect, p-values, the lift's sequence-bootstrap interval and the shuffled-key null lift are recomputed on
held-out probes, and Benjamini–Hochberg runs over every test made (``test``: a pair whose statistics cannot differ
between heads counts once). A confirmed channel needs q <= alpha and an effect size: a held-out lift (CI minus the
null's CI) of at least the model's lift threshold with its interval above 0, a softmax effect of at least
min_effect, a scale share of at least min_scale_share, presence at min_queries held-out targets, and the matched
null where it can tell (:func:`fra.analysis.stats.confirm`).

``shuffle_seed`` runs the same search on a negative control: key-side features permuted across
positions within each sequence (:meth:`fra.engine.FRA.with_shuffled_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.cache import ProbeCache, Resolved
from fra.analysis.probes import Probes
from fra.analysis.schema import TESTED
from fra.analysis.stats import (
    BY_SEQUENCE,
    SUMS,
    channel_statistics,
    channel_sums,
    is_candidate,
    null_terms,
    score_scale,
)
from fra.config import ChannelConfig, EngineConfig, ParallelConfig
from fra.engine.result import segment_sums
from fra.errors import FRAError
from fra.parallel import map_shards

TERM_GROUPS = ("feature pairs", "error", "bias and rest")  # how a score's |terms| at the target split


def _target_mass(batch: Resolved) -> torch.Tensor:
    """Pair values at the targets ``[n, head, K, K]``. Each query's total |score| terms there (``[n, head]``) is kept
    in ``batch.mass``, and split into :data:`TERM_GROUPS` in ``batch.term_mass`` (``[group, n, head]``): feature
    pairs, every term with an SAE-error side, and the rest (b_dec, biases, positions, truncated features)."""
    vals = batch.resolved.pairs_at(batch.seq, batch.query, batch.target)
    rest = batch.resolved.remainder_at(batch.seq, batch.query, batch.target)
    pairs = vals.abs().sum((-2, -1))
    error = sum((r.abs() for name, r in rest.items() if "error" in name), torch.zeros_like(pairs))
    other = sum((r.abs() for name, r in rest.items() if "error" not in name), torch.zeros_like(pairs))
    batch.term_mass = torch.stack([pairs, error, other]).cpu()
    batch.mass = (pairs + error + other).cpu()
    return vals.cpu()


def _slot_sums(batches: list[Resolved], targets: list["_Targets"], min_count: int) -> tuple[Tensor, Tensor]:
    """Per channel key (group, a, b) met at ``min_count`` or more targets: the sums over its active slot pairs of the
    pair value, its |value|, the target's |score| mass where the value is nonzero, and that count, per head
    ``[4, key, head]``. One sort of every key finds the frequent ones and where each entry adds."""
    uniq, inverse, count = torch.unique(torch.cat([t.key for t in targets]), return_inverse=True, return_counts=True)
    frequent = count >= min_count
    row = torch.cumsum(frequent, 0) - 1  # each frequent key's row
    out = None
    for batch, t, inv in zip(batches, targets, torch.split(inverse, [len(t.key) for t in targets])):
        vals = _target_mass(batch).permute(0, 2, 3, 1).contiguous()  # [n, K, K, head]: one entry's heads side by side
        on = frequent[inv]
        v = vals[t.n[on], t.sa[on], t.sb[on]]  # [pairs, head]
        x = v.new_empty(len(v), 4, v.shape[1])  # value, |value|, mass where present, present
        x[:, 0], x[:, 3] = v, v != 0
        torch.abs(v, out=x[:, 1])
        torch.mul(batch.mass[t.n[on]], x[:, 3], out=x[:, 2])
        if out is None:
            out = v.new_zeros(int(frequent.sum()), 4, v.shape[1])
        out.index_add_(0, row[inv[on]], x)
    return uniq[frequent], out.transpose(0, 1)


def _entry_sums(batches: list[Resolved], targets: list["_Targets"], H: int, d: int) -> tuple[Tensor, list[Tensor]]:
    """The reference of :func:`_slot_sums`: every nonzero (head, slot, slot) entry keyed by (group, head, a, b)."""
    keys, parts = [], []
    for batch, t in zip(batches, targets):
        vals, mass = _target_mass(batch), batch.mass
        n, hh, sa, sb = torch.nonzero(vals, as_tuple=True)
        v, m = vals[n, hh, sa, sb], mass[n, hh]
        uniq, _, sums = segment_sums(((t.g[n] * H + hh) * d + t.q_ids[n, sa]) * d + t.k_ids[n, sb], v, v.abs(), m,
                                     torch.ones_like(v))
        keys.append(uniq)
        parts.append(sums)
    key, _, sums = segment_sums(torch.cat(keys), *(torch.cat(x) for x in zip(*parts)))
    return key, sums


class _Targets(NamedTuple):
    """A batch's induction targets: group of each, active feature ids at the query and at the target, and every
    (target n, query slot sa, key slot sb) pair of active slots with its channel key ``(g * d + a) * d + b``."""

    g: Tensor
    q_ids: Tensor
    k_ids: Tensor
    n: Tensor
    sa: Tensor
    sb: Tensor
    key: Tensor

    @classmethod
    def of(cls, g: Tensor, q_ids: Tensor, k_ids: Tensor, d: int) -> "_Targets":
        n, sa, sb = torch.nonzero((q_ids[:, :, None] >= 0) & (k_ids[:, None, :] >= 0), as_tuple=True)
        return cls(g, q_ids, k_ids, n, sa, sb, (g[n] * d + q_ids[n, sa]) * d + k_ids[n, sb])


def discover(sae: SAE, layer: int, probes: Probes, engine: EngineConfig, cache: ProbeCache,
             shuffle_seed: int | None = None, dense: bool = False,
             cfg: ChannelConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Support of every channel with a nonzero contribution at an induction target, per group and head
    (with ``cfg``, only the channels :func:`candidates` picks: the ``max_candidates`` best that pass ``min_support``
    and ``min_queries``).

    Also returns each head's mean attention to the target per group, and the decomposition's
    exactness (:meth:`fra.engine.FRA.exactness`) on the first batch: feature pairs summed by
    bilinearity, or from every pair block when ``dense``. Channels are keyed by (group, a, b) with one
    column per head, over the active slot pairs only; ``dense`` keys every (group, head, a, b) entry of
    the padded ``[K, K]`` slot grid (the reference path; the same table up to rounding).
    """
    groups = probes.groups
    index = {g: n for n, g in enumerate(groups)}
    batches = list(cache.resolved(sae, layer, probes, engine, shuffle_seed))
    heads_of = np.array(batches[0].resolved.heads)  # a slot's head (all of the layer's, or the one a plant is in)
    H, d = len(heads_of), sae.cfg.d_sae
    attn, n_q = torch.zeros(len(groups), H), torch.zeros(len(groups))
    targets = []
    for batch in batches:
        resolved, seq, query, target = batch.resolved, batch.seq, batch.query, batch.target
        g = torch.tensor([index[x] for x in batch.group])
        pattern = resolved.scores[seq, :, query].softmax(-1).cpu()  # [n, head, key]
        attn.index_add_(0, g, pattern.gather(-1, target[:, None, None].expand(-1, H, 1))[..., 0])
        n_q.index_add_(0, g, torch.ones(len(g)))
        targets.append(_Targets.of(g, resolved.feature_ids.cpu()[seq, query], resolved.k_ids.cpu()[seq, target], d))
    if dense:
        key, (total, absolute, present_mass, n_present) = _entry_sums(batches, targets, H, d)
    else:  # a channel met at fewer targets than min_queries can never be a candidate
        key, (total, absolute, present_mass, n_present) = _slot_sums(batches, targets, cfg.min_queries if cfg else 1)
    exactness = batches[0].resolved.exactness(from_pairs=dense) if batches else None
    if dense:
        g, rest = key // (H * d * d), key % (H * d * d)
        h, rest = rest // (d * d), rest % (d * d)
    else:  # [key, head] -> the reference's rows: (group, head, a, b) order, entries with a nonzero value only
        keep = n_present > 0
        if cfg is not None:  # the rows candidates() picks, chosen before any row is formed (the same choice as below)
            keep &= is_candidate(absolute / present_mass, n_present, cfg)
            keep &= _best_per_column(key // (d * d), absolute / present_mass, keep, cfg.max_candidates)
        u, h = torch.nonzero(keep, as_tuple=True)
        g, rest = key[u] // (d * d), key[u] % (d * d)
        u_order = torch.from_numpy(np.lexsort((rest.numpy(), h.numpy(), g.numpy())))
        u, h, g, rest = u[u_order], h[u_order], g[u_order], rest[u_order]
        total, absolute, present_mass, n_present = (x[u, h] for x in (total, absolute, present_mass, n_present))
    support = absolute / present_mass
    if cfg is not None:
        keep = is_candidate(support, n_present, cfg)
        g, h, rest, total, support, n_present = (x[keep] for x in (g, h, rest, total, support, n_present))
        keep = torch.from_numpy(_best(g.numpy(), h.numpy(), support.numpy(), cfg.max_candidates))
        g, h, rest, total, support, n_present = (x[keep] for x in (g, h, rest, total, support, n_present))
    terms = torch.zeros(len(TERM_GROUPS), len(groups), H)
    for batch, t in zip(batches, targets):
        terms.index_add_(1, t.g, batch.term_mass)
    channels = pd.DataFrame({
        "group": np.array(groups)[g.numpy()], "layer": layer, "head": heads_of[h.numpy()],
        "query_feature": (rest // d).numpy(), "key_feature": (rest % d).numpy(),
        "target_sum": total.numpy(), "support": support.numpy(),
        "n_targets": n_present.long().numpy(),
    })
    share = (terms / terms.sum(0).clamp(min=1e-30)).flatten(1)  # [term group, group x head]
    heads = pd.DataFrame({
        "group": np.repeat(groups, H), "layer": layer, "head": np.tile(heads_of, len(groups)),
        "attention_to_target": (attn / n_q[:, None]).flatten().numpy(),
        "pair_share_at_target": share[0].numpy(), "error_share_at_target": share[1].numpy(),
        "other_share_at_target": share[2].numpy(),
    })
    return channels, heads, exactness


def _best_per_column(group: Int[Tensor, " key"], support: Float[Tensor, "key head"], ok: Bool[Tensor, "key head"],
                     n: int) -> Bool[Tensor, "key head"]:
    """The ``n`` entries of highest support per group (a run of keys) and head among ``ok``, ties to the earlier key:
    :func:`_best` on the ``[key, head]`` table, without sorting it."""
    out = torch.zeros_like(ok)
    bounds = torch.searchsorted(group, torch.unique(group), right=True).tolist()
    for lo, hi in zip([0, *bounds[:-1]], bounds):
        s = torch.where(ok[lo:hi], support[lo:hi], -torch.inf)
        k = min(n, hi - lo)
        v = torch.topk(s, k, dim=0).values[-1]  # each head's k-th best
        above, tie = s > v, (s == v) & ok[lo:hi]
        need = k - above.sum(0)
        if (tie.sum(0) > need).any():  # ties at the k-th value: the earlier keys first
            tie &= tie.cumsum(0) <= need
        out[lo:hi] = (above | tie) & ok[lo:hi]
    return out


def _best(g: np.ndarray, h: np.ndarray, support: np.ndarray, n: int) -> np.ndarray:
    """Mask of the ``n`` rows of highest support per (g, h), ties to the earlier row (as :func:`candidates` picks
    them)."""
    order = np.lexsort((np.arange(len(g)), -support, h, g))
    gh = g[order] * (h.max(initial=0) + 1) + h[order]
    start = np.r_[0, np.flatnonzero(np.diff(gh)) + 1]
    rank = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
    keep = np.zeros(len(g), dtype=bool)
    keep[order[rank < n]] = True
    return keep


def candidates(channels: pd.DataFrame, cfg: ChannelConfig) -> pd.DataFrame:
    """Channels with support >= min_support at >= min_queries targets, the ``max_candidates`` best per
    (group, layer, head) (ties: the earlier row)."""
    keep = channels[is_candidate(channels["support"], channels["n_targets"], cfg)]
    keep = keep.sort_values("support", ascending=False, kind="stable")
    return keep.groupby(["group", "layer", "head"], sort=False).head(cfg.max_candidates).reset_index(drop=True)


def is_present(C: Float[Tensor, "query *channel key"], query: Int[Tensor, " query"]) -> Bool[Tensor, " query *channel"]:
    """Where a channel is *present*: its row for each query is nonzero on some causal key (j <= query)."""
    causal = torch.arange(C.shape[-1], device=C.device) <= query.to(C.device).view(-1, *[1] * (C.ndim - 1))
    return ((C != 0) & causal).any(-1)


def _head_rows(C: Float[Tensor, "row key"], query: Int[Tensor, " row"], target: Int[Tensor, " row"],
               scores: Float[Tensor, "row key"], mass: Float[Tensor, " row"]) -> dict[str, Tensor]:
    """The per-row terms of :data:`fra.analysis.stats.SUMS` for induction rows: row r is one channel's contribution
    to one query's scores (``query``, ``target``, the head's ``scores`` there, -inf above the diagonal, and ``mass``,
    the query's total |score| terms at its target). The null draws the target among the causal keys after BOS."""
    j = torch.arange(C.shape[-1])
    causal = j[None] <= query[:, None]
    C = C * causal
    rows = null_terms(C, target, causal & (j[None] >= 1))
    on_t = (rows["obs"] != 0).to(C.dtype)
    present = (C != 0).any(1).to(C.dtype)
    base = scores.softmax(-1).gather(1, target[:, None])[:, 0]
    ablated = (scores - C).softmax(-1).gather(1, target[:, None])[:, 0]
    return {**rows, "abs_t": rows["obs"].abs(), "mass_t": on_t * mass, "scale_t": on_t * score_scale(scores),
            "n_t": on_t, "abs_all": C.abs().sum(1), "effect": (base - ablated) * present, "n_present": present}


def row_sums(
    C: Float[Tensor, "row key"], channel: Int[Tensor, " row"], n_channels: int, query: Int[Tensor, " row"],
    target: Int[Tensor, " row"], scores: Float[Tensor, "row key"], mass: Float[Tensor, " row"],
    sequence: Int[Tensor, " row"] | None = None, n_sequences: int = 0,
) -> dict[str, np.ndarray]:
    """Per channel (and, with ``sequence``, per channel and probe sequence), the sums of
    :data:`fra.analysis.stats.SUMS` over the rows where it can be nonzero (:meth:`fra.engine.FRA.channel_rows`; row r
    belongs to channel ``channel[r]``). Every sum is zero on the rows left out, so this equals summing over every probe
    query (:func:`dense_sums`, the reference)."""
    return channel_sums(channel, n_channels, sequence, n_sequences, **_head_rows(C, query, target, scores, mass))


def dense_sums(
    C: Float[Tensor, "query channel key"], query: Int[Tensor, " query"], target: Int[Tensor, " query"],
    scores: Float[Tensor, "query key"], mass: Float[Tensor, " query"], sequence: Int[Tensor, " query"] | None = None,
    n_sequences: int = 0,
) -> dict[str, np.ndarray]:
    """:func:`row_sums` from every channel's full map at every query (the reference path)."""
    n, M = C.shape[:2]
    expand = lambda x: x.repeat_interleave(M, 0)  # noqa: E731  query-major rows, one per (query, channel)
    return row_sums(C.flatten(0, 1), torch.arange(M).repeat(n), M, expand(query), expand(target), expand(scores),
                    expand(mass), None if sequence is None else expand(sequence), n_sequences)


def evaluate(sae: SAE, layer: int, probes: Probes, cands: pd.DataFrame, engine: EngineConfig,
             cache: ProbeCache, shuffle_seed: int | None = None, dense: bool = False,
             n_resamples: int = 0) -> pd.DataFrame:
    """Every statistic of each candidate on ``probes`` (:func:`fra.analysis.stats.channel_statistics`; with
    ``n_resamples`` the lift's sequence-bootstrap interval).

    The sums come from the rows where a candidate's query feature is active (:func:`row_sums`);
    ``dense`` forms every channel's full ``[pos, pos]`` map instead (:func:`dense_sums`, the reference).
    """
    cands = cands[cands["layer"] == layer].reset_index(drop=True)
    n_seq = len(probes.tokens)
    acc = {k: np.zeros(len(cands)) for k in SUMS} | {f"{k}_by_seq": np.zeros((len(cands), n_seq)) for k in BY_SEQUENCE}
    parts = cands.groupby(["group", "head"] if dense else "group").groups  # the rows path takes every head at once
    offset = 0  # the batch's first sequence in ``probes``
    for batch in cache.resolved(sae, layer, probes, engine, shuffle_seed):
        resolved, seq, query, target, group = batch.resolved, batch.seq, batch.query, batch.target, batch.group
        if batch.mass is None:  # kept from discovery on the discovery probes
            _target_mass(batch)
        mass = batch.mass
        for part, rows in parts.items():
            sel = torch.from_numpy(group == (part[0] if dense else part))
            if not sel.any():
                continue
            s, q, t = seq[sel], query[sel], target[sel]
            a, b, head = (torch.tensor(cands.loc[rows, c].to_numpy(dtype=np.int64))
                          for c in ("query_feature", "key_feature", "head"))
            head = torch.tensor([resolved.heads.index(int(x)) for x in head])  # each head's slot in this result
            if dense:
                slot = resolved.heads.index(int(part[1]))
                C = resolved.channel(slot, a, b)[s, :, q]  # [n, M, key]
                sums = dense_sums(C.cpu(), q, t, resolved.scores[s, slot, q].cpu(), mass[sel, slot],
                                  s.cpu() + offset, n_seq)
            else:
                n, m, C = resolved.channel_rows(head, s, q, a, b)
                n, m = n.cpu(), m.cpu()
                h = head[m]
                sums = row_sums(C.cpu(), m, len(rows), q[n], t[n], resolved.scores[s[n], h, q[n]].cpu(),
                                mass[sel][n, h], s[n].cpu() + offset, n_seq)
            for name, value in sums.items():
                acc[name][rows] += value
        offset += resolved.tokens.shape[0]
    out = channel_statistics(acc, n_resamples).rename(
        columns={"share": "channel_induction", "null_share": "null_channel_induction"})
    return pd.concat([cands[["group", "layer", "head", "query_feature", "key_feature"]], out], axis=1)


@dataclass
class Search:
    """One probe kind's search: candidates with their statistics (before :func:`fra.analysis.stats.confirm`), head
    attention to the target, and the decomposition's exactness per layer."""

    table: pd.DataFrame
    attention: pd.DataFrame
    exactness: dict[int, dict]


NULL_SEED = 7919  # key shuffle of the threshold's null (the shuffled-keys control has its own seed)


@dataclass(frozen=True)
class _SearchJob:
    """What every layer's shard of :func:`search` shares (sent once to each worker)."""

    model: HookedTransformer
    saes: dict[int, SAE]
    discovery: Probes
    heldout: Probes
    cfg: ChannelConfig
    engine: EngineConfig
    seeds: tuple[int | None, int | None]  # key-shuffle seeds of the discovery and held-out probes (the control)
    cache: ProbeCache | None
    dense: bool
    null_seed: int | None  # the held-out lifts of the same candidates with keys shuffled (the threshold's null)


def _search_layer(job: _SearchJob, layer: int) -> tuple[pd.DataFrame | None, pd.DataFrame, dict]:
    """One layer of :func:`search` (a shard of :func:`fra.parallel.map_shards`): tested candidates, attention,
    exactness."""
    sae, cfg = job.saes[layer], job.cfg
    cache = job.cache or ProbeCache(job.model, {layer: sae}, cfg.batch_size)  # a worker runs its own model passes
    found, attn, exactness = discover(sae, layer, job.discovery, job.engine, cache, job.seeds[0], job.dense, cfg)
    cands = candidates(found, cfg)
    if cands.empty:
        return None, attn, exactness
    disc = evaluate(sae, layer, job.discovery, cands, job.engine, cache, job.seeds[0], job.dense)
    held = evaluate(sae, layer, job.heldout, cands, job.engine, cache, job.seeds[1], job.dense, cfg.n_bootstrap)
    keys = ["group", "layer", "head", "query_feature", "key_feature"]
    table = disc[keys + ["support", "channel_induction", "p_value"]].rename(columns={
        "channel_induction": "channel_induction_discovery", "p_value": "p_discovery"})
    held = held.rename(columns={"support": "support_heldout", "channel_induction": "channel_induction_heldout",
                                "null_channel_induction": "null_channel_induction_heldout", "lift": "lift_heldout"})
    if job.null_seed is not None:
        null = evaluate(sae, layer, job.heldout, cands, job.engine, cache, job.null_seed, job.dense)
        held["null_lift_heldout"] = null["lift"].to_numpy()
    return table.merge(held, on=keys), attn, exactness


def test_ids(table: pd.DataFrame, per_head: bool) -> pd.Series:
    """Which rows are one test. Without rotary positions ``C[q, j] = alpha_a(q) beta_b(j) G_ab`` with one constant per
    head, so a feature pair's position statistics (share, lift, p-values) are the same in every head up to the sign of
    G: one test per (probe, group, layer, a, b, sign). With rotary positions each head is a test of its own."""
    if not len(table):
        return pd.Series([], dtype=object)
    cols = ["probe", "group", "layer"] + (["head"] if per_head else []) + ["query_feature", "key_feature"]
    sign = np.sign(table["channel_induction_heldout"].fillna(0)).astype(int).astype(str)
    return table[cols].astype(str).agg("|".join, axis=1) + ("" if per_head else "|" + sign)


def search(
    model: HookedTransformer, saes: dict[int, SAE], discovery: Probes, heldout: Probes, cfg: ChannelConfig,
    engine: EngineConfig, *, shuffle_seed: int | None = None, cache: ProbeCache | None = None, dense: bool = False,
    parallel: ParallelConfig = ParallelConfig(),
) -> Search:
    """Discovery -> candidates -> held-out statistics for every layer with an SAE (one probe kind).

    ``cache`` holds the probes' attention inputs (one model pass per batch for every layer); a study passes
    one cache to every search, its controls and the causal test. ``dense`` takes the reference path
    (every channel's ``[pos, pos]`` map, exactness from the pair blocks); the tables agree up to rounding.
    ``parallel`` runs one shard per layer on Ray (each worker with its own model passes, ``cache`` unused);
    the same tables up to float rounding.
    """
    seeds = (None, None) if shuffle_seed is None else (2 * shuffle_seed, 2 * shuffle_seed + 1)
    local = parallel.backend == "local"
    if not local and model.cfg.device != "cpu":
        raise FRAError(f"parallel.backend {parallel.backend} runs CPU workers, but the model is on {model.cfg.device}; "
                       f"set engine.device: cpu for a {parallel.backend} scan, or parallel.backend: local on a GPU")
    if local:
        cache = cache or ProbeCache(model, saes, cfg.batch_size)
        cache.check(cfg.batch_size, saes)
    else:
        cache = None  # each worker runs its own model passes (the caller's cache stays here)
    job = _SearchJob(model, saes, discovery, heldout, cfg, engine, seeds, cache, dense,
                     None if shuffle_seed is not None else NULL_SEED)
    layers = sorted(saes)
    shards = map_shards(_search_layer, layers, shared=job, backend=parallel.backend, workers=parallel.workers,
                        address=parallel.address, desc=f"layers ({discovery.kind})")
    tables = [t for t, _, _ in shards if t is not None]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=TESTED[1:])
    table.insert(0, "probe", discovery.kind)
    table["test"] = test_ids(table, per_head=model.cfg.positional_embedding_type == "rotary")
    head_table = pd.concat([a for _, a, _ in shards], ignore_index=True)
    head_table.insert(0, "probe", discovery.kind)
    return Search(table, head_table, {layer: e for layer, (_, _, e) in zip(layers, shards)})
