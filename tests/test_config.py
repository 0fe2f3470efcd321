import re

import pytest

from fra.config import EngineConfig, Params, from_dict, load_params
from fra.errors import ConfigError


def test_repository_params_load():
    assert isinstance(load_params("params.yaml"), Params)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"engine": {"q_blok": 4}}, "engine.q_blok"),  # misspelled key
        ({"engin": {}}, "engin"),  # misspelled section
        ({"engine": {"q_block": "4"}}, "engine.q_block"),  # wrong type
        ({"engine": {"q_block": 0}}, "engine.q_block"),  # out of range
        ({"engine": {"top_k": True}}, "engine.top_k"),  # bool is not an int
        ({"engine": {"device": "tpu"}}, "engine.device"),  # not an allowed value
        ({"engine": {"min_act": -1}}, "engine.min_act"),
        ({"engine": {"block_mib": 0}}, "engine.block_mib"),
        ({"profile": {"language_models": ["gpt2"]}}, "profile.language_models[0]"),  # no offline profile for it
        ({"lm_saes": {"layers": [17, 17]}}, "lm_saes.layers"),
        ({"channels": {"lift_null_quantile": 1.5}}, "channels.lift_null_quantile"),
        ({"controls": {"kinds": ["random_sae", "random_sae"]}}, "controls.kinds"),
        ({"channels": {"sink_share": 0}}, "channels.sink_share"),
        ({"controls": {"kinds": ["random"]}}, "controls.kinds[0]"),
        ({"controls": {"seeds": 1}}, "controls.seeds"),
        ({"lm_saes": {"k": 0}}, "lm_saes.k"),  # the shared SAE checks name their own section
        ({"lm_saes": {"sections": 1}}, "lm_saes.sections"),
        ({"toy_saes": {"cache_batch_size": 0}}, "toy_saes.cache_batch_size"),
        ({"text_corpus": {"sources": ["shakespeare", "wikipedia"]}}, "text_corpus.sources[1]"),
        ({"text_corpus": {"heldout_fraction": 0.5}}, "text_corpus.heldout_fraction"),
    ],
)
def test_bad_params_name_the_key(data, key):
    with pytest.raises(ConfigError, match=re.escape(f"`{key}`")):
        from_dict(Params, data)


def test_suggests_close_key():
    with pytest.raises(ConfigError, match="did you mean `q_block`"):
        from_dict(Params, {"engine": {"q_blok": 4}})


def test_values_coerced():
    cfg = from_dict(EngineConfig, {"min_act": 1, "top_k": None})
    assert cfg.min_act == 1.0 and isinstance(cfg.min_act, float) and cfg.top_k is None


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_code_defaults_are_the_committed_params():
    """One source of truth: a key left out of params.yaml takes the value the repository commits."""
    assert Params() == load_params("params.yaml")


@pytest.mark.parametrize("text, match", [
    ("engine:\n  q_block: 4\n  q_block: 8\n", "`q_block` is given twice"),
    ("engine:\n  q_block: 4\nengine:\n  top_k: 2\n", "`engine` is given twice"),
    ("toy_train:\n  lr: .inf\n", "`toy_train.lr` must be a finite number"),
    ("toy_train:\n  weight_decay: .nan\n", "`toy_train.weight_decay` must be a finite number"),
    ("engine:\n  min_act: -.inf\n", "`engine.min_act` must be a finite number"),
    ("", "is empty"),
    ("engine: [1, 2\n", "not valid YAML"),
])
def test_bad_params_files(tmp_path, text, match):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(match) if "`" in match else match):
        load_params(tmp_path / "p.yaml")


def test_params_path_is_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"sensitivity": {"expansions": [0]}}, "sensitivity.expansions"),
        ({"sensitivity": {"expansions": []}}, "sensitivity.expansions"),
        ({"sensitivity": {"alphas": [0]}}, "sensitivity.alphas"),
        ({"sensitivity": {"alphas": [0.05, 1.5]}}, "sensitivity.alphas"),
        ({"sensitivity": {"layers": [17, 17]}}, "sensitivity.layers"),
        ({"sensitivity": {"layers": []}}, "sensitivity.layers"),
        ({"sensitivity": {"seeds": [1, 1]}}, "sensitivity.seeds"),
        ({"sensitivity": {"loss_batch_size": 0}}, "sensitivity.loss_batch_size"),
        ({"sensitivity": {"loss_sequences": 0}}, "sensitivity.loss_sequences"),
        ({"sensitivity": {"n_bootstrap": 0}}, "sensitivity.n_bootstrap"),
        ({"sensitivity": {"min_effects": [-0.01]}}, "sensitivity.min_effects"),
        ({"sensitivity": {"tih_thresholds": []}}, "sensitivity.tih_thresholds"),
        ({"sensitivity": {"lift_null_factors": [-1]}}, "sensitivity.lift_null_factors"),
        ({"sensitivity": {"min_scale_shares": [-0.1]}}, "sensitivity.min_scale_shares"),
        ({"sensitivity": {"alpha": [0.05]}}, "sensitivity.alpha"),  # misspelled key
        ({"compare": {"concept_seq_len": 4}}, "compare.concept_seq_len"),
        ({"compare": {"n_pairs": 0}}, "compare.n_pairs"),
        ({"compare": {"n_other_heads": 0}}, "compare.n_other_heads"),
        ({"compare": {"concept_probes": 0}}, "compare.concept_probes"),
        ({"compare": {"n_concept_heads": 0}}, "compare.n_concept_heads"),
        ({"compare": {"batch_size": 0}}, "compare.batch_size"),
        # sweep values the criterion refuses (channels.alpha in (0, 1), min_effect and min_scale_share in [0, 1))
        ({"sensitivity": {"alphas": [1.0]}}, "sensitivity.alphas"),
        ({"sensitivity": {"min_effects": [1.0]}}, "sensitivity.min_effects"),
        ({"sensitivity": {"min_scale_shares": [1.0]}}, "sensitivity.min_scale_shares"),
        ({"sensitivity": {"tih_thresholds": [1.5]}}, "sensitivity.tih_thresholds"),
    ],
)
def test_bad_sensitivity_and_compare_params_name_the_key(data, key):
    with pytest.raises(ConfigError, match=re.escape(f"`{key}`")):
        from_dict(Params, data)


def test_committed_sensitivity_and_compare_params():
    """params.yaml's sections load, and the SAE grid holds lm_saes' own SAE on layers lm_saes has."""
    p = load_params("params.yaml")
    assert p.sensitivity == Params().sensitivity and p.compare == Params().compare
    assert set(p.sensitivity.layers) <= set(p.lm_saes.layers)
    assert p.lm_saes.seed in p.sensitivity.seeds and p.lm_saes.expansion in p.sensitivity.expansions
    assert p.sensitivity.loss_sequences % p.sensitivity.loss_batch_size == 0  # every evaluation sequence is used
