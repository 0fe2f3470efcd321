"""On a CUDA GPU: the engine, the channel search and the sparse SAE step against the CPU, and a GPT-2-shaped resolve.

Marked ``cuda`` and skipped without a GPU (``scripts/gpu_check.sh`` runs them). ``FRA_TEST_DEVICE=cpu`` runs the same
comparisons CPU against CPU, which checks the tests themselves on a machine without one. Tolerances: the GPU sums in
other orders (and TF32 is off by default in torch for float32 matmuls), so values agree to float32 rounding scaled by
the number of terms, not bitwise.
"""

import os

import numpy as np
import pytest
import torch
from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from transformer_lens import HookedTransformer, HookedTransformerConfig

from fra.analysis.channels import search
from fra.analysis.probes import repeated_random
from fra.config import ChannelConfig, EngineConfig
from fra.engine import resolve
from fra.saes.random import random_sae
from fra.saes.training import FastBatchTopKTrainingSAE
from tests.conftest import make_model, make_sae
from tests.saes.test_sparse import _step

DEVICE = os.environ.get("FRA_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA GPU")]


@pytest.mark.parametrize("norm, positions", [("LN", "standard"), ("RMS", "rotary"), ("LN", "shortformer")])
def test_resolve_on_the_device_equals_the_cpu(norm, positions):
    model, sae = make_model(norm, positions, seed=1, n_ctx=32), make_sae(seed=1)
    tokens = torch.randint(0, 50, (3, 20), generator=torch.Generator().manual_seed(1))
    cpu = resolve(model, sae, tokens, 1)
    gpu = resolve(model.to(DEVICE), sae.to(DEVICE), tokens.to(DEVICE), 1)
    assert torch.equal(gpu.feature_ids.cpu(), cpu.feature_ids)  # the same features are active (ties are not expected)
    assert gpu.residual() < 1e-4
    for name, term in cpu.terms().items():
        scale = term.abs().max().item() + 1e-6
        torch.testing.assert_close(gpu.terms()[name].cpu(), term, rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_channel_search_on_the_device_gives_the_cpu_tables():
    model, sae = make_model(n_ctx=64, seed=2), make_sae(seed=2)
    disc, held = (repeated_random(np.arange(1, 50), 0, 6, 4, 12, seed=s) for s in (0, 1))
    cfg = ChannelConfig(min_support=0.003, min_queries=1, batch_size=3)
    cpu = search(model, {1: sae}, disc, held, cfg, EngineConfig()).table
    gpu = search(model.to(DEVICE), {1: sae.to(DEVICE)}, disc, held, cfg, EngineConfig()).table
    keys = ["probe", "group", "layer", "head", "query_feature", "key_feature"]
    assert len(cpu) > 0 and cpu[keys].equals(gpu[keys])
    assert (cpu["n_targets"] == gpu["n_targets"]).all()
    for col in ("support", "channel_induction_heldout", "lift_heldout", "softmax_effect"):
        np.testing.assert_allclose(gpu[col], cpu[col], rtol=1e-3, atol=1e-6, err_msg=col)


def test_gpt2_shaped_resolve_is_exact():
    """GPT-2 small's shape (d_model 768, 12 heads of 64, LayerNorm with biases) and a d_sae 24576 SAE, 128 tokens."""
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=6, d_model=768, n_ctx=1024, d_head=64, n_heads=12, d_mlp=3072,
                                  d_vocab=50257, act_fn="gelu_new", normalization_type="LN", device=DEVICE)
    model = HookedTransformer(cfg).eval()
    sae = random_sae(768, "blocks.5.hook_resid_pre", 24576, 50, seed=0).to(DEVICE)
    tokens = torch.randint(0, 50257, (2, 128), device=DEVICE)
    resolved = resolve(model, sae, tokens, 5)
    exact = resolved.exactness()
    assert exact["max_residual"] < 1e-4 * max(1.0, exact["max_abs_score"])


@pytest.mark.parametrize("n_dead", [0, 40])
@torch.enable_grad()
def test_sparse_sae_step_on_the_device_equals_the_dense_step(n_dead):
    torch.manual_seed(0)
    d_in = 32
    sae = FastBatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=4 * d_in, k=6.0, device=DEVICE,
                                                              normalize_activations="expected_average_only_in")).to(DEVICE)
    x = torch.randn(256, d_in, device=DEVICE) * 2
    dead = torch.zeros(4 * d_in, dtype=torch.bool, device=DEVICE)
    dead[torch.randperm(4 * d_in)[:n_dead]] = True
    start = sae.topk_threshold.clone()
    want, want_grads, _ = _step(sae, lambda s: BatchTopKTrainingSAE.training_forward_pass(sae, s), x, dead)
    sae.topk_threshold = start
    got, grads, _ = _step(sae, sae.training_forward_pass, x, dead)
    torch.testing.assert_close(got.loss, want.loss, rtol=1e-4, atol=1e-5)
    for name, grad in want_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-3, atol=1e-5 * grad.abs().max().item(), msg=name)
