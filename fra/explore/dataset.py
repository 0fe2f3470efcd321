"""One model's channel statistics (``channels.csv``) as a sortable page with examples.

Per head the page lists the top channels by support and by induction score (plus every channel
flagged ``is_cih``), with every CSV column; each channel gets the corpus contexts where its
contribution ``FRA[i, j, a, b]`` is largest in |value| (query and key context).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jaxtyping import Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.features import context
from fra.analysis.schema import CHANNELS
from fra.config import EngineConfig
from fra.engine.resolver import resolve
from fra.errors import FRAError

REQUIRED = ["layer", "head", "query_feature", "key_feature", "support"]  # of CHANNELS
INDUCTION = ["channel_induction_heldout", "channel_induction_discovery"]
Channel = tuple[int, int, int]  # (head, query feature, key feature)


def read_channels(path: str | Path) -> pd.DataFrame:
    """``channels.csv`` with at least the REQUIRED columns (extra columns are kept)."""
    path = Path(path)
    if not path.exists():
        raise FRAError(f"{path} does not exist; build it first (the channels stage writes results/<model>/channels.csv)")
    return CHANNELS.check(pd.read_csv(path), path, REQUIRED)


def induction_score(df: pd.DataFrame) -> pd.Series:
    """The held-out channel induction score where present, else the discovery one (NaN without either)."""
    score = pd.Series(np.nan, index=df.index)
    for c in reversed(INDUCTION):
        if c in df.columns:
            score = df[c].where(df[c].notna(), score)
    return score


def shown_rows(df: pd.DataFrame, per_head: int) -> pd.DataFrame:
    """Per (layer, head): the top ``per_head`` channels by support, by induction score, and all ``is_cih``."""
    df = df.assign(_ind=induction_score(df))
    keep = []
    for _, g in df.groupby(["layer", "head"], sort=True):
        keep += list(g.nlargest(per_head, "support").index) + list(g.dropna(subset="_ind").nlargest(per_head, "_ind").index)
        if "is_cih" in g.columns:
            keep += list(g.index[g["is_cih"].astype(str).str.lower().isin(["true", "1"])])
    return df.loc[sorted(set(keep))].drop(columns="_ind")


def channel_examples(
    model: HookedTransformer,
    sae: SAE,
    tokens: Int[Tensor, "seq pos"],
    layer: int,
    channels: list[Channel],
    n: int = 3,
    batch_size: int = 8,
    cfg: EngineConfig = EngineConfig(),
) -> dict[Channel, list[tuple[float, int, int, int]]]:
    """Per channel, up to ``n`` ``(value, seq, query, key)`` with the largest |FRA[i, j, a, b]| on ``tokens``.

    Values come from :meth:`fra.engine.FRA.channel_pairs`, one small product per channel.
    """
    heads = sorted({h for h, _, _ in channels})
    found: dict[Channel, list[tuple[float, int, int, int]]] = {c: [] for c in channels}
    if not heads:
        return found
    for s0 in range(0, len(tokens), batch_size):
        fra = resolve(model, sae, tokens[s0:s0 + batch_size], layer, tuple(heads), cfg)
        for h, a, b in channels:
            qa, kb, v = fra.channel_pairs(heads.index(h), a, b)  # (seq, pos, slot) rows, values [m_q, m_k]
            if v.numel() == 0:
                continue
            top = v.abs().flatten().topk(min(n, v.numel())).indices
            for r, c in zip((top // v.shape[1]).tolist(), (top % v.shape[1]).tolist()):
                if v[r, c] != 0:
                    found[(h, a, b)].append((float(v[r, c]), s0 + int(qa[r, 0]), int(qa[r, 1]), int(kb[c, 1])))
            found[(h, a, b)] = sorted(found[(h, a, b)], key=lambda e: -abs(e[0]))[:n]
    return found


def dataset_payload(df: pd.DataFrame, examples: dict[tuple[int, Channel], list] | None, strs: list[list[str]] | None,
                    name: str, before: int = 8, after: int = 2) -> dict:
    """Rows (all columns), and per row its examples ``[value, distance, key context, query context]``."""
    rows = df.astype(object).where(df.notna(), None).values.tolist()
    ex = {}
    if examples is not None:
        for r, (layer, head, a, b) in enumerate(df[["layer", "head", "query_feature", "key_feature"]].itertuples(index=False)):
            ex[r] = [[v, i - j, context(strs[s], j, before, after), context(strs[s], i, before, after)]
                     for v, s, i, j in examples.get((int(layer), (int(head), int(a), int(b))), [])]
    return {"model": name, "columns": list(df.columns), "rows": rows, "examples": ex if examples is not None else None,
            "induction_columns": [c for c in INDUCTION if c in df.columns]}


def load_corpus(path: str | Path, model: HookedTransformer, n_seqs: int, seq_len: int) -> Tensor:
    """Token sequences ``[n, pos]`` from a ``.npy`` array of token ids or a text file (tokenized and chunked)."""
    path = Path(path)
    if not path.exists():
        raise FRAError(f"corpus {path} does not exist; pass a .npy of token ids [n, pos] or a .txt file")
    if path.suffix == ".npy":
        tokens = torch.from_numpy(np.load(path).astype(np.int64))
        if tokens.ndim != 2:
            raise FRAError(f"{path} holds an array of shape {tokens.shape}; expected token ids [n, pos]")
        return tokens[:n_seqs, :seq_len]
    if model.tokenizer is None:
        raise FRAError(f"{path} is text but the model has no tokenizer; pass token ids as a .npy file")
    ids = model.tokenizer(path.read_text(), add_special_tokens=False)["input_ids"]  # BOS is added per chunk
    body = seq_len - 1
    chunks = [ids[s:s + body] for s in range(0, len(ids) - body + 1, body)][:n_seqs]
    if not chunks:
        raise FRAError(f"{path} has fewer than {body} tokens; use a longer text or a smaller --seq-len")
    bos = model.tokenizer.bos_token_id
    return torch.tensor([[bos, *c] for c in chunks])

