"""Token induction heads (TIH) vs conceptual induction channels (CIH) for one model: the study.

:func:`run` composes the steps (head scores, the channel search on every probe kind, FDR,
hypotheses, metrics, feature cards); :meth:`Study.write` writes, to ``results/<model>/``:

* ``heads.csv``: every head's induction / previous-token / duplicate-token scores and ``is_tih``;
* ``channels.csv``: every candidate channel tested, with discovery and held-out statistics,
  BH q-values over all of them, ``is_cih``, both features' sink / token shares and the confirmed
  channels' kind (sink, token, conceptual; ``fra.analysis.kinds``);
* ``features.csv``: the profile of every feature in ``channels.csv`` (firing rate, sink and token shares);
* ``head_attention.csv``: each resolvable head's attention to the induction target per probe kind;
* ``hypotheses.csv``: per resolvable head, TIH score, confirmed channels by probe and kind, and the best (H1/H2);
* ``controls.csv`` / ``causal.csv`` (with ``checks``): the negative controls' tested channels
  (``fra.analysis.controls``) and each confirmed channel's causal effect (``fra.analysis.causal``);
* ``channel_features.json``: a card (top-activating tokens with contexts; a Neuronpedia link for
  gpt2-small-res-jb SAEs) for every feature that appears in ``channels.csv``;
* ``metrics.json``: counts, H1/H2 answers, control counts, causal summary, the engine's exactness
  residual and term shares on the probes and, for the planted world, recall / false discoveries.

Sink channels are reported but never counted as induction channels.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sae_lens import SAE
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.analysis.cache import ProbeCache
from fra.analysis.causal import causal_effects
from fra.analysis.channels import search
from fra.analysis.controls import control_counts, no_repeat, run_controls
from fra.analysis.features import cards_from_acts, layer_acts, neuronpedia_base, token_strings
from fra.analysis.heads import bos_id, head_scores, special_ids, token_pool
from fra.analysis.kinds import classify, feature_profiles, with_shares
from fra.analysis.probes import (
    EXACT_PROBES,
    Probes,
    concept_families,
    concept_templates,
    frequent_pool,
    repeated_random,
    repeated_text,
)
from fra.analysis.schema import CHANNELS
from fra.analysis.stats import confirm, lift_threshold, null_lifts
from fra.config import HeadScoreConfig, InductionConfig, Params
from fra.io import atomic_files, write_json

CONTROL_PROBE = "concept_control"  # planted-world control: its confirmations are false discoveries


def probe_sets(model: HookedTransformer, cfg: InductionConfig, corpus: torch.Tensor | None = None,
               templates: bool = True) -> list[tuple[Probes, Probes]]:
    """(discovery, held-out) probe sets of the model-agnostic kinds; held-out uses disjoint seeds / text.

    Repeated random tokens always; with ``corpus``, repeats of its ``frequent_pool`` most frequent tokens and repeated
    text; templated concept pairs of English
    when ``templates`` and the model's tokenizer writes them as single tokens (else a notice on stderr says
    why they are skipped).
    """
    bos, pool = bos_id(model), token_pool(model).numpy()
    pairs = [tuple(
        repeated_random(pool, bos, n, cfg.repeat_min, cfg.repeat_max, seed=cfg.seed * 2 + split)
        for split, n in ((0, cfg.n_discovery), (1, cfg.n_heldout))
    )]
    if corpus is not None:  # natural text: windows from the first / second half of the corpus; its frequent tokens
        frequent = frequent_pool(corpus, pool, cfg.frequent_pool)
        pairs.append(tuple(
            repeated_random(frequent, bos, n, cfg.repeat_min, cfg.repeat_max, seed=cfg.seed * 2 + split,
                            kind="frequent_repeat") for split, n in ((0, cfg.n_discovery), (1, cfg.n_heldout))
        ))
        half = len(corpus) // 2
        pairs.append(tuple(
            repeated_text(part, bos, n, cfg.repeat_min, cfg.repeat_max, seed=cfg.seed * 2 + split)
            for split, (part, n) in enumerate(((corpus[:half], cfg.n_discovery), (corpus[half:], cfg.n_heldout)))
        ))
    if not templates:
        return pairs
    why = ("the model has no tokenizer" if model.tokenizer is None else None if concept_families(model.tokenizer)[0]
           else "no concept-pair family of English tokenizes to single tokens with the model's tokenizer")
    if why:
        print(f"fra: note: {why}, so the English concept-template probes are skipped (a planted world's concept "
              "probes come with --ground-truth)", file=sys.stderr)
    else:
        pairs.append(tuple(concept_templates(model.tokenizer, bos, n, seed=cfg.seed * 2 + split)
                           for split, n in ((0, cfg.n_discovery), (1, cfg.n_heldout))))
    return pairs


def tih_scores(model: HookedTransformer, cfg: HeadScoreConfig, tih_threshold: float) -> pd.DataFrame:
    """Every head's token-level scores and whether it is a token induction head."""
    heads = head_scores(model, cfg)
    heads["is_tih"] = heads["induction"] >= tih_threshold
    return heads


