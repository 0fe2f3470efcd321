"""Small random models and SAEs (with randomised biases) shared by the tests.

``FRA_TEST_THREADS=n`` runs the tests on n torch threads (``torch.set_num_threads(n)`` at import; unset, torch's
default of one per core), e.g. ``FRA_TEST_THREADS=1 .venv/bin/python -m pytest tests/engine``. Float sums may change
with the thread count and with the CPU's kernels (``ATEN_CPU_CAPABILITY=default``, ``avx2`` or ``avx512`` picks them),
so a test that compares two computation orders allows a tolerance set from the dtype's eps and the values' scale
(:func:`rounding_atol`, :func:`kl_atol`); bitwise equality is asserted only where the same kernels run in the same
order (one function called twice on the same inputs, a gather or copy, a seeded rerun on the same threads) or the
arithmetic is exact (small integers, a single addend).
"""

from __future__ import annotations

import os

import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig
from sae_lens.saes.sae import SAEMetadata
from transformer_lens import HookedTransformer, HookedTransformerConfig

torch.set_grad_enabled(False)
if threads := os.environ.get("FRA_TEST_THREADS"):
    if not threads.isdigit() or int(threads) < 1:
        raise pytest.UsageError(f"FRA_TEST_THREADS must be a number of torch threads >= 1, got {threads!r}")
    torch.set_num_threads(int(threads))


def rounding_atol(scale: torch.Tensor, n_terms: int, k: float = 4.0) -> float:
    """Absolute tolerance for a float value computed in two orders (batched or not, in other blocks, by other
    kernels or thread counts) as a sum of about ``n_terms`` addends: ``k * eps * sqrt(n_terms) * max|scale|``, with
    ``scale`` the values (the partial sums are rounded at their scale). The roundings add up as a random walk over
    the addends; k = 4 leaves room over the worst seen with AVX512, AVX2 and default kernels on 1 and 2 threads."""
    return k * torch.finfo(scale.dtype).eps * n_terms**0.5 * float(scale[scale.isfinite()].abs().max())


def kl_atol(kl: torch.Tensor, logits: torch.Tensor, n_terms: int) -> torch.Tensor:
    """Elementwise tolerance for KL(p || q) from two passes whose logits are rounded otherwise, each by up to
    ``d = rounding_atol(logits, n_terms)``: to first order a KL moves by at most ``3 d sqrt(2 KL)`` (Pinsker's bound
    on |p - q|_1, and Var_p log(p/q) ~ 2 KL), so small KLs are only as exact as the logits, not to a relative
    tolerance."""
    d = rounding_atol(logits, n_terms)
    return 3 * d * (2 * kl.clamp(min=0)).sqrt() + d * d


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
