"""``fra bench-saes``: an SAE training step, sae_lens' dense step vs the sparse step, in one run."""

from __future__ import annotations

import argparse

from fra.errors import FRAError
from fra.saes.bench import bench_saes
from fra.stages.args import positive

NAME = "bench-saes"
HELP = "benchmark the sparse SAE training step against sae_lens' dense step (defaults: the SmolLM2 SAEs of lm_saes)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--d-in", type=positive, default=576)
    p.add_argument("--expansion", type=positive, default=4)
    p.add_argument("--k", type=float, default=32.0, help="active latents per row, on average (BatchTopK)")
    p.add_argument("--batch", type=positive, default=1024, help="activations per step")
    p.add_argument("--dead-fraction", type=float, default=0.05, help="latents marked dead (the AuxK loss uses them)")
    p.add_argument("--steps", type=positive, default=20, help="timed steps per run")
    p.add_argument("--repeats", type=positive, default=3, help="timed runs of each path (the fastest counts)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.dead_fraction <= 1:
        raise FRAError(f"--dead-fraction {args.dead_fraction} is not a fraction; pass a value in [0, 1]")
    if not 0 < args.k <= args.expansion * args.d_in:
        raise FRAError(f"--k {args.k} must lie in (0, d_sae = {args.expansion * args.d_in}]")
    bench_saes(d_in=args.d_in, expansion=args.expansion, k=args.k, batch=args.batch, dead_fraction=args.dead_fraction,
               steps=args.steps, repeats=args.repeats, device=args.device)
    return 0
