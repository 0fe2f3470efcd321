"""Validation on a planted world and a compiled model: the toy model's training and ground-truth check, its SAEs,
planted recall and false discoveries, the recipe on fresh seeds, the criterion's threshold, the ablation, and the
hand-set model; one function per table and figure, and ``planted_values`` for every number the text shows."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fra.report.build.markdown import absent
from fra.report.build.provenance import Provenance, available
from fra.report.common import (
    HYP_COLUMNS,
    TARGET_FALSE,
    TARGET_RECALL,
    escape_markdown,
    fmt_range,
    fmt_span,
    head_name,
    yes_no,
)
from fra.report.data import read_csv, read_json
from fra.report.figures import figure
from fra.report.tables import count, fmt, table
from fra.report.values import Values

TRAIN, SAES, METRICS = "results/toy/train_metrics.json", "results/toy/saes.json", "results/toy/metrics.json"
SEEDS, POOLED = "results/toy/seeds.csv", "results/toy/seeds.json"
CALIBRATION, SEEDS_CALIBRATION = "results/toy/calibration.csv", "results/toy/seeds_calibration.csv"
ABLATION, ABLATION_TRAIN = "results/toy_ablation/metrics.json", "results/toy_ablation/train_metrics.json"
COMPILED, COMPILED_HEADS = "results/compiled/metrics.json", "results/compiled/hypotheses.csv"
SEED_COLUMNS = ["world_seed", "train_seed", "role", "ground_truth_ok", "recall_conceptual", "false_discoveries",
                "n_token_only", "H1", "H2"]
TARGETS = "a constant of fra/report/common.py (TARGET_RECALL, TARGET_FALSE)"


def architecture(model: dict) -> str:
    """The toy model's shape in words: "2 layers, 4 heads per layer, d_model = 128, no MLPs, shortformer positions"."""
    words = {"n_layers": lambda v: count(v, "layer"), "n_heads": lambda v: f"{count(v, 'head')} per layer",
             "d_model": lambda v: f"$d_{{model}}$ = {v}", "d_mlp": lambda v: f"$d_{{mlp}}$ = {v}" if v else "no MLPs",
             "positional_embedding_type": lambda v: f"{v} positions"}
    return ", ".join(words[k](v) if k in words else f"{escape_markdown(k)} {escape_markdown(v)}"
                     for k, v in model.items())


def feature_kinds(cards: dict) -> dict[tuple[int, int], str]:
    """``(layer, feature)`` -> planted-world label of every live feature of the toy SAE stage's cards
    (``{"L<layer>": [{"feature", "kind", "current_class", "previous_class"}, ...]}``)."""
    kinds = {}
    for layer, feats in cards.items():
        for f in feats:
            if f["kind"] == "dead":
                continue
            cur, prev = f["current_class"], f["previous_class"]
            kinds[(int(layer.lstrip("L")), int(f["feature"]))] = (
                f"{f['kind']}; current token {cur[0]} ({fmt(cur[1], 2)}), previous token {prev[0]} ({fmt(prev[1], 2)})")
    return kinds


def toy_feature_kinds(model: str) -> tuple[dict, list[Provenance]]:
    """Planted-world feature labels from the toy SAE stage (current/previous-token class), if produced."""
    path = f"results/{model}/feature_cards.json"
    if model != "toy" or not available(path):
        return {}, []
    cards, prov = read_json(path)
    return feature_kinds(cards), [prov]


