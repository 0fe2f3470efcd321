"""The chain-of-thought trace corpus: sentence splitting, kinds, token spans, seeded build and split, files."""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
import torch

from fra.config import CotConfig
from fra.cot.traces import (
    KINDS,
    build_traces,
    load_traces,
    sentence_kind,
    split_sentences,
    tokenize_trace,
    trace_text,
    write_traces,
)
from fra.errors import FRAError
from fra.models.tokenizers import gpt2_tokenizer

QUESTION = ("A carpenter works for 2 weeks every month and for 6 days every week. If he gets paid £195 every day, "
            "how much does he earn if he works for a year? Give the result as your final answer. "
            "Do not include units.")
SOLUTION = ("The carpenter works for 6 days every week and works for 2 weeks every month so he works for "
            "6 days/week * 2 weeks/month = 12 days/month\n"
            "If he earns £195 every day he then earns £195/day * 12 days/month = £2340/month\n"
            "A year is equal to 12 months so every year he earns £2340/month * 12 months/year = £28080\n"
            "#### 28080")
KINDS_OF_EXAMPLE = ["problem", "problem", "instruction", "instruction",
                    "computation", "computation", "computation", "final_answer"]
CFG = CotConfig(seed=0, n_problems=6, max_tokens=256)


def texts(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def record(trace) -> tuple:
    return (trace.problem, trace.split, trace.answer, trace.tokens.tolist(), trace.sentences)


@pytest.fixture(scope="module")
def traces():
    return build_traces(gpt2_tokenizer(), CFG)


def test_split_sentences_on_the_example():
    assert texts(QUESTION) == [
        "A carpenter works for 2 weeks every month and for 6 days every week.",
        "If he gets paid £195 every day, how much does he earn if he works for a year?",
        "Give the result as your final answer.", "Do not include units."]
    assert texts(SOLUTION) == SOLUTION.split("\n")


@pytest.mark.parametrize("text, expected", [
    ("It costs £2.50 each. He buys 3.5 kg!", ["It costs £2.50 each.", "He buys 3.5 kg!"]),
    ("Pay $1.5.Then 2.0 more", ["Pay $1.5.Then 2.0 more"]),  # no whitespace after the dot: no split
    ("  Ms. Johnson has 4.\n\n 1. Add 2 + 2 = 4  \n", ["Ms. Johnson has 4.", "1. Add 2 + 2 = 4"]),
    ("a\nb. c? d", ["a", "b.", "c?", "d"]),
    (" \n\n ", []),
])
def test_split_sentences_keeps_decimals_and_drops_whitespace(text, expected):
    assert texts(text) == expected


@pytest.mark.parametrize("n, sentence", enumerate(texts(QUESTION) + texts(SOLUTION)))
def test_every_sentence_of_the_example_gets_its_kind(n, sentence):
    in_question, is_last = n < 4, n == 7
    assert sentence_kind(sentence, in_question, is_last) == KINDS_OF_EXAMPLE[n]


@pytest.mark.parametrize("text, in_question, is_last, kind", [
    ("Round your answer to the nearest cent.", True, False, "instruction"),
    ("Express the result in dollars.", True, False, "instruction"),
    ("She has 3 + 4 apples.", True, False, "problem"),  # arithmetic in the question is still the problem
    ("We check that 7 - 3 = 4.", False, False, "check"),
    ("Verify the total.", False, False, "check"),
    ("So she pays 3 x 4 dollars.", False, False, "computation"),
    ("Isabella finds 7 × 2 eggs.", False, False, "computation"),
    ("The total is = 12 eggs.", False, False, "computation"),
    ("Let x be the amount Sam gets.", False, False, "plan"),
    ("Emma finds 7 eggs.", False, False, "plan"),
    ("So the answer is 5 + 3 = 8.", False, True, "final_answer"),  # the last solution sentence
    ("#### 12", False, False, "final_answer"),
])
def test_sentence_kind_rules(text, in_question, is_last, kind):
    assert kind in KINDS
    assert sentence_kind(text, in_question, is_last) == kind


def test_trace_text_prefixes_belong_to_no_sentence():
    text, spans = trace_text(QUESTION, SOLUTION)
    assert text == f"Question: {QUESTION}\nAnswer: {SOLUTION}"
    assert [text[a:b] for a, b, _ in spans] == texts(QUESTION) + texts(SOLUTION)
    assert [q for *_, q in spans] == [True] * 4 + [False] * 4
    covered = "".join(text[a:b] for a, b, _ in spans)
    assert "Question:" not in covered and "Answer:" not in covered


def test_token_spans_cover_exactly_the_sentence_text():
    tok = gpt2_tokenizer()
    text, spans = trace_text(QUESTION, SOLUTION)
    tokens, token_spans = tokenize_trace(tok, text, spans)
    assert tokens[0] == tok.bos_token_id == 50256 and tokens.dtype == torch.long
    assert tok.decode(tokens[1:]) == text
    for (a, b, _), (start, end) in zip(spans, token_spans):
        assert tok.decode(tokens[start:end]).strip() == text[a:b]
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(token_spans, token_spans[1:]))
    assert token_spans[0][0] > 1  # BOS and "Question:" lie outside every sentence


