"""``fra explore``: the single-text explorer page for one text and one layer (all heads)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fra.analysis.dense import DENSITY
from fra.config import ChannelConfig
from fra.engine.inputs import tokenize
from fra.errors import FRAError
from fra.explore.compiled import CORPUS_NAME, MODEL, SAE_NAME, compiled_inputs, compiled_layer, is_compiled
from fra.explore.data import Detail
from fra.explore.inputs import heads_table, induction_layer, read_features, read_heads, read_labels
from fra.explore.single import single_page
from fra.io import output_file, write_text
from fra.models import load_model
from fra.saes import load_sae
from fra.stages.args import at_least, positive, share, token_ids

NAME = "explore"
HELP = "write a self-contained HTML explorer of one text at one layer (all heads)"


def layer_arg(text: str) -> int | str:
    """A layer number, or ``auto``."""
    return text if text == "auto" else at_least(0)(text)


layer_arg.__name__ = "layer number or auto"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help=f"model directory or hub name (gpt2-small); {MODEL}: the hand-set model of `fra {MODEL}`, "
                        "with its basis SAE, named features and corpus, opening on its concept-only head")
    p.add_argument("--sae", default=None,
                   help="SAELens directory or hub release (gpt2-small-res-jb); {layer} is filled in "
                        f"(models/toy/saes/L{{layer}}); required unless --model {MODEL}")
    p.add_argument("--layer", type=layer_arg, required=True,
                   help="layer whose attention the page resolves, every head of it (the SAE must read this layer's "
                        "input); auto: of the layers with an SAE, the one with the most token induction heads in "
                        "--heads, then the strongest induction head")
    text = p.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to explore (the model's BOS is prepended)")
    text.add_argument("--text-file", help="read the text from this UTF-8 file (trailing newlines dropped)")
    text.add_argument("--sequence", type=at_least(0), help="explore sequence N of --corpus (its token ids as they are)")
    p.add_argument("--repeat", action="store_true",
                   help="follow the text with itself once more (BOS not repeated): the repeated-text probe, where "
                        "induction heads attend to the token after the earlier occurrence")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--name", default=None,
                   help="model name in the page's title; without it, the --model folder's name or the hub name")
    p.add_argument("--corpus", default=None,
                   help="feature cards from this .npy of token ids [seq, pos]; without it, from the text itself "
                        f"(--model {MODEL}: from the corpus of `fra {MODEL}`)")
    p.add_argument("--corpus-sequences", type=positive, default=256, help="sequences of --corpus used for the cards")
    p.add_argument("--labels", default=None,
                   help="feature_cards.json of the toy SAE stage (results/toy/feature_cards.json): labels on the cards")
    p.add_argument("--heads", default=None,
                   help="heads.csv of `fra induction` (layer, head, induction[, previous_token, is_tih]): head scores "
                        "in the head menu; the page opens on the layer's strongest induction head")
    p.add_argument("--features", default=None,
                   help="features.csv of `fra induction`: its firing rates and sink shares mark the dense features "
                        "(their rows take precedence over the profile on the card corpus, --corpus or the text)")
    p.add_argument("--density", type=share, default=DENSITY,
                   help="a feature firing at more than this share of the corpus tokens is dense: its channels are "
                        "collapsed into one 'dense features' term")
    p.add_argument("--sink-share", type=share, default=ChannelConfig().sink_share,
                   help="a feature with at least this share of its activation on BOS / special tokens is dense too "
                        "(params.yaml channels.sink_share)")
    p.add_argument("--start-head", type=at_least(0), default=None,
                   help="head the page opens on; without it, the strongest induction head of --heads, else head 0 "
                        f"(--model {MODEL}: its concept-only head)")
    p.add_argument("--keys-per-query", type=at_least(0), default=8,
                   help="most keys per (head, query) with channel detail (0: all)")
    p.add_argument("--mass", type=share, default=0.9,
                   help="detail for the keys holding this share of each query's attention")
    p.add_argument("--top-n", type=positive, default=8, help="feature-pair channels listed per (query, key) pair")
    p.add_argument("--map-values", type=at_least(0), default=Detail().map_values,
                   help="rotary models: most g_ab values (float32) for whole channel maps, given to the heads' top "
                        "channels, then by rank at a pair; past it a map shows the pairs with detail (0: no limit)")
    p.add_argument("--max-cards", type=at_least(0), default=Detail().cards,
                   help="most feature cards (~1.3 kB each): the features of the channels at the heads' start pairs, "
                        "then of the top channels and the best ranked at a pair (0: every listed channel's)")
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


def pick_layer(args: argparse.Namespace) -> int:
    """``--layer``, resolving ``auto`` from ``--heads`` over the layers whose SAE exists."""
    if args.layer != "auto":
        return args.layer
    if args.heads is None:
        raise FRAError("--layer auto needs --heads (the heads.csv of `fra induction`) to find the induction heads")
    local = "{layer}" in args.sae
    if not local and Path(args.sae).exists():
        raise FRAError(f"--layer auto needs an --sae per layer with {{layer}} in it (e.g. {args.sae}/L{{layer}}), "
                       "or a hub release")
    layers = sorted(set(heads_table(args.heads)["layer"]))
    with_sae = [la for la in layers if Path(args.sae.format(layer=la)).is_dir()] if local else None
    if with_sae == []:
        raise FRAError(f"--layer auto: no SAE folder {args.sae} exists for the layers of --heads ({layers})")
    return induction_layer(args.heads, with_sae)


def run(args: argparse.Namespace) -> int:
    # every input is read and checked before the model runs
    out = output_file(args.out, "--out")
    text = args.text if args.text_file is None else read_text(args.text_file)
    compiled = compiled_inputs(args.sae, args.labels, args.device) if is_compiled(args.model) else None
    if compiled is None and args.sae is None:
        raise FRAError(f"--sae is required (an SAELens directory or hub release) unless --model {MODEL}")
    if args.sequence is not None and args.corpus is None and compiled is None:
        raise FRAError("--sequence N takes sequence N of --corpus; pass --corpus (a .npy of token ids [seq, pos])")
    every = (token_ids(args.corpus, None, "--corpus") if args.corpus is not None
             else None if compiled is None else compiled.corpus)
    corpus_name = f"--corpus {args.corpus}" if args.corpus else CORPUS_NAME if compiled else None
    if args.sequence is not None and args.sequence >= len(every):
        raise FRAError(f"--sequence {args.sequence} is out of range: {corpus_name} has {len(every)} sequences")
    corpus = None if every is None else every[:args.corpus_sequences]
    layer = pick_layer(args) if compiled is None else compiled_layer(args.layer)
    labels = compiled.labels if compiled else None if args.labels is None else read_labels(args.labels, layer)
    features = None if args.features is None else read_features(args.features)
    model = load_model(args.model, args.device) if compiled is None else compiled.model
    n_heads, n_layers = model.cfg.n_heads, model.cfg.n_layers
    if layer >= n_layers:
        raise FRAError(f"layer {layer} is out of range: the model has layers 0..{n_layers - 1}")
    if args.start_head is not None and args.start_head >= n_heads:
        raise FRAError(f"--start-head {args.start_head} is out of range: the model has "
                       f"heads 0..{n_heads - 1} per layer")
    scores = None if args.heads is None else read_heads(args.heads, layer, n_heads)
    if corpus is not None and (corpus.numel() == 0 or int(every.max()) >= model.cfg.d_vocab or int(every.min()) < 0):
        raise FRAError(f"--corpus {args.corpus} is empty or holds token ids outside the model's vocabulary "
                       f"(0..{model.cfg.d_vocab - 1}); pass token ids of this model")
    if corpus is not None and corpus.shape[1] > model.cfg.n_ctx:
        raise FRAError(f"--corpus {args.corpus} has sequences of {corpus.shape[1]} tokens, longer than the model's "
                       f"context ({model.cfg.n_ctx}); cut them to at most {model.cfg.n_ctx} tokens")
    tokens = tokenize(model, text) if args.sequence is None else every[args.sequence:args.sequence + 1]
    if args.repeat:  # the text again, without its leading BOS
        bos = getattr(model.tokenizer, "bos_token_id", None)
        tokens = torch.cat([tokens, tokens[:, 1:] if bos is not None and int(tokens[0, 0]) == bos else tokens], dim=1)
        if tokens.shape[1] > model.cfg.n_ctx:
            raise FRAError(f"--repeat makes {tokens.shape[1]} tokens, more than the model's context "
                           f"({model.cfg.n_ctx}); shorten the text to half of it")
    sae = load_sae(args.sae.format(layer=layer), layer, args.device) if compiled is None else compiled.sae
    start_head = compiled.concept_head if compiled and args.start_head is None else args.start_head
    detail = Detail(max_keys=args.keys_per_query, mass=args.mass, top_n=args.top_n, map_values=args.map_values,
                    cards=args.max_cards)
    names = {"model": args.name or Path(args.model).name or str(args.model),
             "sae": SAE_NAME if compiled else args.sae.format(layer=layer),
             **({"corpus": str(args.corpus) if args.corpus else CORPUS_NAME} if every is not None else {})}
    html, payload = single_page(model, sae, tokens, layer, detail=detail, card_tokens=corpus, names=names,
                                labels=labels, head_scores=scores, start_head=start_head, features=features,
                                density=args.density, sink_share=args.sink_share)
    write_text(out, html)
    start, dense = payload["start"], payload["dense_features"]
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {tokens.shape[1]} tokens, {n_heads} heads; "
          f"opens on L{layer}.H{payload['heads'][start['h']]}, query {start['q']} -> key {start['k']}; "
          f"{len(dense)} dense features in the text{': ' if dense else ''}{', '.join(map(str, dense[:8]))}"
          f"{', ...' if len(dense) > 8 else ''})")
    return 0
