"""Bitwise-reproducible training: deterministic torch kernels for the duration of a block."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def deterministic() -> Iterator[None]:
    """Use deterministic algorithms (CPU reductions otherwise vary from run to run), then restore."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
