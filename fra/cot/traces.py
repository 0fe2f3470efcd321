"""Reasoning traces: reasoning-gym problems as question + worked solution, split into typed sentences.

A trace is the text ``"Question: " + question + "\\nAnswer: " + solution`` (the solution is the
dataset's ``metadata["answer_cot"]``), tokenized with BOS first. Sentences end at every newline and,
inside a line, at ``.``, ``?`` or ``!`` followed by whitespace (so ``3.5`` and ``£2.50`` stay whole),
except after a title (``Ms. Johnson``) or a lone list number (``1. Calculate``).
The prefixes belong to no sentence.

Sentence kinds (``KINDS``), the first rule that applies wins:

1. **final_answer**: a solution sentence starting with ``####``, or the last solution sentence.
2. **instruction**: a question sentence starting with Give / Do not / Don't / Answer / Round / Express
   (the answer-format instructions, e.g. "Give the result as your final answer.", "Do not include units.").
3. **problem**: any other question sentence.
4. **check**: a solution sentence with a check / verify / confirm word. gsm_symbolic solutions
   rarely or never contain one, so expect this kind to be (nearly) empty there.
5. **computation**: a solution sentence with arithmetic: a digit, an operator among ``+ - * / x ×``,
   a digit (spaces allowed between), or an ``=`` next to a digit.
6. **plan**: any other solution sentence.

Problems are drawn in dataset order; those whose trace exceeds ``cot.max_tokens`` tokens or has fewer
than ``MIN_SOLUTION_SENTENCES`` solution sentences are skipped. A permutation seeded by ``cot.seed``
puts the first half (rounded up) of the kept problems in "discovery", the rest in "heldout".
The folder written holds ``traces.json`` (read back by :func:`load_traces`) and ``sentences.csv``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import reasoning_gym as rg
import torch
from jaxtyping import Int
from torch import Tensor

from fra.config import CotConfig
from fra.errors import FRAError
from fra.io import atomic_dir, write_json

KINDS = ("problem", "instruction", "plan", "computation", "check", "final_answer")
SPLITS = ("discovery", "heldout")
QUESTION, ANSWER = "Question: ", "\nAnswer: "
MIN_SOLUTION_SENTENCES = 3
DRAW_FACTOR = 4  # problems drawn at most, per problem kept
FIX = "run dvc repro cot_traces"

_END = re.compile(r"(?<=[.?!])(?=\s)|\n")
_NOT_END = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|St)|^\s*\d{1,2})\.$")
_INSTRUCTION = re.compile(r"(give|do not|don't|answer|round|express)\b", re.IGNORECASE)
_CHECK = re.compile(r"\b(check|verif|confirm)\w*", re.IGNORECASE)
_COMPUTATION = re.compile(r"\d\s*[-+*/x×]\s*\d|=\s*[£$€]?\d|\d\s*=")


@dataclass
class Sentence:
    text: str
    kind: str  # one of KINDS
    start: int  # first token of the sentence (index into Trace.tokens)
    end: int  # one past its last token


@dataclass
class Trace:
    problem: int  # index of the problem in the seeded reasoning-gym dataset
    split: str  # "discovery" or "heldout"
    tokens: Int[Tensor, " pos"]  # BOS first
    sentences: list[Sentence]
    answer: str

    @property
    def sentence_of(self) -> Int[Tensor, " pos"]:
        """The sentence index of every token; -1 for tokens outside every sentence (BOS, the "Question:" prefix)."""
        out = torch.full((len(self.tokens),), -1, dtype=torch.long)
        for n, s in enumerate(self.sentences):
            out[s.start:s.end] = n
        return out


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the sentences of ``text``, surrounding whitespace excluded."""
    spans, start = [], 0
    for m in [*_END.finditer(text), None]:
        cut = len(text) if m is None else m.start()
        if m is not None and m.group() != "\n" and _NOT_END.search(text[start:cut]):
            continue  # "Ms. Johnson", "1. Calculate"
        piece = text[start:cut]
        lo, hi = start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip())
        if hi > lo:
            spans.append((lo, hi))
        start = cut
    return spans


def sentence_kind(text: str, in_question: bool, is_last: bool) -> str:
    """The kind (one of ``KINDS``) of a sentence, by the rules of the module docstring."""
    text = text.strip()
    if not in_question:
        if text.startswith("####") or is_last:
            return "final_answer"
        if _CHECK.search(text):
            return "check"
        return "computation" if _COMPUTATION.search(text) else "plan"
    return "instruction" if _INSTRUCTION.match(text) else "problem"


def trace_text(question: str, solution: str) -> tuple[str, list[tuple[int, int, bool]]]:
    """The text the model reads and its sentences' character spans, flagged True when in the question."""
    at = len(QUESTION) + len(question) + len(ANSWER)
    spans = [(a + len(QUESTION), b + len(QUESTION), True) for a, b in split_sentences(question)]
    spans += [(a + at, b + at, False) for a, b in split_sentences(solution)]
    return QUESTION + question + ANSWER + solution, spans


