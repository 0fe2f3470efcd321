import numpy as np
import pytest
import torch

from fra.analysis.probes import Probes, concept_templates, repeated_random, repeated_text
from fra.errors import FRAError


def test_repeated_random_targets_follow_the_earlier_occurrence():
    p = repeated_random(pool=np.arange(1, 40), bos=0, n_seq=6, n_min=4, n_max=9, seed=0)
    tok = p.tokens
    assert (tok[:, 0] == 0).all() and tok.shape == (6, 19)
    # the query's token sits right before its target (earlier occurrence), and the target holds the next token
    assert (tok[p.seq, p.target - 1] == tok[p.seq, p.query]).all()
    assert (tok[p.seq, p.target] == tok[p.seq, p.query + 1]).all()
    lengths = {int((p.seq == s).sum()) + 1 for s in range(6)}
    assert len(lengths) > 1  # N varies, so the induction offset is not fixed
    assert p.groups == ["all"]


def test_same_seed_same_probes_and_batches_cover_all_queries():
    a, b = (repeated_random(np.arange(1, 40), 0, 5, 3, 6, seed=3) for _ in range(2))
    assert torch.equal(a.tokens, b.tokens)
    assert sum(len(q) for *_, q, _, _ in a.batches(2)) == len(a.query)


def test_bad_probes_are_refused():
    with pytest.raises(FRAError, match="vocabulary of at least 30"):
        repeated_random(np.arange(1, 20), 0, 2, 5, 30, seed=0)
    with pytest.raises(FRAError, match="target must be a causal key"):
        Probes("x", torch.zeros(1, 5, dtype=torch.long), torch.tensor([0]), torch.tensor([2]), torch.tensor([3]),
               np.array(["g"]))


def test_repeated_text_copies_windows_of_the_corpus():
    corpus = torch.randint(1, 30, (5, 40))
    corpus[:, 0] = 0
    p = repeated_text(corpus, bos=0, n_seq=7, n_min=4, n_max=10, seed=0)
    assert p.kind == "text_repeat" and p.tokens.shape == (7, 21)
    assert (p.tokens[p.seq, p.target - 1] == p.tokens[p.seq, p.query]).all()
    assert (p.tokens[p.seq, p.target] == p.tokens[p.seq, p.query + 1]).all()
    rows = {tuple(r.tolist()) for r in corpus[:, 1:]}
    first = p.tokens[0, 1:]
    n = int((p.seq == 0).sum()) + 1
    assert any(" ".join(map(str, first[:n].tolist())) in " ".join(map(str, r)) for r in rows)  # a real window
    with pytest.raises(FRAError, match="corpus rows"):
        repeated_text(corpus, 0, 2, 4, 30, seed=0)


def test_concept_templates_with_the_gpt2_tokenizer():
    from fra.analysis.probes import CONCEPT_PAIRS, single_token_ids
    from fra.models import gpt2_tokenizer

    tok = gpt2_tokenizer()
    p = concept_templates(tok, bos=50256, n_seq=8, seed=0)
    assert p.kind == "concept_templates" and set(p.groups) == set(CONCEPT_PAIRS)
    assert (p.tokens[p.seq, p.target] == p.tokens[p.seq, p.query + 1]).all()  # x' -> y: y follows x too
    pair_of = set()
    for pairs in CONCEPT_PAIRS.values():
        ids = single_token_ids(tok, [w for pr in pairs for w in pr])
        pair_of.update({(ids[a], ids[b]) for a, b in pairs if a in ids and b in ids})
    x, x2 = p.tokens[p.seq, p.target - 1].tolist(), p.tokens[p.seq, p.query].tolist()
    assert all((a, b) in pair_of for a, b in zip(x, x2))  # the query is the other variant of x
    offsets = set((p.query - p.target).tolist())
    assert len(offsets) > 1  # no fixed induction offset
    a = concept_templates(tok, 50256, 8, seed=0)
    assert torch.equal(a.tokens, p.tokens)
