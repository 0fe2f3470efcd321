"""Bitwise-reproducible training: deterministic torch kernels for the duration of a block."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.utils.deterministic

FILL_UNWRITTEN = False  # torch's NaN fill of new tensors under deterministic algorithms (tests turn it on)


@contextmanager
def deterministic() -> Iterator[None]:
    """Use deterministic algorithms (CPU reductions otherwise vary from run to run), then restore.

    Torch also fills every new tensor with NaN under that flag, a check for kernels that read memory they
    never wrote. fra's training loops do not (tests train with the fill on and off and get the same
    weights), so the fill, ~5% of a toy training step, is off (``FILL_UNWRITTEN``).
    """
    before = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = FILL_UNWRITTEN
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.utils.deterministic.fill_uninitialized_memory = fill
