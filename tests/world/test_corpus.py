import hashlib

import pytest
import torch

from fra.config import Params, WorldConfig, from_dict
from fra.errors import ConfigError
from fra.world.corpus import (
    BOS,
    CLASS_ONLY,
    CONCEPT,
    NONE,
    TOKEN,
    episode_batch,
    generate,
    ground_truth,
    token_classes,
    world_tokenizer,
    write_corpus,
)

SMALL = dict(n_classes=6, class_size=3, n_filler=10, n_conceptual=3, seq_len=40, segment_min=4, segment_max=6,
             gap_max=4, lead_max=2, n_train=20, n_heldout=5)


@pytest.fixture
def cfg():
    return WorldConfig(**SMALL)


def _md5s(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_md5(cfg, tmp_path):
    for run in ("a", "b"):
        write_corpus(cfg, tmp_path / run / "corpus", tmp_path / run / "gt.json")
    assert _md5s(tmp_path / "a") == _md5s(tmp_path / "b")
    write_corpus(WorldConfig(**{**SMALL, "seed": 1}), tmp_path / "c" / "corpus", tmp_path / "c" / "gt.json")
    a, c = _md5s(tmp_path / "a"), _md5s(tmp_path / "c")
    assert a["train_tokens.npy"] != c["train_tokens.npy"] and a["gt.json"] == c["gt.json"]


@pytest.mark.parametrize("kind", ["mixed", "token", "concept"])
def test_labels_point_at_the_token_to_predict(cfg, kind):
    b = generate(cfg, 50, seed=3, kind=kind)
    cls = torch.from_numpy(token_classes(cfg))
    assert (b.tokens[:, 0] == BOS).all() and (b.tokens[:, 1:] != BOS).all()
    q = (b.label != NONE).nonzero()
    assert len(q) > 0
    row, pos = q[:, 0], q[:, 1]
    label, key = b.label[row, pos], b.key[row, pos]
    assert (key <= pos).all() and ((b.key == -1) == (b.label == NONE)).all()
    target, at_key = b.tokens[row, pos + 1], b.tokens[row, key]
    exact = label != CLASS_ONLY
    assert (target[exact] == at_key[exact]).all()  # TOKEN and CONCEPT: the key holds the exact next token
    assert (cls[target[~exact]] == cls[at_key[~exact]]).all() and (target[~exact] != at_key[~exact]).all()
    query, earlier = b.tokens[row, pos], b.tokens[row, key - 1]
    assert (query[label == TOKEN] == earlier[label == TOKEN]).all()
    concept = label == CONCEPT
    assert (query[concept] != earlier[concept]).all()  # x' is another member of x's class ...
    assert (cls[query[concept]] == cls[earlier[concept]]).all()
    assert (cls[query[concept]] < cfg.n_conceptual).all()  # ... of a conceptual class
    if kind == "token":
        assert not (b.label == CONCEPT).any()
    if kind == "concept":
        assert not (b.label == TOKEN).any()


def test_token_only_classes_are_never_swapped(cfg):
    b = generate(cfg, 200, seed=0)
    cls = torch.from_numpy(token_classes(cfg))
    swapped = b.label == CLASS_ONLY  # next token is a swapped member
    row, pos = swapped.nonzero().unbind(1)
    assert (cls[b.tokens[row, pos + 1]] < cfg.n_conceptual).all()


def test_no_repeat_batch_has_no_targets(cfg):
    b = episode_batch(cfg, "none", 10, seed=0)
    assert (b.label == NONE).all() and (b.key == -1).all()


def test_ground_truth_consistent(cfg):
    gt = ground_truth(cfg)
    assert len(gt["tokens"]) == cfg.d_vocab == 1 + 6 * 3 + 10
    assert [c["kind"] for c in gt["classes"]] == ["conceptual"] * 3 + ["token_only"] * 3
    members = [t for c in gt["classes"] for t in c["member_ids"]]
    assert sorted(members) == list(range(1, 19))
    for c in gt["classes"]:
        for t, name in zip(c["member_ids"], c["members"]):
            assert gt["tokens"][t] == {"id": t, "name": name, "role": "member", "class": c["class"]}
    assert gt["tokens"][0]["role"] == "bos" and {t["role"] for t in gt["tokens"][19:]} == {"filler"}


def test_tokenizer_matches_ground_truth(cfg):
    tok, gt = world_tokenizer(cfg), ground_truth(cfg)
    names = [t["name"] for t in gt["tokens"][1:]]
    assert tok(" ".join(names))["input_ids"] == list(range(cfg.d_vocab))


@pytest.mark.parametrize(
    "override, key",
    [
        ({"seq_len": 20, "segment_max": 8, "gap_max": 4}, "world.seq_len"),  # episode longer than the sequence
        ({"segment_max": 8, "n_conceptual": 3}, "world.segment_max"),  # too few conceptual classes for distinct swaps
        ({"segment_min": 7, "segment_max": 6}, "world.segment_min"),
        ({"n_conceptual": 6}, "world.n_conceptual"),  # no token-only control classes left
        ({"class_size": 1}, "world.class_size"),
        ({"filler_prob": 1.5}, "world.filler_prob"),
    ],
)
def test_inconsistent_world_refused(override, key):
    with pytest.raises(ConfigError, match=f"`{key}`"):
        WorldConfig(**{**SMALL, **override})


def test_params_sections_validate():
    with pytest.raises(ConfigError, match="`toy_train.d_model`"):
        from_dict(Params, {"toy_train": {"d_model": 130, "n_heads": 4}})
    with pytest.raises(ConfigError, match="`toy_saes.training_tokens`"):
        from_dict(Params, {"toy_saes": {"training_tokens": 10, "batch_size_tokens": 100}})
    with pytest.raises(ConfigError, match="`heads.offsets`"):
        from_dict(Params, {"heads": {"offsets": [1]}})
    with pytest.raises(ConfigError, match="`toy_train.positional_embedding_type`"):
        from_dict(Params, {"toy_train": {"positional_embedding_type": "rotary"}})
