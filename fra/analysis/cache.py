"""One model pass per probe batch: the attention inputs of every resolved layer, kept for the whole study.

Discovery, held-out evaluation, the negative controls and the causal test all resolve the same
probe batches; :class:`ProbeCache` runs the model once per batch (to the deepest layer, reading
every layer's SAE input, LN scale and scores together, :func:`fra.engine.inputs.read_layers`) and
hands the same inputs to each of them. Each batch is encoded once per SAE (its active features are kept)
and each SAE feature projected once per layer (:class:`fra.engine.resolver.Projections`). Memory (kept on
the model's device for the whole study): per probe sequence and layer ``pos * d_model + n_heads * pos^2``
floats and ``2 * pos * K`` for the active features, plus ``2 * d_sae * n_heads * d_head`` per SAE and layer
for the projections. :meth:`ProbeCache.resolved` also keeps the resolved batches of the last (SAE, layer,
probe set) asked for, so a search's discovery and its evaluation on the discovery probes resolve each batch once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from sae_lens import SAE
from torch import Tensor
from transformer_lens import HookedTransformer

from fra.analysis.probes import Probes
from fra.config import EngineConfig
from fra.engine import FRA, resolve
from fra.engine.inputs import AttentionInputs, read_layers
from fra.engine.resolver import ActiveFeatures, Projections, encode
from fra.errors import FRAError

Batch = tuple[Int[Tensor, "seq pos"], Tensor, Tensor, Tensor, np.ndarray]  # tokens, seq, query, target, group


@dataclass(eq=False)
class Resolved:
    """One resolved probe batch and its induction queries (``seq``, ``query``, ``target``, ``group``); ``mass`` is each
    query's total |score| terms at its target per head, kept once a search has computed it."""

    resolved: FRA
    seq: Tensor
    query: Tensor
    target: Tensor
    group: np.ndarray
    mass: Float[Tensor, "query head"] | None = None
    term_mass: Float[Tensor, "term query head"] | None = None  # ``mass`` split into term groups (channels.TERM_GROUPS)


class ProbeCache:
    """Attention inputs of ``saes``' layers for every batch of ``batch_size`` sequences of each probe set seen.

    ``keep=False`` keeps nothing: every call runs the model again, one pass per batch and layer, and resolves from
    scratch (the path before this cache, kept for :mod:`fra.analysis.bench`); ``keep_resolved=False`` keeps the model
    passes and active features but resolves every batch on every call, projecting its features again.
    """

    def __init__(self, model: HookedTransformer, saes: dict[int, SAE], batch_size: int, keep: bool = True,
                 keep_resolved: bool = True):
        self.model, self.saes, self.batch_size, self.keep = model, saes, batch_size, keep
        self.keep_resolved = keep and keep_resolved
        self._store: dict[int, tuple[Probes, list[dict[int, AttentionInputs]]]] = {}
        self._resolved: tuple[tuple, list[Resolved]] = ((), [])
        self._features: dict[tuple[int, int, int, int], ActiveFeatures] = {}  # (id(sae), layer, id(probes), batch)
        self._projections: dict[tuple[int, int], Projections] = {}  # (id(sae), layer)
        self._held: dict[int, SAE] = {}

    def check(self, batch_size: int, saes: dict[int, SAE]) -> None:
        """Refuse a cache built for another batch size (batches, and the shuffled-keys control, would differ) or
        layers."""
        if batch_size != self.batch_size or not set(saes) <= set(self.saes):
            raise FRAError(f"the probe cache holds batches of {self.batch_size} for layers {sorted(self.saes)}, not "
                           f"batches of {batch_size} for layers {sorted(saes)}; build it with the "
                           "same channels.batch_size and SAEs")

    def batches(self, probes: Probes) -> Iterator[tuple[Batch, dict[int, AttentionInputs]]]:
        """``(probe batch, inputs per layer)`` for every batch of ``probes``; the model runs on first use only."""
        if not self.keep:
            for batch in probes.batches(self.batch_size):
                yield batch, {layer: read_layers(self.model, {layer: sae}, batch[0])[layer]
                              for layer, sae in self.saes.items()}
            return
        key = id(probes)
        if key not in self._store:
            self._store[key] = (probes, [read_layers(self.model, self.saes, batch[0])
                                         for batch in probes.batches(self.batch_size)])
        yield from zip(probes.batches(self.batch_size), self._store[key][1])

    def resolved(self, sae: SAE, layer: int, probes: Probes, engine: EngineConfig,
                 shuffle_seed: int | None = None) -> Iterator[Resolved]:
        """Every batch of ``probes`` resolved at ``layer`` by ``sae`` (:class:`Resolved`).

        ``shuffle_seed`` shuffles each batch's keys (:meth:`fra.engine.FRA.with_shuffled_keys`, one permutation per
        batch index, wherever it is resolved). The batches of the last call that ran to its end are kept (unless
        ``keep_resolved`` is false), so asking again for the same SAE, layer, probes, engine and seed resolves nothing.
        """
        key = (sae, layer, probes, engine, shuffle_seed)
        held_key = self._resolved[0]
        if self.keep_resolved and len(held_key) == len(key) and all(
                a is b if isinstance(a, (SAE, Probes)) else a == b for a, b in zip(held_key, key)):
            yield from self._resolved[1]
            return
        self._resolved = ((), [])  # one probe set's batches held at a time
        out = []
        for n, ((tokens, seq, query, target, group), inputs) in enumerate(self.batches(probes)):
            resolved = resolve(self.model, sae, tokens, layer, cfg=engine, inputs=inputs[layer],
                          features=self.features(sae, layer, probes, n, inputs[layer]),
                          projections=self.projections(sae, layer, inputs[layer].center))
            if shuffle_seed is not None:
                resolved = resolved.with_shuffled_keys(torch.Generator().manual_seed(shuffle_seed * 1_000_003 + n))
            batch = Resolved(resolved, seq, query, target, group)
            if self.keep_resolved:
                out.append(batch)
            yield batch
        if self.keep_resolved:
            self._resolved = (key, out)

    def features(self, sae: SAE, layer: int, probes: Probes, n: int, inputs: AttentionInputs) -> ActiveFeatures | None:
        """Batch ``n``'s active features, encoded once and kept with the model passes (None when not keeping)."""
        if not self.keep:
            return None
        self._held[id(sae)] = sae  # held, so that its id stays its own while the cache lives
        key = (id(sae), layer, id(probes), n)
        if key not in self._features:
            self._features[key] = encode(sae, inputs.sae_in)
        return self._features[key]

    def projections(self, sae: SAE, layer: int, center: bool) -> Projections | None:
        """The layer's feature projections for every head, kept with the resolved batches (None when not keeping)."""
        if not self.keep_resolved:
            return None
        if (id(sae), layer) not in self._projections:
            heads = tuple(range(self.model.cfg.n_heads))
            self._projections[id(sae), layer] = Projections(self.model, sae, layer, heads, center)
        return self._projections[id(sae), layer]

    def fork(self, keep_resolved: bool = True) -> "ProbeCache":
        """A cache sharing this one's model passes and active features, with its own projections and resolved batches
        (for :mod:`fra.analysis.bench`: every path timed from the same inputs)."""
        other = ProbeCache(self.model, self.saes, self.batch_size, self.keep, keep_resolved)
        other._store, other._features, other._held = self._store, self._features, self._held
        return other
