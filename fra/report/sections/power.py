"""Power in a language model: channels planted into its heads at known strengths (``fra power``:
``results/<model>/power/power.csv`` and ``power.json``), the recall curve, the false discoveries among control plants,
where the model's own channels fall on that scale, and what the decomposition carries at the TIH targets."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fra.report.build.markdown import absent
from fra.report.build.provenance import available
from fra.report.common import MODELS, head_name
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.tables import count, fmt, table

POWER_COLUMNS = ["probe", "role", "layer", "head", "pair_kind", "strength", "confirmed", "softmax_effect"]
ROLES = {"tih": "token induction head", "strongest": "strongest head (no TIH)", "same_layer": "non-TIH, same layer",
         "other_layer": "non-TIH, other layer"}
SHARES = ["pair_share_at_target", "error_share_at_target", "other_share_at_target"]


def recall_figure(curves: pd.DataFrame) -> plt.Figure:
    """Recall against strength, one panel per probe, one line per head role, Wilson intervals as bars."""
    probes = list(dict.fromkeys(curves.probe))
    fig, axes = plt.subplots(1, len(probes), figsize=(3.4 * len(probes), 2.8), sharey=True, squeeze=False)
    for ax, probe in zip(axes[0], probes):
        for i, (role, rows) in enumerate(curves[curves.probe == probe].groupby("role", sort=False)):
            low = rows.recall - rows.recall_ci95.map(lambda c: c[0])
            high = rows.recall_ci95.map(lambda c: c[1]) - rows.recall
            ax.errorbar(rows.strength * (1 + 0.06 * (i - 1)), rows.recall, yerr=[low, high], marker="o", ms=3,
                        capsize=2, lw=1, label=ROLES.get(role, role))
        ax.axhline(0.8, color="0.5", lw=0.7, ls=":")
        ax.set(xscale="log", xlabel="planted strength (share of the head's score scale)", title=probe,
               ylim=(-0.03, 1.03))
        ax.title.set_fontsize("small")
    axes[0][0].set_ylabel("recall")
    axes[0][-1].legend(fontsize="x-small", loc="lower right")
    return fig


def power_section(model: str, name: str) -> str:
    """The planted-channel power study of ``model`` (absent note without its results)."""
    path, jpath = f"results/{model}/power/power.csv", f"results/{model}/power/power.json"
    if not (available(path) and available(jpath)):
        return absent([path, jpath], "They hold channels planted into the model's heads and the search's recall.")
    plants, prov = read_csv(path, POWER_COLUMNS)
    power, jprov = read_json(jpath)
    curves = pd.DataFrame(power["curves"])
    heads = ", ".join(f"{head_name(layer, h)} ({ROLES.get(role, role)})" for role, layer, h in power["heads"])
    n_ind = int((plants.pair_kind == "induction").sum() / plants.strength.nunique())
    best = curves.groupby(["probe", "role"], sort=False).recall.max()
    weakest = []
    for key, w in power["weakest_found"].items():
        probe, role = key.split("/")
        weakest.append(f"`{probe}` in the {ROLES.get(role, role)}: "
                       + (f"from strength {fmt(w['strength'])} (its candidate plants move a median "
                          f"{fmt(w['attention_moved'])} of attention onto the target)" if w
                          else f"never (at most {fmt(best[(probe, role)], 2)})"))
    real, near = power["real_channels"], power["near_misses"]
    real_scale = (f"the {count(real['n'], 'confirmed channel')} of {name} have scale shares of median "
                  f"{fmt(real['scale_share']['50%'])} (softmax effect {fmt(real['softmax_effect']['50%'])})"
                  if real["n"] else f"{name} has no confirmed channel")
    near_scale = (f"the {count(near['n'], 'significant unconfirmed candidate')} a median "
                  f"{fmt(near['scale_share']['50%'])}" if near["n"] else "no unconfirmed candidate is significant")
    strengths = ", ".join(fmt(s) for s in sorted(plants.strength.unique()))
    out = [f"Does the search find a real channel inside {name}? Known channels were planted into {heads}: "
           "a term β·(f_a(i)/s_i)·(f_b(j)/s_j) (s: the LayerNorm scale, as in every feature-pair term) added to the "
           "head's scores in the forward pass (a hook on `hook_attn_scores`) and to the resolved scores, so the "
           "search, its nulls and the softmax effect all see it (the planted decomposition sums to the hooked "
           "forward pass's scores within rounding: `tests/engine/test_plant.py`). Each induction pair (query "
           "feature a, key feature b whose key follows a token with a active on the corpus, and which the unplanted "
           "search did not already test in that head) is planted at "
           f"strengths {strengths}, in the head's own units: the plant's mean |value| at the induction targets over "
           f"the head's score RMS there ({count(n_ind, 'plant')} per strength over the probes and heads); control "
           "pairs of the same strength, whose key feature does not follow the query feature, measure false "
           f"discoveries. Recall reaches {fmt(power['target_recall'])} for {'; '.join(weakest)} (@fig-{model}-power). "
           f"{fmt(power['false_discoveries'])} of the {fmt(power['n_control'])} control plants were confirmed. On "
           f"the same scale {real_scale}, and {near_scale}.",
           figure(recall_figure(curves), f"fig-{model}-power", f"Recall of channels planted into {name}'s heads "
                  "against their strength, per probe and head (95% Wilson intervals; dotted: 0.8).", prov, jprov),
           table(curves.assign(recall_ci95=curves.recall_ci95.map(lambda c: f"{fmt(c[0])}–{fmt(c[1])}"))
                 [["probe", "role", "strength", "n_induction", "recall", "recall_ci95", "n_control",
                   "false_discoveries", "attention_moved"]]
                 .rename(columns={"recall_ci95": "95% CI", "n_induction": "plants", "n_control": "controls",
                                  "false_discoveries": "false disc.", "attention_moved": "attention moved"}),
                 f"tbl-{model}-power", f"The planted channels of {name}: recall per probe, head and strength, false "
                 "discoveries among the control plants, and the median attention an induction plant moves onto the "
                 "target.", prov, jprov)]
    return "\n".join(out)


def decomposition_section(model: str, name: str) -> str:
    """For each TIH of ``model``: the share of its |score terms| at the induction targets carried by feature pairs,
    by error terms and by bias and the rest (``head_attention.csv``), per exact-repeat probe."""
    path, hpath = f"results/{model}/head_attention.csv", f"results/{model}/heads.csv"
    if not (available(path) and available(hpath)):
        return absent([path, hpath])
    attn, prov = read_csv(path, ["probe", "layer", "head", *SHARES])
    heads, hprov = read_csv(hpath, ["layer", "head", "is_tih"])
    tih = heads[heads.is_tih][["layer", "head"]]
    rows = attn.merge(tih, on=["layer", "head"]).dropna(subset=SHARES)
    rows = rows[rows.probe.str.endswith("_repeat")]
    if rows.empty:
        return ""
    wide = rows.assign(head=[head_name(a, b) for a, b in zip(rows.layer, rows["head"])])[["head", "probe", *SHARES]]
    pair = rows.pair_share_at_target
    return "\n".join([
        f"What can the decomposition see in {name}'s token induction heads? At the induction targets of exact "
        f"repeats feature pairs carry {fmt(pair.min(), 2)}–{fmt(pair.max(), 2)} of Σ|term| of the head's score; the "
        "rest sits in terms with the SAE error and in bias and positional terms, which no feature-pair channel can "
        f"hold (@tbl-{model}-decomposition).",
        table(wide.rename(columns={"pair_share_at_target": "feature pairs", "error_share_at_target": "error",
                                   "other_share_at_target": "bias and rest"}),
              f"tbl-{model}-decomposition", f"Share of Σ|term| of each token induction head's score at the induction "
              f"targets of {name}, per exact-repeat probe.", prov, hprov, digits=2)])


def power_sections(models: dict = MODELS) -> str:
    """Both parts for every language model of ``models`` (the toy world's power is its planted ground truth)."""
    return "\n\n".join(part(model, spec["name"]) for model, spec in models.items() if model != "toy"
                         for part in (power_section, decomposition_section))
