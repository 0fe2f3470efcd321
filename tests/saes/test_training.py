import numpy as np
import pytest
import torch
from sae_lens import SAE

from fra.config import ToySAEConfig, ToyTrainConfig, WorldConfig
from fra.saes import load_sae, validate_sae
from fra.saes.training import feature_cards, sae_activations, sae_metrics, train_sae
from fra.world.corpus import generate, token_classes, token_names
from fra.world.train import build_model

WORLD = WorldConfig(n_classes=6, class_size=3, n_filler=10, n_conceptual=3, seq_len=32, segment_min=4, segment_max=6,
                    gap_max=4, lead_max=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model = build_model(WORLD, ToyTrainConfig(n_layers=2, n_heads=2, d_model=16, d_mlp=32, steps=2, warmup_steps=0)).eval()
    tokens = generate(WORLD, 200, seed=0).tokens
    cfg = ToySAEConfig(expansion=2, k=4.0, training_tokens=4096, batch_size_tokens=512, eval_sequences=20)
    out = tmp_path_factory.mktemp("saes") / "L1"
    return model, train_sae(model, tokens, 1, cfg, out), out, tokens


def test_sae_loads_back_with_saelens(trained):
    model, sae, out, _ = trained
    for loaded in (SAE.load_from_disk(str(out)), load_sae(out, device="cpu")):
        assert loaded.cfg.metadata.hook_name == "blocks.1.hook_resid_pre"
        assert loaded.cfg.d_sae == 32 and loaded.cfg.d_in == 16
        assert torch.equal(loaded.W_dec, sae.W_dec)
        validate_sae(loaded, model, 1)


def test_metrics_and_cards(trained):
    model, sae, _, tokens = trained
    x, f, x_hat = sae_activations(model, sae, tokens[:20])
    m = sae_metrics(x, f, x_hat)
    assert m["n_tokens"] == 20 * 32 and 0 <= m["dead_fraction"] <= 1 and m["l0"] > 0
    cards = feature_cards(f, tokens[:20], token_names(WORLD), token_classes(WORLD), 3)
    assert len(cards) == 32
    for c in cards:
        if c["freq"] > 0:
            assert sum(s for _, s in c["top_current"]) <= 1.0001 and len(c["top_previous"]) <= 3


def test_metrics_on_known_reconstructions():
    x = torch.randn(100, 4)
    perfect = sae_metrics(x, torch.ones(100, 3), x)
    assert perfect["variance_explained"] == pytest.approx(1.0) and perfect["l0"] == 3 and perfect["dead_fraction"] == 0
    mean_only = sae_metrics(x, torch.zeros(100, 3), x.mean(0).expand_as(x))
    assert mean_only["variance_explained"] == pytest.approx(0.0, abs=1e-6) and mean_only["dead_fraction"] == 1


def test_cards_find_current_and_previous_token_features():
    world = WORLD
    tokens = generate(world, 10, seed=1).tokens
    cls = torch.from_numpy(token_classes(world))
    prev = torch.cat([torch.zeros(10, 1, dtype=torch.long), tokens[:, :-1]], 1)
    f = torch.stack([(cls[tokens] == 2).float(), (cls[prev] == 4).float() * (torch.arange(32) > 0),
                     (tokens == 0).float(), (cls[tokens] == -1).float()], -1).flatten(0, 1)
    cards = feature_cards(f, tokens, token_names(world), token_classes(world), 3)
    assert cards[0]["kind"] == "current:c02" and cards[0]["current_class"] == ["c02", 1.0]
    assert cards[1]["kind"] == "previous:c04" and cards[1]["previous_class"] == ["c04", 1.0]
    assert cards[2]["kind"] == "current:BOS" and cards[3]["kind"] == "current:filler"
