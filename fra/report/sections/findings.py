"""The numbers only the main text states (paper/index.qmd shows them as inline values; it takes the others from the
appendices' parts), read from the results files through ``fra.report.data``, so each is provenance-checked and
recorded in provenance.json with its file."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fra.analysis.schema import CHANNELS
from fra.report.build.provenance import Provenance, available
from fra.report.common import (
    CONCEPTS,
    CONTROL,
    EXACT,
    EXACT_PROBES,
    HYP_COLUMNS,
    SHORT,
    fmt_range,
    fmt_span,
    head_name,
    model_metrics,
)
from fra.report.data import read_csv, read_json
from fra.report.sections.checks import CHECKED, control_totals
from fra.report.sections.results import head_attention
from fra.report.tables import count, fmt
from fra.report.values import Values

TEXT = "text_repeat"  # the other exact-repeat probe of language models
NEAR = 2.0  # a near miss: within this factor below the model's lift threshold (a near pass: within it above)


def _json(path: str) -> dict | None:
    return read_json(path)[0] if available(path) else None


def _csv(path: str, columns: list[str]) -> pd.DataFrame | None:
    return read_csv(path, columns)[0] if available(path) else None


@dataclass
class Model:
    """What the findings say about one language model, read from its results folder."""

    model: str
    metrics: dict
    hyp: pd.DataFrame
    channels: pd.DataFrame
    attention: pd.DataFrame | None = None  # head × probe kind, mean attention to the target (results.head_attention)
    tih: list[str] = field(default_factory=list)
    attention_source: Provenance | None = None

    @classmethod
    def read(cls, model: str) -> "Model | None":
        base = f"results/{model}"
        metrics, hyp = _json(f"{base}/metrics.json"), _csv(f"{base}/hypotheses.csv", HYP_COLUMNS)
        channels = _csv(f"{base}/channels.csv", CHANNELS.names)
        if metrics is None or hyp is None or channels is None:
            return None
        wide, source = None, None
        if available(f"{base}/head_attention.csv") and available(f"{base}/heads.csv"):
            wide, _, source = head_attention(model)
        tih = [head_name(r.layer, r.head) for r in hyp[hyp.is_tih].itertuples()]
        return cls(model, metrics, hyp, channels, wide, tih, source)

    def confirmed(self, probe: str) -> pd.DataFrame:
        c = self.channels
        return c[c.is_cih & (c.kind != "sink") & (c.probe == probe)]

    def tih_candidates(self, probe: str) -> pd.DataFrame:
        c = self.channels
        names = [head_name(layer, h) for layer, h in zip(c.layer, c["head"])]
        return c[(c.probe == probe) & pd.Series([n in self.tih for n in names], index=c.index)]


def _add_controls(v: Values) -> None:
    """Per negative control: channels confirmed and tested over the models, and on how many it tested nothing."""
    names = {"random SAE": "random", "shuffled keys": "shuffled"}
    sources = [p for *_, p in model_metrics(CHECKED)]
    for name, t in control_totals().items():
        key = names.get(name, name.replace(" ", "_"))
        v.add(f"{key}_confirmed", t["confirmed"], *sources)
        v.add(f"{key}_tested", t["tested"], *sources)
        if key == "random":  # the control that can leave a model without a candidate
            v.add("random_idle", len(t["idle"]), *sources)
            v.add("random_models", t["models"], *sources)


def _add_model(v: Values, m: Model) -> None:
    prov = [read_json(f"results/{m.model}/metrics.json")[1],
            read_csv(f"results/{m.model}/hypotheses.csv", HYP_COLUMNS)[1]]
    h1, h2 = m.metrics["H1"], m.metrics["H2"]
    v.add("layers", len(m.metrics["layers_resolved"]), *prov)
    v.add("heads", len(m.hyp), *prov)
    v.add("tih", h1["n_tih"], *prov)
    v.add("h1_n", h1["n_tih_with_cih"], *prov)
    v.add("h1", h1["answer"], *prov)
    for probe, a in h1.get("by_probe", {}).items():
        v.add(f"h1_{SHORT.get(probe, probe)}", a["n_tih_with_cih"], *prov)
    v.add("non_tih", h2["n_non_tih"], *prov)
    v.add("h2_n", h2["n_non_tih_with_cih"], *prov)
    v.add("h2", h2["answer"], *prov)
    v.add("conceptual_heads", count(int((m.hyp.n_conceptual > 0).sum()), "head"), *prov)
    v.add("lift_quantile", f"{fmt(100 * m.metrics['criterion']['lift_null_quantile'])}th", *prov)
    _add_discussion(v, m, prov)


def _add_discussion(v: Values, m: Model, prov: list) -> None:
    """What would change the answer: the probe, concept attention, the threshold's margins, the matched null."""
    cands = m.tih_candidates(EXACT)
    v.add("random_candidates", count(len(cands), "candidate channel"), *prov)
    v.add("random_best_ci", cands.channel_induction_heldout.max() if len(cands) else float("nan"), *prov, digits=2)
    v.add("random_best_lift", cands.lift_heldout.max() if len(cands) else float("nan"), *prov, digits=2)
    layers = [per for per in m.metrics["exactness"].values() if EXACT in per and TEXT in per]
    if layers:  # the SAE-error share of Σ|term| on random and on text repeats, layer by layer
        rand, text = ([per[p]["share_with_error"] for per in layers] for p in (EXACT, TEXT))
        v.add("error_random", sum(rand) / len(rand), *prov, digits=2)
        v.add("error_text", sum(text) / len(text), *prov, digits=2)
        v.add("error_higher", f"{sum(a > b for a, b in zip(rand, text))} of {len(rand)}", *prov)
    concept = next((c for c in CONCEPTS if m.attention is not None and c in m.attention), None)
    if concept is not None:
        att = m.attention.loc[[h for h in m.tih if h in m.attention.index], concept]
        v.add("concept_attention", fmt_range(att.min(), att.max(), 2), m.attention_source)
        v.add("concept_tested", int((m.channels.probe == concept).sum()), *prov)
        v.add("concept_confirmed", len(m.confirmed(concept)), *prov)
    c, crit = m.channels, m.metrics["criterion"]
    other = ((c.q_value <= crit["alpha"]) & (c.softmax_effect >= crit["min_effect"])
             & (c.n_targets >= crit["min_queries"]) & (c.lift_low > 0) & (c.scale_share >= crit["min_scale_share"])
             & (c.q_matched.isna() | (c.q_matched <= crit["alpha"])))
    lift = crit["lift_threshold"]
    below = int((other & (c.lift_heldout < lift) & (c.lift_heldout >= lift / NEAR)).sum())
    above = int((c.is_cih & (c.kind != "sink") & (c.probe != CONTROL) & (c.lift_heldout < lift * NEAR)).sum())
    v.add("near", NEAR, note="fra/report/sections/findings.py NEAR")
    v.add("near_below", count(below, "candidate"), *prov)
    v.add("near_above", count(above, "confirmed channel"), *prov)
    counted = c.is_cih & (c.kind != "sink") & (c.probe != CONTROL)
    fails = counted & (c.informative_share > 0) & (c.p_matched > crit["alpha"])
    kept = c[counted & ~fails][["layer", "head", "probe"]].drop_duplicates()
    tih = m.hyp[m.hyp.is_tih][["layer", "head"]]
    exact = kept[kept.probe.isin(EXACT_PROBES)].merge(tih)[["layer", "head"]].drop_duplicates()
    other_heads = kept.merge(m.hyp[~m.hyp.is_tih][["layer", "head"]])[["layer", "head"]].drop_duplicates()
    v.add("matched_fail", int(fails.sum()), *prov)
    v.add("matched_counted", int(counted.sum()), *prov)
    v.add("matched_h1", len(exact), *prov)
    v.add("matched_h2", len(other_heads), *prov)


