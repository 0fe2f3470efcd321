"""``fra explore-dataset``: one model's ``channels.csv`` as a sortable page with corpus examples."""

from __future__ import annotations

import argparse
from pathlib import Path

from fra.analysis.features import token_strings
from fra.errors import FRAError
from fra.explore.dataset import channel_examples, dataset_payload, load_corpus, read_channels, shown_rows
from fra.explore.encode import page
from fra.io import output_file, write_text
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import at_least, positive

NAME = "explore-dataset"
HELP = "write a self-contained HTML explorer of a model's channels.csv"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channels", required=True, help="results/<model>/channels.csv")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--model", default=None, help="model directory or hub name (needed with --corpus)")
    p.add_argument("--sae", default=None, help="SAE per layer, {layer} filled in: models/toy/saes/L{layer} or gpt2-small-res-jb")
    p.add_argument("--corpus", default=None, help="example contexts from this .npy of token ids [n, pos] or .txt file")
    p.add_argument("--n-seqs", type=positive, default=64, help="corpus sequences searched for examples")
    p.add_argument("--seq-len", type=at_least(2), default=128, help="tokens per sequence (text corpora are chunked)")
    p.add_argument("--per-head", type=positive, default=25, help="channels per head by support and by induction score")
    p.add_argument("--name", default=None, help="model name in the title (default: the channels file's folder)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run(args: argparse.Namespace) -> int:
    out = output_file(args.out, "--out")
    if args.corpus and not (args.model and args.sae):
        raise FRAError("--corpus needs --model and --sae (an SAE spec per layer, e.g. models/toy/saes/L{layer})")
    df = shown_rows(read_channels(args.channels), args.per_head)
    examples, strs = None, None
    if args.corpus:
        model = load_model(args.model, args.device)
        tokens = load_corpus(args.corpus, model, args.n_seqs, args.seq_len)
        strs = token_strings(model, tokens)
        examples = {}
        for layer, g in df.groupby("layer"):
            sae = load_sae(args.sae.format(layer=int(layer)), int(layer), args.device)
            chans = sorted({(int(h), int(a), int(b)) for h, a, b in g[["head", "query_feature", "key_feature"]].itertuples(index=False)})
            found = channel_examples(model, sae, tokens, int(layer), chans)
            examples.update({(int(layer), c): v for c, v in found.items()})
    name = args.name or Path(args.channels).parent.name
    html = page("dataset", f"FRA channels: {name}", dataset_payload(df, examples, strs, name))
    write_text(out, html)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {len(df)} channels)")
    return 0
