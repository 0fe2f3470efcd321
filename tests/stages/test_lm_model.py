"""``fra lm-model``: a model converted once into fra's format reads back bit for bit, and answers to its source."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from fra.cli import main
from fra.models import load_model, model_source, save_hooked
from fra.stages import lm_model
from tests.conftest import make_model


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A user's Hugging Face GPT-2 folder (converted on load, offline GPT-2 tokenizer) and a Llama-style fra folder
    (RMS, rotary, GQA) without a tokenizer."""
    root = tmp_path_factory.mktemp("sources")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=50257)
    GPT2LMHeadModel(config).eval().save_pretrained(root / "gpt2")
    save_hooked(make_model(norm="RMS", positions="rotary", n_kv_heads=2, d_vocab=50257, n_ctx=32), root / "llama")
    return root


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_converted_model_is_the_same_model(sources, tmp_path, name):
    spec = str(sources / name)
    assert main(["lm-model", "--model", spec, "--out", str(tmp_path / "model")]) == 0
    want, got = load_model(spec, "cpu"), load_model(tmp_path / "model", "cpu")
    tokens = torch.randint(0, 50257, (2, 24), generator=torch.Generator().manual_seed(0))
    if name == "gpt2":
        assert torch.equal(got.to_tokens(lm_model.CHECK_TEXT), want.to_tokens(lm_model.CHECK_TEXT))
    with torch.inference_mode():
        assert torch.equal(got(tokens), want(tokens))
    assert model_source(tmp_path / "model") == spec and model_source("gpt2-small") == "gpt2-small"


def test_a_copy_that_reads_back_differently_is_not_kept(sources, tmp_path, monkeypatch, capsys):
    def corrupt(model, path, source=None):
        with torch.no_grad():
            model.W_U[0, 0] += 1.0
        return save_hooked(model, path, source)

    monkeypatch.setattr(lm_model, "save_hooked", corrupt)
    assert main(["lm-model", "--model", str(sources / "gpt2"), "--out", str(tmp_path / "model")]) == 2
    assert "does not read back" in capsys.readouterr().err and not (tmp_path / "model").exists()
