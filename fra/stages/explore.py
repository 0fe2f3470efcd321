"""``fra explore``: the single-text explorer page for one text and one layer (all heads)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fra.engine.inputs import tokenize
from fra.errors import FRAError
from fra.explore.data import Detail, read_heads, read_labels
from fra.explore.single import single_page
from fra.io import output_file, write_text
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import at_least, positive, share, token_ids

NAME = "explore"
HELP = "write a self-contained HTML explorer of one text at one layer (all heads)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or hub name (gpt2-small)")
    p.add_argument("--sae", required=True, help="SAELens directory or hub release (gpt2-small-res-jb)")
    p.add_argument("--layer", type=at_least(0), required=True,
                   help="layer whose attention the page resolves, every head of it (the SAE must read this layer's input)")
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to explore (the model's BOS is prepended); or --text-file")
    text.add_argument("--text-file", help="read the text from this UTF-8 file (trailing newlines dropped); or --text")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--name", default=None,
                   help="model name in the page's title; without it, the --model folder's name or the hub name")
    p.add_argument("--corpus", default=None,
                   help="feature cards from this .npy of token ids [seq, pos]; without it, from the text itself")
    p.add_argument("--corpus-sequences", type=positive, default=256, help="sequences of --corpus used for the cards")
    p.add_argument("--labels", default=None,
                   help="feature_cards.json of the toy SAE stage (results/toy/feature_cards.json): labels on the cards")
    p.add_argument("--heads", default=None,
                   help="heads.csv of `fra induction` (layer, head, induction[, previous_token, is_tih]): head scores "
                        "in the head menu; the page opens on the layer's strongest induction head")
    p.add_argument("--start-head", type=at_least(0), default=None,
                   help="head the page opens on; without it, the strongest induction head of --heads, else head 0")
    p.add_argument("--keys-per-query", type=at_least(0), default=8,
                   help="most keys per (head, query) with channel detail (0: all)")
    p.add_argument("--mass", type=share, default=0.9, help="detail for the keys holding this share of each query's attention")
    p.add_argument("--top-n", type=positive, default=8, help="feature-pair channels listed per (query, key) pair")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model and SAE run")


def read_text(path: str) -> str:
    """The text of ``--text-file`` without trailing newlines, or a clear error."""
    try:
        text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise FRAError(f"--text-file {path} is not a readable UTF-8 text file ({exc})") from exc
    if not text.strip():
        raise FRAError(f"--text-file {path} is empty; put the text to explore in it")
    return text


def run(args: argparse.Namespace) -> int:
    # every input is read and checked before the model runs
    out = output_file(args.out, "--out")
    text = args.text if args.text_file is None else read_text(args.text_file)
    corpus = None if args.corpus is None else token_ids(args.corpus, args.corpus_sequences, "--corpus")
    labels = None if args.labels is None else read_labels(args.labels, args.layer)
    model = load_model(args.model, args.device)
    n_heads, n_layers = model.cfg.n_heads, model.cfg.n_layers
    if args.layer >= n_layers:
        raise FRAError(f"layer {args.layer} is out of range: the model has layers 0..{n_layers - 1}")
    if args.start_head is not None and args.start_head >= n_heads:
        raise FRAError(f"--start-head {args.start_head} is out of range: the model has heads 0..{n_heads - 1} per layer")
    scores = None if args.heads is None else read_heads(args.heads, args.layer, n_heads)
    if corpus is not None and (corpus.numel() == 0 or int(corpus.max()) >= model.cfg.d_vocab or int(corpus.min()) < 0):
        raise FRAError(f"--corpus {args.corpus} is empty or holds token ids outside the model's vocabulary "
                       f"(0..{model.cfg.d_vocab - 1}); pass token ids of this model")
    if corpus is not None and corpus.shape[1] > model.cfg.n_ctx:
        raise FRAError(f"--corpus {args.corpus} has sequences of {corpus.shape[1]} tokens, longer than the model's "
                       f"context ({model.cfg.n_ctx}); cut them to at most {model.cfg.n_ctx} tokens")
    sae = load_sae(args.sae, args.layer, args.device)
    tokens = tokenize(model, text)
    detail = Detail(max_keys=args.keys_per_query, mass=args.mass, top_n=args.top_n)
    names = {"model": args.name or Path(args.model).name or str(args.model), "sae": str(args.sae),
             **({"corpus": str(args.corpus)} if args.corpus else {})}
    html, payload = single_page(model, sae, tokens, args.layer, detail, card_tokens=corpus, names=names, labels=labels,
                                head_scores=scores, start_head=args.start_head)
    write_text(out, html)
    start = payload["start"]
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {tokens.shape[1]} tokens, {n_heads} heads; "
          f"opens on L{args.layer}.H{payload['heads'][start['h']]}, query {start['q']} -> key {start['k']})")
    return 0
