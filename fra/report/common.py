"""What every section of the paper shares: the models, the probe kinds, and how numbers and names are written."""

from __future__ import annotations

import re

from fra.report.build.provenance import Provenance, available
from fra.report.data import read_json
from fra.report.tables import fmt

# The models of the results section (results/<model>/..., named as in params.yaml's profile.language_models):
# how the text names them, why their results may be absent and the command that produces them.
MODELS = {
    "toy": {"name": "the planted-concept toy model", "title": "Toy model (planted world)", "why": "",
            "command": None},
    "smollm2": {
        "name": "SmolLM2-135M", "title": "SmolLM2-135M",
        "why": "Its stages (`lm_model`, `lm_corpus`, `lm_saes`, `lm_induction`) run when `profile.language_models` in "
               "params.yaml lists `smollm2` (the default); they train SAEs on the layers `lm_saes.layers` lists.",
        "command": "`dvc repro` with `profile: {language_models: [smollm2]}` in params.yaml"},
    "gpt2-small": {
        "name": "GPT-2 small", "title": "GPT-2 small", "optional": True,  # needs the hub: absent by default
        "why": "Its stages (`lm_model@gpt2-small`, `lm_corpus@gpt2-small`, `lm_saes@gpt2-small`, "
               "`lm_induction@gpt2-small`) run when `profile.language_models` lists `gpt2-small`. They need network "
               "access to the model hub (GPT-2's weights and the released SAEs `gpt2-small-res-jb`, `pretrained_saes` "
               "in params.yaml) and, to resolve all 144 heads in reasonable time, a GPU.",
        "command": "`dvc repro` after setting `profile: {language_models: [smollm2, gpt2-small]}` in params.yaml"},
}

PROBES = {  # probe kind -> what its queries are (fra/analysis/probes.py, fra/world)
    "random_repeat": "exact repeats of random tokens, `[BOS] r r`",
    "frequent_repeat": "exact repeats of the corpus's most frequent tokens (each meets enough targets for a token "
                       "channel)",
    "text_repeat": "exact repeats of windows of text from the corpus",
    "token_repeat": "planted world: exact token repeats",
    "concept_repeat": "planted world: concept repeats, one group per conceptual class",
    "concept_control": "planted world: concept repeats moved onto token-only classes (control)",
    "concept_templates": "language model: templated concept pairs (capitalisation, synonyms, names, and numbers where "
                         "the tokenizer writes each as one token: SmolLM2's writes \" 3\" as two, so it has none)",
}
SHORT = {"random_repeat": "random", "frequent_repeat": "frequent", "text_repeat": "text", "token_repeat": "token",
         "concept_repeat": "concept",
         "concept_control": "control", "concept_templates": "templates"}  # probe kinds in narrow table cells
# The figures' exact-repeat probe, H1's probes (fra.analysis.probes.EXACT_PROBES, not imported: it would load torch
# into the paper's kernel), and the concept probes of the planted world and of language models.
EXACT, CONCEPTS, CONTROL = "random_repeat", ("concept_repeat", "concept_templates"), "concept_control"
EXACT_PROBES = ("random_repeat", "frequent_repeat", "text_repeat", "token_repeat")
TARGET_RECALL, TARGET_FALSE = 0.8, 0.1  # the planted-world targets the method must meet
HEAD_COLUMNS = ["layer", "head", "induction", "previous_token", "duplicate_token", "is_tih"]
HYP_COLUMNS = ["layer", "head", "induction", "is_tih", "n_cih", "n_token", "n_conceptual", "n_sink"]
ATTN_COLUMNS = ["probe", "group", "layer", "head", "attention_to_target"]


def default_models(models) -> list[str]:
    """The models of ``models`` that the default pipeline always produces (not ``optional`` in ``MODELS``)."""
    return [m for m in models if not MODELS.get(m, {}).get("optional")]


def head_name(layer, head) -> str:
    """``L<layer>H<head>``."""
    return f"L{int(layer)}H{int(head)}"


def escape_markdown(text) -> str:
    """Arbitrary token text as literal markdown (no emphasis, links, math or citations)."""
    text = str(text).replace("\n", "⏎").replace("\t", "⇥")
    return re.sub(r"([\\`*_{}\[\]<>()#+!|$@~^:\"'-])", r"\\\1", text) if text.strip() else "␣"


def probe_order(kinds) -> list[str]:
    """Probe kinds in the order of ``PROBES``, unknown kinds after them, sorted."""
    return [p for p in PROBES if p in set(kinds)] + sorted(set(kinds) - set(PROBES))


def fmt_range(lo, hi, digits: int = 3) -> str:
    """``lo`` alone when the range is one value, else ``between lo and hi``."""
    return fmt(lo, digits) if fmt(lo, digits) == fmt(hi, digits) else f"between {fmt(lo, digits)} and {fmt(hi, digits)}"


def fmt_span(lo, hi, digits: int = 3) -> str:
    """``lo–hi``, each through ``fmt``: a range or an interval in a value or a table cell."""
    return f"{fmt(lo, digits)}–{fmt(hi, digits)}"


def fmt_p(x) -> str:
    """A p- or q-value; below 1e-16 the normal approximation's tail means nothing, so say so."""
    return "< 1e-16" if x < 1e-16 else fmt(x, 2)


def yes_no(flag) -> str:
    return "yes" if flag else "no"


def files(model: str, *names: str) -> list[str]:
    """``results/<model>/<name>`` for each name."""
    return [f"results/{model}/{n}" for n in names]


def model_metrics(models: dict) -> list[tuple[str, object, dict, Provenance]]:
    """(model, its entry in ``models``, metrics, provenance) of every model whose metrics.json exists."""
    out = []
    for model, title in models.items():
        path = f"results/{model}/metrics.json"
        if available(path):
            metrics, prov = read_json(path)
            out.append((model, title, metrics, prov))
    return out
