"""``fra resolve``: the top feature-pair channels of one head on one text, and what the rest carries."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from fra.config import EngineConfig
from fra.engine import FEATURE_PAIRS, FRA, resolve
from fra.engine.inputs import tokenize
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import non_negative, positive

NAME = "resolve"
HELP = "resolve one head's attention scores on a text into SAE feature pairs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name (gpt2-small)")
    p.add_argument("--sae", required=True, help="SAELens directory or hub release (gpt2-small-res-jb)")
    p.add_argument("--layer", type=int, required=True, help="layer whose attention scores are resolved")
    p.add_argument("--head", type=int, required=True, help="head of that layer")
    p.add_argument("--text", required=True, help="the text (the model's BOS is prepended)")
    p.add_argument("--top", type=positive, default=10, help="channels to list")
    p.add_argument("--top-k", type=positive, default=None, help="keep the k largest features per position")
    p.add_argument("--min-act", type=non_negative, default=0.0, help="keep features with activation above this")
    p.add_argument("--exclude-first", action="store_true", help="move BOS/first-position features to the remainder")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (all else goes to stderr)")


def summarize(resolved: FRA, str_tokens: list[str], top: int) -> dict:
    """The JSON-able summary printed by ``fra resolve`` (one head in ``fra.heads``, one sequence)."""
    table = resolved.channel_table()
    order = table["abs_total"].argsort(descending=True)[:top]
    exact = resolved.exactness()
    shares = exact["shares"]
    channels = []
    for r in order.tolist():
        i, j = int(table["query"][r]), int(table["key"][r])
        channels.append({
            "query_feature": int(table["query_feature"][r]),
            "key_feature": int(table["key_feature"][r]),
            "total": float(table["total"][r]),
            "abs_total": float(table["abs_total"][r]),
            "n_pairs": int(table["n_pairs"][r]),
            "strongest": {"query": i, "query_token": str_tokens[i], "key": j, "key_token": str_tokens[j],
                          "value": float(table["value"][r])},
        })
    return {
        "layer": resolved.layer,
        "head": resolved.heads[0],
        "tokens": str_tokens,
        "residual": exact["max_residual"],
        "feature_pair_share": shares[FEATURE_PAIRS],
        "remainder_share": 1.0 - shares[FEATURE_PAIRS],
        "shares": shares,
        "truncation_removed_share": resolved.truncation,
        "channels": channels,
    }


def _print(summary: dict) -> None:
    print(f"layer {summary['layer']} head {summary['head']}, {len(summary['tokens'])} tokens")
    print(f"exactness residual (max |sum of terms - hook_attn_scores|): {summary['residual']:.3g}")
    print(f"share of |score|: feature pairs {summary['feature_pair_share']:.1%}, "
          f"bias/error/other terms {summary['remainder_share']:.1%}")
    for name, share in sorted(summary["shares"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {name:<16} {share:7.1%}")
    for name, share in summary["truncation_removed_share"].items():
        print(f"truncation {name}: removed {share:.1%} of sum |FRA[i,j,a,b]|")
    print(f"\n{'query_f':>8} {'key_f':>8} {'total':>9} {'sum|.|':>9} {'pairs':>6}  strongest (query -> key)")
    for c in summary["channels"]:
        s = c["strongest"]
        print(f"{c['query_feature']:>8} {c['key_feature']:>8} {c['total']:>9.3f} {c['abs_total']:>9.3f} "
              f"{c['n_pairs']:>6}  {s['query']}:{s['query_token']!r} -> "
              f"{s['key']}:{s['key_token']!r} ({s['value']:.3f})")


def run(args: argparse.Namespace) -> int:
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):  # libraries print to stdout
        model = load_model(args.model, args.device)
        sae = load_sae(args.sae, args.layer, args.device)
        tokens = tokenize(model, args.text)
        cfg = EngineConfig(top_k=args.top_k, min_act=args.min_act, exclude_first=args.exclude_first)
        resolved = resolve(model, sae, tokens, args.layer, (args.head,), cfg)
        summary = summarize(resolved, model.to_str_tokens(tokens[0]), args.top)
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0
