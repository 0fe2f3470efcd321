"""``fra resolve``: the top feature-pair channels of one head on one text, and what the rest carries.

With ``--features`` or ``--corpus``, channels holding a dense or sink feature (:mod:`fra.analysis.dense`) are
collapsed into one ``dense features`` term beside bias and error (``--show-dense`` lists them as channels).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

import pandas as pd
import torch

from fra.analysis.dense import DENSE, DENSITY, corpus_profile, dense_features, split_terms
from fra.config import EngineConfig
from fra.engine import FEATURE_PAIRS, FRA, resolve
from fra.engine.inputs import tokenize
from fra.errors import FRAError
from fra.explore.inputs import read_features
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import non_negative, positive, share, token_ids

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
    dense = p.add_mutually_exclusive_group()
    dense.add_argument("--features", default=None,
                       help="features.csv of `fra induction`: its dense and sink features of --layer are collapsed "
                            "into one 'dense features' term")
    dense.add_argument("--corpus", default=None,
                       help="a .npy of token ids [seq, pos]: dense and sink features from their profile on it")
    p.add_argument("--corpus-sequences", type=positive, default=64, help="sequences of --corpus profiled")
    p.add_argument("--density", type=share, default=DENSITY,
                   help="corpus firing rate above which a feature is dense (sink share: channels.sink_share)")
    p.add_argument("--show-dense", action="store_true", help="list dense features' channels instead of collapsing them")


def summarize(resolved: FRA, str_tokens: list[str], top: int, dense: list[int] | None = None) -> dict:
    """The JSON-able summary printed by ``fra resolve`` (one head in ``fra.heads``, one sequence).

    ``dense``: features whose channels are left out of the list and summed into the ``dense features`` term.
    """
    table = resolved.channel_table()
    exact = resolved.exactness()
    shares, out = exact["shares"], {}
    if dense:
        d = torch.tensor(dense)
        hit = torch.isin(table["query_feature"], d) | torch.isin(table["key_feature"], d)
        terms = split_terms(resolved, dense)
        mags = {n: float(t[0].abs().sum()) for n, t in terms.items()}  # one head
        shares = {n: m / (sum(mags.values()) or 1.0) for n, m in mags.items()}
        total = float(terms[DENSE][0].sum())
        out["dense"] = {"features": dense, "n_channels": int(hit.sum()), "total": total,
                        "abs_total": float(table["abs_total"][hit].sum())}
        table = {k: v[~hit] for k, v in table.items()}
    order = table["abs_total"].argsort(descending=True)[:top]
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
        **out,
    }


def _print(summary: dict) -> None:
    print(f"layer {summary['layer']} head {summary['head']}, {len(summary['tokens'])} tokens")
    print(f"exactness residual (max |sum of terms - hook_attn_scores|): {summary['residual']:.3g}")
    print(f"share of |score|: feature pairs {summary['feature_pair_share']:.1%}, "
          f"bias/error/other terms {summary['remainder_share']:.1%}")
    for name, part in sorted(summary["shares"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {name:<16} {part:7.1%}")
    for name, part in summary["truncation_removed_share"].items():
        print(f"truncation {name}: removed {part:.1%} of sum |FRA[i,j,a,b]|")
    if "dense" in summary:
        d = summary["dense"]
        print(f"{DENSE}: {len(d['features'])} features ({', '.join(map(str, d['features'][:8]))}"
              f"{', ...' if len(d['features']) > 8 else ''}), {d['n_channels']} channels, total {d['total']:.3f}, "
              f"sum|.| {d['abs_total']:.3f} (collapsed; --show-dense lists them)")
    print(f"\n{'query_f':>8} {'key_f':>8} {'total':>9} {'sum|.|':>9} {'pairs':>6}  strongest (query -> key)")
    for c in summary["channels"]:
        s = c["strongest"]
        print(f"{c['query_feature']:>8} {c['key_feature']:>8} {c['total']:>9.3f} {c['abs_total']:>9.3f} "
              f"{c['n_pairs']:>6}  {s['query']}:{s['query_token']!r} -> "
              f"{s['key']}:{s['key_token']!r} ({s['value']:.3f})")


def layer_profile(path: str, layer: int) -> pd.DataFrame:
    """``--features``' rows of ``layer`` (feature, firing_rate, sink_share)."""
    df = read_features(path).reset_index()
    rows = df[df["layer"] == layer]
    if rows.empty:
        raise FRAError(f"--features {path} has no features of layer {layer} (layers: {sorted(set(df['layer']))}); "
                       "pass the features.csv of a study that resolved this layer")
    return rows


def run(args: argparse.Namespace) -> int:
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):  # libraries print to stdout
        profile = None if args.features is None else layer_profile(args.features, args.layer)
        corpus = None if args.corpus is None else token_ids(args.corpus, args.corpus_sequences, "--corpus")
        model = load_model(args.model, args.device)
        if corpus is not None and (corpus.numel() == 0 or int(corpus.max()) >= model.cfg.d_vocab
                                   or int(corpus.min()) < 0):
            raise FRAError(f"--corpus {args.corpus} is empty or holds token ids outside the model's vocabulary "
                           f"(0..{model.cfg.d_vocab - 1}); pass token ids of this model")
        sae = load_sae(args.sae, args.layer, args.device)
        tokens = tokenize(model, args.text)
        cfg = EngineConfig(top_k=args.top_k, min_act=args.min_act, exclude_first=args.exclude_first)
        resolved = resolve(model, sae, tokens, args.layer, (args.head,), cfg)
        if corpus is not None:
            profile = corpus_profile(model, sae, corpus[:, :model.cfg.n_ctx])
        dense = None if profile is None or args.show_dense else dense_features(profile, args.density)
        summary = summarize(resolved, model.to_str_tokens(tokens[0]), args.top, dense)
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0