class OneToken:
    """A tokenizer that reads the whole text as one token."""

    def __init__(self, bos: int | None = 0):
        self.bos_token_id, self.name_or_path = bos, "one-token"

    def __call__(self, text, add_special_tokens, return_offsets_mapping):
        return {"input_ids": [1], "offset_mapping": [(0, len(text))]}


@pytest.mark.parametrize("bos, match", [(0, "shares a token"), (None, "no BOS")])
def test_tokenize_trace_rejects_shared_tokens_and_missing_bos(bos, match):
    with pytest.raises(FRAError, match=match):
        tokenize_trace(OneToken(bos), "One. Two.", [(0, 4, True), (5, 9, True)])


def test_build_traces_is_seeded_and_splits_by_problem(traces):
    assert [record(t) for t in build_traces(gpt2_tokenizer(), CFG)] == [record(t) for t in traces]
    other = build_traces(gpt2_tokenizer(), replace(CFG, seed=1))
    assert [t.answer for t in other] != [t.answer for t in traces]
    assert len(traces) == CFG.n_problems and len({t.problem for t in traces}) == CFG.n_problems
    split = {s: {t.problem for t in traces if t.split == s} for s in ("discovery", "heldout")}
    assert len(split["discovery"]) == 3 and len(split["heldout"]) == 3 and not split["discovery"] & split["heldout"]


def test_build_traces_respects_max_tokens(traces):
    cap = 140
    kept = build_traces(gpt2_tokenizer(), replace(CFG, max_tokens=cap))
    assert all(len(t.tokens) <= cap for t in kept)
    assert len(kept) == CFG.n_problems
    assert set(range(kept[-1].problem)) - {t.problem for t in kept}, "expected some long problem to be skipped"


def test_every_trace_has_problem_computation_and_final_answer(traces):
    for t in traces:
        kinds = [s.kind for s in t.sentences]
        assert {"problem", "computation", "final_answer"} <= set(kinds) <= set(KINDS)
        assert kinds[-1] == "final_answer" and kinds.count("final_answer") == 1
        assert t.sentences[-1].text == f"#### {t.answer}"
        assert t.tokens[0] == 50256 and t.sentence_of[0] == -1 and t.sentence_of[-1] == len(t.sentences) - 1
        assert all(s.end <= n.start for s, n in zip(t.sentences, t.sentences[1:]))


def test_write_and_load_round_trip(traces, tmp_path):
    write_traces(traces, tmp_path / "traces")
    assert [record(t) for t in load_traces(tmp_path / "traces")] == [record(t) for t in traces]
    with open(tmp_path / "traces" / "sentences.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(t.sentences) for t in traces)
    assert rows[0]["kind"] == traces[0].sentences[0].kind and rows[0]["text"] == traces[0].sentences[0].text
    assert int(rows[0]["n_tokens"]) == traces[0].sentences[0].end - traces[0].sentences[0].start


@pytest.mark.parametrize("content", [None, "not json", '[{"problem": 0}]'])
def test_load_traces_missing_or_malformed_names_the_fix(tmp_path, content):
    if content is not None:
        (tmp_path / "traces.json").write_text(content)
    with pytest.raises(FRAError, match="dvc repro cot_traces"):
        load_traces(tmp_path if content is not None else tmp_path / "missing")


def test_build_traces_too_small_max_tokens_names_the_keys():
    with pytest.raises(FRAError, match=r"cot\.max_tokens.*cot\.n_problems"):
        build_traces(gpt2_tokenizer(), replace(CFG, max_tokens=20))
