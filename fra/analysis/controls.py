"""Negative controls: the channel search where no induction channel should be confirmed.

* ``random_sae``: per layer a TopK SAE on random unit directions with the real SAE's ``d_sae``, hook
  and L0 (its mean active features on the corpus, rounded);
* ``shuffled_keys``: the real SAEs with key-side features permuted across positions within each
  sequence (:meth:`fra.engine.FRA.with_shuffled_keys`).

Each control runs the same :func:`fra.analysis.channels.search` on the same probes and the same
:func:`fra.analysis.stats.confirm` with the real model's lift threshold (Benjamini–Hochberg over the control's own
tests); its confirmed channels are false positives of the method.

A per-channel control, :func:`no_repeat`: each confirmed channel of an exact-repeat probe evaluated again on the
same held-out sequences with the earlier occurrence of every query's token replaced (:func:`without_repeats`), so
the would-be target no longer follows a copy of the query's token (other repeats may remain where a probe draws from
a small pool): an induction channel loses its effect at the would-be target, a channel that prefers some kind of key
regardless of the repeat keeps it.
"""

from __future__ import annotations

import pandas as pd
from sae_lens import SAE
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.analysis.cache import ProbeCache
from fra.analysis.channels import evaluate, search
from fra.analysis.probes import EXACT_PROBES, Probes
from fra.analysis.stats import confirm
from fra.config import Params
from fra.saes.loading import sae_hook_name
from fra.saes.random import random_unit_sae


def without_repeats(probes: Probes) -> Probes:
    """``probes`` with the token before every target (the earlier occurrence of the query's token) replaced by the
    token at the same position of the next sequence, or of the one after where that equals the query's token: the
    same kind of tokens, no repeat. Queries and targets keep their positions (the would-be targets)."""
    tokens = probes.tokens.clone()
    n = len(tokens)
    for s, q, t in zip(probes.seq.tolist(), probes.query.tolist(), probes.target.tolist()):
        for shift in range(1, n):
            other = probes.tokens[(s + shift) % n, t - 1]
            if other != probes.tokens[s, q]:
                tokens[s, t - 1] = other
                break
    return Probes(probes.kind, tokens, probes.seq, probes.query, probes.target, probes.group)


def no_repeat(model: HookedTransformer, saes: dict[int, SAE], channels: pd.DataFrame,
              probes: list[tuple[Probes, Probes]], params: Params, cache: ProbeCache) -> pd.DataFrame:
    """For each channel of ``channels`` on an exact-repeat probe, its held-out softmax effect and lift with the repeats
    removed (:func:`without_repeats`); one row per channel (key columns, ``no_repeat_effect``, ``no_repeat_lift``)."""
    keys = ["probe", "group", "layer", "head", "query_feature", "key_feature"]
    held = {h.kind: without_repeats(h) for _, h in probes if h.kind in EXACT_PROBES}
    parts = []
    for (kind, layer), rows in channels[channels["probe"].isin(list(held))].groupby(["probe", "layer"]):
        got = evaluate(saes[layer], layer, held[kind], rows, params.engine, cache)
        parts.append(got.assign(probe=kind)[keys + ["softmax_effect", "lift"]])
    cols = {"softmax_effect": "no_repeat_effect", "lift": "no_repeat_lift"}
    return (pd.concat(parts, ignore_index=True).rename(columns=cols) if parts
            else pd.DataFrame(columns=keys + list(cols.values())))


def control_saes(saes: dict[int, SAE], l0: dict[int, float], seed: int) -> dict[int, SAE]:
    """The ``random_sae`` control's SAE for every layer of ``saes``."""
    return {layer: random_unit_sae(sae.cfg.d_in, sae_hook_name(sae), sae.cfg.d_sae, max(1, round(l0[layer])),
                                   seed=seed + layer) for layer, sae in saes.items()}


def run_controls(model: HookedTransformer, saes: dict[int, SAE], probes: list[tuple[Probes, Probes]], params: Params,
                 l0: dict[int, float], threshold: float, cache: ProbeCache | None = None) -> pd.DataFrame:
    """Every control's tested channels with q-values and ``is_cih``, one ``control`` column first (``cache``:
    the study's attention inputs, :func:`fra.analysis.channels.search`), judged with the real model's lift
    ``threshold``."""
    cache = cache or ProbeCache(model, saes, params.channels.batch_size)
    tables = []
    for kind in tqdm(params.controls.kinds, desc="negative controls"):  # at least one (the caller checks)
        used = control_saes(saes, l0, params.controls.seed) if kind == "random_sae" else saes
        shuffle = params.controls.seed if kind == "shuffled_keys" else None
        found = [search(model, used, d, h, params.channels, params.engine, shuffle_seed=shuffle, cache=cache,
                        parallel=params.parallel).table
                 for d, h in probes]
        table = confirm(pd.concat(found, ignore_index=True), params.channels, threshold)
        table.insert(0, "control", kind)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def control_counts(controls: pd.DataFrame, kinds: tuple[str, ...]) -> dict:
    """Per control: channels tested and confirmed, in all and by probe kind (``metrics.json``)."""
    out = {}
    for kind in kinds:
        rows = controls[controls["control"] == kind]
        out[kind] = {"n_tested": len(rows), "n_confirmed": int(rows["is_cih"].sum()),
                     "confirmed_by_probe": rows.groupby("probe")["is_cih"].sum().astype(int).to_dict()}
    return out
