"""Validation across models: the negative controls beside the real search, and the causal test of every
confirmed channel (each model's ``metrics.json`` ``controls`` / ``causal`` and ``causal.csv``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from fra.report.build.markdown import absent
from fra.report.build.provenance import available
from fra.report.common import MODELS, model_metrics
from fra.report.data import read_csv
from fra.report.figures import figure
from fra.report.tables import fmt, in_text, table

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


def controls_section(models: dict = CHECKED) -> str:
    """Channels tested and confirmed by the real search and by each negative control, one row per model."""
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
    df = pd.DataFrame(rows).fillna("–")
    totals = control_totals(models)
    confirmed, tested = (sum(t[key] for t in totals.values()) for key in ("confirmed", "tested"))
    idle = {name: t["idle"] for name, t in totals.items() if t["idle"]}
    where = "; ".join(f"the {k} on " + " or ".join(v) for k, v in idle.items())
    empty = (f" No candidate of {where} reached `min_support`, so those controls tested nothing: a random "
             "dictionary's features do not co-occur with the induction targets often enough to become candidates."
             if idle else "")
    return "\n".join([
        f"Over all models the negative controls confirm {fmt(confirmed)} of the {fmt(tested)} channels they test "
        f"(@tbl-controls).{empty}",
        table(df, "tbl-controls", "Channels confirmed of those tested, by the real search and by the negative controls "
              "on the same probes (every confirmation counted, sink channels and the planted-world control probe "
              "included).", *sources)])


def causal_section(models: dict = CHECKED) -> str:
    """Per model: channels whose removal lowers the induction token's log-probability, median drops; one figure."""
    rows, frames, metric_sources, causal_sources = [], [], [], []
    for model, title, m, mprov in model_metrics(models):
        path = f"results/{model}/causal.csv"
        if "causal" not in m or not available(path):
            continue
        causal, prov = read_csv(path, CAUSAL_COLUMNS)
        c = m["causal"]
        rows.append({"model": title, "channels": c["n_channels"], "move the output": c["n_moves_output"],
                     "median attention drop": c["median_attention_drop"],
                     "median log-prob drop (nats)": c["median_logprob_drop"],
                     "max |attention drop − softmax effect|": c["max_attention_mismatch"]})
        frames.append(causal.assign(model=title))
        metric_sources.append(mprov)
        causal_sources.append(prov)
    if not rows:
        return absent("results/toy/causal.csv", "It holds the causal test of every confirmed channel.")
    df = pd.DataFrame(rows)
    each = "; ".join(f"{r['move the output']} of {r['channels']} on "
                     f"{'' if in_text(r['model']) == r['model'] else 'the '}{in_text(r['model'])}" for r in rows)
    out = ["Removed from its head's scores in a real forward pass (`hook_attn_scores`), a confirmed channel lowers the "
           "log-probability of the induction token significantly (one-sided z-test over its queries, "
           f"Benjamini–Hochberg over channels at α) in {each} (@tbl-causal). The attention drop measured in the "
           "forward pass equals the softmax effect computed from the decomposition to at most "
           f"{fmt(df['max |attention drop − softmax effect|'].max(), 2)}.",
           table(df, "tbl-causal", "Causal test of the confirmed (non-sink) channels per model.", *metric_sources,
                 digits=2)]
    data = pd.concat(frames, ignore_index=True)
    if len(data):
        fig, ax = plt.subplots(figsize=(6.5, 3.0))
        sns.scatterplot(data=data, x="attention_drop", y="logprob_drop", hue="model", style="model", s=18,
                        alpha=0.8, ax=ax)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set(xlabel="drop in attention to the target", ylabel="drop in log p(induction token)")
        ax.legend(title=None, fontsize="small")
        out += ["\n@fig-causal shows every channel.",
                figure(fig, "fig-causal", "Causal test, one point per confirmed channel: drop in its head's attention "
                       "to the target against the drop in the induction token's log-probability (symmetric log scale, "
                       "linear below 0.01 nats).", *causal_sources)]
    return "\n".join(out)
