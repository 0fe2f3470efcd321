"""The compiled ground-truth model: its heads, SAE and FRA channels are what the construction says."""

import pytest
import torch

from fra.analysis.heads import head_scores
from fra.config import HeadScoreConfig
from fra.engine import resolve
from fra.saes.loading import validate_sae
from fra.world.compiled import (
    EXPECTED,
    EXPECTED_CHANNEL,
    LAYER,
    PREVIOUS_TOKEN_HEAD,
    compiled_features,
    compiled_model,
    compiled_world,
)
from fra.world.corpus import token_classes, token_names
from fra.world.probes import world_probes

WORLD = compiled_world()


@pytest.fixture(scope="module")
def compiled():
    return compiled_model(WORLD)


@pytest.fixture(scope="module")
def probes():
    token, concept, control = world_probes(WORLD, n_seq=16, seed=0)
    return {"token": token, "concept": concept, "control": control}


def target_attention(model, p, head: int) -> torch.Tensor:
    _, cache = model.run_with_cache(p.tokens, names_filter=f"blocks.{LAYER}.attn.hook_pattern")
    return cache[f"blocks.{LAYER}.attn.hook_pattern"][p.seq, head, p.query, p.target]


def n_matching_keys(p, by_class: bool) -> torch.Tensor:
    """Keys j <= query whose previous token is the query's token (or another member of its conceptual class)."""
    cls = torch.from_numpy(token_classes(WORLD))
    prev, q = p.tokens[p.seq, :-1], p.tokens[p.seq, p.query][:, None]  # prev[:, j - 1] precedes key j
    same = ((cls[prev] == cls[q]) & (cls[q] >= 0) & (cls[q] < WORLD.n_conceptual) & (prev != q) if by_class
            else prev == q)
    return (same & (torch.arange(1, p.tokens.shape[1]) <= p.query[:, None])).sum(1)


def test_head_scores_match_the_construction(compiled):
    model, _ = compiled
    df = head_scores(model, HeadScoreConfig()).set_index(["layer", "head"])
    for head, kind in EXPECTED.items():  # the concept-only head is no token induction head
        assert (df.loc[head, "induction_min"] >= 0.9) if kind == "token" else (df.loc[head, "induction"] < 0.2)
    assert df.positional_control.max() < 0.2 and df.loc[(1, 2), "duplicate_token"] >= 0.4
    assert df.loc[PREVIOUS_TOKEN_HEAD, "previous_token"] >= 0.9


def test_induction_heads_attend_to_their_targets(compiled, probes):
    model, _ = compiled
    token, concept = target_attention(model, probes["token"], 0), target_attention(model, probes["concept"], 1)
    # each splits its attention evenly over the keys that follow earlier matches; the target is one of them
    for attn, m in ((token, n_matching_keys(probes["token"], False)),
                    (concept, n_matching_keys(probes["concept"], True))):
        assert (m >= 1).all() and (attn * m).min() >= 0.9
        assert attn[m == 1].mean() >= 0.9
    assert concept.mean() >= 0.5
    assert target_attention(model, probes["control"], 1).mean() < 0.2  # token-only classes have no class direction
    assert target_attention(model, probes["concept"], 0).mean() < 0.2  # the token head ignores concept repeats


def test_sae_features_are_the_labelled_basis(compiled, probes):
    model, sae = compiled
    validate_sae(sae, model, LAYER)
    labels, names = compiled_features(WORLD), token_names(WORLD)
    assert len(labels) == sae.cfg.d_sae == len(set(labels))
    tokens = probes["concept"].tokens
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{LAYER}.hook_resid_pre")
    x = cache[f"blocks.{LAYER}.hook_resid_pre"]
    assert (sae(x) - x).norm() / x.norm() < 1e-3
    f = sae.encode(x)
    row, cls = tokens[0].tolist(), token_classes(WORLD)
    for i in (0, 5, 30):
        prev = row[max(i - 1, 0)]
        want = {f"token:{names[row[i]]}", f"prev_token:{names[prev]}", f"pos:{i}"}
        want |= {f"class:c{cls[row[i]]:02d}"} if 0 <= cls[row[i]] < WORLD.n_conceptual else set()
        want |= {f"prev_class:c{cls[prev]:02d}"} if 0 <= cls[prev] < WORLD.n_conceptual else set()
        assert {labels[a] for a in torch.nonzero(f[0, i] > 0).flatten().tolist()} == want


@pytest.mark.parametrize("kind, head", [("token", 0), ("concept", 1)])
def test_fra_is_exact_and_names_the_planted_channel(compiled, probes, kind, head):
    model, sae = compiled
    p = probes[kind]
    fra = resolve(model, sae, p.tokens, LAYER)
    assert fra.exactness()["max_residual"] < 1e-3
    vals = fra.pairs_at(p.seq, p.query, p.target)[:, head]  # [query, K, K]
    best = vals.flatten(1).argmax(1)
    K = vals.shape[-1]
    labels = compiled_features(WORLD)
    q_feat = fra.feature_ids[p.seq, p.query, best // K]
    k_feat = fra.feature_ids[p.seq, p.target, best % K]
    q_space, k_space = EXPECTED_CHANNEL[(LAYER, head)]
    names, cls = token_names(WORLD), token_classes(WORLD)
    for qt, a, b in zip(p.tokens[p.seq, p.query].tolist(), q_feat.tolist(), k_feat.tolist()):
        value = names[qt] if kind == "token" else f"c{cls[qt]:02d}"
        assert (labels[a], labels[b]) == (f"{q_space}:{value}", f"{k_space}:{value}")


def test_token_repeats_are_predicted(compiled, probes):
    model, _ = compiled
    p = probes["token"]
    logp = model(p.tokens).log_softmax(-1)[p.seq, p.query, p.tokens[p.seq, p.target]]
    assert logp.exp().mean() > 0.5
    assert logp[n_matching_keys(p, False) == 1].exp().mean() > 0.9