def names(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"; "none" for no item."""
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else (items[0] if items else "none")


def short_answer(answer) -> str:
    """An H1/H2 answer without its reason: "untestable (every resolved head is a TIH)" -> "untestable"."""
    return "–" if pd.isna(answer) else str(answer).split(" (")[0]


def met(ok: bool) -> str:
    return "met" if ok else "not met"


# --- tables and figures ------------------------------------------------------------------------------------------

def toy_training_table(path: str = TRAIN) -> str:
    """tbl-toy-training: the toy model's accuracies and ground-truth check."""
    if not available(path):
        return absent(path, "It holds the toy model's training summary and ground-truth check.")
    train, prov = read_json(path)
    check = train["heads"]
    rows = [("held-out loss", train["heldout_loss"]), ("accuracy, token repeats", train["acc_token_repeat"]),
            ("accuracy, concept repeats", train["acc_concept_repeat"]),
            ("accuracy, positions outside repeats", train.get("acc_random", float("nan"))),
            ("learned the world (learned_world)", yes_no(train.get("learned_world"))),
            ("ground-truth check (ground_truth_ok)", yes_no(train["ground_truth_ok"])),
            ("canonical induction heads", ", ".join(h["head"] for h in check["canonical_induction_heads"]) or "none"),
            ("largest positional-control score", check["max_positional_control"])]
    return table(pd.DataFrame(rows, columns=["quantity", "value"]).astype({"value": object}), "tbl-toy-training",
                 "Training summary and ground-truth check of the toy model.", prov)


def toy_training_figure(path: str = TRAIN) -> str:
    """fig-toy-training: held-out accuracies during training (empty without a history)."""
    if not available(path):
        return ""
    train, prov = read_json(path)
    hist = pd.DataFrame(train.get("history", []))
    accs = [c for c in ("acc_token_repeat", "acc_concept_repeat", "acc_random") if c in hist.columns]
    if len(hist) < 2 or not accs:
        return ""
    fig, ax = plt.subplots(figsize=(6.5, 2.4))
    for c in accs:
        ax.plot(hist["step"], hist[c], marker="o", ms=3, label=c.removeprefix("acc_").replace("_", " "))
    ax.set(xlabel="training step", ylabel="held-out accuracy", ylim=(0, 1))
    ax.legend()
    return figure(fig, "fig-toy-training", "Held-out accuracy of the toy model during training.", prov)


def toy_train_heads_table(path: str = "results/toy/train_heads.csv") -> str:
    """tbl-toy-train-heads: the toy model's head scores after training (empty when not produced)."""
    if not available(path):
        return ""
    th, prov = read_csv(path, ["layer", "head", "induction", "induction_min", "previous_token", "positional_control"])
    th = th.assign(head=[head_name(layer, h) for layer, h in zip(th.layer, th["head"])])
    cols = ["head", "induction", "induction_min", "previous_token", "duplicate_token", "positional_control"]
    th = th[[c for c in cols if c in th.columns]].rename(columns={
        "induction_min": "induction (min over N)", "previous_token": "prev. token",
        "duplicate_token": "dup. token", "positional_control": "positional control"})
    return table(th, "tbl-toy-train-heads", "Head scores of the toy model after training: induction on "
                 "`[BOS] r r`, its minimum over the repeat lengths N tested, previous-token and duplicate-token "
                 "scores, and the same induction stripe on non-repeated tokens (positional control).", prov)


def toy_saes_table(path: str = SAES) -> str:
    """tbl-toy-saes: the toy SAEs' sparsity, variance explained, dead fraction and feature kinds."""
    if not available(path):
        return absent(path, "It holds the toy SAEs' sparsity, variance explained and dead fraction.")
    saes, prov = read_json(path)
    rows = []
    for name, s in saes.items():
        kinds = s.get("feature_kinds", {})
        rows.append({"SAE": name, "hook": f"`{s['hook_name']}`", "d_sae": s["d_sae"], "L0": s["l0"],
                     "variance explained": s["variance_explained"], "dead fraction": s["dead_fraction"],
                     "live features (current / previous / mixed)":
                         f"{kinds.get('current', 0)} / {kinds.get('previous', 0)} / {kinds.get('mixed', 0)}"})
    return table(pd.DataFrame(rows), "tbl-toy-saes", "SAEs of the toy model: sparsity (L0, mean active features per "
                 "token), variance explained, dead fraction, and live features labelled by whether they track the "
                 "current token's class, the previous token's class, or neither cleanly.", prov)


def planted_table(path: str = METRICS) -> str:
    """tbl-toy-planted: recall over conceptual classes and false discoveries over token-only ones, against targets."""
    metrics, prov = read_json(path) if available(path) else (None, None)
    if metrics is None or "planted" not in metrics:
        return absent(path, "Its `planted` entry holds the recall over conceptual classes and the false discoveries "
                      "over token-only classes.")
    p = metrics["planted"]
    rows = [("recall over conceptual classes", f"{len(p['conceptual_found'])} of {p['n_conceptual']}",
             p["recall_conceptual"], f"≥ {fmt(TARGET_RECALL)}", yes_no(p["recall_conceptual"] >= TARGET_RECALL)),
            ("false discoveries over token-only classes", f"{len(p['token_only_found'])} of {p['n_token_only_tested']}",
             p["false_discovery_token_only"], f"≤ {fmt(TARGET_FALSE)}",
             yes_no(p["false_discovery_token_only"] <= TARGET_FALSE))]
    return table(pd.DataFrame(rows, columns=["measure", "classes", "rate", "target", "met"]), "tbl-toy-planted",
                 "Planted-world check of the channel search on the main seed.", prov, note=TARGETS)


def seed_rows(seeds: pd.DataFrame) -> pd.DataFrame:
    """One compact row per run: seeds, role, ground truth, recall, false discoveries and the H1/H2 answers."""
    ok = seeds.ground_truth_ok.astype(bool)
    false = [f"{int(f)} of {int(n)}" if g else "–" for f, n, g in zip(seeds.false_discoveries, seeds.n_token_only, ok)]
    return pd.DataFrame({
        "seeds": [f"{int(w)}/{int(t)}" for w, t in zip(seeds.world_seed, seeds.train_seed)], "role": seeds.role,
        "ground truth": ok.map(yes_no), "recall": seeds.recall_conceptual.where(ok), "false disc.": false,
        "H1": seeds.H1.map(short_answer), "H2": seeds.H2.map(short_answer)})


def seeds_table(path: str = SEEDS, main: str = METRICS, train: str = TRAIN) -> str:
    """tbl-toy-seeds (main text): per run, recall, false discoveries and the H1/H2 answers; the main seed first."""
    if not available(path):
        return absent(path, "It holds the planted world replicated on fresh seeds (`fra toy-seeds`).")
    seeds, prov = read_csv(path, SEED_COLUMNS)
    rows, sources = [seed_rows(seeds)], [prov]
    if available(main) and available(train):
        (m, mprov), (t, tprov) = read_json(main), read_json(train)
        p = m["planted"]
        rows.insert(0, pd.DataFrame([{
            "seeds": "main", "role": "tuning", "ground truth": yes_no(t["ground_truth_ok"]),
            "recall": p["recall_conceptual"], "false disc.": f"{len(p['token_only_found'])} of "
                                                            f"{p['n_token_only_tested']}",
            "H1": short_answer(m["H1"]["answer"]), "H2": short_answer(m["H2"]["answer"])}]))
        sources += [mprov, tprov]
    df = pd.concat(rows, ignore_index=True)
    return table(df.astype({"recall": float}), "tbl-toy-seeds",
                 "The planted world on its main seed and on fresh (world/training) seeds. Tuning: the criterion's "
                 "factor was chosen on it; validation: never looked at while choosing. Recall over the conceptual "
                 "classes, false discoveries among the token-only controls, and the run's H1/H2 answers (untestable: "
                 "every resolved head is a TIH); – where the run fails its ground-truth check.", *sources)


def seeds_detail_table(path: str = SEEDS) -> str:
    """tbl-toy-seeds-detail: per run, accuracy, best induction head, previous-token partner, lift threshold,
    channels."""
    if not available(path):
        return ""
    seeds, prov = read_csv(path, ["world_seed", "train_seed", "acc_concept_repeat", "best_induction_head",
                                  "best_induction_min", "lift_threshold", "n_cih"])
    cols = {"acc_concept_repeat": "acc. concept", "best_induction_head": "best L≥1 head",
            "best_induction_min": "its induction (min)", "previous_token_head": "prev.-token head",
            "previous_token_score": "its score", "max_positional_control": "max pos. control",
            "lift_threshold": "lift threshold", "n_cih": "channels"}
    shown = seeds[[c for c in cols if c in seeds.columns]].rename(columns=cols)
    shown.insert(0, "seeds", [f"{int(w)}/{int(t)}" for w, t in zip(seeds.world_seed, seeds.train_seed)])
    return table(shown, "tbl-toy-seeds-detail", "The fresh seeds of @tbl-toy-seeds in detail: held-out "
                 "concept-repeat accuracy, the best layer-1 induction head and its score (minimum over repeat "
                 "lengths), the previous-token head, the largest positional-control score, the lift threshold "
                 "the run's own null gives, and the confirmed channels.", prov)


def calibration_figure(path: str = CALIBRATION, seeds_path: str = SEEDS_CALIBRATION) -> str:
    """fig-toy-calibration: planted recall and false discoveries against ``lift_null_factor`` on the main seed and
    every replicate."""
    if not available(path):
        return absent(path, "It holds the planted world's recall and false discoveries at every `lift_null_factor` "
                      "of a grid.")
    cal, prov = read_csv(path, ["lift_null_factor", "recall_conceptual", "false_discovery_token_only", "chosen"])
    runs, sprov = calibration_runs(seeds_path)
    chosen = cal[cal.chosen.astype(bool)]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.6), sharey=True)
    for ax, column, title in ((axes[0], "recall_conceptual", "recall (conceptual classes)"),
                              (axes[1], "false_discovery_token_only", "false discoveries (token-only classes)")):
        if runs is not None:
            for (role, _, _), run in runs.groupby(["role", "world_seed", "train_seed"]):
                ax.plot(run.lift_null_factor, run[column], color="C1" if role == "tuning" else "0.7", lw=0.8)
        ax.plot(cal.lift_null_factor, cal[column], color="C0", marker="o", ms=3, label="main seed")
        if len(chosen):
            ax.axvline(float(chosen.lift_null_factor.iloc[0]), color="0.3", ls="--", lw=0.8)
        ax.set(xlabel="lift_null_factor", title=title, ylim=(-0.03, 1.03))
        ax.title.set_fontsize("small")
    axes[0].set_ylabel("rate")
    return figure(fig, "fig-toy-calibration", "Planted recall (left) and false discoveries (right) when the channels "
                  "are re-confirmed at each `lift_null_factor`: the main seed (blue), the tuning runs (orange) and the "
                  "validation runs (grey); the chosen factor dashed.", prov, *([sprov] if sprov else []))


