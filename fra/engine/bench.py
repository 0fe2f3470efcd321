"""``fra bench``: engine vs reference throughput on a GPT-2-sized synthetic layer.

A random one-layer model (d_model 768, 12 heads of 64) and a random TopK SAE (d_sae 24576,
k active features per position). Prints head-pair throughput (one head-pair = one head's full
``K x K`` feature block for one causal (query, key) pair) of both implementations in the same run,
their ratio, the largest difference on the pairs both computed, peak memory, and the engine's
FLOP/s next to a plain matmul's.
"""

from __future__ import annotations

import random
import resource
import time

import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.config import EngineConfig
from fra.devices import pick_device
from fra.engine.reference import analyze_feature_attention_interactions, reference_inputs
from fra.engine.resolver import resolve


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _matmul_flops(device: str, shape: tuple[int, int, int], reps: int = 5) -> float:
    m, k, n = shape
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * m * k * n * reps / (time.perf_counter() - start)


def _setup(d_model: int, n_heads: int, n_tokens: int, d_sae: int, k_active: int, device: str):
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=1, d_model=d_model, n_heads=n_heads, d_head=d_model // n_heads,
        n_ctx=max(n_tokens, 128), d_vocab=1024, act_fn="gelu", attn_only=True,
        normalization_type="LNPre", device=device, seed=0,
    )
    model = HookedTransformer(cfg).eval()
    sae_cfg = TopKSAEConfig(d_in=d_model, d_sae=d_sae, k=k_active, device=device,
                            metadata=SAEMetadata(hook_name="blocks.0.hook_resid_pre"))
    sae = TopKSAE(sae_cfg).eval()
    with torch.no_grad():
        sae.b_dec.normal_(0, 0.05)
    tokens = torch.randint(0, 1024, (1, n_tokens), device=device)
    return model, sae, tokens


def bench(*, d_model: int = 768, d_sae: int = 24576, n_heads: int = 12, n_tokens: int = 128, k_active: int = 50,
          ref_pairs: int = 300, device: str = "auto") -> None:
    """Time engine and reference in one run and print the figures (module docstring)."""
    device = pick_device(device)
    torch.set_grad_enabled(False)
    model, sae, tokens = _setup(d_model, n_heads, n_tokens, d_sae, k_active, device)
    H, P = n_heads, n_tokens
    n_pairs = H * P * (P + 1) // 2
    cfg = EngineConfig(q_block=16)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    resolve(model, sae, tokens[:, :8], 0, cfg=cfg)  # warm-up
    _sync(device)
    start = time.perf_counter()
    fra = resolve(model, sae, tokens, 0, cfg=cfg)
    _sync(device)
    t_factor = time.perf_counter() - start
    start = time.perf_counter()
    for _ in fra.pair_blocks():  # every block's values are computed (and then dropped)
        pass
    _sync(device)
    t_pairs = time.perf_counter() - start
    t_engine = t_factor + t_pairs
    K = fra.feature_ids.shape[-1]
    pair_flops = 2 * n_pairs * K * K * (d_model // n_heads)

    rng = random.Random(0)
    sample = [(rng.randrange(H), *sorted((rng.randrange(P), rng.randrange(P)), reverse=True)) for _ in range(ref_pairs)]
    start = time.perf_counter()  # the seed's algorithm: activations recomputed for every pair
    for h, i, j in sample[: max(1, ref_pairs // 10)]:
        analyze_feature_attention_interactions(model, sae, reference_inputs(model, sae, tokens[0], 0), 0, h, i, j)
    _sync(device)
    t_seed = (time.perf_counter() - start) / max(1, ref_pairs // 10)
    ref = reference_inputs(model, sae, tokens[0], 0)
    start = time.perf_counter()  # the same with activations computed once: only the per-pair work
    ref_out = [analyze_feature_attention_interactions(model, sae, ref, 0, h, i, j) for h, i, j in sample]
    _sync(device)
    t_ref = time.perf_counter() - start

    max_diff, max_val, checksum = 0.0, 0.0, 0.0
    for i0, i1, vals in fra.pair_blocks():  # recompute block by block: never hold them all
        checksum += float(vals.abs().sum())
        for (h, i, j), r in zip(sample, ref_out):
            if not i0 <= i < i1:
                continue
            slots_q = {int(a): n for n, a in enumerate(fra.feature_ids[0, i]) if a >= 0}
            slots_k = {int(b): n for n, b in enumerate(fra.feature_ids[0, j]) if b >= 0}
            qa = [slots_q[int(a)] for a in r["query_active_features"]]
            kb = [slots_k[int(b)] for b in r["key_active_features"]]
            got = vals[0, h, i - i0, j][qa][:, kb]
            max_diff = max(max_diff, float((got - r["interaction_matrix"]).abs().max()))
            max_val = max(max_val, float(r["interaction_matrix"].abs().max()))

    peak = (
        f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (CUDA max allocated)"
        if device == "cuda"
        else f"{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024:.0f} MiB (process peak RSS growth)"
    )
    block_mib = 4 * H * cfg.q_block * P * K * K / 2**20
    engine_rate, ref_rate, seed_rate = n_pairs / t_engine, len(sample) / t_ref, 1 / t_seed
    mm_like = _matmul_flops(device, (cfg.q_block * K, d_model // n_heads, P * K))
    mm_big = _matmul_flops(device, (2048, 2048, 2048))
    print(f"device: {device} ({torch.get_num_threads()} threads)" if device == "cpu" else f"device: {torch.cuda.get_device_name()}")
    print(f"setting: d_model {d_model}, d_sae {d_sae}, {H} heads x d_head {d_model // H}, "
          f"{P} tokens, K={K} active features per position, {n_pairs} head-pairs")
    print(f"engine:    {t_engine:8.3f} s for all {n_pairs} head-pairs (factors {t_factor:.3f} s, pair blocks {t_pairs:.3f} s)"
          f" -> {engine_rate:12.0f} head-pairs/s")
    print(f"reference, seed algorithm (activations per pair): {seed_rate:12.0f} head-pairs/s "
          f"-> ratio engine/reference {engine_rate / seed_rate:.0f}x")
    print(f"reference, activations cached ({len(sample)} sampled pairs, {t_ref:.3f} s): {ref_rate:12.0f} head-pairs/s "
          f"-> ratio engine/cached reference {engine_rate / ref_rate:.0f}x")
    print(f"identical results: max |engine - reference| = {max_diff:.2e} on {len(sample)} pairs (max |value| {max_val:.2e})")
    print(f"peak memory: {peak}; one pair block = {block_mib:.0f} MiB (4*H*q_block*P*K^2 bytes, q_block={cfg.q_block})")
    print(f"engine FLOP/s (pair blocks): {pair_flops / t_pairs / 1e9:.1f} GFLOP/s; "
          f"plain matmul same shape {mm_like / 1e9:.1f} GFLOP/s, 2048^3 {mm_big / 1e9:.1f} GFLOP/s "
          f"-> engine at {pair_flops / t_pairs / mm_big:.0%} of the square matmul")
    print(f"checksum sum|FRA| = {checksum:.6e}")
