"""A user's own model through the CLI: a tiny random HookedTransformer with a word-level, non-English tokenizer and
one random SAELens SAE per layer, saved in the folder layout of README's "Your own model and SAEs" and studied by
``fra induction`` with a shrunk copy of the repository's params.yaml."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerFast

from fra.analysis.induction import probe_sets
from fra.analysis.schema import CHANNELS
from fra.cli import main
from fra.config import InductionConfig, WorldConfig
from fra.models import gpt2_tokenizer, load_model, save_hooked
from fra.world.corpus import ground_truth, world_tokenizer
from tests.conftest import make_model
from tests.stages.conftest import refuses

ROOT = Path(__file__).resolve().parents[2]
N_LAYERS, N_HEADS, D_MODEL, D_VOCAB = 2, 4, 32, 64
HOOKS = ("blocks.0.hook_resid_pre", "blocks.1.ln1.hook_normalized")  # the two attention inputs fra accepts
SHRINK = {
    "engine": {"device": "cpu"},
    "heads": {"n_rep": 8, "offsets": [4, 6], "batch_size": 4},
    "induction": {"n_discovery": 8, "n_heldout": 8, "repeat_min": 4, "repeat_max": 10},
    "channels": {"batch_size": 8, "max_candidates": 4},
}
SKIPPED = "the English concept-template probes are skipped"


def word_tokenizer() -> PreTrainedTokenizerFast:
    """Made-up words ``w01``..``w63`` after ``<s>`` (id 0, prepended): no English word is in its vocabulary."""
    vocab = {"<s>": 0, **{f"w{i:02d}": i for i in range(1, D_VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<s>", pad_token="<s>",
                                   add_bos_token=True, name_or_path="made-up-words")  # TransformerLens needs both


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> Path:
    """``model/`` (save_hooked), ``saes/L0``, ``saes/L1`` (sae.save_model), ``params.yaml``: nothing from the
    pipeline."""
    root = tmp_path_factory.mktemp("user")
    torch.manual_seed(0)
    model = HookedTransformer(HookedTransformerConfig(
        n_layers=N_LAYERS, n_heads=N_HEADS, d_model=D_MODEL, d_head=8, d_mlp=64, d_vocab=D_VOCAB, n_ctx=32,
        act_fn="gelu", normalization_type="LN"))
    model.set_tokenizer(word_tokenizer())
    save_hooked(model, root / "model")
    for layer, hook in enumerate(HOOKS):
        sae = TopKSAE(TopKSAEConfig(d_in=D_MODEL, d_sae=64, k=6, metadata=SAEMetadata(hook_name=hook)))
        sae.save_model(str(root / "saes" / f"L{layer}"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in SHRINK.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def induction(root: Path, *flags: str) -> list[str]:
    return ["induction", "--model", str(root / "model"), "--saes", str(root / "saes"), "--params",
            str(root / "params.yaml"), "--out", str(root / "out"), *flags]


def test_induction_on_a_users_model(user, capsys):
    assert load_model(user / "model", "cpu").tokenizer is not None  # the word-level tokenizer travels with the model
    assert main(induction(user)) == 0
    err = capsys.readouterr().err
    assert err.count(SKIPPED) == 1 and "no concept-pair family of English" in err
    out = user / "out"
    heads = pd.read_csv(out / "heads.csv")
    assert sorted(zip(heads["layer"], heads["head"])) == [(layer, h) for layer in range(N_LAYERS)
                                                          for h in range(N_HEADS)]
    channels = pd.read_csv(out / "channels.csv")
    assert list(channels.columns) == CHANNELS.names and set(channels["probe"]) == {"random_repeat"}  # some tested
    assert set(channels["layer"]) <= set(range(N_LAYERS))
    hyp = pd.read_csv(out / "hypotheses.csv")
    assert sorted(zip(hyp["layer"], hyp["head"])) == [(layer, h) for layer in range(N_LAYERS) for h in range(N_HEADS)]
    m = json.loads((out / "metrics.json").read_text())
    assert m["layers_resolved"] == [0, 1] and m["n_channels_tested"] == len(channels) and m["max_residual"] < 1e-3
    assert m["H1"]["n_tih"] + m["H2"]["n_non_tih"] == N_LAYERS * N_HEADS
    assert {m["H1"]["answer"].split()[0], m["H2"]["answer"].split()[0]} <= {"yes", "no", "untestable"}
    assert {"controls", "causal"} <= set(m) and (out / "controls.csv").is_file() and (out / "causal.csv").is_file()


def test_one_sae_folder_is_its_layers_sae(user, tmp_path, capsys):
    assert main(induction(user, "--saes", str(user / "saes" / "L1"), "--out", str(tmp_path), "--no-checks")) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["layers_resolved"] == [1]


def test_ground_truth_of_another_world_names_each_field(user, tmp_path, capsys):
    world = WorldConfig(n_classes=8, class_size=4, n_filler=16, n_conceptual=4, segment_min=4, segment_max=8)
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth(world)))
    # a model folder that does not exist: the ground truth is checked before the model loads
    argv = induction(user, "--model", str(tmp_path / "no_model"), "--ground-truth", str(tmp_path / "gt.json"))
    err = refuses(argv, "was built with another world", capsys, tmp_path)
    params = user / "params.yaml"
    for field, theirs, ours in (("n_classes", 8, 32), ("class_size", 4, 6), ("n_filler", 16, 56),
                                ("n_conceptual", 4, 12)):
        assert f"{field} is {theirs} in the file but {ours} in {params}" in err and f"world.{field}: {theirs}" in err
    assert "pass --params FILE with the world this ground truth was built with" in err


def test_ground_truth_entries_are_compared(user, tmp_path, capsys):
    truth = ground_truth(WorldConfig())  # params.yaml's world: every field agrees
    truth["tokens"][7]["name"] = "renamed"
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    err = refuses(induction(user, "--model", str(tmp_path / "no_model"), "--ground-truth", str(tmp_path / "gt.json")),
                  r"`tokens` is not what the world of .* generates \(entry 7 is", capsys, tmp_path)
    assert '"renamed"' in err and "fra toy-data --params" in err


@pytest.mark.parametrize("tokenizer, why", [
    (None, "the model has no tokenizer"),
    (word_tokenizer, "no concept-pair family of English tokenizes to single tokens"),
    (lambda: world_tokenizer(WorldConfig()), "no concept-pair family of English tokenizes to single tokens"),
])
def test_probe_sets_skip_the_templates_without_english(tokenizer, why, capsys):
    model = make_model(d_vocab=WorldConfig().d_vocab, n_ctx=64)
    if tokenizer is not None:
        model.set_tokenizer(tokenizer())
    cfg = InductionConfig(n_discovery=2, n_heldout=2, repeat_min=4, repeat_max=8)
    assert [disc.kind for disc, _ in probe_sets(model, cfg)] == ["random_repeat"]
    err = capsys.readouterr().err
    assert err.count(SKIPPED) == 1 and why in err and "--ground-truth" in err
    assert [disc.kind for disc, _ in probe_sets(model, cfg, templates=False)] == ["random_repeat"]
    assert capsys.readouterr().err == ""  # templates not asked for: no notice


def test_probe_sets_keep_the_templates_with_english(capsys):
    model = make_model(d_vocab=50257, n_ctx=64)
    model.set_tokenizer(gpt2_tokenizer())
    cfg = InductionConfig(n_discovery=2, n_heldout=2, repeat_min=4, repeat_max=8)
    assert [disc.kind for disc, _ in probe_sets(model, cfg)] == ["random_repeat", "concept_templates"]
    assert capsys.readouterr().err == ""


@pytest.fixture(scope="module")
def study(user, tmp_path_factory) -> Path:
    """``fra induction --no-checks`` on the user's model with a corpus of made-up words: the study `fra power` reads."""
    out = tmp_path_factory.mktemp("study")
    corpus = torch.randint(1, D_VOCAB, (16, 32), generator=torch.Generator().manual_seed(5))
    np.save(out / "corpus.npy", corpus.numpy())
    assert main(induction(user, "--out", str(out), "--corpus", str(out / "corpus.npy"), "--no-checks")) == 0
    return out