def calibration_runs(path: str = SEEDS_CALIBRATION) -> tuple[pd.DataFrame | None, Provenance | None]:
    """The replicates' recall and false discoveries at every factor, if produced."""
    if not available(path):
        return None, None
    return read_csv(path, ["world_seed", "train_seed", "role", "lift_null_factor", "recall_conceptual",
                           "false_discovery_token_only"])


def ablation_table(metrics_path: str = ABLATION, train_path: str = ABLATION_TRAIN, full: str = METRICS) -> str:
    """tbl-toy-ablation: the toy model trained without concept repeats, beside the full one."""
    if not (available(metrics_path) and available(train_path)):
        return absent([metrics_path, train_path])
    (m, prov), (train, train_prov) = read_json(metrics_path), read_json(train_path)
    p = m["planted"]
    rows = [("token-repeat accuracy", train["acc_token_repeat"]),
            ("concept-repeat accuracy", train["acc_concept_repeat"]),
            ("recall over conceptual classes", p["recall_conceptual"]),
            ("false discoveries over token-only classes", p["false_discovery_token_only"])]
    return table(pd.DataFrame(rows, columns=["measure", "ablation"]), "tbl-toy-ablation",
                 "The ablation model: trained without concept repeats.", prov, train_prov)


def compiled_table(path: str = COMPILED, heads_path: str = COMPILED_HEADS) -> str:
    """tbl-compiled: the compiled model's layer-1 heads, kind built against kind found."""
    if not available(path):
        return absent(path, "It holds the compiled ground-truth model's study (`fra compiled`).")
    m, prov = read_json(path)
    heads, hprov = read_csv(heads_path, HYP_COLUMNS)
    rows = []
    for name, v in m["verdict"]["heads"].items():
        r = heads[[head_name(layer, h) == name for layer, h in zip(heads.layer, heads["head"])]].iloc[0]
        rows.append({"head": name, "induction": r.induction,
                     "TIH (built / found)": f"{yes_no(v['expected_tih'])} / {yes_no(r.is_tih)}",
                     "token channels": int(r.n_token), "conceptual channels": int(r.n_conceptual),
                     "kind built": v["expected"], "kind found": v["observed"]})
    return table(pd.DataFrame(rows), "tbl-compiled", "The compiled model's layer-1 heads: induction score, TIH as "
                 "built and as found, confirmed token and conceptual channels (distinct feature pairs), the kind built "
                 "in and the kind found (none: no channel of any kind confirmed).", prov, hprov)


