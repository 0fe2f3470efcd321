"""``fra bench``: the batched engine vs the reference on a GPT-2-sized synthetic layer, over a batch sweep."""

from __future__ import annotations

import argparse

from fra.engine.bench import bench
from fra.errors import FRAError
from fra.stages.args import at_least, positive

NAME = "bench"
HELP = "benchmark the engine (a sweep of batch sizes) against the reference on a GPT-2-sized setting"


def int_or_auto(text: str) -> int | str:
    """An integer >= 1, or ``auto``."""
    try:
        return text if text == "auto" else positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or `auto`, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--d-model", type=positive, default=768, help="residual width of the synthetic layer")
    p.add_argument("--d-sae", type=positive, default=24576, help="SAE features")
    p.add_argument("--n-heads", type=positive, default=12, help="heads (d_head = d_model / n_heads)")
    p.add_argument("--n-tokens", type=at_least(2), default=128, help="tokens per sequence")
    p.add_argument("--k-active", type=positive, default=50, help="active SAE features per position (TopK)")
    p.add_argument("--ref-pairs", type=at_least(10), default=300,
                   help="(head, query, key) pairs timed for the reference")
    p.add_argument("--batch", type=int_or_auto, nargs="+", default=[1, 8],
                   help="sequences per engine call, one timed pass each; auto: the largest batch "
                        "that fits in half the free memory")
    p.add_argument("--block-mib", type=int_or_auto, default="auto",
                   help="MiB cap of one pair block (engine.block_mib); auto: an eighth of free GPU memory, 1024 on CPU")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    if args.k_active > args.d_sae:
        raise FRAError(f"--k-active {args.k_active} exceeds --d-sae {args.d_sae}: a position "
                       "cannot have more active features")
    if args.d_model % args.n_heads:
        raise FRAError(f"--d-model {args.d_model} is not a multiple of --n-heads {args.n_heads}")
    twice = sorted({str(b) for b in args.batch if args.batch.count(b) > 1})
    if twice:
        raise FRAError(f"--batch lists {', '.join(twice)} more than once")
    bench(d_model=args.d_model, d_sae=args.d_sae, n_heads=args.n_heads, n_tokens=args.n_tokens, k_active=args.k_active,
          ref_pairs=args.ref_pairs, batches=tuple(args.batch), block_mib=args.block_mib, device=args.device)
    return 0
