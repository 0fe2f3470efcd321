"""Reading the pipeline's outputs that the explorers show: head scores (``heads.csv``), feature profiles
(``features.csv``), feature cards (``channel_features.json``) and the toy SAE stage's planted-class labels
(``feature_cards.json``). Each reader names its flag and the file to pass in its errors."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fra.errors import FRAError
from fra.explore.cards import PROFILE
from fra.io import read_json

HEAD_COLUMNS = ["layer", "head", "induction"]  # of heads.csv; previous_token and is_tih are shown when present


def heads_table(path: str | Path, flag: str = "--heads") -> pd.DataFrame:
    """A ``heads.csv`` of ``fra induction``: layer, head (int), induction, previous_token (float, NaN when absent),
    is_tih (bool, None when absent)."""
    path = Path(path)
    if not path.is_file():
        raise FRAError(f"{flag} {path} does not exist; pass the heads.csv written by `fra induction`")
    try:
        df = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise FRAError(f"{flag} {path} is not a readable CSV ({exc}); pass the heads.csv "
                       "written by `fra induction`") from exc
    missing = [c for c in HEAD_COLUMNS if c not in df.columns]
    if missing:
        raise FRAError(f"{flag} {path} lacks column(s) {missing}; a heads.csv needs {HEAD_COLUMNS} "
                       "(and shows previous_token, is_tih when present)")
    try:
        out = pd.DataFrame({
            "layer": pd.to_numeric(df["layer"], errors="raise").astype(int),
            "head": pd.to_numeric(df["head"], errors="raise").astype(int),
            "induction": pd.to_numeric(df["induction"], errors="raise").astype(float),
            "previous_token": (pd.to_numeric(df["previous_token"], errors="raise").astype(float)
                               if "previous_token" in df else float("nan")),
        })
    except (ValueError, TypeError) as exc:
        raise FRAError(f"{flag} {path} has non-numeric layer, head or score values ({exc})") from exc
    out["is_tih"] = df["is_tih"].astype(str).str.lower().isin(["true", "1"]) if "is_tih" in df else None
    return out


def read_heads(path: str | Path, layer: int, n_heads: int, flag: str = "--heads") -> dict[int, dict]:
    """Per head of ``layer``: ``{induction, previous_token, is_tih}`` from a ``heads.csv`` of ``fra induction``."""
    df = heads_table(path, flag)
    rows = df[df["layer"] == layer]
    if rows.empty:
        raise FRAError(f"{flag} {path} has no rows for layer {layer} (layers: {sorted(set(df['layer'].tolist()))})")
    bad = sorted(h for h in rows["head"].tolist() if not 0 <= h < n_heads)
    if bad:
        raise FRAError(f"{flag} {path} names head(s) {bad} of layer {layer}; the model has heads 0..{n_heads - 1}")

    def finite(x) -> float | None:
        return float(x) if math.isfinite(float(x)) else None

    return {int(r.head): {"induction": finite(r.induction), "previous_token": finite(r.previous_token),
                          "is_tih": None if r.is_tih is None else bool(r.is_tih)} for r in rows.itertuples()}


def induction_layer(path: str | Path, layers: list[int] | None, flag: str = "--heads") -> int:
    """Of ``layers`` (None: every layer in the file), the one with the most token induction heads (``is_tih``),
    then the strongest induction head."""
    df = heads_table(path, flag)
    df = df if layers is None else df[df["layer"].isin(layers)]
    if df.empty:
        raise FRAError(f"{flag} {path} has no heads of the layers with an SAE ({layers})")
    by = df.assign(tih=df["is_tih"].fillna(False).astype(bool).astype(int)).groupby("layer")
    rank = pd.DataFrame({"tih": by["tih"].sum(), "induction": by["induction"].max()})
    return int(rank.sort_values(["tih", "induction"], ascending=False).index[0])


def feature_label(card: dict) -> str | None:
    """A toy SAE card's planted-world label: its kind and where its activation mass sits (None for dead features).

    ``current:c11`` reads "current:c11 · 92% of its activation on current tokens of class c11 (previous: filler 3%)".
    """
    kind, cur, prev = card["kind"], card["current_class"], card["previous_class"]
    if kind == "dead":
        return None
    if kind == "mixed":
        return f"mixed · current token class {cur[0]} {cur[1]:.0%}, previous token class {prev[0]} {prev[1]:.0%}"
    side = kind.split(":")[0]
    main, other = (cur, prev) if side == "current" else (prev, cur)
    return (f"{kind} · {main[1]:.0%} of its activation on {side} tokens of class {main[0]} "
            f"({'previous' if side == 'current' else 'current'}: {other[0]} {other[1]:.0%})")


def read_labels(path: str | Path, layer: int, flag: str = "--labels") -> dict[int, str]:
    """Feature -> label from a ``feature_cards.json`` of the toy SAE stage (``{"L<layer>": [card, ...]}``)."""
    cards = read_json(path, flag)
    if not isinstance(cards, dict) or not all(isinstance(v, list) for v in cards.values()):
        raise FRAError(f'{flag} {path} is not a feature_cards.json ({{"L<layer>": [card, ...]}}, '
                       'as the toy SAE stage writes)')
    if f"L{layer}" not in cards:
        raise FRAError(f"{flag} {path} has no cards for layer {layer} (it has {sorted(cards)})")
    labels = {}
    for card in cards[f"L{layer}"]:
        try:
            label = feature_label(card)
            feature = int(card["feature"])
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            raise FRAError(f"{flag} {path}: a card of L{layer} lacks feature, kind, current_class or previous_class "
                           f"({type(exc).__name__}: {exc}); regenerate it with the toy SAE stage") from exc
        if label:
            labels[feature] = label
    return labels


def read_features(path: str | Path, flag: str = "--features") -> pd.DataFrame:
    """``features.csv`` of ``fra induction`` (layer, feature and the PROFILE columns), indexed by (layer, feature)."""
    path = Path(path)
    if not path.is_file():
        raise FRAError(f"{flag} {path} does not exist; pass the features.csv written by `fra induction`")
    df = pd.read_csv(path)
    missing = [c for c in ["layer", "feature", *PROFILE] if c not in df.columns]
    if missing:
        raise FRAError(f"{flag} {path} lacks column(s) {missing}; pass the features.csv written by `fra induction`")
    return df.set_index(["layer", "feature"])


def read_cards(path: str | Path, flag: str = "--cards") -> dict[int, dict[int, dict]]:
    """``channel_features.json`` of ``fra induction``: per layer, per feature ``{"top": [...], "neuronpedia": url}``."""
    raw = read_json(path, flag)
    try:
        return {int(k.removeprefix("L")): {int(a): c for a, c in v.items()} for k, v in raw.items()}
    except (AttributeError, ValueError) as exc:
        raise FRAError(f'{flag} {path} is not a channel_features.json ({{"L<layer>": {{feature: card}}}}, as '
                       f"`fra induction` writes) ({exc})") from exc
