"""Validation across models: the negative controls beside the real search, and the causal test of every
confirmed channel (each model's ``metrics.json`` ``controls`` / ``causal`` and ``causal.csv``); one function per
table and figure, and ``checks_values`` for every number the text shows."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fra.report.build.markdown import absent
from fra.report.build.provenance import available
from fra.report.common import MODELS, default_models, model_metrics
from fra.report.data import read_csv
from fra.report.figures import figure
from fra.report.tables import fmt, in_text, table
from fra.report.values import Values

# The models the checks run on, in the order the validation discusses them.
CHECKED = {"toy": MODELS["toy"]["title"], "compiled": "Compiled model", **{m: s["title"] for m, s in MODELS.items()}}
CONTROLS = {"random_sae": "random SAE", "shuffled_keys": "shuffled keys"}
CAUSAL_COLUMNS = ["probe", "layer", "head", "attention_drop", "logprob_drop", "moves_output"]


def control_totals(models: dict = CHECKED) -> dict[str, dict]:
    """Per negative control (by its name in ``CONTROLS``): channels ``tested`` and ``confirmed`` over the models,
    the ``idle`` models (titles) where it tested nothing, and the number of ``models`` it ran on."""
    out: dict[str, dict] = {}
    for _, title, m, _ in model_metrics(models):
        for kind, c in m.get("controls", {}).items():
            t = out.setdefault(CONTROLS.get(kind, kind), {"tested": 0, "confirmed": 0, "idle": [], "models": 0})
            t["tested"], t["confirmed"], t["models"] = (t["tested"] + c["n_tested"], t["confirmed"] + c["n_confirmed"],
                                                        t["models"] + 1)
            if c["n_tested"] == 0:
                t["idle"].append(in_text(title))
    return out


def controls_table(models: dict = CHECKED) -> str:
    """tbl-controls: channels tested and confirmed by the real search and by each negative control, per model."""
    rows, sources = [], []
    for _, title, m, prov in model_metrics(models):
        if "controls" not in m:
            continue
        row = {"model": title, "real SAE": f"{fmt(m['n_confirmed_any'])} of {fmt(m['n_channels_tested'])}"}
        for kind, c in m["controls"].items():
            row[CONTROLS.get(kind, kind)] = f"{fmt(c['n_confirmed'])} of {fmt(c['n_tested'])}"
        rows.append(row)
        sources.append(prov)
    if not rows:
        return absent("results/toy/metrics.json", "Its `controls` entry counts the channels each control confirmed.")
    return table(pd.DataFrame(rows).fillna("–"), "tbl-controls", "Channels confirmed of those tested, by the real "
                 "search and by the negative controls on the same probes (every confirmation counted, sink channels "
                 "and the planted-world control probe included).", *sources)


def causal_data(models: dict = CHECKED) -> list[tuple[str, str, dict, pd.DataFrame, list]]:
    """(model, title, metrics' ``causal`` entry, causal.csv, [metrics' and causal.csv's provenance]) per model
    tested."""
    out = []
    for model, title, m, mprov in model_metrics(models):
        path = f"results/{model}/causal.csv"
        if "causal" in m and available(path):
            causal, prov = read_csv(path, CAUSAL_COLUMNS)
            out.append((model, title, m["causal"], causal, [mprov, prov]))
    return out


def causal_table(models: dict = CHECKED) -> str:
    """tbl-causal: per model, channels whose removal moves the output, median drops, forward-pass agreement."""
    data = causal_data(models)
    if not data:
        return absent("results/toy/causal.csv", "It holds the causal test of every confirmed channel.")
    rows = [{"model": title, "channels": c["n_channels"], "move the output": c["n_moves_output"],
             "median attention drop": c["median_attention_drop"],
             "median log-prob drop (nats)": c["median_logprob_drop"],
             "max |attention drop − softmax effect|": c["max_attention_mismatch"]} for _, title, c, _, _ in data]
    return table(pd.DataFrame(rows), "tbl-causal", "Causal test of the confirmed (non-sink) channels per model.",
                 *(p[0] for *_, p in data), digits=2)


def causal_figure(models: dict = CHECKED) -> str:
    """fig-causal: one panel per model, one point per confirmed channel (attention drop against log-prob drop),
    filled where the channel moves the output."""
    data = [d for d in causal_data(models) if len(d[3])]
    if not data:
        return ""
    fig, axes = plt.subplots(1, len(data), figsize=(7.5, 2.8), sharey=True, squeeze=False, layout="constrained")
    for ax, (_, title, _, causal, _) in zip(axes[0], data):
        moves = causal.moves_output.astype(bool)
        size = 10 if len(causal) > 100 else 24
        ax.scatter(causal.attention_drop[moves], causal.logprob_drop[moves], s=size, color="C0", alpha=0.7,
                   label="moves the output")
        ax.scatter(causal.attention_drop[~moves], causal.logprob_drop[~moves], s=size, facecolors="none",
                   edgecolors="C1", alpha=0.8, label="does not")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_title(f"{title} ({len(causal)})", fontsize="small")
    axes[0][0].set_ylabel("drop in log p(induction token)")
    fig.supxlabel("drop in attention to the target", fontsize="medium")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside upper center", ncol=2, fontsize="small")
    return figure(fig, "fig-causal", "Causal test, one panel per model (confirmed channels in brackets), one point "
                  "per confirmed channel: drop in its head's attention to the target against the drop in the "
                  "induction token's log-probability (symmetric log scale, linear below 0.01 nats); filled where the "
                  "drop in log-probability is significant.", *(p[1] for *_, p in data), width="100%")


def checks_values(models: dict = CHECKED) -> Values:
    """The controls' confirmations and the causal test's counts, in total and per model (``causal_<model>``:
    "moving of tested", with ``-`` in the model's name as ``_``: ``causal_gpt2_small``)."""
    v = Values("checks", [f"results/{m}/{n}" for m in default_models(models) for n in ("metrics.json", "causal.csv")])
    metrics = model_metrics(models)
    sources = [prov for *_, m, prov in metrics if "controls" in m]
    if sources:
        totals = control_totals(models)
        v.add("controls_confirmed", sum(t["confirmed"] for t in totals.values()), *sources)
        v.add("controls_tested", sum(t["tested"] for t in totals.values()), *sources)
        idle = sorted({model for t in totals.values() for model in t["idle"]})
        v.add("controls_idle", ", ".join(idle) if idle else "none", *sources)  # models where a control tested nothing
    data = causal_data(models)
    if data:
        provs = [p for *_, ps in data for p in ps]
        v.add("causal_mismatch", max(c["max_attention_mismatch"] for _, _, c, _, _ in data), *provs, digits=2)
        for model, _, c, _, ps in data:
            v.add(f"causal_{model.replace('-', '_')}", f"{c['n_moves_output']} of {c['n_channels']}", *ps)
    return v
