"""Argument types shared by the stages: a bad flag is refused by argparse, naming the flag (exit code 2)."""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from fra.errors import FRAError


def _number(kind, text: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def at_least(low: int):
    """An integer >= ``low``."""
    def parse(text: str) -> int:
        value = _number(int, text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def non_negative(text: str) -> float:
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def share(text: str) -> float:
    """A number in (0, 1]."""
    value = _number(float, text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


positive = at_least(1)


def token_ids(path: str, n: int, flag: str) -> torch.Tensor:
    """The first ``n`` sequences of a ``.npy`` array of token ids ``[seq, pos]`` named by ``flag``."""
    try:
        ids = np.load(path)
    except (OSError, ValueError) as exc:
        raise FRAError(f"{flag} {path} is not a readable .npy array ({exc}); pass token ids [seq, pos]") from exc
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise FRAError(f"{flag} {path} holds a {ids.dtype} array of shape {ids.shape}; expected token ids [seq, pos]")
    return torch.from_numpy(ids.astype(np.int64))[:n]