def counted(channels: pd.DataFrame) -> pd.Series:
    """The confirmed induction channels H1/H2 count: ``is_cih``, not a sink channel, not on the planted-world
    control."""
    return channels["is_cih"] & (channels["kind"] != "sink") & (channels["probe"] != CONTROL_PROBE)


def hypotheses(heads: pd.DataFrame, channels: pd.DataFrame, layers: list[int]) -> pd.DataFrame:
    """One row per resolvable head: TIH score, confirmed channels per probe kind and kind, and the best channel.

    ``n_cih_<probe>`` counts non-sink confirmed channels per probe; ``n_sink`` the sink channels;
    ``n_token`` / ``n_conceptual`` distinct non-sink (a, b) pairs of kind token / conceptual (``fra.analysis.kinds``).
    ``n_cih``, ``n_conceptual`` and the best channel leave out the planted-world control.
    """
    rows = heads[heads["layer"].isin(layers)][["layer", "head", "induction", "is_tih"]].copy()
    non_sink = channels[channels["is_cih"] & (channels["kind"] != "sink")]  # per probe, the control included
    counts = (non_sink.groupby(["layer", "head", "probe"]).size().unstack(fill_value=0)
              .reindex(columns=sorted(channels["probe"].unique()), fill_value=0))  # every probe asked, 0 where none
    counts.columns = [f"n_cih_{p}" for p in counts.columns]
    rows = rows.merge(counts.reset_index(), on=["layer", "head"], how="left")
    real = channels[counted(channels)]  # the control measures false discoveries
    sinks = channels[channels["is_cih"] & (channels["kind"] == "sink") & (channels["probe"] != CONTROL_PROBE)]
    conceptual = real["kind"] == "conceptual"
    pairs = ["layer", "head", "query_feature", "key_feature"]
    for name, sel in (("n_cih", real), ("n_sink", sinks), ("n_token", real[~conceptual].drop_duplicates(pairs)),
                      ("n_conceptual", real[conceptual].drop_duplicates(pairs))):
        rows = rows.merge(sel.groupby(["layer", "head"]).size().rename(name).reset_index(), on=["layer", "head"],
                          how="left")
    n_cols = [c for c in rows.columns if c.startswith("n_")]
    rows[n_cols] = rows[n_cols].fillna(0).astype(int)
    best = (real.sort_values(["q_value", "lift_heldout"], ascending=[True, False])
            .groupby(["layer", "head"]).head(1)[["layer", "head", "probe", "group", "query_feature", "key_feature",
                                                 "kind", "lift_heldout", "softmax_effect", "q_value"]])
    best = best.rename(columns={c: f"best_{c}" for c in best.columns if c not in ("layer", "head")})
    return rows.merge(best, on=["layer", "head"], how="left")


def answers(hyp: pd.DataFrame) -> dict:
    """H1: every TIH has a confirmed non-sink channel on exact repeats (any of :data:`EXACT_PROBES`). H2: some non-TIH
    head has one on a real probe. Each also counts the heads with a conceptual channel, and is answered per probe."""
    tih, other = hyp[hyp["is_tih"]], hyp[~hyp["is_tih"]]

    def n_with(rows: pd.DataFrame, probes: tuple[str, ...]) -> pd.Series:
        cols = [f"n_cih_{p}" for p in probes if f"n_cih_{p}" in rows]
        return rows[cols].sum(axis=1) if cols else pd.Series(0, index=rows.index)

    probes = sorted(c.removeprefix("n_cih_") for c in hyp.columns
                    if c.startswith("n_cih_") and c != f"n_cih_{CONTROL_PROBE}")
    h1 = {p: {"n_tih_with_cih": int((n_with(tih, (p,)) > 0).sum()),
              "answer": _answer(tih, n_with(tih, (p,)), every=True)} for p in probes if p in EXACT_PROBES}
    h2 = {p: {"n_non_tih_with_cih": int((n_with(other, (p,)) > 0).sum()),
              "answer": _answer(other, n_with(other, (p,)), every=False)} for p in probes}
    exact = n_with(tih, EXACT_PROBES)
    return {
        "H1": {"n_tih": len(tih), "n_tih_with_cih": int((exact > 0).sum()),
               "n_tih_with_conceptual": int((tih["n_conceptual"] > 0).sum()),
               "answer": _answer(tih, exact, every=True), "by_probe": h1},
        "H2": {"n_non_tih": len(other), "n_non_tih_with_cih": int((other["n_cih"] > 0).sum()),
               "n_non_tih_with_conceptual": int((other["n_conceptual"] > 0).sum()),
               "answer": _answer(other, other["n_cih"], every=False), "by_probe": h2},
    }


