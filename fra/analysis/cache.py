"""One model pass per probe batch: the attention inputs of every resolved layer, kept for the whole study.

Discovery, held-out evaluation, the negative controls and the causal test all resolve the same
probe batches; :class:`ProbeCache` runs the model once per batch (to the deepest layer, reading
every layer's SAE input, LN scale and scores together, :func:`fra.engine.inputs.read_layers`) and
hands the same inputs to each of them. Memory (kept on the model's device for the whole study): per
probe sequence and layer ``pos * d_model + n_heads * pos^2`` floats.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from jaxtyping import Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.probes import Probes
from fra.engine.inputs import AttentionInputs, read_layers
from fra.errors import FRAError

Batch = tuple[Int[Tensor, "seq pos"], Tensor, Tensor, Tensor, np.ndarray]  # tokens, seq, query, target, group


class ProbeCache:
    """Attention inputs of ``saes``' layers for every batch of ``batch_size`` sequences of each probe set seen.

    ``keep=False`` keeps nothing: every call runs the model again, one pass per batch and layer (the path
    before this cache, kept for :mod:`fra.analysis.bench`).
    """

    def __init__(self, model: HookedTransformer, saes: dict[int, SAE], batch_size: int, keep: bool = True):
        self.model, self.saes, self.batch_size, self.keep = model, saes, batch_size, keep
        self._store: dict[int, tuple[Probes, list[dict[int, AttentionInputs]]]] = {}

    def check(self, batch_size: int, saes: dict[int, SAE]) -> None:
        """Refuse a cache built for another batch size (batches, and the shuffled-keys control, would differ) or layers."""
        if batch_size != self.batch_size or not set(saes) <= set(self.saes):
            raise FRAError(f"the probe cache holds batches of {self.batch_size} for layers {sorted(self.saes)}, not "
                           f"batches of {batch_size} for layers {sorted(saes)}; build it with the same channels.batch_size and SAEs")

    def batches(self, probes: Probes) -> Iterator[tuple[Batch, dict[int, AttentionInputs]]]:
        """``(probe batch, inputs per layer)`` for every batch of ``probes``; the model runs on first use only."""
        if not self.keep:
            for batch in probes.batches(self.batch_size):
                yield batch, {layer: read_layers(self.model, {layer: sae}, batch[0])[layer] for layer, sae in self.saes.items()}
            return
        key = id(probes)
        if key not in self._store:
            self._store[key] = (probes, [read_layers(self.model, self.saes, batch[0])
                                         for batch in probes.batches(self.batch_size)])
        yield from zip(probes.batches(self.batch_size), self._store[key][1])
