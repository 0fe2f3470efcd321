"""``fra bench``: engine vs reference throughput on a GPT-2-sized synthetic layer."""

from __future__ import annotations

import argparse

from fra.engine.bench import bench
from fra.errors import FRAError
from fra.stages.args import at_least, positive

NAME = "bench"
HELP = "benchmark the engine against the reference on a GPT-2-sized setting"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--d-model", type=positive, default=768, help="residual width of the synthetic layer")
    p.add_argument("--d-sae", type=positive, default=24576, help="SAE features")
    p.add_argument("--n-heads", type=positive, default=12, help="heads (d_head = d_model / n_heads)")
    p.add_argument("--n-tokens", type=at_least(2), default=128, help="tokens in the sequence")
    p.add_argument("--k-active", type=positive, default=50, help="active SAE features per position (TopK)")
    p.add_argument("--ref-pairs", type=at_least(10), default=300, help="(head, query, key) pairs timed for the reference")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    if args.k_active > args.d_sae:
        raise FRAError(f"--k-active {args.k_active} exceeds --d-sae {args.d_sae}: a position cannot have more active features")
    if args.d_model % args.n_heads:
        raise FRAError(f"--d-model {args.d_model} is not a multiple of --n-heads {args.n_heads}")
    bench(d_model=args.d_model, d_sae=args.d_sae, n_heads=args.n_heads, n_tokens=args.n_tokens,
          k_active=args.k_active, ref_pairs=args.ref_pairs, device=args.device)
    return 0