def _add_power(v: Values, model: str) -> None:
    path = f"results/{model}/power/power.json"
    if not available(path):
        return
    power, prov = read_json(path)
    tih = [c for c in power["curves"] if c["role"] == "tih"]
    best = max(tih, key=lambda c: (c["recall"], -c["strength"]))
    v.add("power_target", power["target_recall"], prov)
    v.add("power_best", best["recall"], prov, digits=2)
    v.add("power_best_ci", fmt_span(*best["recall_ci95"], 2), prov)
    v.add("power_best_strength", best["strength"], prov)
    v.add("power_best_probe", SHORT.get(best["probe"], best["probe"]), prov)
    v.add("power_strengths", fmt_span(min(c["strength"] for c in tih), max(c["strength"] for c in tih)), prov)
    v.add("power_false", power["false_discoveries"], prov)
    v.add("power_controls", power["n_control"], prov)


def _add_sensitivity(v: Values, model: str) -> None:
    path = f"results/{model}/sensitivity/summary.json"
    if available(path):
        summary, prov = read_json(path)
        sets = {k: s for k, s in summary.items() if "H1_answer" in s}  # one entry per SAE set
        v.add("sae_sets", len(sets), prov)
        v.add("sae_h1_yes", sum(s["H1_answer"] == "yes" for s in sets.values()), prov)
        v.add("sae_h2_yes", sum(s["H2_answer"] == "yes" for s in sets.values()), prov)
        v.add("sae_conceptual", f"{min(s['kinds'].get('conceptual', 0) for s in sets.values())}–"
                                f"{max(s['kinds'].get('conceptual', 0) for s in sets.values())}", prov)
    path = f"results/{model}/thresholds/region.json"
    if available(path):
        region, prov = read_json(path)
        factor = region["lift_null_factor"]
        same = factor["same_answers_at"]
        v.add("factor_same", fmt_span(min(same), max(same)) if same else "none", prov)
        v.add("factor_grid", fmt_span(min(factor["values"]), max(factor["values"])), prov)