def _answer(heads: pd.DataFrame, n: pd.Series, every: bool) -> str:
    """yes / no: every head (H1) or some head (H2) of ``heads`` has ``n`` > 0; untestable without such heads."""
    if heads.empty:
        return "untestable (no TIH in the resolved layers)" if every else "untestable (every resolved head is a TIH)"
    return "yes" if ((n > 0).all() if every else (n > 0).any()) else "no"


@dataclass
class Study:
    """Every table of one model's induction study (see the module docstring for the files)."""

    heads: pd.DataFrame
    channels: pd.DataFrame
    features: pd.DataFrame
    head_attention: pd.DataFrame
    hypotheses: pd.DataFrame
    metrics: dict
    cards: dict
    controls: pd.DataFrame | None = None
    causal: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None  # planted world: the criterion's curve (``fra.world.truth``)

    def write(self, out: Path) -> None:
        """All files into ``out`` together (:func:`fra.io.atomic_files`)."""
        with atomic_files(out) as tmp:
            for name in ("heads", "channels", "features", "head_attention", "hypotheses", "controls", "causal",
                         "calibration"):
                if getattr(self, name) is not None:
                    getattr(self, name).to_csv(tmp / f"{name}.csv", index=False, float_format="%.6g")
            write_json(tmp / "channel_features.json", self.cards)
            write_json(tmp / "metrics.json", self.metrics)


