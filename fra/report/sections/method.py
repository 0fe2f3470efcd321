"""The method appendix: the probe kinds, the criterion each model ran with, the exactness of the decomposition, the
SAE-error share and the reach of the p-values, as tables, a figure and the values the text names (each model's
``metrics.json`` and ``channels.csv``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fra.analysis.schema import CHANNELS
from fra.report.build.markdown import absent
from fra.report.build.provenance import Provenance, available
from fra.report.common import MODELS, PROBES, SHORT, default_models, files, fmt_range, model_metrics
from fra.report.data import read_csv
from fra.report.figures import figure
from fra.report.tables import count, table
from fra.report.values import Values

GROUPS = ["feature pairs", "biases", "positional", "SAE error", "dropped features"]  # kinds of term, in plot order
TINY_Q = 1e-16  # below it the normal approximation's tail means nothing beyond "very small"


def exactness_entries(metrics: dict) -> list[dict]:
    """Every exactness entry of ``metrics``, over layers and probe kinds."""
    return [e for per in metrics["exactness"].values() for e in per.values()]


def minmax(metrics: dict, term: str | None) -> tuple[float, float]:
    """Smallest and largest share of ``term`` (None: every term with the SAE error) over layers and probes."""
    vals = [e["shares"].get(term, 0.0) if term else e["share_with_error"] for e in exactness_entries(metrics)]
    return min(vals), max(vals)


def term_group(name: str) -> str:
    """A term of the decomposition (query component · key component) by what it involves."""
    if name == "feat·feat":
        return "feature pairs"
    if "error" in name:
        return "SAE error"
    if "pos" in name:
        return "positional"
    if "dropped" in name:
        return "dropped features"
    return "biases"


def exactness_rows(model: str, metrics: dict) -> pd.DataFrame:
    """One row per layer and probe kind: residual, largest score, share of Σ|term| per ``GROUPS`` entry."""
    rows = []
    for layer, per_probe in metrics["exactness"].items():
        for probe, e in per_probe.items():
            grouped = {g: 0.0 for g in GROUPS}
            for term, share in e["shares"].items():
                grouped[term_group(term)] += share
            rows.append({"model": model, "layer": layer, "probe": probe,
                         "max residual": e["max_residual"], "max score": e["max_abs_score"],
                         **grouped, "active features": e["mean_active_features"]})
    return pd.DataFrame(rows)


def probe_table() -> str:
    """The probe kinds and what their queries are (``PROBES``), as tbl-probes."""
    df = pd.DataFrame({"probe kind": [f"`{k}`" for k in PROBES], "queries": list(PROBES.values())})
    return table(df, "tbl-probes", "The probe kinds: what the queries of each repeat.",
                 note="the probes of `fra/analysis/probes.py` and `fra/world/probes.py`",
                 stand=True)  # the appendix's first table: floated, it would rise above the appendix's title


def parameters_table(models: dict = MODELS) -> str:
    """The significance level, thresholds and resolved layers each model's search used (metrics.json), as
    tbl-parameters."""
    rows, sources = [], []
    for _, spec, metrics, prov in model_metrics(models):
        c = metrics["criterion"]
        rows.append({"model": spec["title"], "α": c["alpha"], "lift threshold": c["lift_threshold"],
                     "null factor": c["lift_null_factor"], "min effect": c["min_effect"],
                     "min scale share": c["min_scale_share"],
                     "min queries": c["min_queries"], "min support": c["min_support"], "sink share": c["sink_share"],
                     "TIH threshold": metrics["tih_threshold"],
                     "resolved layers": ", ".join(str(x) for x in metrics["layers_resolved"])})
        sources.append(prov)
    if not rows:
        return absent(files("toy", "metrics.json"), "It records the significance level and thresholds the search "
                                                    "used.")
    return table(pd.DataFrame(rows).astype({"resolved layers": object}), "tbl-parameters",
                 "The criterion and the resolved layers of each model's search (columns: the parameters' names in "
                 "`params.yaml`, with spaces for underscores).", *sources)


def exactness_frame(models: dict = MODELS) -> tuple[pd.DataFrame, list[Provenance]]:
    """``exactness_rows`` of every model with a metrics.json (empty if none), and their sources."""
    found = model_metrics(models)
    if not found:
        return pd.DataFrame(), []
    ex = pd.concat([exactness_rows(model, metrics) for model, _, metrics, _ in found], ignore_index=True)
    return ex[[c for c in ex.columns if c not in GROUPS or ex[c].abs().sum() > 0]], [p for *_, p in found]


def _no_exactness() -> str:
    return absent(files("toy", "metrics.json"), "Its `exactness` entry holds the measured residual and term shares.")


def exactness_table(models: dict = MODELS) -> str:
    """Residual and term shares per model, layer and probe kind, as tbl-exactness."""
    ex, sources = exactness_frame(models)
    if ex.empty:
        return _no_exactness()
    shown = ex.drop(columns=["max score"] + (["model"] if ex.model.nunique() == 1 else []))
    shown = shown.assign(probe=shown.probe.map(lambda p: SHORT.get(p, p))).rename(
        columns={"max residual": "residual", "active features": "active", "dropped features": "dropped"})
    return table(shown, "tbl-exactness", "Exactness per layer and probe kind (discovery probes): residual = largest "
                 "|sum of all terms − score| on the causal triangle; then the share of Σ|term| by kind of term "
                 "(biases: terms with b_dec, b_Q or b_K only, including feature × bias); active = mean number of "
                 "active SAE features per position.", *sources, digits=2)


def exactness_figure(models: dict = MODELS) -> str:
    """Share of Σ|term| by kind of term, one stacked bar per model and probe kind (mean over layers), as
    fig-exactness."""
    ex, sources = exactness_frame(models)
    if ex.empty:
        return _no_exactness()
    groups = [g for g in GROUPS if g in ex.columns]
    ex["row"] = [f"{models[m]['title'].split(' (')[0]}, {SHORT.get(p, p)}" for m, p in zip(ex.model, ex.probe)]
    wide = ex.groupby("row", sort=False)[groups].mean()
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(wide) + 1.3))
    wide.iloc[::-1].plot.barh(stacked=True, ax=ax, width=0.75)
    ax.set(xlabel="share of Σ|term| (mean over the resolved layers)", ylabel=None, xlim=(0, 1))
    ax.legend(ncols=len(groups), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small", handlelength=1)
    return figure(fig, "fig-exactness", "Where the scores' magnitude sits: share of Σ|term| carried by feature "
                  "pairs, bias terms, positional terms and SAE-error terms, per model and probe kind (mean over "
                  "layers).", *sources)


def error_share_table(models: dict = MODELS) -> str:
    """Share of Σ|term| in SAE-error terms and in feature pairs, per model (metrics.json ``exactness``), as
    tbl-error-share."""
    found = model_metrics(models)
    if not found:
        return _no_exactness()
    df = pd.DataFrame([(spec["title"], *minmax(m, None), *minmax(m, "feat·feat")) for _, spec, m, _ in found],
                      columns=["model", "error share (min)", "error share (max)", "feature-pair share (min)",
                               "feature-pair share (max)"])
    return table(df, "tbl-error-share", "Share of Σ|term| carried by terms that involve the SAE error, and by "
                 "feature pairs, over the layers and probe kinds of each model.", *[p for *_, p in found])


def method_values(models: dict = MODELS) -> Values:
    """The numbers of the method appendix, over every model with results: the largest residual and score
    (``residual``, ``max_score``), the ranges of the feature-pair and SAE-error shares (``pairs``, ``error``: "x"
    or "between x and y"), and the reach of the p-values over the confirmed non-sink channels (``tiny``: how many
    have q < 1e-16, ``confirmed``, ``min_queries``, ``min_targets``: the fewest held-out targets of one)."""
    v = Values("method", [f"results/{m}/{n}" for m in default_models(models) for n in ("metrics.json", "channels.csv")])
    found = model_metrics(models)
    if found:
        mprovs = [p for *_, p in found]
        v.add("residual", max(m["max_residual"] for _, _, m, _ in found), *mprovs)
        v.add("max_score", max(e["max_abs_score"] for _, _, m, _ in found for e in exactness_entries(m)), *mprovs)
        for name, term in (("pairs", "feat·feat"), ("error", None)):
            ranges = [minmax(m, term) for _, _, m, _ in found]
            v.add(name, fmt_range(min(r[0] for r in ranges), max(r[1] for r in ranges)), *mprovs)
    cih, sources, min_queries = [], [], []
    for model, _, metrics, prov in found:
        if available(f"results/{model}/channels.csv"):
            channels, cprov = read_csv(f"results/{model}/channels.csv", CHANNELS.names)
            cih.append(channels[channels.is_cih & (channels.kind != "sink")])
            sources += [cprov, prov]
            min_queries.append(metrics["criterion"]["min_queries"])
    if cih:
        cih = pd.concat(cih)
        v.add("tiny", int((cih.q_value < TINY_Q).sum()), *sources)
        v.add("confirmed", count(len(cih), "confirmed channel"), *sources)
        v.add("min_queries", fmt_range(min(min_queries), max(min_queries)), *sources)
        v.add("min_targets", int(cih.n_targets.min()) if len(cih) else "–", *sources)
    return v
