"""The findings in words: the abstract, the discussion of what would change the answer, the conclusion.

Every sentence is generated from the results files (read through ``fra.report.data``, so each is
provenance-checked and listed in provenance.json) and says the opposite when the numbers do; the
same numbers appear, with their provenance lines, in the sections they come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fra.analysis.schema import CHANNELS
from fra.report.build.provenance import available
from fra.report.common import (
    ATTN_COLUMNS,
    CONCEPTS,
    CONTROL,
    EXACT,
    EXACT_PROBES,
    HYP_COLUMNS,
    MODELS,
    SHORT,
    TARGET_FALSE,
    TARGET_RECALL,
    fmt_range,
    head_name,
)
from fra.report.data import read_csv, read_json
from fra.report.sections.checks import control_totals
from fra.report.tables import count, fmt

TEXT = "text_repeat"  # the other exact-repeat probe of language models
LANGUAGE_MODELS = [m for m in MODELS if m != "toy"]
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
    attention: pd.DataFrame | None = None  # head × probe kind, mean attention to the target
    tih: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, model: str) -> "Model | None":
        base = f"results/{model}"
        metrics, hyp = _json(f"{base}/metrics.json"), _csv(f"{base}/hypotheses.csv", HYP_COLUMNS)
        channels = _csv(f"{base}/channels.csv", CHANNELS.names)
        if metrics is None or hyp is None or channels is None:
            return None
        attn, wide = _csv(f"{base}/head_attention.csv", ATTN_COLUMNS), None
        if attn is not None:
            mean = attn.groupby(["probe", "layer", "head"], as_index=False).attention_to_target.mean()
            mean["name"] = [head_name(layer, h) for layer, h in zip(mean.layer, mean["head"])]
            wide = mean.pivot_table(index="name", columns="probe", values="attention_to_target")
        tih = [head_name(r.layer, r.head) for r in hyp[hyp.is_tih].itertuples()]
        return cls(model, metrics, hyp, channels, wide, tih)

    @property
    def name(self) -> str:
        return MODELS[self.model]["name"]

    def tih_with_channel(self, probe: str) -> int:
        """TIH with a confirmed non-sink channel on ``probe`` (``hypotheses.csv`` ``n_cih_<probe>``; absent: none)."""
        col = f"n_cih_{probe}"
        return int((self.hyp.loc[self.hyp.is_tih, col] > 0).sum()) if col in self.hyp else 0

    def confirmed(self, probe: str) -> pd.DataFrame:
        c = self.channels
        return c[c.is_cih & (c.kind != "sink") & (c.probe == probe)]

    def tih_candidates(self, probe: str) -> pd.DataFrame:
        c = self.channels
        names = [head_name(layer, h) for layer, h in zip(c.layer, c["head"])]
        return c[(c.probe == probe) & pd.Series([n in self.tih for n in names], index=c.index)]

    def error_share(self, probe: str) -> list[float]:
        """Share of Σ|term| in SAE-error terms on ``probe``, per resolved layer (metrics.json ``exactness``)."""
        return [per[probe]["share_with_error"] for per in self.metrics["exactness"].values() if probe in per]


def language_models() -> list[Model]:
    return [m for m in (Model.read(name) for name in LANGUAGE_MODELS) if m is not None]


# --- the abstract -----------------------------------------------------------------------------------------

def exactness_clause() -> str:
    residuals = [m["max_residual"] for m in (_json(f"results/{x}/metrics.json") for x in MODELS) if m]
    if not residuals:
        return ""
    return (f"; on every model here the terms sum to the model's own scores to within {fmt(max(residuals), 2)} "
            "(floating-point rounding)")


def validation_sentence() -> str:
    """Planted recall and false discoveries (default seed, fresh seeds), the compiled model, the controls."""
    out = []
    toy, seeds = _json("results/toy/metrics.json"), _json("results/toy/seeds.json")
    if toy and "planted" in toy:
        p = toy["planted"]
        out.append("On a small transformer trained on a world with planted concepts, the search finds a channel for "
                   f"{len(p['conceptual_found'])} of {p['n_conceptual']} planted concept classes with "
                   f"{len(p['token_only_found'])} false discoveries among "
                   f"{p['n_token_only_tested']} token-only controls")
        fresh = (seeds or {}).get("validation") or {}
        if fresh.get("recall") is not None:
            lo, hi = fresh["recall_ci95"]
            out[-1] += (f" (on fresh seeds nobody tuned on: recall {fmt(fresh['recall'], 2)}, 95% interval "
                        f"{fmt(lo, 2)}–{fmt(hi, 2)}, and {fresh['false_discoveries']} of {fresh['token_only_tested']} "
                        "false)")
    compiled = _json("results/compiled/metrics.json")
    if compiled and "verdict" in compiled:
        out.append("it classifies the heads of a hand-compiled model " + ("as built" if compiled["verdict"]["ok"]
                                                                          else "NOT as built"))
    controls = control_totals()
    if controls:
        out.append("the negative controls confirm " + " and ".join(
            f"{fmt(t['confirmed'])} of the {count(t['tested'], 'channel')} tested with the {name}"
            + (f" (which tests nothing on {fmt(len(t['idle']))} of the {fmt(t['models'])} models: no candidate reaches "
               "`min_support`)" if t["idle"] else "")
            for name, t in controls.items()))
    text = "; ".join(out)
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def model_sentence(m: Model) -> str:
    """A language model's H1 (per exact-repeat probe), H2, channel kinds and causal test."""
    h1, h2 = m.metrics["H1"], m.metrics["H2"]
    layers = m.metrics["layers_resolved"]
    per_probe = ", ".join(f"{fmt(a['n_tih_with_cih'])} on {SHORT.get(p, p)}" for p, a in h1.get("by_probe", {}).items())
    s = (f"On {m.name} (every head of {count(len(layers), 'layer')}, {count(h1['n_tih'], 'token induction head')}), "
         f"{fmt(h1['n_tih_with_cih'])} of the {fmt(h1['n_tih'])} token induction heads have a confirmed channel on "
         f"exact repeats (H1: {h1['answer']}{'; ' + per_probe if per_probe else ''})")
    s += (f"; {fmt(h2['n_non_tih_with_cih'])} of {fmt(h2['n_non_tih'])} other heads have one (H2: {h2['answer']}). ")
    power = _json(f"results/{m.model}/power/power.json")
    if power:
        curves = [c for c in power["curves"] if c["role"] in ("tih", "strongest")]
        found = {k.split("/")[0]: w for k, w in power["weakest_found"].items() if k.endswith(("/tih", "/strongest"))}
        reach = "; ".join(
            f"on {SHORT.get(p, p)} repeats from strength {fmt(w['strength'])} of the head's score scale" if w
            else f"on {SHORT.get(p, p)} repeats at no strength of the grid (at most "
                 f"{fmt(max(c['recall'] for c in curves if c['probe'] == p), 2)})"
            for p, w in found.items())
        if reach:
            s += (f"Channels planted into its strongest induction head reach recall {fmt(power['target_recall'])} "
                  f"{reach}. ")
    conceptual = int((m.hyp.n_conceptual > 0).sum())
    s += (f"{count(conceptual, 'head')} {'has' if conceptual == 1 else 'have'} a conceptual channel" if conceptual
          else "No head has a conceptual channel: every confirmed channel is a token channel")
    causal = m.metrics.get("causal")
    if causal and causal["n_channels"]:
        s += (f", and removing a confirmed channel measurably lowers the induction token's probability for "
              f"{fmt(causal['n_moves_output'])} of the {count(causal['n_channels'], 'confirmed channel')}")
    return s + "."


