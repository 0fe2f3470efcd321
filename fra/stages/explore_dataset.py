"""``fra explore-dataset``: one model's ``channels.csv`` as a page, one row per channel, with corpus examples."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fra.analysis.features import token_strings
from fra.errors import FRAError
from fra.explore.cards import pipeline_cards
from fra.explore.dataset import (
    channel_examples,
    dataset_payload,
    load_corpus,
    read_channels,
    shown_channels,
    text_page_links,
)
from fra.explore.encode import Strings, page, read_payload
from fra.explore.inputs import read_cards, read_features, read_labels
from fra.io import output_file, read_json, write_text
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import at_least, positive

NAME = "explore-dataset"
HELP = "write a self-contained HTML explorer of a model's channels.csv: one row per channel, probes grouped"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channels", required=True, help="the channels.csv written by `fra induction` "
                                                     "(results/<model>/channels.csv)")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--model", default=None, help="model directory or hub name; needed with --corpus")
    p.add_argument("--sae", default=None, help="SAE per layer, {layer} filled in: models/toy/saes/L{layer} or "
                                              "gpt2-small-res-jb; needed with --corpus")
    p.add_argument("--corpus", default=None, help="example contexts from this .npy of token ids [n, pos] or .txt file; "
                                                 "without it, the page has no examples")
    p.add_argument("--n-seqs", type=positive, default=64, help="corpus sequences searched for examples")
    p.add_argument("--seq-len", type=at_least(2), default=128, help="tokens per sequence (text corpora are chunked)")
    p.add_argument("--per-head", type=positive, default=25, help="channels kept per head by support and by induction "
                                                                "score (every confirmed channel is kept too)")
    p.add_argument("--features", default=None, help="features.csv of `fra induction`: each feature's density and "
                                                   "sink / token shares on the cards; without it, none")
    p.add_argument("--cards", default=None, help="channel_features.json of `fra induction`: feature cards (top "
                                                "activations); without it, the page has no cards")
    p.add_argument("--labels", default=None, help="feature_cards.json of the toy SAE stage: "
                                                  "planted-class labels on the cards")
    p.add_argument("--text-page", default=None, help="a single-text page of this model (fra explore): channels of its "
                                                    "layer link to their strongest pair there")
    p.add_argument("--name", default=None, help="model name in the title; "
                                                "without it, the --channels file's folder name")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model and SAEs run")


def run(args: argparse.Namespace) -> int:
    # every input is read and checked before the model runs
    out = output_file(args.out, "--out")
    if args.corpus and not (args.model and args.sae):
        raise FRAError("--corpus needs --model and --sae (an SAE spec per layer, e.g. models/toy/saes/L{layer})")
    if (args.features or args.labels) and not args.cards:
        raise FRAError("--features and --labels go on the feature cards: pass --cards (channel_features.json) too")
    rows = shown_channels(read_channels(args.channels), args.per_head)
    chans = sorted({(int(la), int(h), int(a), int(b)) for la, h, a, b in
                    rows[["layer", "head", "query_feature", "key_feature"]].itertuples(index=False)})
    layers = sorted({c[0] for c in chans})
    feats = {la: sorted({x for c in chans if c[0] == la for x in c[2:]}) for la in layers}
    labels = {}
    if args.labels:
        have = read_json(args.labels, "--labels")
        labels = {la: read_labels(args.labels, la) for la in layers if not isinstance(have, dict) or f"L{la}" in have}
    strings = Strings()
    cards = None
    if args.cards:
        features = read_features(args.features) if args.features else None
        cards = pipeline_cards(feats, read_cards(args.cards), features, labels, strings)
    text_page = None
    if args.text_page:
        href = os.path.relpath(Path(args.text_page).resolve(), out.resolve().parent)
        single = read_payload(args.text_page, "--text-page")
        if not {"pairs", "heads", "feat", "empty_slot"} <= set(single):
            raise FRAError(f"--text-page {args.text_page} is not a single-text page; build one with `fra explore`")
        text_page = (href, text_page_links(single, chans))
    examples, attn_rows, strs = None, None, None
    if args.corpus:
        model = load_model(args.model, args.device)
        tokens = load_corpus(args.corpus, model, args.n_seqs, args.seq_len)
        saes = {la: load_sae(args.sae.format(layer=la), la, args.device) for la in layers}
        strs = token_strings(model, tokens)
        examples, attn_rows = channel_examples(model, saes, tokens, chans)
    name = args.name or Path(args.channels).parent.name
    payload = (dataset_payload(rows, name, examples, attn_rows, strs, cards, strings, text_page)
               | {"per_head": args.per_head})
    html = page("dataset", f"FRA channels: {name}", payload)
    write_text(out, html)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {len(chans)} channels, {len(rows)} probe rows)")
    return 0
