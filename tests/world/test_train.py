import pytest
import torch

import fra.world.train as train_module
from fra import repro
from fra.config import ToyTrainConfig, WorldConfig
from fra.models import load_model, save_hooked
from fra.world.corpus import CONCEPT, TOKEN, generate
from fra.world.train import build_model, curriculum_data, evaluate, fused, fused_loss, train

WORLD = WorldConfig(n_classes=6, class_size=3, n_filler=10, n_conceptual=3, seq_len=32, segment_min=4, segment_max=6,
                    gap_max=4, lead_max=2)


@pytest.mark.parametrize("positions", ["shortformer", "standard"])
@pytest.mark.parametrize("d_mlp", [0, 64])  # attention-only models train through fused_loss
def test_training_reduces_heldout_loss(positions, d_mlp):
    cfg = ToyTrainConfig(n_layers=2, n_heads=2, d_model=32, d_mlp=d_mlp, steps=60, batch_size=16, lr=3e-3,
                         warmup_steps=5, eval_every=30, positional_embedding_type=positions, curriculum_steps=0)
    model = build_model(WORLD, cfg)
    history = train(model, generate(WORLD, 300, seed=0), generate(WORLD, 40, seed=1), cfg)
    assert [h["step"] for h in history] == [0, 30, 60]
    assert history[-1]["heldout_loss"] < history[0]["heldout_loss"] - 0.3
    assert not model.training


@pytest.mark.parametrize("d_mlp", [0, 16])  # fused and TransformerLens losses
def test_same_seed_same_model(monkeypatch, d_mlp):
    """Twice the same weights, the second time with torch's NaN fill of new tensors on (no unwritten memory read)."""
    cfg = ToyTrainConfig(n_layers=2, n_heads=2, d_model=16, d_mlp=d_mlp, steps=5, batch_size=4, warmup_steps=1,
                         curriculum_steps=0)
    a, b = (build_model(WORLD, cfg) for _ in range(2))
    data, held = generate(WORLD, 20, seed=0), generate(WORLD, 5, seed=1)
    train(a, data, held, cfg)
    monkeypatch.setattr(repro, "FILL_UNWRITTEN", True)
    train(b, data, held, cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # bitwise: one process, same threads


def test_saved_model_round_trips_with_world_tokenizer(tmp_path):
    cfg = ToyTrainConfig(n_layers=2, n_heads=2, d_model=16, d_mlp=16, steps=2, warmup_steps=0, curriculum_steps=0)
    model = build_model(WORLD, cfg).eval()
    save_hooked(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m", device="cpu")
    assert loaded.cfg.positional_embedding_type == "shortformer"
    assert loaded.to_str_tokens("c01m2 f03 c05m0") == ["BOS", "c01m2", "f03", "c05m0"]
    tokens = generate(WORLD, 3, seed=2).tokens
    assert torch.allclose(loaded(tokens), model(tokens), atol=1e-5)
    m = evaluate(loaded, generate(WORLD, 4, seed=3))
    assert set(m) == {"heldout_loss", "acc_token_repeat", "acc_concept_repeat", "acc_random"}


def test_curriculum_batches_come_first_and_hold_token_repeats_only(monkeypatch):
    cfg = ToyTrainConfig(n_layers=2, n_heads=2, d_model=16, d_mlp=0, steps=6, batch_size=4, warmup_steps=1,
                         eval_every=6, curriculum_steps=4)
    curriculum = curriculum_data(WORLD, cfg)
    assert (len(curriculum.tokens) == 16 and not (curriculum.label == CONCEPT).any()
            and (curriculum.label == TOKEN).any())
    assert curriculum_data(WORLD, ToyTrainConfig(curriculum_steps=0)) is None
    model = build_model(WORLD, cfg)
    seen = []
    monkeypatch.setattr(train_module, "fused_loss",
                        lambda m, tokens: seen.append(tokens.clone()) or fused_loss(m, tokens))
    data = generate(WORLD, 20, seed=0)
    train(model, data, generate(WORLD, 5, seed=1), cfg, curriculum)
    rows = {tuple(r) for r in curriculum.tokens.tolist()}
    assert [all(tuple(r) in rows for r in batch.tolist()) for batch in seen] == [True] * 4 + [False] * 2


@pytest.mark.parametrize("positions", ["shortformer", "standard"])
@torch.enable_grad()
def test_fused_loss_equals_transformer_lens_loss_and_gradients(positions):
    cfg = ToyTrainConfig(n_layers=2, n_heads=4, d_model=32, d_mlp=0, positional_embedding_type=positions)
    model = build_model(WORLD, cfg)
    assert fused(model) and not fused(build_model(WORLD, ToyTrainConfig(d_model=32, d_mlp=16)))
    gen = torch.Generator().manual_seed(1)
    for p in model.parameters():  # no default (unit / zero) LN weights or biases
        p.data += 0.1 * torch.randn(p.shape, generator=gen)
    tokens = generate(WORLD, 6, seed=2).tokens
    want = model(tokens, return_type="loss")
    want_grads = torch.autograd.grad(want, list(model.parameters()))
    got = fused_loss(model, tokens)
    got_grads = torch.autograd.grad(got, list(model.parameters()))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # rtol 1e-4 (~840 eps): gradients back through softmax and LN sums in other kernels; atol 1e-6 for the key biases,
    # whose true gradient is 0 (the softmax ignores them): both sides are rounding noise of ~1e-9 there
    for (name, _), g, w in zip(model.named_parameters(), got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6, msg=name)
