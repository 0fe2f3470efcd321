"""``fra bench-channels``: channel statistics, fast path vs the dense reference path, in one run."""

from __future__ import annotations

import argparse

from fra.analysis.bench import bench_channels
from fra.errors import FRAError
from fra.stages.args import at_least, positive

NAME = "bench-channels"
HELP = "benchmark the channel statistics' fast path against the dense reference path (all heads of one layer)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-seqs", type=positive, default=32, help="probe sequences per set (discovery and held-out)")
    p.add_argument("--layer", type=at_least(0), default=5, help="the layer resolved (its SAE reads hook_resid_pre)")
    p.add_argument("--n-layers", type=positive, default=12, help="layers of the random model")
    p.add_argument("--d-model", type=positive, default=768)
    p.add_argument("--n-heads", type=positive, default=12)
    p.add_argument("--d-sae", type=positive, default=24576)
    p.add_argument("--k-active", type=positive, default=50, help="active SAE features per position (TopK)")
    p.add_argument("--max-candidates", type=positive, default=20, help="candidate channels per head")
    p.add_argument("--batch-size", type=positive, default=16, help="probe sequences resolved at once")
    p.add_argument("--repeats", type=positive, default=3, help="timed runs of each path (the fastest counts)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    if args.layer >= args.n_layers:
        raise FRAError(f"--layer {args.layer} is not a layer of a {args.n_layers}-layer "
                       "model; pass --layer < --n-layers")
    if args.d_model % args.n_heads:
        raise FRAError(f"--d-model {args.d_model} is not a multiple of --n-heads {args.n_heads}")
    if args.k_active > args.d_sae:
        raise FRAError(f"--k-active {args.k_active} exceeds --d-sae {args.d_sae}")
    bench_channels(n_seqs=args.n_seqs, layer=args.layer, n_layers=args.n_layers, d_model=args.d_model,
                   n_heads=args.n_heads, d_sae=args.d_sae, k_active=args.k_active, max_candidates=args.max_candidates,
                   batch_size=args.batch_size, repeats=args.repeats, device=args.device)
    return 0
