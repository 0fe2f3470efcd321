"""``fra lm-saes`` end to end on a tiny random Llama-style model (RMSNorm, rotary, GQA) saved as a user's folder."""

import json

import numpy as np
import pytest
import yaml

from fra.cli import main
from fra.models import save_hooked
from fra.saes import load_sae, validate_sae
from tests.conftest import make_model

LM_SAES = {"layers": [1], "expansion": 2, "k": 4.0, "training_tokens": 20480, "batch_size_tokens": 256,
           "eval_sequences": 8, "n_cards": 5, "cache_batch_size": 8, "device": "cpu"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    model = make_model(norm="RMS", positions="rotary", n_kv_heads=2, d_vocab=50, n_ctx=16)
    save_hooked(model, root / "model")
    rng = np.random.default_rng(0)
    corpus = root / "corpus"
    corpus.mkdir()
    for split, n in (("train", 200), ("heldout", 10)):
        tokens = rng.integers(1, 50, (n, 16)).astype(np.int32)
        tokens[:, 0] = 0  # BOS
        np.save(corpus / f"{split}_tokens.npy", tokens)
        np.save(corpus / f"{split}_sources.npy", np.zeros(n, dtype=np.int16))
    return model, root


def run(root, lm_saes, corpus=None):
    (root / "params.yaml").write_text(yaml.safe_dump({"lm_saes": lm_saes}))
    return main(["lm-saes", "--params", str(root / "params.yaml"), "--model", str(root / "model"),
                 "--corpus", str(corpus or root / "corpus"), "--out", str(root / "saes"),
                 "--results", str(root / "res")])


def test_trains_reports_and_cards(setup):
    model, root = setup
    assert run(root, LM_SAES) == 0
    sae = load_sae(root / "saes" / "L1", device="cpu")
    validate_sae(sae, model, 1)
    summary = json.loads((root / "res" / "saes.json").read_text())
    m = summary["L1"]
    assert m["hook_name"] == "blocks.1.hook_resid_pre" and m["d_sae"] == 64
    assert m["n_tokens"] == 8 * 15 and m["variance_explained"] > 0 and m["l0"] > 0  # held-out, BOS left out
    assert summary["run"] == {**summary["run"], "device": "cpu", "train_sequences": 200, "eval_sequences": 8}
    cards = json.loads((root / "res" / "feature_cards.json").read_text())["L1"]
    assert 0 < len(cards) <= 5
    for card in cards.values():
        assert card["freq"] > 0 and card["top"] and all(act > 0 for act, *_ in card["top"])


@pytest.mark.parametrize("change, message", [
    ({"layers": [2]}, "exceed the model's 2 layers"),
    ({"batch_size_tokens": 8192, "training_tokens": 8192}, "fewer than one batch"),
])
def test_bad_settings_are_named(setup, capsys, change, message):
    _, root = setup
    assert run(root, {**LM_SAES, **change}) != 0
    assert message in capsys.readouterr().err


def test_corpus_of_another_tokenizer_is_refused(setup, capsys, tmp_path):
    _, root = setup
    tokens = np.full((4, 16), 60, dtype=np.int32)  # ids beyond the model's 50
    for split in ("train", "heldout"):
        np.save(tmp_path / f"{split}_tokens.npy", tokens)
        np.save(tmp_path / f"{split}_sources.npy", np.zeros(4, dtype=np.int16))
    assert run(root, LM_SAES, corpus=tmp_path) != 0
    assert "beyond the model's vocabulary" in capsys.readouterr().err
    assert run(root, LM_SAES, corpus=tmp_path / "missing") != 0
    assert "build the corpus first" in capsys.readouterr().err