def cot_sentence(model: str = "smollm2") -> str:
    m = _json(f"results/{model}/cot/metrics.json")
    if not m:
        return ""
    heads, receivers = m["resolved_heads"], sum(m["resolved_are_receivers"])
    return (f"In a feature-resolved version of Thought Anchors on {m['n_traces']} arithmetic word problems, "
            f"{fmt(m['receivers_tih'])} of the {len(m['receivers'])} receiver heads are token induction heads, and "
            f"{fmt(m['n_confirmed'])} of {count(m['n_candidates'], 'candidate channel')} of the "
            f"{count(len(heads), 'best-ranked head')} in layers with an SAE ({fmt(receivers)} of them a receiver head) "
            "pass the same criterion.")


def abstract() -> str:
    """The abstract: the method in two sentences, then the findings as the results files state them."""
    method = ("Attention patterns say which token attends to which, not why. Feature-Resolved Attention (FRA) "
              "writes every pre-softmax attention score of a head as a sum over pairs of sparse-autoencoder (SAE) "
              "features of the attention input at the query and the key position, plus explicit bias, positional and "
              f"SAE-error terms{exactness_clause()}. We use it to ask whether induction is carried by single "
              "feature-pair channels (*conceptual induction channels*), with a key-permutation null and a matched "
              "null, an effect-size threshold each model takes from its own null (its factor chosen on planted "
              "worlds and judged on seeds nobody tuned on), sequence-bootstrap intervals, held-out probes, "
              "false-discovery control, two negative controls, channels planted into the language model as a "
              "positive control, and a causal test in the model's forward pass.")
    found = [validation_sentence(), *(model_sentence(m) for m in language_models()), cot_sentence()]
    closing = ("Every number in this document is read from the versioned results of a DVC pipeline that runs offline "
               "from raw data, and every figure and table names the stage, file, md5 and code it came from.")
    return "\n\n".join([method, " ".join(f for f in found if f), closing]) + "\n"


