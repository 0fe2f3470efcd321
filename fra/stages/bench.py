"""``fra bench``: engine vs reference throughput on a GPT-2-sized synthetic layer."""

from __future__ import annotations

import argparse

from fra.engine.bench import bench

NAME = "bench"
HELP = "benchmark the engine against the reference on a GPT-2-sized setting"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--d-sae", type=int, default=24576)
    p.add_argument("--n-heads", type=int, default=12)
    p.add_argument("--n-tokens", type=int, default=128)
    p.add_argument("--k-active", type=int, default=50)
    p.add_argument("--ref-pairs", type=int, default=300, help="(head, query, key) pairs timed for the reference")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    bench(d_model=args.d_model, d_sae=args.d_sae, n_heads=args.n_heads, n_tokens=args.n_tokens,
          k_active=args.k_active, ref_pairs=args.ref_pairs, device=args.device)
    return 0
