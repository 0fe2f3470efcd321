"""The method's sections: probe kinds, the thresholds each model ran with, the exactness check, the SAE-error
share and the reach of the p-values (each model's ``metrics.json``, ``channels.csv``)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fra.analysis.schema import CHANNELS
from fra.report.build.markdown import absent
from fra.report.build.provenance import Provenance, available
from fra.report.common import MODELS, PROBES, SHORT, files, fmt_range, model_metrics
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.tables import fmt, table

GROUPS = ["feature pairs", "biases", "positional", "SAE error", "dropped features"]  # kinds of term, in plot order


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


def exactness_sentence(name: str, metrics: dict) -> str:
    """The largest residual against the largest score, and the feature-pair and SAE-error shares."""
    return (f"For {name}, the largest residual over all layers and probe kinds is "
            f"{fmt(metrics['max_residual'])}, against scores of magnitude up to "
            f"{fmt(max(e['max_abs_score'] for e in exactness_entries(metrics)))}. "
            f"Feature pairs carry {fmt_range(*minmax(metrics, 'feat·feat'))} of Σ|term|, terms with the SAE error "
            f"{fmt_range(*minmax(metrics, None))}.\n")


def probe_list() -> str:
    """The probe kinds as a markdown list."""
    return "\n".join(f"- `{kind}`: {what}." for kind, what in PROBES.items())


def parameters_section(models: dict = MODELS) -> str:
    """The significance level, thresholds and resolved layers each model's search used (metrics.json), as a table."""
    rows, sources = [], []
    for model, spec in models.items():
        path = f"results/{model}/metrics.json"
        if not available(path):
            continue
        metrics, prov = read_json(path)
        c = metrics["criterion"]
        rows.append({"model": spec["title"], "α": c["alpha"], "lift threshold": c["lift_threshold"],
                     "null factor": c["lift_null_factor"], "min effect": c["min_effect"],
                     "min scale share": c["min_scale_share"],
                     "min queries": c["min_queries"], "min support": c["min_support"], "sink share": c["sink_share"],
                     "TIH threshold": metrics["tih_threshold"],
                     "resolved layers": ", ".join(str(x) for x in metrics["layers_resolved"])})
        sources.append(prov)
    if not rows:
        return absent("results/toy/metrics.json", "It records the significance level and thresholds the search used.")
    return ("Every model ran with the same rule (@tbl-parameters) and its own lift threshold: `lift_null_factor` × the "
            "`lift_null_quantile` quantile of its null lifts; a head in a resolved layer is *resolvable*.\n"
            + table(pd.DataFrame(rows).astype({"resolved layers": object}), "tbl-parameters",
                    "The criterion and the resolved layers of each model's search (columns: the parameters' names in "
                    "`params.yaml`, with spaces for underscores).", *sources))


