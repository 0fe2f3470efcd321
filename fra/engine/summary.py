"""``fra resolve``: the top feature-pair channels of one head on one text, and what the rest carries."""

from __future__ import annotations

import argparse
import json

import torch

from fra.config import EngineConfig
from fra.engine.inputs import check_heads, tokenize
from fra.engine.resolver import resolve
from fra.engine.result import FEATURE_PAIRS, FRA
from fra.models import load_model
from fra.saes import load_sae


def channel_table(fra: FRA, head_slot: int = 0, batch: int = 0) -> dict[str, torch.Tensor]:
    """Aggregate ``FRA[:, :, a, b]`` of one head over the causal pairs of one sequence.

    Returns per channel (a, b): ``total`` (signed sum), ``abs_total``, ``n_pairs`` (pairs where it
    is nonzero) and its largest-|value| pair (``query``, ``key``, ``value``).
    """
    ids = fra.feature_ids[batch].cpu()
    d = int(ids.max()) + 1
    keys, total, abs_total, count, best_val, best_q, best_k = ([] for _ in range(7))
    for i0, _, vals in fra.pair_blocks():
        v = vals[batch, head_slot].cpu()  # [I, J, K, K]
        i, j, sa, sb = torch.nonzero(v, as_tuple=True)
        val = v[i, j, sa, sb]
        key = ids[i + i0, sa] * d + ids[j, sb]
        uniq, inv = torch.unique(key, return_inverse=True)
        n = len(uniq)
        keys.append(uniq)
        total.append(torch.zeros(n).index_add_(0, inv, val))
        abs_total.append(torch.zeros(n).index_add_(0, inv, val.abs()))
        count.append(torch.zeros(n).index_add_(0, inv, torch.ones_like(val)))
        best = torch.full((n,), -1.0).scatter_reduce_(0, inv, val.abs(), "amax")
        at = torch.nonzero(val.abs() == best[inv], as_tuple=True)[0]
        first = torch.full((n,), len(val)).scatter_reduce_(0, inv[at], at, "amin")
        best_val.append(val[first])
        best_q.append(i[first] + i0)
        best_k.append(j[first])
    key = torch.cat(keys)
    uniq, inv = torch.unique(key, return_inverse=True)
    n = len(uniq)

    def summed(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.zeros(n).index_add_(0, inv, torch.cat(parts))

    bv = torch.cat(best_val)
    best = torch.full((n,), -1.0).scatter_reduce_(0, inv, bv.abs(), "amax")
    at = torch.nonzero(bv.abs() == best[inv], as_tuple=True)[0]
    first = torch.full((n,), len(bv)).scatter_reduce_(0, inv[at], at, "amin")
    return {
        "query_feature": uniq // d,
        "key_feature": uniq % d,
        "total": summed(total),
        "abs_total": summed(abs_total),
        "n_pairs": summed(count).long(),
        "query": torch.cat(best_q)[first],
        "key": torch.cat(best_k)[first],
        "value": bv[first],
    }


def summarize(fra: FRA, str_tokens: list[str], top: int) -> dict:
    """The JSON-able summary printed by ``fra resolve`` (one head in ``fra.heads``, one sequence)."""
    table = channel_table(fra)
    order = table["abs_total"].argsort(descending=True)[:top]
    exact = fra.exactness()
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
        "layer": fra.layer,
        "head": fra.heads[0],
        "tokens": str_tokens,
        "residual": exact["max_residual"],
        "feature_pair_share": shares[FEATURE_PAIRS],
        "remainder_share": 1.0 - shares[FEATURE_PAIRS],
        "shares": shares,
        "truncation_removed_share": fra.truncation,
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
              f"{c['n_pairs']:>6}  {s['query']}:{s['query_token']!r} -> {s['key']}:{s['key_token']!r} ({s['value']:.3f})")


def main(args: argparse.Namespace) -> int:
    model = load_model(args.model, args.device)
    check_heads(model, (args.head,))
    sae = load_sae(args.sae, args.layer, args.device)
    tokens = tokenize(model, args.text)
    cfg = EngineConfig(top_k=args.top_k, min_act=args.min_act, exclude_first=args.exclude_first, device=args.device)
    fra = resolve(model, sae, tokens, args.layer, (args.head,), cfg)
    summary = summarize(fra, model.to_str_tokens(tokens[0]), args.top)
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0