# --- the numbers of the text --------------------------------------------------------------------------------------

def planted_values() -> Values:
    """Every number the planted-world and compiled-model text shows, from the results files that exist here."""
    v = Values("planted", [TRAIN, SAES, METRICS, SEEDS, POOLED, CALIBRATION, ABLATION, ABLATION_TRAIN, COMPILED])
    v.add("target_recall", TARGET_RECALL, note=TARGETS)
    v.add("target_false", TARGET_FALSE, note=TARGETS)
    if available(TRAIN):
        training_values(v, *read_json(TRAIN))
    if available(SAES):
        sae_values(v, *read_json(SAES))
    metrics, prov = read_json(METRICS) if available(METRICS) else ({}, None)
    if "planted" in metrics:
        main_seed_values(v, metrics, prov)
    if available(SEEDS):
        seed_values(v, *read_csv(SEEDS, SEED_COLUMNS))
    if available(POOLED):
        pooled_values(v, *read_json(POOLED))
    if available(CALIBRATION):
        calibration_values(v, *read_csv(CALIBRATION, ["lift_null_factor", "lift_threshold", "recall_conceptual",
                                                      "false_discovery_token_only", "chosen"]))
    if available(ABLATION) and available(ABLATION_TRAIN):
        (m, prov), (train, tprov) = read_json(ABLATION), read_json(ABLATION_TRAIN)
        v.add("ablation_acc_concept", train["acc_concept_repeat"], tprov)
        v.add("ablation_recall", m["planted"]["recall_conceptual"], prov)
        v.add("ablation_found", f"{len(m['planted']['conceptual_found'])} of {m['planted']['n_conceptual']}", prov)
    if available(COMPILED):
        compiled_values(v, *read_json(COMPILED), *read_csv(COMPILED_HEADS, HYP_COLUMNS))
    return v


