"""``fra bench``: the batched engine vs the reference on a GPT-2-sized synthetic layer.

A random one-layer model (d_model 768, 12 heads of 64) and a random TopK SAE (d_sae 24576, k active
features per position). For each batch of the sweep, in one run on one device, a full pass (factors,
then every pair block) is timed: seconds, sequences/s, head-pairs/s (one head-pair = one head's full
``K x K`` feature block for one causal (query, key) pair), the ratio to the reference (the seed's
per-pair algorithm, timed once), the pair blocks' FLOP/s as a fraction of a plain square matmul timed in
the same run, the block shape, peak memory, and the largest |engine - reference| on sampled pairs of a
few sequences (the batch's last one always). Batch ``auto`` is the largest batch whose resolve fits in
half the device's free memory, from the peak memory of probe resolves of 4 and 8 sequences.
"""

from __future__ import annotations

import ctypes
import random
import re
import time
from pathlib import Path

import torch
from jaxtyping import Int
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.config import EngineConfig
from fra.devices import free_mib, pick_device, synchronize
from fra.engine.reference import analyze_feature_attention_interactions, reference_inputs
from fra.engine.resolver import resolve
from fra.engine.result import FRA


def _matmul_flops(device: str, n: int, reps: int = 5) -> float:
    """FLOP/s of a plain float32 ``n x n @ n x n`` matmul."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _status_bytes(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) << 10


def _reset_peak(device: str) -> int:
    """Restart the peak-memory count; returns the bytes in use now (CUDA allocator; on CPU the process RSS, Linux)."""
    synchronize(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    ctypes.CDLL(None).malloc_trim(0)  # glibc: hand freed heap back, so RSS counts live memory only
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM restarts from the current RSS
    return _status_bytes("VmRSS")


def _peak(device: str) -> int:
    """Peak bytes in use since :func:`_reset_peak`."""
    synchronize(device)
    return torch.cuda.max_memory_allocated() if device == "cuda" else _status_bytes("VmHWM")


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
    return model, sae


def _tokens(batch: int, n_tokens: int, device: str, seed: int = 0) -> Int[Tensor, "batch pos"]:
    return torch.randint(0, 1024, (batch, n_tokens), generator=torch.Generator().manual_seed(seed)).to(device)


def _fitting_batch(model: HookedTransformer, sae: TopKSAE, n_tokens: int, cfg: EngineConfig, device: str
                   ) -> tuple[int, float, int]:
    """Resolve 2 (the warm-up), 4 and 8 sequences, each then passing its pair blocks (which form its slot vectors).
    Returns the batch whose resolve fits in half the free memory, from the fixed part of the last two peaks and their
    growth per sequence (at least what a result holds per sequence), that growth in MiB, and the free MiB."""
    peaks, held = {}, 0.0
    for b in (2, 4, 8):
        base = _reset_peak(device)
        resolved = resolve(model, sae, _tokens(b, n_tokens, device, seed=b), 0, cfg=cfg)
        for _ in resolved.head_blocks():
            pass
        peaks[b] = _peak(device) - base
        held = sum(t.numel() * t.element_size() for s in (resolved.q, resolved.k)
                   for t in (s.feat, s.ids, s.coef, *s.dense.values())) / b  # the projected dictionary U is fixed
        del resolved, _
    per_seq = max((peaks[8] - peaks[4]) / 4, held)
    fixed = max(peaks[4] - 4 * per_seq, 0)
    free = free_mib(device)
    return max(1, int(((free << 20) / 2 - fixed) // per_seq)), per_seq / 2**20, free


def _check(resolved: FRA, model: HookedTransformer, sae: TopKSAE, tokens: Tensor, n_pairs: int,
           rng: random.Random) -> tuple[float, float, float, list[int]]:
    """Largest |engine - reference| and |reference| on ``n_pairs`` sampled (sequence, head, query, key), the
    first from the batch's last sequence, every pair-block value recomputed; plus ``sum |FRA|`` and the sequences."""
    B, P = tokens.shape
    seqs = sorted({0, B - 1, rng.randrange(B)})
    refs = {b: reference_inputs(model, sae, tokens[b], 0) for b in seqs}
    want = {}
    for n in range(n_pairs):
        b, h = B - 1 if n == 0 else rng.choice(seqs), rng.randrange(len(resolved.heads))
        i, j = sorted((rng.randrange(P), rng.randrange(P)), reverse=True)
        r = analyze_feature_attention_interactions(model, sae, refs[b], 0, resolved.heads[h], i, j)
        slots_q = {a: s for s, a in enumerate(resolved.feature_ids[b, i].tolist()) if a >= 0}
        slots_k = {a: s for s, a in enumerate(resolved.feature_ids[b, j].tolist()) if a >= 0}
        want[b, h, i, j] = ([slots_q[int(a)] for a in r["query_active_features"]],
                            [slots_k[int(a)] for a in r["key_active_features"]], r["interaction_matrix"])
    max_diff, max_val, checksum = 0.0, 0.0, 0.0
    for hs, i0, i1, vals in resolved.head_blocks():  # recompute block by block: never hold them all
        checksum += float(vals.abs().sum())
        for (b, h, i, j), (qa, kb, m) in want.items():
            if hs.start <= h < hs.stop and i0 <= i < i1:
                max_diff = max(max_diff, float((vals[b, h - hs.start, i - i0, j][qa][:, kb] - m).abs().max()))
                max_val = max(max_val, float(m.abs().max()))
    return max_diff, max_val, checksum, seqs