def power(user: Path, study: Path, params: Path, out: Path) -> list[str]:
    return ["power", "--model", str(user / "model"), "--saes", str(user / "saes"), "--corpus",
            str(study / "corpus.npy"), "--study", str(study), "--params", str(params), "--out", str(out)]


def power_params(user: Path, tmp_path: Path, **overrides) -> Path:
    params = yaml.safe_load((user / "params.yaml").read_text())
    params["power"].update({"probes": ["random_repeat"], "strengths": [0.1, 10.0], "n_pairs": 2,
                            "n_control_pairs": 1, "min_follow": 0.01, "max_density": 1.0, "corpus_sequences": 16,
                            **overrides})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_power_plants_into_a_users_model(user, study, tmp_path):
    out = tmp_path / "power"
    assert main(power(user, study, power_params(user, tmp_path), out)) == 0
    plants = pd.read_csv(out / "power.csv")
    result = json.loads((out / "power.json").read_text())
    assert set(plants["strength"]) == {0.1, 10.0} and set(plants["probe"]) == {"random_repeat"}
    assert [role for role, _, _ in result["heads"]][:2] in (["tih", "same_layer"], ["strongest", "same_layer"])
    assert len(plants) == 2 * plants.groupby(["role", "query_feature", "key_feature", "pair_kind"]).ngroups
    assert {c["strength"] for c in result["curves"]} == {0.1, 10.0} and "weakest_found" in result


