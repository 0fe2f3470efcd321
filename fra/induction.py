"""``fra induction``: token induction heads (TIH) vs conceptual induction channels (CIH) for one model.

Writes to ``--out`` (``results/<model>/``):

* ``heads.csv``: every head's induction / previous-token / duplicate-token scores and ``is_tih``;
* ``channels.csv``: every candidate channel tested, with discovery and held-out statistics,
  BH q-values over all of them, and ``is_cih``;
* ``head_attention.csv``: each resolvable head's attention to the induction target per probe kind;
* ``hypotheses.csv``: per resolvable head, TIH score, confirmed channels and the best one (H1/H2);
* ``channel_features.json``: a card (top-activating tokens with contexts; a Neuronpedia link for
  gpt2-small-res-jb SAEs) for every feature that appears in ``channels.csv``;
* ``metrics.json``: counts, H1/H2 answers, the engine's exactness residual and term shares on the
  probes and, for the planted world, recall / false discoveries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.channels import confirm, search
from fra.config import Params, WorldConfig
from fra.engine import resolve
from fra.errors import FRAError
from fra.heads import bos_id, head_scores, token_pool
from fra.io import atomic_path, write_json
from fra.probes import Probes, concept_templates, repeated_random, repeated_text, world_probes

EXACT_PROBE = "random_repeat"  # H1 is asked on exact token repeats
CONTROL_PROBE = "concept_control"  # planted-world control: its confirmations are false discoveries


def probe_sets(
    model: HookedTransformer, params: Params, world: WorldConfig | None, corpus: torch.Tensor | None = None
) -> list[tuple[Probes, Probes]]:
    """(discovery, held-out) probe sets of every kind; held-out sequences use disjoint seeds / text."""
    cfg = params.induction
    bos, pool = bos_id(model), token_pool(model).numpy()
    pairs = [tuple(
        repeated_random(pool, bos, n, cfg.repeat_min, cfg.repeat_max, seed=cfg.seed * 2 + split)
        for split, n in ((0, cfg.n_discovery), (1, cfg.n_heldout))
    )]
    if corpus is not None:  # natural text: windows from the first / second half of the corpus
        half = len(corpus) // 2
        pairs.append(tuple(
            repeated_text(part, bos, n, cfg.repeat_min, cfg.repeat_max, seed=cfg.seed * 2 + split)
            for split, (part, n) in enumerate(((corpus[:half], cfg.n_discovery), (corpus[half:], cfg.n_heldout)))
        ))
    if world is None and model.tokenizer is not None:  # a language model: templated concept variants
        pairs.append(tuple(concept_templates(model.tokenizer, bos, n, seed=cfg.seed * 2 + split)
                           for split, n in ((0, cfg.n_discovery), (1, cfg.n_heldout))))
    if world is not None:
        disc = world_probes(world, cfg.n_discovery, seed=cfg.seed * 2)
        held = world_probes(world, cfg.n_heldout, seed=cfg.seed * 2 + 1)
        pairs += list(zip(disc, held))
    return pairs


def hypotheses(heads: pd.DataFrame, channels: pd.DataFrame, layers: list[int]) -> pd.DataFrame:
    """One row per resolvable head: TIH score, confirmed channels per probe kind, and the best channel.

    ``n_cih`` and the best channel leave out the planted-world control probe.
    """
    rows = heads[heads["layer"].isin(layers)][["layer", "head", "induction", "is_tih"]].copy()
    confirmed = channels[channels["is_cih"]]
    counts = confirmed.groupby(["layer", "head", "probe"]).size().unstack(fill_value=0)
    counts.columns = [f"n_cih_{p}" for p in counts.columns]
    rows = rows.merge(counts.reset_index(), on=["layer", "head"], how="left")
    n_cols = [c for c in rows.columns if c.startswith("n_cih_")]
    rows[n_cols] = rows[n_cols].fillna(0).astype(int)
    real = [c for c in n_cols if c != f"n_cih_{CONTROL_PROBE}"]  # the control measures false discoveries
    rows["n_cih"] = rows[real].sum(axis=1) if real else 0
    confirmed = confirmed[confirmed["probe"] != CONTROL_PROBE]
    best = (confirmed.sort_values(["q_value", "channel_induction_heldout"], ascending=[True, False])
            .groupby(["layer", "head"]).head(1)[["layer", "head", "probe", "group", "query_feature", "key_feature",
                                                 "channel_induction_heldout", "softmax_effect", "q_value"]])
    best = best.rename(columns={c: f"best_{c}" for c in best.columns if c not in ("layer", "head")})
    return rows.merge(best, on=["layer", "head"], how="left")


def answers(hyp: pd.DataFrame) -> dict:
    """H1: every TIH has a confirmed channel on exact repeats. H2: some non-TIH head has one."""
    exact = f"n_cih_{EXACT_PROBE}"
    tih, other = hyp[hyp["is_tih"]], hyp[~hyp["is_tih"]]
    n_exact = tih[exact] if exact in tih else pd.Series(0, index=tih.index)
    return {
        "H1": {
            "n_tih": len(tih), "n_tih_with_cih": int((n_exact > 0).sum()),
            "answer": "untestable (no TIH in the resolved layers)" if tih.empty else ("yes" if (n_exact > 0).all() else "no"),
        },
        "H2": {
            "n_non_tih": len(other), "n_non_tih_with_cih": int((other["n_cih"] > 0).sum()),
            "answer": "yes" if (other["n_cih"] > 0).any() else "no",
        },
    }


def planted_recall(channels: pd.DataFrame, world: WorldConfig) -> dict:
    """Conceptual classes with a confirmed class-level channel, and token-only classes with one (false)."""
    def classes_with_cih(probe: str) -> set[str]:
        sel = channels[(channels["probe"] == probe) & channels["is_cih"]]
        return set(sel["group"])

    conceptual = {f"class{c:02d}" for c in range(world.n_conceptual)}
    n_swap = min(world.n_conceptual, world.n_classes - world.n_conceptual)
    token_only = {f"class{world.n_conceptual + c:02d}" for c in range(n_swap)}
    found, false = classes_with_cih("concept_repeat") & conceptual, classes_with_cih("concept_control") & token_only
    return {
        "recall_conceptual": len(found) / len(conceptual), "conceptual_found": sorted(found),
        "false_discovery_token_only": len(false) / len(token_only), "token_only_found": sorted(false),
        "n_conceptual": len(conceptual), "n_token_only_tested": len(token_only),
    }


def run(model: HookedTransformer, saes: dict[int, SAE], params: Params, world: WorldConfig | None = None,
        corpus: torch.Tensor | None = None, sae_spec: str = "") -> dict:
    """Head scores, channel search on every probe kind, FDR, hypothesis tables and feature cards.

    ``corpus`` (token ids ``[seq, pos]``) adds repeated-text probes and is where feature cards come
    from; without it cards come from the repeated-random probes.
    """
    heads = head_scores(model, params.heads)
    heads["is_tih"] = heads["induction"] >= params.induction.tih_threshold
    tables, attention, exactness = [], [], {}
    probes = probe_sets(model, params, world, corpus)
    for disc, held in tqdm(probes, desc="probe kinds"):
        table, attn = search(model, saes, disc, held, params.channels, params.engine)
        tables.append(table)
        attention.append(attn)
        for layer, sae in saes.items():  # the decomposition's residual and term shares on these inputs
            fra = resolve(model, sae, disc.tokens[: params.channels.batch_size], layer, cfg=params.engine)
            exactness.setdefault(f"L{layer}", {})[disc.kind] = fra.exactness()
    channels = confirm(pd.concat(tables, ignore_index=True), params.channels)
    hyp = hypotheses(heads, channels, sorted(saes))
    metrics = {
        "n_channels_tested": len(channels), "n_cih": int(channels["is_cih"].sum()),
        "tested_by_probe": channels.groupby("probe").size().to_dict(),
        "cih_by_probe": channels.groupby("probe")["is_cih"].sum().astype(int).to_dict(),
        "layers_resolved": sorted(saes), "tih_threshold": params.induction.tih_threshold,
        "alpha": params.channels.alpha, "min_support": params.channels.min_support,
        "min_queries": params.channels.min_queries, "min_effect": params.channels.min_effect, **answers(hyp),
        "exactness": exactness,
        "max_residual": max(e["max_residual"] for per in exactness.values() for e in per.values()),
    }
    if world is not None:
        metrics["planted"] = planted_recall(channels, world)
    if corpus is None:
        corpus = probes[0][0].tokens
    cards = channel_feature_cards(model, saes, channels, corpus, sae_spec)
    return {"heads": heads, "channels": channels, "head_attention": pd.concat(attention, ignore_index=True),
            "hypotheses": hyp, "metrics": metrics, "cards": cards}


def channel_feature_cards(model: HookedTransformer, saes: dict[int, SAE], channels: pd.DataFrame, corpus: torch.Tensor,
                          sae_spec: str = "") -> dict:
    """Cards of every feature in ``channels`` (query and key side), per layer, from ``corpus``."""
    from fra.explore.cards import feature_cards, neuronpedia_base

    out = {}
    for layer, sae in sorted(saes.items()):
        rows = channels[channels["layer"] == layer]
        feats = sorted(set(rows["query_feature"].astype(int)) | set(rows["key_feature"].astype(int)))
        base = neuronpedia_base(sae, sae_spec)
        out[f"L{layer}"] = {
            str(f): {"top": top, "neuronpedia": f"{base}{f}" if base else None}
            for f, top in feature_cards(model, sae, corpus, feats).items()
        }
    return out


def write(results: dict, out: Path) -> None:
    for name in ("heads", "channels", "head_attention", "hypotheses"):
        with atomic_path(out / f"{name}.csv") as tmp:
            results[name].to_csv(tmp, index=False, float_format="%.6g")
    write_json(out / "channel_features.json", results["cards"])
    write_json(out / "metrics.json", results["metrics"])


def load_saes(spec: str, layers: list[int] | None, model: HookedTransformer) -> dict[int, SAE]:
    """SAEs from a directory of SAELens folders (one per layer) or a hub release with ``--layers``."""
    from fra.saes import load_sae

    path = Path(spec)
    if path.is_dir():
        saes = {}
        for sub in sorted(p for p in path.iterdir() if (p / "cfg.json").exists()):
            sae = load_sae(sub, device=str(model.cfg.device))
            hook = sae.cfg.metadata.hook_name or ""
            layer = int(hook.split(".")[1]) if hook.startswith("blocks.") else -1
            if layers is None or layer in layers:
                saes[layer] = sae
        if not saes:
            raise FRAError(f"{path} holds no SAELens SAE folders{' for layers ' + str(layers) if layers else ''}")
        return saes
    if not layers:
        raise FRAError(f"SAE release `{spec}` needs --layers")
    return {layer: load_sae(spec, layer, device=str(model.cfg.device)) for layer in layers}


def main(args: argparse.Namespace) -> int:
    from fra.config import load_params
    from fra.models import load_model

    params = load_params(args.params)
    model = load_model(args.model, params.engine.device)
    saes = load_saes(args.saes, args.layers, model)
    world = None
    if args.ground_truth:
        truth = json.loads(Path(args.ground_truth).read_text())
        world = params.world
        if truth["d_vocab"] != world.d_vocab or truth["n_conceptual"] != world.n_conceptual:
            raise FRAError(f"{args.ground_truth} does not match params.yaml's world section; rerun `dvc repro toy_data`")
    corpus = None
    if args.corpus:
        corpus = torch.from_numpy(np.load(args.corpus).astype(np.int64))[: args.corpus_sequences]
    results = run(model, saes, params, world, corpus, args.saes)
    write(results, Path(args.out))
    m = results["metrics"]
    print(f"{m['n_channels_tested']} channels tested, {m['n_cih']} confirmed (BH at {m['alpha']})")
    print(f"H1 {m['H1']['answer']}: {m['H1']['n_tih_with_cih']}/{m['H1']['n_tih']} TIH with a confirmed channel")
    print(f"H2 {m['H2']['answer']}: {m['H2']['n_non_tih_with_cih']}/{m['H2']['n_non_tih']} non-TIH heads with one")
    if "planted" in m:
        p = m["planted"]
        print(f"planted: recall {p['recall_conceptual']:.2f}, false discoveries {p['false_discovery_token_only']:.2f}")
    return 0
