"""Token induction heads (TIH) vs conceptual induction channels (CIH) for one model: the study.

:func:`run` composes the steps (head scores, the channel search on every probe kind, FDR,
hypotheses, metrics, feature cards); :meth:`Study.write` writes, to ``results/<model>/``:

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

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from sae_lens import SAE
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.analysis.channels import confirm, search
from fra.analysis.features import feature_cards, neuronpedia_base
from fra.analysis.heads import bos_id, head_scores, token_pool
from fra.analysis.probes import Probes, concept_templates, repeated_random, repeated_text
from fra.analysis.schema import CHANNELS
from fra.config import HeadScoreConfig, InductionConfig, Params
from fra.io import atomic_files, write_json

EXACT_PROBE = "random_repeat"  # H1 is asked on exact token repeats
CONTROL_PROBE = "concept_control"  # planted-world control: its confirmations are false discoveries


def probe_sets(model: HookedTransformer, cfg: InductionConfig, corpus: torch.Tensor | None = None,
               templates: bool = True) -> list[tuple[Probes, Probes]]:
    """(discovery, held-out) probe sets of the model-agnostic kinds; held-out uses disjoint seeds / text.

    Repeated random tokens always; repeated text from ``corpus``; templated concept pairs of English
    when ``templates`` and the model has a tokenizer.
    """
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
    if templates and model.tokenizer is not None:
        pairs.append(tuple(concept_templates(model.tokenizer, bos, n, seed=cfg.seed * 2 + split)
                           for split, n in ((0, cfg.n_discovery), (1, cfg.n_heldout))))
    return pairs


def tih_scores(model: HookedTransformer, cfg: HeadScoreConfig, tih_threshold: float) -> pd.DataFrame:
    """Every head's token-level scores and whether it is a token induction head."""
    heads = head_scores(model, cfg)
    heads["is_tih"] = heads["induction"] >= tih_threshold
    return heads


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


@dataclass
class Study:
    """Every table of one model's induction study (see the module docstring for the files)."""

    heads: pd.DataFrame
    channels: pd.DataFrame
    head_attention: pd.DataFrame
    hypotheses: pd.DataFrame
    metrics: dict
    cards: dict

    def write(self, out: Path) -> None:
        """All six files into ``out`` together (:func:`fra.io.atomic_files`)."""
        with atomic_files(out) as tmp:
            for name in ("heads", "channels", "head_attention", "hypotheses"):
                getattr(self, name).to_csv(tmp / f"{name}.csv", index=False, float_format="%.6g")
            write_json(tmp / "channel_features.json", self.cards)
            write_json(tmp / "metrics.json", self.metrics)


def search_all(model: HookedTransformer, saes: dict[int, SAE], probes: list[tuple[Probes, Probes]], params: Params
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The channel search on every probe kind: tested channels, head attention, and exactness per layer and kind."""
    tables, attention, exactness = [], [], {}
    for disc, held in tqdm(probes, desc="probe kinds"):
        found = search(model, saes, disc, held, params.channels, params.engine)
        tables.append(found.table)
        attention.append(found.attention)
        for layer, exact in found.exactness.items():
            exactness.setdefault(f"L{layer}", {})[disc.kind] = exact
    return pd.concat(tables, ignore_index=True), pd.concat(attention, ignore_index=True), exactness


def summary(channels: pd.DataFrame, hyp: pd.DataFrame, exactness: dict, layers: list[int], params: Params) -> dict:
    """Counts, criteria, the H1/H2 answers and the decomposition's exactness: ``metrics.json``."""
    return {
        "n_channels_tested": len(channels), "n_cih": int(channels["is_cih"].sum()),
        "tested_by_probe": channels.groupby("probe").size().to_dict(),
        "cih_by_probe": channels.groupby("probe")["is_cih"].sum().astype(int).to_dict(),
        "layers_resolved": layers, "tih_threshold": params.induction.tih_threshold,
        "alpha": params.channels.alpha, "min_support": params.channels.min_support,
        "min_queries": params.channels.min_queries, "min_effect": params.channels.min_effect, **answers(hyp),
        "exactness": exactness,
        "max_residual": max(e["max_residual"] for per in exactness.values() for e in per.values()),
    }


def run(model: HookedTransformer, saes: dict[int, SAE], params: Params, probes: list[tuple[Probes, Probes]],
        corpus: torch.Tensor | None = None, sae_spec: str = "") -> Study:
    """Head scores, channel search on every probe kind, FDR, hypothesis tables and feature cards.

    Feature cards come from ``corpus`` (token ids ``[seq, pos]``), else from the first discovery probes.
    """
    heads = tih_scores(model, params.heads, params.induction.tih_threshold)
    tested, attention, exactness = search_all(model, saes, probes, params)
    channels = confirm(tested, params.channels)[CHANNELS.names]  # the table's one schema, in file order
    hyp = hypotheses(heads, channels, sorted(saes))
    metrics = summary(channels, hyp, exactness, sorted(saes), params)
    cards = channel_feature_cards(model, saes, channels, probes[0][0].tokens if corpus is None else corpus, sae_spec)
    return Study(heads, channels, attention, hyp, metrics, cards)


def channel_feature_cards(model: HookedTransformer, saes: dict[int, SAE], channels: pd.DataFrame, corpus: torch.Tensor,
                          sae_spec: str = "") -> dict:
    """Cards of every feature in ``channels`` (query and key side), per layer, from ``corpus``."""
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