def training_values(v: Values, train: dict, prov: Provenance) -> None:
    check = train["heads"]
    canonical = check["canonical_induction_heads"]
    v.add("architecture", architecture(train.get("model", {})), prov)
    v.add("acc_token", train["acc_token_repeat"], prov)
    v.add("acc_concept", train["acc_concept_repeat"], prov)
    v.add("ground_truth", "passed" if train["ground_truth_ok"] else "failed", prov)
    v.add("criteria", escape_markdown(check["criteria"].replace(">=", "≥").replace("<=", "≤")), prov)
    v.add("canonical", names([h["head"] for h in canonical]), prov)
    v.add("partnered", f"{sum(bool(h['has_partner']) for h in canonical)} of {len(canonical)}", prov)
    v.add("partners", names(sorted({h["previous_token_partner"] for h in canonical if h["has_partner"]})), prov)
    v.add("shortcut_heads", names(check["positional_shortcut_heads"]), prov)


def sae_values(v: Values, saes: dict, prov: Provenance) -> None:
    s = pd.DataFrame(saes.values())
    v.add("saes", count(len(s), "SAE"), prov)
    v.add("sae_hooks", names([f"`{h}`" for h in s.hook_name]), prov)
    v.add("sae_explained", fmt_range(s.variance_explained.min(), s.variance_explained.max()), prov)
    v.add("sae_l0", fmt_range(s.l0.min(), s.l0.max()), prov)
    v.add("sae_dead", s.dead_fraction.max(), prov)


def main_seed_values(v: Values, metrics: dict, prov: Provenance) -> None:
    p = metrics["planted"]
    v.add("recall", p["recall_conceptual"], prov)
    v.add("recall_found", f"{len(p['conceptual_found'])} of {p['n_conceptual']}", prov)
    v.add("recall_met", met(p["recall_conceptual"] >= TARGET_RECALL), prov)
    v.add("false", p["false_discovery_token_only"], prov)
    v.add("false_found", f"{len(p['token_only_found'])} of {p['n_token_only_tested']}", prov)
    v.add("false_met", met(p["false_discovery_token_only"] <= TARGET_FALSE), prov)
    v.add("false_classes", names(p["token_only_found"]), prov)


