"""Small random models and SAEs (with randomised biases) shared by the tests."""

from __future__ import annotations

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from transformer_lens import HookedTransformer, HookedTransformerConfig

torch.set_grad_enabled(False)


def make_model(
    norm: str | None = "LN",
    positions: str = "standard",
    seed: int = 0,
    n_kv_heads: int | None = None,
    d_vocab: int = 50,
    n_ctx: int = 16,
) -> HookedTransformer:
    """A 2-layer random model; LN weights/biases and Q/K biases are randomised too."""
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        n_layers=2, d_model=32, n_ctx=n_ctx, d_head=8, n_heads=4, d_vocab=d_vocab, d_mlp=64, act_fn="gelu",
        normalization_type=norm, positional_embedding_type=positions, n_key_value_heads=n_kv_heads,
        rotary_dim=8 if positions == "rotary" else None, seed=seed,
    )
    model = HookedTransformer(cfg)
    for name, p in model.named_parameters():
        if "ln" in name or name.endswith(("b_Q", "b_K", "_b_K")):
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def make_sae(hook: str = "blocks.1.hook_resid_pre", d_in: int = 32, d_sae: int = 96, seed: int = 0,
             apply_b_dec_to_input: bool = True) -> StandardSAE:
    torch.manual_seed(seed + 100)
    cfg = StandardSAEConfig(d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=apply_b_dec_to_input,
                            metadata=SAEMetadata(hook_name=hook))
    sae = StandardSAE(cfg)
    for p in sae.parameters():
        p.copy_(0.3 * torch.randn_like(p))
    return sae.eval()


@pytest.fixture
def model() -> HookedTransformer:
    return make_model()


@pytest.fixture
def sae() -> StandardSAE:
    return make_sae()
