"""``fra explore-cot``: the chain-of-thought explorer of one trace (``trace_view.json`` of ``fra cot``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.dense import DENSITY
from fra.config import ChannelConfig
from fra.errors import FRAError
from fra.explore.cards import corpus_cards
from fra.explore.cot import FIX, channel_features, check_view, cot_page
from fra.explore.dataset import dense_payload, layer_profiles
from fra.explore.encode import Strings, clean
from fra.explore.inputs import read_features
from fra.io import output_file, write_text
from fra.models import load_model
from fra.saes import load_saes
from fra.stages.args import at_least, share, token_ids

NAME = "explore-cot"
HELP = "write a self-contained HTML explorer of one chain-of-thought trace: sentences, receiving heads, channels"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--view", required=True,
                   help="trace_view.json written by `fra cot` (results/<model>/cot/trace_view.json)")
    p.add_argument("--name", default=None,
                   help="model name in the title (default: the view's folder, or the one above it when that is `cot`)")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--model", default=None, help="model directory or name: feature cards of every channel feature "
                                                "from --corpus (with --saes); without it, the view's own cards")
    p.add_argument("--saes", default=None, help="directory of SAELens folders, one per layer (models/<model>/saes); "
                                               "needed with --model")
    p.add_argument("--corpus", default=None, help="token ids (.npy, [seq, pos]) for the cards and the profiles of "
                                                 "features --features lacks; needed with --model")
    p.add_argument("--corpus-sequences", type=at_least(1), default=256, help="sequences of --corpus to use")
    p.add_argument("--features", default=None, help="features.csv of `fra induction`: each feature's density and "
                                                   "sink share (which features are dense); features it lacks are "
                                                   "profiled on --corpus")
    p.add_argument("--density", type=share, default=DENSITY, help="corpus firing rate above which a feature is dense")
    p.add_argument("--sink-share", type=share, default=ChannelConfig().sink_share,
                   help="sink share at or above which a feature is dense (params channels.sink_share)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model and SAEs run")


def read_view(path: str | Path) -> dict:
    """The trace view with NaN as None; FRAError when missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise FRAError(f"--view {path} does not exist; {FIX}")
    try:
        return clean(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FRAError(f"--view {path} is not JSON ({exc}); {FIX}") from exc


def corpus_view_cards(model: HookedTransformer, saes: dict[int, SAE], corpus: Tensor, feats: dict[int, list[int]],
                      theirs: dict, exclude: Tensor | None) -> tuple[dict, list[str]]:
    """Cards of every channel feature (per layer) from ``corpus`` (:func:`fra.explore.cards.corpus_cards`, less the
    sequences sharing a window with ``exclude``), each with the view's Neuronpedia link where it has one, and the
    token strings they index."""
    strings, out = Strings(), {}
    for layer, fs in feats.items():
        mine = theirs.get(f"L{layer}", {})
        out[f"L{layer}"] = {}
        for a, c in corpus_cards(model, saes[layer], corpus, fs, {}, strings, exclude=exclude).items():
            url = (mine.get(str(a)) or {}).get("neuronpedia")
            out[f"L{layer}"][str(a)] = c | ({"neuronpedia": url} if url else {})
    return out, strings.table


def run(args: argparse.Namespace) -> int:
    # every input is read and checked before the model runs
    out = output_file(args.out, "--out")
    given = [f for f, v in (("--model", args.model), ("--saes", args.saes), ("--corpus", args.corpus)) if v]
    if given and len(given) < 3:
        raise FRAError(f"{' '.join(given)} given alone: --model, --saes and --corpus go together (the cards of every "
                       "channel feature come from the corpus); pass all three, or none for the view's own cards")
    view = read_view(args.view)
    check_view(view)
    feats = channel_features(view)
    features = read_features(args.features) if args.features else None
    corpus = token_ids(args.corpus, args.corpus_sequences, "--corpus") if args.corpus else None
    model, saes, cards, exclude = None, None, None, None
    if args.model:
        model = load_model(args.model, args.device)
        saes = load_saes(args.saes, sorted(feats), model)
        exclude = torch.tensor([view["tokens"]]) if view.get("tokens") else None
        cards = corpus_view_cards(model, saes, corpus, feats, view["cards"], exclude)
    source = ([args.features] if args.features else []) + ([f"--corpus {args.corpus}"] if args.model else [])
    dense = dense_payload(feats, layer_profiles(feats, features, model, saes, corpus), args.density, args.sink_share,
                          " and ".join(source) or "nothing (pass --features, or --model, --saes and --corpus)")
    folder = Path(args.view).resolve().parent
    name = args.name or (folder.parent.name if folder.name == "cot" else folder.name)
    names = {"model": name, **({"corpus": args.corpus, "excluded": exclude is not None} if args.model else {})}
    html, _ = cot_page(view, names, cards, dense)
    write_text(out, html)
    print(f"wrote {args.out} ({len(html.encode()) / 1e6:.2f} MB, {len(view['sentences'])} sentences, "
          f"{view['n_layers']} layers x {view['n_heads']} heads, {len(view['resolved'])} resolved; cards from "
          f"{'--corpus' if cards else 'the view'})")
    return 0
