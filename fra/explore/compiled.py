"""The compiled ground-truth model (:mod:`fra.world.compiled`) as the explorers' model: ``--model compiled``.

It is built from code, not loaded. Its SAE is the residual's basis, so every feature has a name by construction
(``class:c02``, ``prev_class:c02``, ...: the cards' labels); its corpus is the one ``fra compiled`` studies; and
its concept-only head, known by construction, is the head the single-text page opens on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from fra.devices import pick_device
from fra.errors import FRAError
from fra.world.compiled import (
    CORPUS_SEQUENCES,
    EXPECTED,
    LAYER,
    compiled_corpus,
    compiled_features,
    compiled_model,
    compiled_world,
)

MODEL = "compiled"  # the --model value
SAE_NAME = "basis SAE of the compiled model"
CORPUS_NAME = f"the corpus of `fra compiled` ({CORPUS_SEQUENCES} generated sequences)"


@dataclasses.dataclass(frozen=True)
class Compiled:
    model: HookedTransformer
    sae: SAE
    labels: dict[int, str]  # feature -> its name
    corpus: torch.Tensor  # [seq, pos] token ids
    layer: int  # the layer the SAE reads
    concept_head: int  # of that layer: concept-only induction, not a token induction head


def is_compiled(spec: str | None) -> bool:
    """Whether ``--model`` names the compiled model (and no folder of that name is there)."""
    return spec == MODEL and not Path(spec).exists()


def compiled_inputs(sae: str | None, labels: str | None, device: str = "auto") -> Compiled:
    """The compiled model, its basis SAE, feature names, corpus and concept-only head; ``sae`` / ``labels`` (the
    ``--sae`` / ``--labels`` flags) must be None: the model brings its own."""
    for flag, value in (("--sae", sae), ("--labels", labels)):
        if value is not None:
            raise FRAError(f"--model {MODEL} builds its own SAE (the residual's basis) and names its features; "
                           f"drop {flag}")
    world = compiled_world()
    model, basis = compiled_model(world)
    device = pick_device(device)
    head = next(h for (layer, h), kind in EXPECTED.items() if layer == LAYER and kind == "conceptual")
    return Compiled(model.to(device, print_details=False), basis.to(device), dict(enumerate(compiled_features(world))),
                    compiled_corpus(world), LAYER, head)


def compiled_layer(layer: int | str) -> int:
    """``--layer`` of the compiled model: its SAE's layer (``auto`` picks it)."""
    if layer not in ("auto", LAYER):
        raise FRAError(f"--model {MODEL} has its SAE at layer {LAYER} only; pass --layer {LAYER} (or auto)")
    return LAYER