def tokenize_trace(tokenizer, text: str, spans) -> tuple[Int[Tensor, " pos"], list[tuple[int, int]]]:
    """Token ids (BOS first) and each sentence's token span [start, end): the tokens overlapping its characters."""
    if tokenizer.bos_token_id is None:
        raise FRAError(f"tokenizer {tokenizer.name_or_path!r} has no BOS token; traces need one first")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    token_spans, prev = [], 0
    for a, b, *_ in spans:
        hit = [i + 1 for i, (s, e) in enumerate(offsets) if s < b and e > a]  # +1: BOS comes first
        if not hit:
            raise FRAError(f"sentence {text[a:b]!r} got no token; is the tokenizer's offset mapping broken?")
        if hit[0] < prev:
            raise FRAError(f"sentence {text[a:b]!r} shares a token with the one before it; "
                           "this tokenizer merges text across sentence boundaries")
        token_spans.append((hit[0], hit[-1] + 1))
        prev = hit[-1] + 1
    return torch.tensor([tokenizer.bos_token_id, *enc["input_ids"]], dtype=torch.long), token_spans


def build_traces(tokenizer, cfg: CotConfig) -> list[Trace]:
    """The first ``cfg.n_problems`` seeded problems that fit ``cfg.max_tokens``, split by problem."""
    n_draw = DRAW_FACTOR * cfg.n_problems
    ds = rg.create_dataset(cfg.dataset, size=n_draw, seed=cfg.seed)
    kept = []
    for problem in range(n_draw):
        if len(kept) == cfg.n_problems:
            break
        item = ds[problem]
        text, spans = trace_text(item["question"], item["metadata"]["answer_cot"])
        n_solution = sum(not q for *_, q in spans)
        if n_solution < MIN_SOLUTION_SENTENCES:
            continue
        tokens, token_spans = tokenize_trace(tokenizer, text, spans)
        if len(tokens) > cfg.max_tokens:
            continue
        sentences, n_seen = [], 0
        for (a, b, in_question), (start, end) in zip(spans, token_spans):
            n_seen += not in_question
            kind = sentence_kind(text[a:b], in_question, is_last=not in_question and n_seen == n_solution)
            sentences.append(Sentence(text[a:b], kind, start, end))
        kept.append(Trace(problem, "", tokens, sentences, str(item["answer"])))
    if len(kept) < cfg.n_problems:
        raise FRAError(f"only {len(kept)} of the first {n_draw} {cfg.dataset} problems (seed {cfg.seed}) fit "
                       f"cot.max_tokens={cfg.max_tokens}; raise cot.max_tokens or lower cot.n_problems "
                       f"(needs {cfg.n_problems})")
    order = np.random.default_rng(cfg.seed).permutation(len(kept))
    discovery = set(order[:math.ceil(len(kept) / 2)].tolist())
    for n, trace in enumerate(kept):
        trace.split = SPLITS[n not in discovery]
    return kept


def write_traces(traces: list[Trace], folder: Path) -> None:
    """``folder``/traces.json (read by :func:`load_traces`) and sentences.csv (one row per sentence), atomically."""
    with atomic_dir(folder) as tmp:
        write_json(tmp / "traces.json", [
            {"problem": t.problem, "split": t.split, "answer": t.answer, "tokens": t.tokens.tolist(),
             "sentences": [{"text": s.text, "kind": s.kind, "start": s.start, "end": s.end} for s in t.sentences]}
            for t in traces])
        with open(tmp / "sentences.csv", "w", newline="") as f:
            rows = csv.writer(f)
            rows.writerow(["trace", "problem", "split", "sentence", "kind", "start", "end", "n_tokens", "text"])
            for n, t in enumerate(traces):
                for m, s in enumerate(t.sentences):
                    rows.writerow([n, t.problem, t.split, m, s.kind, s.start, s.end, s.end - s.start, s.text])


def load_traces(folder: str | Path) -> list[Trace]:
    """The traces :func:`write_traces` wrote to ``folder``; a clear error with the fix if missing or malformed."""
    path = Path(folder) / "traces.json"
    if not path.is_file():
        raise FRAError(f"no traces at {path}; {FIX}")
    try:
        traces = [Trace(int(t["problem"]), t["split"], torch.tensor(t["tokens"], dtype=torch.long),
                        [Sentence(s["text"], s["kind"], int(s["start"]), int(s["end"])) for s in t["sentences"]],
                        str(t["answer"])) for t in json.loads(path.read_text())]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise FRAError(f"{path} is malformed ({type(exc).__name__}: {exc}); {FIX}") from exc
    for t in traces:
        bad = [s for s in t.sentences if s.kind not in KINDS or not 0 <= s.start < s.end <= len(t.tokens)]
        if t.split not in SPLITS or t.tokens.ndim != 1 or bad:
            raise FRAError(f"{path} is malformed (trace of problem {t.problem}: bad split, tokens or sentence); {FIX}")
    return traces