def bench(*, d_model: int = 768, d_sae: int = 24576, n_heads: int = 12, n_tokens: int = 128, k_active: int = 50,
          ref_pairs: int = 300, batches: tuple[int | str, ...] = (1, 8), block_mib: int | str = "auto",
          device: str = "auto") -> None:
    """Time engine (each batch of ``batches``; ``auto``: the largest that fits) and reference in one run and
    print the figures (module docstring)."""
    device = pick_device(device)
    torch.set_grad_enabled(False)
    model, sae = _setup(d_model, n_heads, n_tokens, d_sae, k_active, device)
    H, P, E = n_heads, n_tokens, d_model // n_heads
    pairs_per_seq = H * P * (P + 1) // 2
    cfg = EngineConfig(q_block=16, block_mib=block_mib)
    fits, per_seq_mib, free = _fitting_batch(model, sae, P, cfg, device)
    sweep = list(dict.fromkeys(fits if b == "auto" else b for b in batches))
    tokens = _tokens(max(sweep), P, device)
    mm_n = 8192 if device == "cuda" else 2048
    mm = _matmul_flops(device, mm_n)

    rng = random.Random(0)
    sample = [(rng.randrange(H), *sorted((rng.randrange(P), rng.randrange(P)), reverse=True)) for _ in range(ref_pairs)]
    n_seed = max(1, ref_pairs // 10)
    start = time.perf_counter()  # the seed's algorithm: activations recomputed for every pair
    for h, i, j in sample[:n_seed]:
        analyze_feature_attention_interactions(model, sae, reference_inputs(model, sae, tokens[0], 0), 0, h, i, j)
    synchronize(device)
    seed_rate = n_seed / (time.perf_counter() - start)
    ref = reference_inputs(model, sae, tokens[0], 0)
    start = time.perf_counter()  # the same with activations computed once: only the per-pair work
    for h, i, j in sample:
        analyze_feature_attention_interactions(model, sae, ref, 0, h, i, j)
    synchronize(device)
    t_ref = time.perf_counter() - start
    ref_rate = len(sample) / t_ref

    where = "CUDA max allocated" if device == "cuda" else "process peak RSS"
    print(f"device: cpu ({torch.get_num_threads()} threads)" if device == "cpu" else
          f"device: {torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory >> 20} MiB)")
    print(f"setting: d_model {d_model}, d_sae {d_sae}, {H} heads x d_head {E}, {P} tokens, "
          f"K={k_active} active features per position, {pairs_per_seq} head-pairs per sequence")
    print(f"plain matmul {mm_n}^3 (float32): {mm / 1e9:.1f} GFLOP/s")
    print(f"batch that fits: {fits} (resolve peak {per_seq_mib:.2f} MiB per added sequence in probes of 4 and 8, "
          f"half of {free} MiB free)")
    print(f"reference, seed algorithm (activations per pair): {seed_rate:12.0f} head-pairs/s")
    print(f"reference, activations cached ({len(sample)} sampled pairs, {t_ref:.3f} s): {ref_rate:12.0f} head-pairs/s")
    rows = []
    for B in sweep:
        label = f"batch {B}" + (" (auto)" if B == fits and "auto" in batches else "")
        base = _reset_peak(device)
        start = time.perf_counter()
        resolved = resolve(model, sae, tokens[:B], 0, cfg=cfg)
        synchronize(device)
        t_factor = time.perf_counter() - start
        start = time.perf_counter()  # every block's values are computed (and then dropped)
        blocks = [(hs.stop - hs.start, i1 - i0, vals.numel() * vals.element_size())
                  for hs, i0, i1, vals in resolved.head_blocks()]
        synchronize(device)
        t_pairs = time.perf_counter() - start
        peak = (_peak(device) - base) / 2**20
        t = t_factor + t_pairs
        K = resolved.feature_ids.shape[-1]
        gflops = 2 * B * pairs_per_seq * K * K * E / t_pairs / 1e9
        rate = B * pairs_per_seq / t
        print(f"{label}: engine {t:.3f} s (factors {t_factor:.3f} s, pair blocks {t_pairs:.3f} s) -> {B / t:.2f} "
              f"sequences/s, {rate:.0f} head-pairs/s; ratio engine/reference {rate / seed_rate:.0f}x, "
              f"ratio engine/cached reference {rate / ref_rate:.0f}x")
        heads, queries, largest = (max(b[n] for b in blocks) for n in range(3))
        print(f"{label}: pair blocks {gflops:.1f} GFLOP/s = {gflops * 1e9 / mm:.0%} of the plain matmul; {len(blocks)} "
              f"blocks of up to {heads} heads x {queries} queries (largest {largest / 2**20:.1f} MiB, budget "
              f"{resolved.block_mib} MiB{' (auto)' if block_mib == 'auto' else ''}); peak memory {peak:.0f} "
              f"MiB above the start ({where})")
        diff, val, checksum, seqs = _check(resolved, model, sae, tokens[:B], ref_pairs, rng)
        print(f"{label}: identical results: max |engine - reference| = {diff:.2e} on {ref_pairs} pairs of sequences "
              f"{', '.join(map(str, seqs))} (max |value| {val:.2e}); checksum sum|FRA| = {checksum:.6e}")
        rows.append((label.removeprefix("batch "), t, B / t, rate, gflops, gflops * 1e9 / mm))
        del resolved
    print(f"sweep ({device}, same run):\n{'batch':>10} {'seconds':>9} {'sequences/s':>12} {'head-pairs/s':>13} "
          f"{'pair GFLOP/s':>13} {'of matmul':>10}")
    for label, t, seq_rate, rate, gflops, share in rows:
        print(f"{label:>10} {t:9.3f} {seq_rate:12.2f} {rate:13.0f} {gflops:13.1f} {share:10.0%}")