# --- the discussion -----------------------------------------------------------------------------------------

def probe_dependence(m: Model) -> str:
    """Whether H1 depends on the exact-repeat probe, with the random-token candidates and the SAE-error shares."""
    if TEXT not in set(m.channels.probe) or not m.tih:
        return ""
    n = len(m.tih)
    r, t = m.tih_with_channel(EXACT), m.tih_with_channel(TEXT)
    head = f"**H1 and the probe ({m.name}).** "
    if r == t:
        return head + (f"H1's answer does not depend on which exact repeats ask it: {fmt(r)} of {fmt(n)} token "
                       "induction heads have a confirmed channel on repeated random tokens, "
                       "and as many on repeated text.")
    out = [head, f"On repeats of random tokens {fmt(r)} of the {fmt(n)} token induction heads have a confirmed "
                 f"channel; on repeats of ordinary text {fmt(t)} do, so asked on one probe alone H1 would be answered "
                 f"'{'yes' if r == n else 'no'}' and '{'yes' if t == n else 'no'}'. "]
    cands = m.tih_candidates(EXACT)
    if len(cands):
        out.append(f"On random tokens the token induction heads have {count(len(cands), 'candidate channel')}; the "
                   "best reaches a held-out channel induction score of "
                   f"{fmt(cands.channel_induction_heldout.max(), 2)} and the best lift is "
                   f"{fmt(cands.lift_heldout.max(), 2)}. ")
    rand, text = m.error_share(EXACT), m.error_share(TEXT)
    higher = sum(a > b for a, b in zip(rand, text))
    out.append(f"Terms with the SAE error carry more of Σ|term| on random repeats than on text repeats in {higher} of "
               f"{len(rand)} resolved layers (mean {fmt(sum(rand) / len(rand), 2)} against "
               f"{fmt(sum(text) / len(text), 2)}). ")
    if t > r and 2 * higher > len(rand):
        out.append("That fits one explanation we have not tested: the SAEs were trained on text, random-token "
                   "sequences lie far from that distribution, and a head can induce through directions such an SAE "
                   "does not represent. ")
    elif t > r:
        out.append("The SAE's fit does not explain the difference. ")
    out.append("H1 counts a channel on any exact-repeat probe; the answers per probe are in the results section.")
    return "".join(out)


def concept_attention(m: Model) -> str:
    """TIH attention to the target on concept probes against the channels confirmed there."""
    concept = next((c for c in CONCEPTS if m.attention is not None and c in m.attention), None)
    if concept is None or not m.tih:
        return ""
    att = m.attention.loc[[h for h in m.tih if h in m.attention.index], concept]
    conf = m.confirmed(concept)
    tested = int((m.channels.probe == concept).sum())
    s = (f"**Concepts ({m.name}).** On templated concept pairs (`{concept}`) the token induction heads "
         f"attend to the induction target with mean attention {fmt_range(att.min(), att.max(), 2)}, where the target "
         "is another token of the query's concept. ")
    if conf.empty:
        s += (f"Yet none of the {fmt(tested)} candidate channels on these probes is confirmed: that attention is "
              "spread over many feature pairs each below the effect size, carried by the bias and error terms, or by "
              "pairs rarer than `min_support`. A channel-level account of it needs other SAEs or a search over sets of "
              "channels.")
    else:
        s += (f"{fmt(len(conf))} of the {fmt(tested)} candidate channels on these probes are confirmed, in "
              f"{count(len({(layer, h) for layer, h in zip(conf.layer, conf['head'])}), 'head')}.")
    return s


def near_misses(m: Model) -> str:
    """Candidates that meet every condition but the lift threshold and lie within a factor ``NEAR`` below it, and
    confirmed channels within that factor above it."""
    c, crit = m.channels, m.metrics["criterion"]
    other = ((c.q_value <= crit["alpha"]) & (c.softmax_effect >= crit["min_effect"])
             & (c.n_targets >= crit["min_queries"]) & (c.lift_low > 0) & (c.scale_share >= crit["min_scale_share"])
             & (c.q_matched.isna() | (c.q_matched <= crit["alpha"])))
    lift = crit["lift_threshold"]
    below = int((other & (c.lift_heldout < lift) & (c.lift_heldout >= lift / NEAR)).sum())
    above = int((c.is_cih & (c.kind != "sink") & (c.lift_heldout < lift * NEAR)).sum())
    return (f"**The threshold ({m.name}).** Its own null sets {m.name}'s lift threshold at {fmt(lift)} "
            f"({fmt(crit['lift_null_factor'])} × the {fmt(100 * crit['lift_null_quantile'])}th percentile of its null "
            f"lifts). {count(below, 'candidate')} {'meets' if below == 1 else 'meet'} every other condition and miss"
            f"{'es' if below == 1 else ''} it by less than a factor {fmt(NEAR)}; {count(above, 'confirmed channel')} "
            f"clear{'s' if above == 1 else ''} it by less than that factor. Halving or doubling "
            "the factor would move at most those.")