def seed_values(v: Values, seeds: pd.DataFrame, prov: Provenance) -> None:
    """Per-run summaries over the fresh seeds that pass the ground-truth check (what @tbl-toy-seeds lists)."""
    ok = seeds[seeds.ground_truth_ok.astype(bool)]
    false = ok.false_discoveries / ok.n_token_only
    v.add("seeds", count(len(seeds), "fresh seed"), prov)
    v.add("seeds_tuning", count(int((seeds.role == "tuning").sum()), "tuning run"), prov)
    v.add("seeds_validation", int((seeds.role == "validation").sum()), prov)
    v.add("seeds_ok", f"{len(ok)} of {len(seeds)}", prov)
    v.add("seeds_recall", fmt_range(ok.recall_conceptual.min(), ok.recall_conceptual.max()), prov)
    v.add("seeds_recall_met", f"{int((ok.recall_conceptual >= TARGET_RECALL).sum())} of {len(ok)}", prov)
    v.add("seeds_false", fmt_range(false.min(), false.max()), prov)
    v.add("seeds_false_met", f"{int((false <= TARGET_FALSE).sum())} of {len(ok)}", prov)
    v.add("seeds_h1_yes", f"{int((ok.H1 == 'yes').sum())} of {len(ok)}", prov)
    v.add("seeds_h2_yes", f"{int((ok.H2 == 'yes').sum())} of {len(ok)}", prov)
    v.add("seeds_h2_untestable", int(ok.H2.map(short_answer).eq("untestable").sum()), prov)


def pooled_values(v: Values, pooled: dict, prov: Provenance) -> None:
    """Recall and false discoveries pooled over the validation runs that pass (never used to choose the rule)."""
    r = pooled.get("validation") or {}
    if r.get("recall") is None:
        return
    v.add("val_runs", r["n_runs"], prov)
    v.add("val_recall", r["recall"], prov)
    v.add("val_recall_found", f"{r['recall_found']} of {r['recall_tested']}", prov)
    v.add("val_recall_ci", fmt_span(*r["recall_ci95"]), prov)
    v.add("val_recall_min", r["min_recall"], prov)
    v.add("val_false", r["false_discovery_rate"], prov)
    v.add("val_false_found", f"{r['false_discoveries']} of {r['token_only_tested']}", prov)
    v.add("val_false_ci", fmt_span(*r["false_discovery_ci95"]), prov)


def calibration_values(v: Values, cal: pd.DataFrame, prov: Provenance) -> None:
    """The chosen factor and its rates on the main seed, and the smallest factor on the grid without a false
    discovery on the main seed and every tuning run (a validation run's false discoveries do not move it)."""
    runs, sprov = calibration_runs()
    tuned = [cal[["lift_null_factor", "false_discovery_token_only"]]]
    if runs is not None:
        tuned.append(runs[runs.role == "tuning"][["lift_null_factor", "false_discovery_token_only"]])
    worst = pd.concat(tuned).groupby("lift_null_factor").false_discovery_token_only.max()
    clean = worst[worst == 0]
    sources = [prov, *([sprov] if sprov else [])]
    v.add("factor_first", float(clean.index.min()) if len(clean) else "none on the grid", *sources)
    chosen = cal[cal.chosen.astype(bool)]
    if len(chosen):
        c = chosen.iloc[0]
        v.add("factor", float(c.lift_null_factor), prov)
        v.add("factor_threshold", float(c.lift_threshold), prov)
        v.add("factor_recall", float(c.recall_conceptual), prov)
        v.add("factor_false", float(c.false_discovery_token_only), prov)


def compiled_values(v: Values, m: dict, prov: Provenance, heads: pd.DataFrame, hprov: Provenance) -> None:
    """The compiled model's verdict, its concept-only head (built as kind "conceptual", not a TIH) and whether the
    search finds it, and its controls and causal test."""
    verdict = m["verdict"]["heads"]
    concept = next(name for name, h in verdict.items() if h["expected"] == "conceptual")
    row = heads[[head_name(layer, h) == concept for layer, h in zip(heads.layer, heads["head"])]].iloc[0]
    v.add("compiled_threshold", m["criterion"]["lift_threshold"], prov)
    v.add("compiled_verdict", "every head as built" if m["verdict"]["ok"] else "not every head as built", prov)
    v.add("compiled_h1", escape_markdown(m["H1"]["answer"]), prov)
    v.add("compiled_h2", escape_markdown(m["H2"]["answer"]), prov)
    v.add("concept_head", concept, prov)
    v.add("concept_head_kind", verdict[concept]["observed"], prov)  # the kind of channel the search found there
    v.add("concept_head_tih", yes_no(verdict[concept]["is_tih"]), prov)
    v.add("concept_head_induction", float(row.induction), hprov)
    v.add("concept_head_channels", count(int(row.n_conceptual), "conceptual channel"), hprov)
