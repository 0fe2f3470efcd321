"""The chain-of-thought study end to end on a tiny random model, and the ablation against the decomposition."""

import json

import numpy as np
import pandas as pd
import torch

from fra.config import ChannelConfig, CotConfig, EngineConfig
from fra.cot import channels as ch
from fra.cot.ablation import channel_ablation
from fra.cot.anchors import forward
from fra.cot.study import run
from fra.cot.traces import Sentence, Trace
from fra.engine import resolve
from tests.conftest import kl_atol, make_model, make_sae, rounding_atol
from tests.cot.test_channels import S, _trace


def _traces(n: int) -> list[Trace]:
    out = []
    for k in range(n):
        tokens, sentence_of = _trace(k)
        spans = [(int((sentence_of == s).nonzero().min()), int((sentence_of == s).nonzero().max()) + 1)
                 for s in range(S)]
        kinds = ["problem", "problem", "instruction", "computation", "plan", "final_answer"]
        out.append(Trace(k, ("discovery", "heldout")[k % 2], tokens,
                         [Sentence(f"s{s}", kinds[s], a, b) for s, (a, b) in enumerate(spans)], "1"))
    return out


def test_ablation_loses_exactly_the_decomposition_softmax_drop():
    """In a real forward pass the head's attention without channel C is softmax(S - C): the evaluated drop."""
    model, sae = make_model(n_ctx=64, positions="rotary", seed=4), make_sae(seed=4)
    tokens, sentence_of = _trace(2)
    fra = resolve(model, sae, tokens[None], 1, heads=(3,))
    rows = ch.anchor_rows(sentence_of, S, [0, 1], 1)
    found = ch.discover(fra, rows, sentence_of, S).sort_values("abs_t", ascending=False).head(3)
    a, b = torch.tensor(found["query_feature"].to_numpy()), torch.tensor(found["key_feature"].to_numpy())
    C = fra.channel(0, a, b)[0] * torch.ones(len(tokens), len(tokens)).tril()
    logits, pattern = forward(model, tokens)
    lost, base, kl = channel_ablation(model, tokens, 1, 3, C, sentence_of, rows, (logits, pattern[1, 3]))
    sums = ch.evaluate(fra, rows, sentence_of, S, a, b)
    np.testing.assert_allclose(lost.numpy(), sums["effect"], rtol=1e-4, atol=1e-6)
    assert base > 0 and kl.shape == (3, len(tokens)) and (kl >= 0).all()
    resid = model.run_with_cache(tokens[None])[1]["blocks.1.hook_resid_pre"][0]  # the pass from layer 1 on: the same
    lost_from, base_from, kl_from = channel_ablation(model, tokens, 1, 3, C, sentence_of, rows, (logits, pattern[1, 3]),
                                                     resid)
    # layer 0 ran on 1 or 3 copies: rounded otherwise. The attention lost is base - ablated, a sum over rows x keys at
    # the scale of base; the KL moves with the logits (kl_atol)
    torch.testing.assert_close(lost_from, lost, rtol=0,
                               atol=rounding_atol(torch.tensor(base), len(rows.query) * len(tokens)))
    assert ((kl_from - kl).abs() <= kl_atol(torch.maximum(kl, kl_from), logits, model.cfg.d_model)).all()
    assert base_from == base  # bitwise: both from the same clean pattern
    for m in range(3):  # the model is causal: nothing changes before the first query the channel touches
        first = int((C[m] != 0).any(-1).nonzero().min())
        assert (kl[m, :first] < 1e-9).all() and kl[m, first:].max() > 1e-9


def test_study_runs_end_to_end_and_writes_every_table(tmp_path):
    model, saes = make_model(n_ctx=64, seed=5), {1: make_sae(seed=5)}
    traces = _traces(6)
    cfg = CotConfig(n_problems=6, n_receivers=3, n_resolved=2, n_anchors=1, max_candidates=4)
    corpus = torch.randint(1, 50, (4, 20), generator=torch.Generator().manual_seed(0))
    heads = pd.DataFrame({"layer": np.repeat([0, 1], 4), "head": np.tile(range(4), 2), "induction": 0.1,
                          "is_tih": False})
    study = run(model, saes, traces, corpus, cfg=cfg, channel_cfg=ChannelConfig(min_support=0.001, min_queries=2),
                engine=EngineConfig(), heads=heads)
    assert study.receivers["is_receiver"].sum() == 3 and len(study.receivers) == 8
    assert (study.sentences.groupby("trace")["is_anchor"].sum() == 1).all()
    assert len(study.pairs) == 6 * S * (S + 1) // 2 and study.pairs.query("i == j")["kl"].isna().all()
    assert study.metrics["resolved_heads"] == [
        f"L1H{h}" for h in study.receivers.query("layer == 1").sort_values("rank")["head"][:2]]
    c = study.channels
    assert len(c) > 0 and set(c["layer"]) == {1} and c["ablated"].sum() >= min(len(c), 2)
    assert c.loc[c["ablated"], "attention_lost_share"].notna().all() and c.loc[~c["ablated"], "kl_share"].isna().all()
    study.write(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"sentences.csv", "receivers.csv", "kinds.csv", "pairs.csv", "channels.csv",
                     "channel_features.json", "metrics.json", "trace_view.json"}
    view = json.loads((tmp_path / "trace_view.json").read_text())
    assert (view["split"] == "heldout" and len(view["sentences"]) == S
            and sum(s["anchor"] for s in view["sentences"]) == 1)
    assert len(view["vertical"]) == 2 and len(view["vertical"][0]) == 4 and len(view["vertical"][0][0]) == S
    n_channels = sum(len(r["channels"]) for r in view["resolved"])
    assert n_channels == len(c) and all(len(x["by_sentence"]) == S for r in view["resolved"] for x in r["channels"])
    # a sentence with no later query has no value: null, never 0 (nor a NaN literal)
    text = (tmp_path / "trace_view.json").read_text()
    assert "NaN" not in text
    none = [j + cfg.proximity + 1 > S - 1 for j in range(S)]
    assert all([v is None for v in x["by_sentence"]] == none for r in view["resolved"] for x in r["channels"])
    assert [s["vertical"] is None for s in view["sentences"]] == none
    assert all([v is None for v in row] == none for layer in view["vertical"] for row in layer)
    # the trace's tokens (the explorer leaves them out of its card corpus) and a card key for every channel feature
    assert view["tokens"] == traces[view["trace"]].tokens.tolist()
    for r in view["resolved"]:
        assert {f for x in r["channels"] for f in (x["query_feature"], x["key_feature"])} <= set(
            map(int, view["cards"][f"L{r['layer']}"]))
    assert json.loads((tmp_path / "metrics.json").read_text())["n_candidates"] == len(c)
