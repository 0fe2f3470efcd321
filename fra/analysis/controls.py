"""Negative controls: the channel search where no induction channel should be confirmed.

* ``random_sae``: per layer a TopK SAE on random unit directions with the real SAE's ``d_sae``, hook
  and L0 (its mean active features on the corpus, rounded);
* ``shuffled_keys``: the real SAEs with key-side features permuted across positions within each
  sequence (:meth:`fra.engine.FRA.with_shuffled_keys`).

Each control runs the same :func:`fra.analysis.channels.search` on the same probes and the same
frozen :func:`fra.analysis.channels.confirm` (Benjamini–Hochberg over the control's own tests);
its confirmed channels are false positives of the method.
"""

from __future__ import annotations

import pandas as pd
from sae_lens import SAE
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from fra.analysis.cache import ProbeCache
from fra.analysis.channels import search
from fra.analysis.probes import Probes
from fra.analysis.stats import confirm
from fra.config import Params
from fra.saes.loading import sae_hook_name
from fra.saes.random import random_unit_sae


def control_saes(saes: dict[int, SAE], l0: dict[int, float], seed: int) -> dict[int, SAE]:
    """The ``random_sae`` control's SAE for every layer of ``saes``."""
    return {layer: random_unit_sae(sae.cfg.d_in, sae_hook_name(sae), sae.cfg.d_sae, max(1, round(l0[layer])),
                                   seed=seed + layer) for layer, sae in saes.items()}


def run_controls(model: HookedTransformer, saes: dict[int, SAE], probes: list[tuple[Probes, Probes]], params: Params,
                 l0: dict[int, float], cache: ProbeCache | None = None) -> pd.DataFrame:
    """Every control's tested channels with q-values and ``is_cih``, one ``control`` column first (``cache``:
    the study's attention inputs, :func:`fra.analysis.channels.search`)."""
    cache = cache or ProbeCache(model, saes, params.channels.batch_size)
    tables = []
    for kind in tqdm(params.controls.kinds, desc="negative controls"):  # at least one (the caller checks)
        used = control_saes(saes, l0, params.controls.seed) if kind == "random_sae" else saes
        shuffle = params.controls.seed if kind == "shuffled_keys" else None
        found = [search(model, used, d, h, params.channels, params.engine, shuffle_seed=shuffle, cache=cache,
                        parallel=params.parallel).table
                 for d, h in probes]
        table = confirm(pd.concat(found, ignore_index=True), params.channels)
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