def search_all(model: HookedTransformer, saes: dict[int, SAE], probes: list[tuple[Probes, Probes]], params: Params,
               cache: ProbeCache) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The channel search on every probe kind: tested channels, head attention, and exactness per layer and kind."""
    tables, attention, exactness = [], [], {}
    for disc, held in tqdm(probes, desc="probe kinds"):
        found = search(model, saes, disc, held, params.channels, params.engine, cache=cache, parallel=params.parallel)
        tables.append(found.table)
        attention.append(found.attention)
        for layer, exact in found.exactness.items():
            exactness.setdefault(f"L{layer}", {})[disc.kind] = exact
    return pd.concat(tables, ignore_index=True), pd.concat(attention, ignore_index=True), exactness


def summary(channels: pd.DataFrame, hyp: pd.DataFrame, exactness: dict, layers: list[int], params: Params,
            threshold: float) -> dict:
    """Counts, the criterion with this model's lift threshold, the H1/H2 answers and the decomposition's exactness:
    ``metrics.json``."""
    c = params.channels
    confirmed = channels[channels["is_cih"]]
    return {
        "n_channels_tested": len(channels), "n_tests": int(channels["test"].nunique()),
        "n_cih": int(counted(channels).sum()),
        "n_cih_tests": int(channels[counted(channels)]["test"].nunique()),
        "n_confirmed_any": len(confirmed),  # sinks and the control probe included, as the negative controls count
        "n_sink": int((confirmed["kind"] == "sink").sum()),
        "n_control_confirmed": int((confirmed["probe"] == CONTROL_PROBE).sum()),
        "tested_by_probe": channels.groupby("probe").size().to_dict(),
        "cih_by_probe": channels[counted(channels)].groupby("probe").size().to_dict(),
        "kinds": confirmed.groupby(["probe", "kind"]).size().unstack(fill_value=0).to_dict(orient="index"),
        "layers_resolved": layers, "tih_threshold": params.induction.tih_threshold,
        "criterion": {"lift_threshold": threshold, "lift_null_quantile": c.lift_null_quantile,
                      "lift_null_factor": c.lift_null_factor, "null_lift_quantile_value": _null_quantile(channels, c),
                      "alpha": c.alpha, "min_effect": c.min_effect, "min_scale_share": c.min_scale_share,
                      "max_informative_share": c.max_informative_share, "min_queries": c.min_queries,
                      "min_support": c.min_support, "token_share": c.token_share, "sink_share": c.sink_share},
        **answers(hyp),
        "exactness": exactness,
        "max_residual": max(e["max_residual"] for per in exactness.values() for e in per.values()),
    }


def _null_quantile(channels: pd.DataFrame, cfg) -> float | None:
    null = pd.Series(null_lifts(channels)).dropna()
    return float(np.quantile(null, cfg.lift_null_quantile)) if len(null) else None


def causal_summary(causal: pd.DataFrame) -> dict:
    """How many counted channels move the output (BH over the channels), and the median attention and log-prob drops."""
    return {"n_channels": len(causal), "n_moves_output": int(causal["moves_output"].sum()),
            "median_attention_drop": float(causal["attention_drop"].median()) if len(causal) else None,
            "median_logprob_drop": float(causal["logprob_drop"].median()) if len(causal) else None,
            "max_attention_mismatch": float((causal["attention_drop"] - causal["softmax_effect"]).abs().max())
            if len(causal) else None}


def run(model: HookedTransformer, saes: dict[int, SAE], params: Params, probes: list[tuple[Probes, Probes]],
        corpus: torch.Tensor | None = None, sae_spec: str = "", checks: bool = True) -> Study:
    """Head scores, channel search on every probe kind, FDR, channel kinds, hypothesis tables and feature cards;
    with ``checks`` also the negative controls and the causal test.

    Feature profiles and cards come from ``corpus`` (token ids ``[seq, pos]``), else from the first discovery probes.
    """
    heads = tih_scores(model, params.heads, params.induction.tih_threshold)
    cache = ProbeCache(model, saes, params.channels.batch_size)  # one model pass per probe batch for everything below
    tested, attention, exactness = search_all(model, saes, probes, params, cache)
    threshold = lift_threshold(null_lifts(tested), params.channels)
    corpus = probes[0][0].tokens if corpus is None else corpus
    profiles, cards, l0 = feature_study(model, saes, tested, corpus, sae_spec)
    confirmed = confirm(with_shares(tested, profiles, params.channels), params.channels, threshold)
    # the table's one schema, in file order (the no-repeat columns stay empty without checks)
    channels = classify(confirmed, params.channels).reindex(columns=CHANNELS.names)
    hyp = hypotheses(heads, channels, sorted(saes))
    metrics = summary(channels, hyp, exactness, sorted(saes), params, threshold)
    metrics["sae_l0_on_corpus"] = {f"L{layer}": round(v, 3) for layer, v in l0.items()}
    study = Study(heads, channels, profiles, attention, hyp, metrics, cards)
    if checks and params.controls.kinds:
        study.controls = run_controls(model, saes, probes, params, l0, threshold, cache)
        metrics["controls"] = control_counts(study.controls, params.controls.kinds)
    if checks:
        study.causal = causal_effects(model, saes, channels[counted(channels)], probes, params.channels, params.engine,
                                      cache)
        metrics["causal"] = causal_summary(study.causal)
        keys = ["probe", "group", "layer", "head", "query_feature", "key_feature"]
        controls = no_repeat(model, saes, channels[counted(channels)], probes, params, cache).set_index(keys)
        at = pd.MultiIndex.from_frame(channels[keys])
        for col in ("no_repeat_effect", "no_repeat_lift"):
            channels[col] = controls[col].reindex(at).to_numpy()
    return study


def feature_study(model: HookedTransformer, saes: dict[int, SAE], channels: pd.DataFrame, corpus: torch.Tensor,
                  sae_spec: str = "") -> tuple[pd.DataFrame, dict, dict[int, float]]:
    """Profiles (``fra.analysis.kinds``) and cards of every feature in ``channels``, per layer, from ``corpus``,
    and each SAE's mean number of active features there (its L0)."""
    profiles, cards = [], {}
    strs = token_strings(model, corpus)
    feats = {}
    for layer in saes:
        rows = channels[channels["layer"] == layer]
        feats[layer] = sorted(set(rows["query_feature"].astype(int)) | set(rows["key_feature"].astype(int)))
    acts, l0 = layer_acts(model, saes, corpus, features=feats)  # one model pass per batch for every layer
    for layer, sae in sorted(saes.items()):
        f = acts[layer]
        profiles.append(feature_profiles(f, corpus, feats[layer], special_ids(model)).assign(layer=layer))
        base = neuronpedia_base(sae, sae_spec)
        cards[f"L{layer}"] = {str(a): {"top": top, "neuronpedia": f"{base}{a}" if base else None}
                              for a, top in cards_from_acts(f, strs, feats[layer]).items()}
    table = pd.concat(profiles, ignore_index=True)
    return table[["layer"] + [c for c in table.columns if c != "layer"]], cards, l0
