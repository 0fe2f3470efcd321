"""The gpt2-small profile offline: the pipeline's own commands (lm-model -> text-corpus -> lm-saes -> induction) on a
tiny random GPT-2-architecture checkpoint saved like a user's Hugging Face folder, with released-style SAEs on disk."""

import json
import re

import pandas as pd
import pytest
import torch
import yaml
from transformers import GPT2Config, GPT2LMHeadModel

from fra import devices
from fra.cli import main
from fra.config import Params, PretrainedSAEConfig, load_params
from fra.errors import ConfigError
from fra.saes import load_sae
from fra.saes.random import random_sae

N_LAYERS, N_HEADS, D_MODEL = 2, 4, 64
PARAMS = {
    "text_corpus": {"sources": ["python"], "seq_len": 32, "train_tokens_per_source": 4096},
    "lm_saes": {"eval_sequences": 8, "n_cards": 5, "cache_batch_size": 8, "device": "cpu", "layers": "all",
                "expansion": 2, "k": 4.0, "training_tokens": 1024, "batch_size_tokens": 256},
    "heads": {"n_rep": 8, "offsets": [4], "batch_size": 4},
    "induction": {"n_discovery": 6, "n_heldout": 6, "repeat_min": 4, "repeat_max": 8},
    "channels": {"batch_size": 6},
    "engine": {"device": "cpu"},
}


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    """A GPT-2 checkpoint converted by lm-model, one SAELens folder per layer, the params file and the corpus."""
    root = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=N_LAYERS, n_embd=D_MODEL, n_head=N_HEADS, n_positions=64, vocab_size=50257)
    GPT2LMHeadModel(config).eval().save_pretrained(root / "gpt2")  # no tokenizer files: fra's offline GPT-2 one
    assert main(["lm-model", "--model", str(root / "gpt2"), "--out", str(root / "model")]) == 0
    for layer in range(N_LAYERS):
        random_sae(D_MODEL, f"blocks.{layer}.hook_resid_pre", d_sae=128, k=8, seed=layer).save_model(
            str(root / "released" / f"L{layer}"))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    corpus = ["text-corpus", "--params", str(root / "params.yaml"), "--model", "gpt2-small",
              "--out", str(root / "data" / "corpus"), "--results", str(root / "results")]
    assert main(corpus) == 0
    return root


def lm_saes(root, *flags, model=None):
    return main(["lm-saes", "--params", str(root / "params.yaml"), "--model", model or str(root / "model"),
                 "--corpus", str(root / "data" / "corpus"), "--out", str(root / "saes"),
                 "--results", str(root / "results"), *flags])