def exactness_section(models: dict = MODELS) -> str:
    """Residual and term shares per model, layer and probe kind: sentences, a table and a stacked-bar figure."""
    out, frames, sources = [], [], []
    for model, spec, metrics, prov in model_metrics(models):
        frames.append(exactness_rows(model, metrics))
        sources.append(prov)
        out.append(exactness_sentence(spec["name"], metrics))
    if not frames:
        return absent(files("toy", "metrics.json"), "Its `exactness` entry holds the "
                                                    "measured residual and term shares.")
    ex = pd.concat(frames, ignore_index=True)
    ex = ex[[c for c in ex.columns if c not in GROUPS or ex[c].abs().sum() > 0]]
    shown = ex.drop(columns=["max score"] + (["model"] if ex.model.nunique() == 1 else []))
    shown = shown.assign(probe=shown.probe.map(lambda p: SHORT.get(p, p))).rename(
        columns={"max residual": "residual", "active features": "active", "dropped features": "dropped"})
    out.append(table(shown, "tbl-exactness", "Exactness per layer and probe kind (discovery probes): residual = "
                     "largest |sum of all terms − score| on the causal triangle; then the share of Σ|term| by kind of "
                     "term (biases: terms with b_dec, b_Q or b_K only, including feature × bias); active = mean number "
                     "of active SAE features per position.", *sources, digits=2))
    groups = [g for g in GROUPS if g in ex.columns]
    # one bar per model and probe kind, averaged over layers (the table has every layer)
    ex["row"] = [f"{models[m]['title'].split(' (')[0]}, {SHORT.get(p, p)}" for m, p in zip(ex.model, ex.probe)]
    wide = ex.groupby("row", sort=False)[groups].mean()
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(wide) + 1.3))
    wide.iloc[::-1].plot.barh(stacked=True, ax=ax, width=0.75)
    ax.set(xlabel="share of Σ|term| (mean over the resolved layers)", ylabel=None, xlim=(0, 1))
    ax.legend(ncols=len(groups), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small", handlelength=1)
    out.append(figure(fig, "fig-exactness", "Where the scores' magnitude sits: share of Σ|term| carried by feature "
                      "pairs, bias terms, positional terms and SAE-error terms, per model and probe kind (mean over "
                      "layers).", *sources))
    out.append("\n@fig-exactness and @tbl-exactness give the numbers.")
    return "\n".join(out)


def error_share_section(models: dict = MODELS) -> str:
    """Share of Σ|term| in SAE-error terms and in feature pairs, per model (metrics.json ``exactness``)."""
    rows, sources = [], []
    for model in models:
        path = f"results/{model}/metrics.json"
        if available(path):
            metrics, prov = read_json(path)
            rows.append((model, *minmax(metrics, None), *minmax(metrics, "feat·feat")))
            sources.append(prov)
    if not rows:
        return ("No results file reports the SAE-error share yet; it comes from each model's `metrics.json` "
                "(`exactness`), produced by `dvc repro toy_induction` for the toy model.")
    df = pd.DataFrame(rows, columns=["model", "error share (min)", "error share (max)", "feature-pair share (min)",
                                     "feature-pair share (max)"])
    return "\n".join([
        f"Across layers and probe kinds, the terms that involve the SAE error carry "
        f"{fmt_range(df['error share (min)'].min(), df['error share (max)'].max())} of Σ|term|, and feature pairs "
        f"{fmt_range(df['feature-pair share (min)'].min(), df['feature-pair share (max)'].max())} (@tbl-error-share).",
        table(df, "tbl-error-share", "Share of Σ|term| carried by terms that involve the SAE error, and by feature "
              "pairs, over the layers and probe kinds of each model.", *sources)])


def few_targets_sentence(name: str, channels: pd.DataFrame, metrics: dict, sources: list[Provenance]) -> str:
    """How many confirmed channels have q < 1e-16, and the fewest held-out targets a confirmed channel has
    ("" if none)."""
    cih = channels[channels.is_cih & (channels.kind != "sink")]
    if cih.empty:
        return ""
    tiny = int((cih.q_value < 1e-16).sum())
    return (f"For {name}, {tiny} of the {len(cih)} confirmed channels have $q$ < 1e-16, where the normal "
            "approximation's tail means nothing beyond 'very small'; every one is present at no fewer than "
            f"`min_queries` = {fmt(metrics.get('criterion', {}).get('min_queries'))} induction targets on both the "
            f"discovery and the held-out probes (here at least {fmt(int(cih.n_targets.min()))} held-out), and no "
            "$p$-value is below the probability that the null redraws every target. A large $n$ makes a small lift "
            "significant, which is why confirmation also needs the effect size (the model's lift threshold) with a "
            "sequence-bootstrap interval above 0, and the softmax effect. "
            f"[Sources: {'; '.join(s.line() for s in sources)}.]{{.provenance}}\n")


def few_targets_section(models: dict = MODELS) -> str:
    """``few_targets_sentence`` for every model with channels.csv and metrics.json."""
    out = []
    for model, spec in models.items():
        path, mpath = f"results/{model}/channels.csv", f"results/{model}/metrics.json"
        if available(path) and available(mpath):
            channels, prov = read_csv(path, CHANNELS.names)
            metrics, mprov = read_json(mpath)
            out.append(few_targets_sentence(spec["name"], channels, metrics, [prov, mprov]))
    return "\n".join(s for s in out if s)
