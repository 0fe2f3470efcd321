
import pytest
import torch

from fra.engine import resolve
from fra.engine.inputs import tokenize
from fra.errors import FRAError
from fra.models import gpt2_tokenizer
from tests.conftest import make_model, make_sae


@pytest.mark.parametrize(
    "hook, message",
    [
        ("blocks.1.attn.hook_z", "output of a layer"),
        ("blocks.1.hook_attn_out", "output of a layer"),
        ("blocks.1.hook_mlp_out", "output of a layer"),
        ("blocks.0.hook_resid_post", "output of a layer"),
        ("blocks.0.hook_resid_pre", "attention input of layer 0, not of layer 1"),
        ("blocks.0.ln1.hook_normalized", "attention input of layer 0, not of layer 1"),
        ("embed.hook_embed", "does not read the residual stream entering"),
    ],
)
def test_sae_on_wrong_hook_is_refused_with_reason(model, hook, message):
    with pytest.raises(FRAError, match=message) as err:
        resolve(model, make_sae(hook), torch.zeros(1, 4, dtype=torch.long), layer=1)
    assert "blocks.1.hook_resid_pre" in str(err.value)  # names the fix


def test_ln1_sae_on_unnormalised_model_is_refused():
    with pytest.raises(FRAError, match="no ln1"):
        resolve(make_model(None), make_sae("blocks.1.ln1.hook_normalized"), torch.zeros(1, 4, dtype=torch.long), 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layer": 2}, r"layer 2 is out of range: the model has layers 0\.\.1"),
        ({"layer": -1}, "layer -1 is out of range"),
        ({"layer": 1, "heads": (4,)}, r"out of range: the model has heads 0\.\.3"),
        ({"layer": 1, "heads": ()}, "out of range"),
    ],
)
def test_layer_and_head_ranges(model, sae, kwargs, message):
    with pytest.raises(FRAError, match=message):
        resolve(model, sae, torch.zeros(1, 4, dtype=torch.long), **kwargs)


def test_d_in_mismatch(model):
    with pytest.raises(FRAError, match="d_in=16 does not match the model's d_model=32"):
        resolve(model, make_sae(d_in=16), torch.zeros(1, 4, dtype=torch.long), 1)


def test_nonlinear_sae_normalisation_is_refused(model, sae):
    sae.cfg.normalize_activations = "constant_norm_rescale"
    with pytest.raises(FRAError, match="not linear"):
        resolve(model, sae, torch.zeros(1, 4, dtype=torch.long), 1)


def test_token_shape_and_context_length(model, sae):
    with pytest.raises(FRAError, match="exceed the model's context n_ctx=16"):
        resolve(model, sae, torch.zeros(1, 17, dtype=torch.long), 1)
    with pytest.raises(FRAError, match="non-empty"):
        resolve(model, sae, torch.zeros(1, 0, dtype=torch.long), 1)


def test_text_errors():
    model = make_model(d_vocab=50257, n_ctx=8)
    with pytest.raises(FRAError, match="no tokenizer"):
        tokenize(model, "hello")
    model.set_tokenizer(gpt2_tokenizer())
    for empty in ("", "   "):
        with pytest.raises(FRAError, match="text is empty"):
            tokenize(model, empty)
    with pytest.raises(FRAError, match="exceed the model's context n_ctx=8"):
        tokenize(model, "one two three four five six seven eight nine ten")
    assert tokenize(model, "one two").shape == (1, 3)  # BOS prepended


def test_unsupported_attention_is_refused(model, sae):
    model.cfg.use_logn_attn = True
    with pytest.raises(FRAError, match="use_logn_attn"):
        resolve(model, sae, torch.zeros(1, 4, dtype=torch.long), 1)


@pytest.mark.parametrize("setting, value, message", [
    ("use_qk_norm", True, "QK-norm"),
    ("attn_types", ["global", "local"], "local"),
    ("use_split_qkv_input", True, "use_split_qkv_input"),
    ("use_attn_in", True, "use_attn_in"),
])
def test_attention_the_engine_cannot_decompose_is_refused_before_work(model, sae, setting, value, message):
    setattr(model.cfg, setting, value)
    with pytest.raises(FRAError, match=message) as err:
        resolve(model, sae, torch.zeros(1, 4, dtype=torch.long), 1)
    assert "Supported:" in str(err.value)


def test_text_outside_a_word_level_vocabulary_names_the_words():
    from fra.config import WorldConfig
    from fra.world.corpus import world_tokenizer

    model = make_model(d_vocab=WorldConfig().d_vocab, n_ctx=16)
    model.set_tokenizer(world_tokenizer(WorldConfig()))
    with pytest.raises(FRAError, match=r"outside its vocabulary: \['hello', 'world'\]"):
        tokenize(model, "c03m1 hello world")
    assert tokenize(model, "c03m1 f12").shape == (1, 3)