def matched_null(m: Model) -> str:
    """The counted channels that do not beat the matched null where it can tell (p_matched > alpha, informative share
    > 0), which the rule exempts, and H1/H2 if every channel had to beat it."""
    c, crit = m.channels, m.metrics["criterion"]
    counted = c.is_cih & (c.kind != "sink") & (c.probe != CONTROL)
    fails = counted & (c.informative_share > 0) & (c.p_matched > crit["alpha"])
    if not counted.any():
        return ""
    kept = c[counted & ~fails]
    tih = m.hyp[m.hyp.is_tih][["layer", "head"]]
    with_kept = kept[["layer", "head", "probe"]].drop_duplicates()
    exact = with_kept[with_kept.probe.isin(EXACT_PROBES)].merge(tih)[["layer", "head"]].drop_duplicates()
    other = with_kept.merge(m.hyp[~m.hyp.is_tih][["layer", "head"]])[["layer", "head"]].drop_duplicates()
    failing = c[fails]
    named = ", ".join(sorted({f"{head_name(r.layer, r.head)} {int(r.query_feature)}→{int(r.key_feature)}"
                              for r in failing.itertuples()}))
    drop = failing.no_repeat_effect / failing.softmax_effect
    left = (f" Without the repeat these keep a median {round(100 * drop.median()) or 0}% of their effect at the "
            "would-be target (the no-repeat control)." if drop.notna().any() else "")
    n = int(fails.sum())
    return (f"**The matched null ({m.name}).** {count(n, 'counted channel')} of {fmt(int(counted.sum()))} "
            f"{'does' if n == 1 else 'do'} not beat the matched null where it can tell (its p-value there is above "
            "α): the rule "
            "asks it only of channels whose key feature marks one token and more than `max_informative_share` of "
            f"whose mass it can judge{': ' + named if named else ''}.{left} Asked of every channel, H1 would count "
            f"{fmt(len(exact))} of {fmt(len(tih))} token induction heads and H2 {fmt(len(other))} of "
            f"{fmt(int((~m.hyp.is_tih).sum()))} other heads.")


def discussion() -> str:
    """The generated part of the discussion: for each language model with results, what would change the answer."""
    parts = [p for m in language_models()
             for p in (probe_dependence(m), concept_attention(m), near_misses(m), matched_null(m)) if p]
    return "\n\n".join(parts) + "\n" if parts else ""


def planted_met() -> bool | None:
    """Whether the default seed met both planted-world targets (None without its results)."""
    toy = _json("results/toy/metrics.json")
    if not toy or "planted" not in toy:
        return None
    p = toy["planted"]
    return p["recall_conceptual"] >= TARGET_RECALL and p["false_discovery_token_only"] <= TARGET_FALSE


def conclusion() -> str:
    """What the method showed where the answer is known, what it found in language models, and what the answer
    depends on."""
    out = [validation_sentence()]
    models = language_models()
    for m in models:
        conceptual = int((m.hyp.n_conceptual > 0).sum())
        kinds = "conceptual channels in " + count(conceptual, "head") if conceptual else "token channels only"
        others = m.metrics["H2"]["n_non_tih_with_cih"]
        out.append(f"In {m.name} it finds {kinds}: {fmt(m.metrics['H1']['n_tih_with_cih'])} of "
                   f"{fmt(m.metrics['H1']['n_tih'])} token induction heads resolve into a confirmed channel on "
                   f"exact repeats, and {count(others, 'other head')} {'does' if others == 1 else 'do'} on "
                   "some probe.")
    closing = ("Feature-Resolved Attention makes a head's attention auditable term by term, and the channel test turns "
               "that audit into a claim that can fail")
    met = planted_met()
    closing += ("" if met is None else ": on planted ground truth it met its recall and false-discovery targets" if met
                else ": on planted ground truth it missed its own recall or false-discovery target")
    depends = [m.name for m in models if TEXT in set(m.channels.probe) and m.tih
               and m.tih_with_channel(EXACT) != m.tih_with_channel(TEXT)]
    if depends:
        closing += (f". Whether induction in {', '.join(depends)} lives in single feature pairs depends on the probe "
                    "that asks (random tokens or text), and may depend on the SAE that resolves it")
    closing += "; the pipeline makes each a parameter to change and rerun."
    return " ".join(o for o in out if o) + "\n\n" + closing + "\n"
