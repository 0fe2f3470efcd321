"""``fra bench-channels``: the channel statistics' fast path against the dense reference path, same run.

Setting: a random GPT-2-small-shaped model (12 layers, d_model 768, 12 heads) and a random TopK
SAE (d_sae 24576, k active features) on one layer; repeated random-token probes (discovery and
held-out sets of ``n_seqs`` sequences each). Both paths run :func:`fra.analysis.channels.search`
for every head of the layer with ``max_candidates`` channels per head:

* *inputs*: one model pass and one SAE encode per batch, which every exact path needs and the study keeps
  (:class:`fra.analysis.cache.ProbeCache`), timed once;
* *statistics* from those inputs: the dense path resolves every batch on every call (projecting its
  features again), keys discovery by every (head, slot, slot) entry, and forms every candidate's
  ``[pos, pos]`` map and the exactness check from every pair block; the fast path projects each feature
  once, resolves each batch once per search, keys discovery by active slot pairs (all heads at once)
  and uses only the rows where a candidate's query feature is active and the bilinear sum of the
  feature pairs;
* *end to end*: the path before the cache (one model pass and encode per batch, layer and call, dense
  statistics) against the fast path with its inputs.

Each path runs ``repeats`` times, interleaved, and its fastest run counts. It prints seconds and the ratio of
each, and checks that the tables agree (largest relative difference, identical candidates and decisions).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.analysis.cache import ProbeCache
from fra.analysis.channels import search
from fra.analysis.probes import repeated_random
from fra.analysis.stats import confirm, lift_threshold, null_lifts
from fra.config import ChannelConfig, EngineConfig
from fra.devices import pick_device, synchronize
from fra.saes.random import random_sae

STATS = ["support", "channel_induction_discovery", "p_discovery", "support_heldout", "channel_induction_heldout",
         "null_channel_induction_heldout", "lift_heldout", "lift_low", "lift_high", "lift_matched", "scale_share",
         "softmax_effect", "p_value", "p_matched", "null_lift_heldout"]


def _model(n_layers: int, d_model: int, n_heads: int, d_vocab: int, device: str) -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
                                  d_mlp=4 * d_model, n_ctx=128, d_vocab=d_vocab, act_fn="gelu_new",
                                  normalization_type="LN", device=device, seed=0)
    return HookedTransformer(cfg).eval()


def _timed(fn, device: str):
    synchronize(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - start


def _compare(fast: pd.DataFrame, dense: pd.DataFrame, cfg: ChannelConfig) -> tuple[float, bool]:
    """Largest relative difference of the statistics, and whether candidates and decisions are identical."""
    keys = ["group", "layer", "head", "query_feature", "key_feature"]
    a, b = fast.sort_values(keys).reset_index(drop=True), dense.sort_values(keys).reset_index(drop=True)
    if not a[keys].equals(b[keys]):
        return float("inf"), False
    x, y = a[STATS].to_numpy(float), b[STATS].to_numpy(float)
    rel = np.abs(x - y) / np.maximum(np.abs(y), 1e-6)
    threshold = lift_threshold(null_lifts(a), cfg)  # one threshold, so only the rows can differ
    same = ((confirm(a, cfg, threshold)["is_cih"] == confirm(b, cfg, threshold)["is_cih"]).all()
            and (a["n_targets"] == b["n_targets"]).all())
    return float(np.nanmax(rel)) if rel.size else 0.0, bool(same)


def bench_channels(*, n_seqs: int = 32, layer: int = 5, n_layers: int = 12, d_model: int = 768, n_heads: int = 12,
                   d_sae: int = 24576, k_active: int = 50, max_candidates: int = 20, batch_size: int = 16,
                   repeats: int = 3, device: str = "auto") -> None:
    """Time both paths in one run and print the figures (module docstring)."""
    device = pick_device(device)
    torch.manual_seed(0)
    d_vocab = 1024
    with torch.inference_mode():
        model = _model(n_layers, d_model, n_heads, d_vocab, device)
        sae = random_sae(d_model, f"blocks.{layer}.hook_resid_pre", d_sae, k_active, seed=0).to(device)
        saes = {layer: sae}
        disc, held = (repeated_random(np.arange(1, d_vocab), 0, n_seqs, 10, 30, seed=s) for s in (0, 1))
        cfg = ChannelConfig(min_support=1e-4, min_queries=2, max_candidates=max_candidates, batch_size=batch_size)
        engine = EngineConfig()
        cache = ProbeCache(model, saes, batch_size)
        _, t_pass = _timed(lambda: [list(cache.batches(p)) for p in (disc, held)], device)  # one pass per batch, kept
        _, t_encode = _timed(lambda: [cache.features(sae, layer, p, n, x[layer]) for p in (disc, held)
                                      for n, (_, x) in enumerate(cache.batches(p))], device)  # once per batch, kept
        run = lambda c, dense: search(model, saes, disc, held, cfg, engine, cache=c, dense=dense).table  # noqa: E731
        run(cache.fork(), False)  # warm-up (allocator, kernels), untimed
        times = {"dense": [], "fast": [], "before": []}
        for _ in range(repeats):  # interleaved, the fastest of each counts: the machine's noise is not the code's
            dense, t = _timed(lambda: run(cache.fork(keep_resolved=False), True), device)
            times["dense"].append(t)
            fast, t = _timed(lambda: run(cache.fork(), False), device)
            times["fast"].append(t)
            before, t = _timed(lambda: run(ProbeCache(model, saes, batch_size, keep=False), True), device)
            times["before"].append(t)
        t_dense, t_fast, t_before = (min(times[k]) for k in ("dense", "fast", "before"))
    rel, same = _compare(fast, dense, cfg)
    rel_before, same_before = _compare(fast, before, cfg)
    n_q = len(disc.query) + len(held.query)
    print(f"device: {device} ({torch.get_num_threads()} threads)" if device == "cpu"
          else f"device: {torch.cuda.get_device_name()}")
    print(f"setting: layer {layer} of a random {n_layers}-layer model (d_model {d_model}, {n_heads} heads), random "
          f"TopK SAE d_sae {d_sae}, k={k_active}; {n_seqs} + {n_seqs} probe sequences, {n_q} induction queries, "
          f"{len(fast)} candidate channels ({max_candidates} per head)")
    print(f"inputs, once per batch: model passes {t_pass:.3f} s, SAE encode {t_encode:.3f} s")
    print(f"statistics from the same inputs (fastest of {repeats}): dense path {t_dense:8.3f} s, fast path "
          f"{t_fast:8.3f} s -> ratio {t_dense / t_fast:.1f}x")
    print(f"end to end: before the cache {t_before:8.3f} s, fast path with its inputs "
          f"{t_pass + t_encode + t_fast:8.3f} s -> ratio {t_before / (t_pass + t_encode + t_fast):.1f}x")
    print(f"identical tables: candidates and decisions {'identical' if same and same_before else 'DIFFERENT'}; "
          f"max relative difference {max(rel, rel_before):.2e}")
