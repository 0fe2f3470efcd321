"""``fra toy-train``: train the toy model on the world corpus, score its heads, check the ground truth."""

from __future__ import annotations

import argparse
import time

from fra.analysis.heads import ground_truth_failure, head_check, head_scores
from fra.config import load_params
from fra.errors import FRAError
from fra.io import atomic_files, output_dir, write_json
from fra.models import save_hooked
from fra.world.corpus import load_split, world_corpus
from fra.world.train import POSITIONAL_NOTE, build_model, curriculum_data, train

NAME = "toy-train"
HELP = "train the toy model, score its heads (params: world, toy_train, heads)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--corpus", default="data/toy/corpus")
    p.add_argument("--out", default="models/toy/model", help="model directory (fra.models.load_model reads it)")
    p.add_argument("--results", default="results/toy", help="folder for train_metrics.json and heads.csv")


def run(args: argparse.Namespace) -> int:
    out, results = output_dir(args.out, "--out"), output_dir(args.results, "--results")
    params = load_params(args.params)
    corpus = world_corpus(args.corpus)
    start = time.time()
    model = build_model(params.world, params.toy_train)
    history = train(model, load_split(corpus, "train"), load_split(corpus, "heldout"), params.toy_train,
                    curriculum_data(params.world, params.toy_train))
    # wall-clock time is logged, never a result: tables reproduce byte for byte
    print(f"trained in {time.time() - start:.0f} s")
    df = head_scores(model, params.heads)
    check = head_check(model, params.heads, df)
    final = {k: round(v, 4) for k, v in history[-1].items() if k != "step"}
    metrics = {
        **final,
        "ground_truth_ok": check["ground_truth_ok"],
        "learned_world": final["acc_token_repeat"] > 0.9 and final["acc_concept_repeat"] > 0.8,
        "heads": check,
        "model": {k: getattr(params.toy_train, k)
                  for k in ("n_layers", "n_heads", "d_model", "d_mlp", "positional_embedding_type")},
        "positional_embedding_note": POSITIONAL_NOTE.get(params.toy_train.positional_embedding_type, ""),
        "history": [{k: round(v, 4) for k, v in h.items()} for h in history],
    }
    save_hooked(model, out)
    with atomic_files(results) as tmp:
        df.round(4).to_csv(tmp / "train_heads.csv", index=False)
        write_json(tmp / "train_metrics.json", metrics)
    print({k: v for k, v in metrics.items() if k not in ("history", "heads")})
    print(f"canonical induction heads: {check['canonical_induction_heads']}")
    failure = ground_truth_failure(check, df, params.heads)
    if failure:  # the outputs stay for inspection; the pipeline stops here
        raise FRAError(f"{failure} (see {results / 'train_metrics.json'})")
    return 0