def test_pipeline_resolves_every_head(profile):
    root = profile
    manifest = json.loads((root / "results" / "corpus.json").read_text())
    assert manifest["tokenizer"]["vocab_size"] == 50257 and manifest["tokenizer"]["bos_id"] == 50256

    assert lm_saes(root, "--pretrained", str(root / "released")) == 0
    summary = json.loads((root / "results" / "saes.json").read_text())
    assert summary["run"]["pretrained"] == str(root / "released") and "train_sequences" not in summary["run"]
    for layer in range(N_LAYERS):
        m = summary[f"L{layer}"]
        assert m["hook_name"] == f"blocks.{layer}.hook_resid_pre" and m["d_sae"] == 128
        assert m["l0"] == 8 and m["n_tokens"] == 8 * 31 and 0 <= m["dead_fraction"] < 1  # TopK: exactly k
        saved, released = load_sae(root / "saes" / f"L{layer}", device="cpu"), load_sae(root / "released" / f"L{layer}")
        torch.testing.assert_close(saved.W_dec, released.W_dec, rtol=0, atol=0)
    cards = json.loads((root / "results" / "feature_cards.json").read_text())
    assert sorted(cards) == [f"L{layer}" for layer in range(N_LAYERS)] and all(len(c) == 5 for c in cards.values())

    assert main(["induction", "--model", str(root / "model"), "--saes", str(root / "saes"), "--params",
                 str(root / "params.yaml"), "--corpus", str(root / "data" / "corpus" / "heldout_tokens.npy"),
                 "--out", str(root / "results")]) == 0
    res = root / "results"
    heads = pd.read_csv(res / "heads.csv")
    assert sorted(zip(heads["layer"], heads["head"])) == [(layer, h) for layer in range(N_LAYERS)
                                                          for h in range(N_HEADS)]
    hyp = pd.read_csv(res / "hypotheses.csv")
    assert sorted(zip(hyp["layer"], hyp["head"])) == [(layer, h) for layer in range(N_LAYERS) for h in range(N_HEADS)]
    channels = pd.read_csv(res / "channels.csv")
    assert set(channels["layer"]) <= set(range(N_LAYERS))
    metrics = json.loads((res / "metrics.json").read_text())
    assert {"H1", "H2", "n_channels_tested", "controls"} <= set(metrics)
    assert metrics["layers_resolved"] == list(range(N_LAYERS)) and metrics["max_residual"] < 1e-3  # exact
    assert metrics["H1"]["n_tih"] + metrics["H2"]["n_non_tih"] == N_LAYERS * N_HEADS
    assert {metrics["H1"]["answer"].split()[0], metrics["H2"]["answer"].split()[0]} <= {"yes", "no", "untestable"}


def test_params_entry_and_layers(profile, tmp_path):
    """A pretrained_saes entry keyed by the model's source (the spec lm-model converted) picks the release and its
    layers; `all` trains every layer."""
    root = profile
    params = {**PARAMS, "pretrained_saes": {str(root / "gpt2"): {"release": str(root / "released"), "layers": [1]}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert lm_saes(root, "--params", str(tmp_path / "params.yaml")) == 0
    summary = json.loads((root / "results" / "saes.json").read_text())
    assert sorted(k for k in summary if k != "run") == ["L1"] and summary["run"]["pretrained"] == str(root / "released")

    assert lm_saes(root) == 0  # no entry, no --pretrained: trains lm_saes.layers = all
    summary = json.loads((root / "results" / "saes.json").read_text())
    assert sorted(k for k in summary if k != "run") == ["L0", "L1"] and "train_sequences" in summary["run"]


def test_profile_defaults_and_hub_route(profile, monkeypatch, capsys):
    """The committed gpt2-small entry is the released gpt2-small-res-jb at every layer; offline, the dvc command
    (`--model gpt2-small`) stops at once, naming the hub and the local alternative."""
    assert Params().pretrained_saes["gpt2-small"] == PretrainedSAEConfig("gpt2-small-res-jb", "all")
    monkeypatch.setattr(devices, "hub_reachable", lambda timeout=3.0: False)
    assert lm_saes(profile, model="gpt2-small") == 2
    assert "cannot reach the Hugging Face hub" in capsys.readouterr().err
    assert main(["lm-model", "--model", "gpt2-small", "--out", str(profile / "hub_model")]) == 2
    assert "cannot reach the Hugging Face hub" in capsys.readouterr().err and not (profile / "hub_model").exists()


@pytest.mark.parametrize("text, key", [
    ("profile:\n  language_models: [gpt3]\n", "`profile.language_models[0]` must be one of ['smollm2', 'gpt2-small']"),
    ("pretrained_saes:\n  gpt2-small: {layers: all}\n", "`pretrained_saes.gpt2-small.release` must be given"),
    ("pretrained_saes:\n  gpt2-small: {release: r, layers: [3, 3]}\n", "`pretrained_saes.gpt2-small.layers`"),
    ("lm_saes:\n  layers: every\n", "must be one of ['all'], got 'every'"),
])
def test_bad_profile_params(tmp_path, text, key):
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_params(tmp_path / "p.yaml")
