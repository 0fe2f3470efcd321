"""``fra bench-pages``: the explorer pages' build time, size and click latencies in headless Chromium."""

from __future__ import annotations

import argparse
from dataclasses import fields

import numpy as np

from fra.errors import FRAError
from fra.explore.bench import Setting, bench_pages
from fra.explore.browser import chromium
from fra.stages.args import at_least, positive

NAME = "bench-pages"
HELP = ("benchmark the explorer pages (one text over every head of a layer, optionally the channels page): build "
        "time, size and click-to-paint latencies in headless Chromium (head menu and thumbnails, query, key, channel, "
        "a whole channel map, the dense toggle, the key's column, hover, zoom)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a model folder, checkpoint or hub name (as for fra explore)")
    p.add_argument("--sae", required=True, help="the SAE of --layer")
    p.add_argument("--layer", type=at_least(0), required=True)
    p.add_argument("--corpus", required=True,
                   help=".npy of token ids: the text, the cards and the channels page's examples")
    p.add_argument("--sequence", type=at_least(0), default=13, help="the corpus sequence the text repeats")
    p.add_argument("--tokens", type=at_least(2), default=256,
                   help="tokens of the text (BOS, then the sequence again and again)")
    p.add_argument("--corpus-sequences", type=positive, default=64,
                   help="corpus sequences the feature cards are read from")
    p.add_argument("--keys-per-query", type=at_least(0), default=8, help="keys per query with per-pair detail")
    p.add_argument("--channels", default=None, help="a channels.csv: also benchmark its channels page")
    p.add_argument("--sae-pattern", default=None,
                   help="the SAE of each layer the channels page needs ({layer} filled in)")
    p.add_argument("--features", default=None,
                   help="features.csv of `fra induction`: the single-text page's dense features (its rows over the "
                        "card corpus's profile) and the channels page's feature cards")
    p.add_argument("--cards", default=None, help="channel_features.json for the channels page's feature cards")
    p.add_argument("--per-head", type=positive, default=25, help="channels per head on the channels page")
    p.add_argument("--n-seqs", type=positive, default=32,
                   help="corpus sequences the channels page's examples come from")
    p.add_argument("--out", default=None, help="folder for the pages (default: a temporary one)")


def run(args: argparse.Namespace) -> int:
    chromium()
    try:
        n_seqs = len(np.load(args.corpus, mmap_mode="r"))
    except (OSError, ValueError) as exc:
        raise FRAError(f"--corpus {args.corpus} is not a readable .npy of token ids ({exc}); pass one, e.g. a corpus "
                       "stage's heldout_tokens.npy") from exc
    if args.sequence >= n_seqs:
        raise FRAError(f"--sequence {args.sequence} is out of range: {args.corpus} holds {n_seqs} sequences")
    if args.channels and not args.sae_pattern:
        raise FRAError("--channels needs --sae-pattern (the SAE of each layer its channels sit in, {layer} filled in)")
    bench_pages(Setting(**{f.name: getattr(args, f.name) for f in fields(Setting)}), args.out)
    return 0
