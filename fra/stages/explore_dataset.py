"""``fra explore-dataset``: one model's ``channels.csv`` as a page, one row per channel, with corpus examples."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fra.analysis.dense import DENSITY
from fra.analysis.features import token_strings
from fra.config import ChannelConfig
from fra.errors import FRAError
from fra.explore.cards import corpus_cards, pipeline_cards
from fra.explore.compiled import CORPUS_NAME, MODEL, compiled_inputs, is_compiled
from fra.explore.dataset import (
    KEY,
    TEXT_TOP,
    channel_examples,
    dataset_payload,
    dense_payload,
    layer_profiles,
    load_corpus,
    read_channels,
    shown_channels,
    text_page_links,
    text_page_top,
)
from fra.explore.encode import Strings, page, read_payload, rounded
from fra.explore.inputs import read_cards, read_features, read_labels
from fra.io import output_file, read_json, write_text
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import at_least, positive, share

NAME = "explore-dataset"
HELP = "write a self-contained HTML explorer of a model's channels.csv: one row per channel, probes grouped"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channels", required=True, help="the channels.csv written by `fra induction` "
                                                     "(results/<model>/channels.csv)")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--model", default=None,
                   help=f"model directory or hub name; needed with --corpus. {MODEL}: the hand-set model of "
                        f"`fra {MODEL}` with its basis SAE, named features and, without --corpus, its corpus")
    p.add_argument("--sae", default=None, help="SAE per layer, {layer} filled in: models/toy/saes/L{layer} or "
                                              f"gpt2-small-res-jb; needed with --corpus (not with --model {MODEL})")
    p.add_argument("--corpus", default=None, help="example contexts, feature cards and the profiles of features "
                                                 "--features lacks from this .npy of token ids [n, pos] or .txt "
                                                 "file; without it, the page has no examples")
    p.add_argument("--n-seqs", type=positive, default=64, help="corpus sequences searched for examples")
    p.add_argument("--seq-len", type=at_least(2), default=128, help="tokens per sequence (text corpora are chunked)")
    p.add_argument("--per-head", type=positive, default=25, help="channels kept per head by support, by induction "
                                                                "score and by softmax effect (every confirmed "
                                                                "channel is kept too)")
    p.add_argument("--features", default=None, help="features.csv of `fra induction`: each feature's density and "
                                                   "sink share (which features are dense) and its profile on the "
                                                   "cards; features it lacks are profiled on --corpus")
    p.add_argument("--density", type=share, default=DENSITY, help="corpus firing rate above which a feature is dense")
    p.add_argument("--sink-share", type=share, default=ChannelConfig().sink_share,
                   help="sink share at or above which a feature is dense (params channels.sink_share)")
    p.add_argument("--cards", default=None, help="channel_features.json of `fra induction`: Neuronpedia links, and "
                                                "the feature cards when there is no --corpus")
    p.add_argument("--labels", default=None, help="feature_cards.json of the toy SAE stage: "
                                                  "planted-class labels on the cards")
    p.add_argument("--text-page", default=None, help="a single-text page of this model (fra explore): channels of its "
                                                    "layer link to their strongest pair there, and its strongest "
                                                    "channels per head are kept")
    p.add_argument("--name", default=None, help="model name in the title; "
                                                "without it, the --channels file's folder name")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model and SAEs run")


def run(args: argparse.Namespace) -> int:
    # every input is read and checked before the model runs
    out = output_file(args.out, "--out")
    compiled = compiled_inputs(args.sae, args.labels, args.device) if is_compiled(args.model) else None
    if args.corpus and not (args.model and (args.sae or compiled)):
        raise FRAError("--corpus needs --model and --sae (an SAE spec per layer, e.g. models/toy/saes/L{layer})")
    if args.labels and not (args.cards or args.corpus):
        raise FRAError("--labels go on the feature cards: pass --corpus (cards from it) or --cards "
                       "(channel_features.json)")
    table = read_channels(args.channels)
    features = read_features(args.features) if args.features else None
    single, top = None, []
    if args.text_page:
        single = read_payload(args.text_page, "--text-page")
        if not {"pairs", "heads", "feat", "empty_slot", "top_channels", "layer"} <= set(single):
            raise FRAError(f"--text-page {args.text_page} is not a single-text page; build one with `fra explore`")
        top = text_page_top(single)
    rows = shown_channels(table, args.per_head, [c for c, _ in top])
    chans = sorted({(int(la), int(h), int(a), int(b)) for la, h, a, b in rows[KEY].itertuples(index=False)})
    layers = sorted({c[0] for c in chans})
    feats = {la: sorted({x for c in chans if c[0] == la for x in c[2:]}) for la in layers}
    if compiled and layers != [compiled.layer]:
        raise FRAError(f"--channels {args.channels} has layers {layers}; the compiled model's SAE reads layer "
                       f"{compiled.layer} only: pass the channels.csv of `fra {MODEL}`")
    labels = {compiled.layer: compiled.labels} if compiled else {}
    if args.labels:
        have = read_json(args.labels, "--labels")
        labels = {la: read_labels(args.labels, la) for la in layers if not isinstance(have, dict) or f"L{la}" in have}
    strings = Strings()
    pipeline = read_cards(args.cards) if args.cards else None
    cards = pipeline_cards(feats, pipeline, features, labels, strings) if pipeline and not args.corpus else None
    tested = set(table[KEY].astype(int).itertuples(index=False, name=None))
    kept = {"per_head": args.per_head, "text_n": TEXT_TOP,
            "text_top": [[c[1], c[2], c[3], rounded(total), c in tested] for c, total in top]}
    text_page = None
    if single:
        href = os.path.relpath(Path(args.text_page).resolve(), out.resolve().parent)
        text_page = (href, text_page_links(single, chans))
        kept["text_layer"] = single["layer"]
    model, saes, tokens, examples, attn_rows, strs = None, None, None, None, None, None
    if compiled:
        model, saes = compiled.model, {compiled.layer: compiled.sae}
        tokens = (load_corpus(args.corpus, model, args.n_seqs, args.seq_len) if args.corpus
                  else compiled.corpus[:args.n_seqs, :args.seq_len])
    elif args.corpus:
        model = load_model(args.model, args.device)
        tokens = load_corpus(args.corpus, model, args.n_seqs, args.seq_len)
        saes = {la: load_sae(args.sae.format(layer=la), la, args.device) for la in layers}
    if tokens is not None:
        strs = token_strings(model, tokens)
        examples, attn_rows = channel_examples(model, saes, tokens, chans)
        cards = ({f"L{la}:{a}": c for la in layers for a, c in
                  corpus_cards(model, saes[la], tokens, feats[la], labels.get(la, {}), strings, exclude=None).items()},
                 pipeline_cards(feats, pipeline, None, {}, Strings())[1] if pipeline else {})
    source = ([args.features] if args.features else [])
    source += [f"the page's corpus ({args.corpus or CORPUS_NAME})"] if tokens is not None else []
    dense = dense_payload(feats, layer_profiles(feats, features, model, saes, tokens), args.density, args.sink_share,
                          " and ".join(source) or "nothing (pass --features or --corpus)")
    name = args.name or Path(args.channels).parent.name
    payload = (dataset_payload(rows, name, examples, attn_rows, strs, cards, strings, text_page)
               | {"per_head": args.per_head, "kept": kept, "dense": dense,
                  "cards_from": "corpus" if tokens is not None else "channel_features.json" if args.cards else None})
    html = page("dataset", f"FRA channels: {name}", payload)
    write_text(out, html)
    n_dense = sum(1 for c in chans if set(c[2:]) & set(dense["features"][str(c[0])]))
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {len(chans)} channels, {len(rows)} probe rows, "
          f"{n_dense} channels with a dense feature)")
    return 0