def _add_concept_heads(v: Values, model: str) -> None:
    """The top concept induction head by Feucht et al.'s score, and how many of the top heads are TIH."""
    path = f"results/{model}/compare/concept_heads.csv"
    if available(path):
        heads, prov = read_csv(path, ["layer", "head", "concept_score", "is_tih"])
        top = heads.sort_values("concept_score", ascending=False).iloc[0]
        v.add("concept_top", f"{head_name(top.layer, top['head'])} ({fmt(top.concept_score, 2)})", prov)
        v.add("concept_heads_tih", int(heads.is_tih.sum()), prov)


NAMES = (  # every value findings() gives; "–" where its results are absent
    "random_confirmed", "random_tested", "random_idle", "random_models", "shuffled_confirmed", "shuffled_tested",
    "layers", "heads", "tih", "h1_n", "h1", "h1_frequent", "h1_random", "h1_text", "non_tih", "h2_n", "h2",
    "conceptual_heads", "lift_quantile", "random_candidates", "random_best_ci", "random_best_lift", "error_random",
    "error_text", "error_higher", "concept_attention", "concept_tested", "concept_confirmed", "near", "near_below",
    "near_above", "matched_fail", "matched_counted", "matched_h1", "matched_h2", "power_target", "power_best",
    "power_best_ci", "power_best_strength", "power_best_probe", "power_strengths", "power_false", "power_controls",
    "sae_sets", "sae_h1_yes", "sae_h2_yes", "sae_conceptual", "factor_same", "factor_grid", "concept_top",
    "concept_heads_tih",
)


def findings(model: str = "smollm2") -> Values:
    """The numbers only the main text states (``NAMES``; "–" for those whose results are absent): the controls over
    all models, ``model``'s H1 and H2 per probe, the power in its token induction heads, the SAE grid's and the
    threshold sweep's answers, the concept heads, and the discussion's margins. The appendices' parts give the rest."""
    v = Values("findings")
    _add_controls(v)
    m = Model.read(model)
    if m is not None:
        _add_model(v, m)
    _add_power(v, model)
    _add_sensitivity(v, model)
    _add_concept_heads(v, model)
    read = ["metrics.json", "hypotheses.csv", "channels.csv", "power/power.json", "sensitivity/summary.json",
            "thresholds/region.json", "compare/concept_heads.csv"]
    return v.fill(NAMES, [f"results/{model}/{name}" for name in read])