def test_power_refuses_a_probe_the_study_does_not_make(user, study, tmp_path, capsys):
    out = tmp_path / "power"
    params = power_params(user, tmp_path, probes=["concept_templates"])
    err = refuses(power(user, study, params, out), r"`power.probes` must name probe kinds among", capsys, tmp_path)
    assert "got ['concept_templates']" in err and not out.exists()


def test_power_without_a_study_names_the_stage_to_run(user, study, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = power(user, study, power_params(user, tmp_path), tmp_path / "power")
    argv[argv.index("--study") + 1] = str(empty)
    refuses(argv, r"has no readable heads.csv .*run `fra induction`", capsys, tmp_path)


def thresholds(user: Path, study: Path, params: Path, out: Path) -> list[str]:
    return ["thresholds", "--model", str(user / "model"), "--study", str(study), "--params", str(params), "--out",
            str(out)]


def thresholds_params(user: Path, tmp_path: Path) -> Path:
    """The user's params with a short bootstrap: the sweep's grids are params.yaml's."""
    params = yaml.safe_load((user / "params.yaml").read_text())
    params["sensitivity"].update({"n_bootstrap": 20})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_thresholds_sweep_a_users_study(user, study, tmp_path, capsys):
    params = thresholds_params(user, tmp_path)
    out = tmp_path / "thresholds"
    assert main(thresholds(user, study, params, out)) == 0
    sweep = pd.read_csv(out / "sweep.csv")
    region = json.loads((out / "region.json").read_text())
    m = json.loads((study / "metrics.json").read_text())
    grid = yaml.safe_load(params.read_text())["sensitivity"]
    assert list(region) == ["lift_null_factor", "alpha", "min_effect", "min_scale_share", "tih_threshold"]
    own = sweep[sweep["pipeline_value"]]
    assert len(own) == len(region)  # one row at the pipeline's values per parameter
    for _, row in own.iterrows():  # each of them is the study
        assert (row["n_tih"], row["h1_heads"], row["H1"]) == (m["H1"]["n_tih"], m["H1"]["n_tih_with_cih"],
                                                               m["H1"]["answer"]), row["parameter"]
        assert (row["n_non_tih"], row["h2_heads"], row["H2"]) == (m["H2"]["n_non_tih"], m["H2"]["n_non_tih_with_cih"],
                                                                  m["H2"]["answer"]), row["parameter"]
        assert row["lift_threshold"] == pytest.approx(m["criterion"]["lift_threshold"], rel=1e-5)
    assert region["min_effect"]["pipeline_value"] == m["criterion"]["min_effect"]
    assert region["tih_threshold"]["pipeline_value"] == m["tih_threshold"]
    assert region["alpha"]["values"] == sorted({*grid["alphas"], m["criterion"]["alpha"]})
    assert (sweep["n_tih"] + sweep["n_non_tih"] == N_LAYERS * N_HEADS).all()
    for h in ("h1", "h2"):
        assert (sweep[f"{h}_low"] <= sweep[f"{h}_high"]).all()
    assert "min_effect: answers" in capsys.readouterr().out


def test_thresholds_without_a_study_names_the_stage_to_run(user, study, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "heads.csv").write_text((study / "heads.csv").read_text())  # the rest missing
    out = tmp_path / "thresholds"
    refuses(thresholds(user, empty, user / "params.yaml", out),
            r"--study .*empty lacks a readable heads.csv, channels.csv or metrics.json .*run `fra induction`",
            capsys, tmp_path)
    assert not out.exists()


def test_thresholds_refuse_a_study_made_with_other_params(user, study, tmp_path, capsys):
    """metrics.json's counts are not the sweep's at params.yaml's values: the study was run with other params."""
    other = tmp_path / "study"
    other.mkdir()
    for name in ("heads.csv", "channels.csv", "metrics.json"):
        (other / name).write_text((study / name).read_text())
    m = json.loads((other / "metrics.json").read_text())
    m["H2"]["n_non_tih_with_cih"] += 1
    (other / "metrics.json").write_text(json.dumps(m))
    err = refuses(thresholds(user, other, thresholds_params(user, tmp_path), tmp_path / "thresholds"),
                  r"the sweep at the pipeline's values counts H1 \d+, H2 \d+ but .*metrics.json says", capsys,
                  tmp_path)
    assert "params.yaml differs from the study's; rerun it" in err


def test_compare_refuses_a_tokenizer_without_multi_token_words(user, study, tmp_path, capsys):
    """The made-up words are single tokens with no leading-space marker: Feucht et al.'s concept probes need words
    the tokenizer splits, so `fra compare` names the problem before any head is scored."""
    (tmp_path / "power.csv").write_text("layer,head,pair_kind,confirmed\n")
    out = tmp_path / "compare"
    argv = ["compare", "--model", str(user / "model"), "--saes", str(user / "saes"), "--corpus",
            str(study / "corpus.npy"), "--study", str(study), "--power", str(tmp_path / "power.csv"), "--params",
            str(user / "params.yaml"), "--out", str(out)]
    err = refuses(argv, r"no word of the corpus \(16 sequences x 32 tokens\) is split into 2\.\.5 tokens by "
                  r"tokenizer '.*/model'", capsys, tmp_path)  # the saved tokenizer's name: its folder
    assert "a tokenizer whose tokens mark a leading space" in err and not out.exists()


def test_thresholds_refuse_a_model_that_is_not_the_studys(user, study, tmp_path, capsys):
    torch.manual_seed(1)
    other = HookedTransformer(HookedTransformerConfig(
        n_layers=N_LAYERS, n_heads=N_HEADS, d_model=D_MODEL, d_head=8, d_mlp=64, d_vocab=D_VOCAB, n_ctx=32,
        act_fn="gelu", normalization_type="LN"))
    other.set_tokenizer(word_tokenizer())
    save_hooked(other, tmp_path / "other" / "model")
    refuses(thresholds(tmp_path / "other", study, thresholds_params(user, tmp_path), tmp_path / "thresholds"),
            r"heads.csv", capsys, tmp_path)
