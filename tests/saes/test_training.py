import json

import pytest
import torch
from sae_lens import SAE
from sae_lens.saes.batchtopk_sae import BatchTopK

from fra import repro
from fra.config import ToySAEConfig, ToyTrainConfig, WorldConfig
from fra.errors import FRAError
from fra.saes import load_sae, validate_sae
from fra.saes.cache import cache_resid_pre
from fra.saes.training import KthBatchTopK, sae_metrics, shuffled_batches, train_layers, train_sae
from fra.world.corpus import generate
from fra.world.train import build_model

WORLD = WorldConfig(n_classes=6, class_size=3, n_filler=10, n_conceptual=3, seq_len=32, segment_min=4, segment_max=6,
                    gap_max=4, lead_max=2)
CFG = ToySAEConfig(expansion=2, k=4.0, training_tokens=40960, batch_size_tokens=512, eval_sequences=20,
                   cache_batch_size=16)


@pytest.fixture(scope="module")
def model():
    return build_model(WORLD, ToyTrainConfig(n_layers=3, n_heads=2, d_model=16, d_mlp=32, steps=2, warmup_steps=0,
                                             curriculum_steps=0)).eval()


@pytest.fixture(scope="module")
def trained(model, tmp_path_factory):
    tokens = generate(WORLD, 200, seed=0).tokens
    out = tmp_path_factory.mktemp("saes")
    summary, feats = train_layers(model, tokens, tokens[:20], [1, 2], CFG, out, "cpu")
    return summary, feats, out


@pytest.mark.parametrize("skip_bos", [True, False])
def test_one_pass_caches_every_layer_as_run_with_cache(model, skip_bos):
    tokens = generate(WORLD, 10, seed=3).tokens
    cached = cache_resid_pre(model, tokens, [1, 2], batch_size=3, skip_bos=skip_bos)
    _, ref = model.run_with_cache(tokens)
    start = 1 if skip_bos else 0
    for layer in (1, 2):
        expected = ref[f"blocks.{layer}.hook_resid_pre"][:, start:].flatten(0, 1)
        torch.testing.assert_close(cached[layer], expected, rtol=1e-5, atol=1e-5)


def test_shuffled_batches_are_seeded_epochs():
    acts = torch.arange(10.0)[:, None]
    first = [b.flatten().tolist() for _, b in zip(range(6), shuffled_batches(acts, 3, seed=0, device="cpu"))]
    for epoch in (first[:3], first[3:]):  # 3 batches of 3 per epoch, the 10th row left over
        rows = sum(epoch, [])
        assert len(set(rows)) == 9
    assert first[:3] != first[3:]  # reshuffled
    again = [b.flatten().tolist() for _, b in zip(range(6), shuffled_batches(acts, 3, seed=0, device="cpu"))]
    other = [b.flatten().tolist() for _, b in zip(range(6), shuffled_batches(acts, 3, seed=1, device="cpu"))]
    assert again == first and other != first


def test_saes_load_back_with_saelens(model, trained):
    summary, _, out = trained
    for layer in (1, 2):
        for loaded in (SAE.load_from_disk(str(out / f"L{layer}")), load_sae(out / f"L{layer}", device="cpu")):
            assert loaded.cfg.metadata.hook_name == f"blocks.{layer}.hook_resid_pre"
            assert loaded.cfg.d_sae == 32 and loaded.cfg.d_in == 16
            validate_sae(loaded, model, layer)
        assert summary[f"L{layer}"]["d_sae"] == 32


def test_metrics_leave_bos_out_and_features_cover_every_position(trained):
    summary, feats, _ = trained
    for layer in (1, 2):
        m = summary[f"L{layer}"]
        assert m["n_tokens"] == 20 * 31 and 0 <= m["dead_fraction"] <= 1 and m["l0"] > 0
        assert m["variance_explained"] > 0  # trained: better than the mean
        assert feats[layer].shape == (20 * 32, 32)


def test_training_is_reproducible(tmp_path, monkeypatch):
    """Twice the same SAE, the second time with torch's NaN fill of new tensors on (no kernel reads unwritten
    memory)."""
    acts = torch.randn(2048, 8)
    cfg = ToySAEConfig(expansion=2, k=2.0, training_tokens=2048, batch_size_tokens=256)
    a = train_sae(acts, "blocks.1.hook_resid_pre", cfg, tmp_path / "a")
    monkeypatch.setattr(repro, "FILL_UNWRITTEN", True)
    b = train_sae(acts, "blocks.1.hook_resid_pre", cfg, tmp_path / "b")
    assert torch.equal(a.W_dec, b.W_dec) and torch.equal(a.W_enc, b.W_enc)  # bitwise: one process, the same threads
    cfg_json = (tmp_path / "a" / "cfg.json").read_text()
    assert list(json.loads(cfg_json)) == sorted(json.loads(cfg_json))  # SAELens's own order varies by process
    with pytest.raises(FRAError, match="fewer than one batch"):
        train_sae(acts[:100], "blocks.1.hook_resid_pre", cfg, tmp_path / "c")


def test_metrics_on_known_reconstructions():
    x = torch.randn(100, 4)
    perfect = sae_metrics(x, torch.ones(100, 3), x)
    assert perfect["variance_explained"] == pytest.approx(1.0) and perfect["l0"] == 3 and perfect["dead_fraction"] == 0
    mean_only = sae_metrics(x, torch.zeros(100, 3), x.mean(0).expand_as(x))
    assert mean_only["variance_explained"] == pytest.approx(0.0, abs=1e-6) and mean_only["dead_fraction"] == 1


# shift -2.5: fewer positives than k * batch
@pytest.mark.parametrize("k, shift", [(4.0, 0.0), (2.5, 0.0), (4.0, -2.5)])
@torch.enable_grad()
def test_kth_batch_topk_equals_sae_lens_batch_topk_with_gradients(k, shift):
    x = (torch.randn(64, 96, generator=torch.Generator().manual_seed(0)) + shift).requires_grad_()
    y = x.detach().clone().requires_grad_()
    got, want = KthBatchTopK(k)(x), BatchTopK(k)(y)  # selections of the same values, no arithmetic: bitwise
    assert torch.equal(got, want) and 0 < int((got > 0).sum()) <= int(k * 64)
    weight = torch.randn(64, 96)
    (got * weight).sum().backward()
    (want * weight).sum().backward()
    assert torch.equal(x.grad, y.grad)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_kth_batch_topk_sampled_bound_keeps_exactly_the_top_values(scale):
    """Large batches take the sampled bound; skewed values (a few huge ones) make the bound miss and fall back."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(512, 300, generator=gen) * scale
    x[0, :50] = 1e3  # a few outliers above everything
    got, want = KthBatchTopK(7.0)(x), BatchTopK(7.0)(x)
    assert torch.equal(got, want) and int((got > 0).sum()) == 7 * 512


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kth_batch_topk_keeps_every_tie_at_the_cut(dtype):
    x = (torch.randn(256, 64, generator=torch.Generator().manual_seed(2)) * 4).round().to(dtype)  # many exact ties
    n = 3 * 256
    cut = x.relu().flatten().sort(descending=True).values[n - 1]
    got = KthBatchTopK(3.0)(x)
    assert cut > 0 and torch.equal(got, torch.where(x >= cut, x, 0.0).relu()) and int((got > 0).sum()) > n
