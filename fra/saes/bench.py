"""``fra bench-saes``: one SAE training step, sae_lens' dense step against the sparse one (:mod:`fra.saes.sparse`).

Setting: a random BatchTopK training SAE (``d_in``, ``expansion``, ``k``) and a batch of random activations, with a
``dead_fraction`` of the latents marked dead so the AuxK loss runs as it does in training. A step is the
trainer's: forward, backward, gradient clipping and an Adam update. Each path runs ``steps`` steps ``repeats`` times,
interleaved from the same weights, and its fastest run counts; it prints ms per step, the ratio, and the largest
relative difference of the gradients of one step.
"""

from __future__ import annotations

import copy
import time

import torch
from sae_lens import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput

from fra.devices import pick_device, synchronize
from fra.saes.training import FastBatchTopKTrainingSAE


def _step(sae: BatchTopKTrainingSAE, opt: torch.optim.Optimizer, x: torch.Tensor, dead: torch.Tensor, dense: bool,
          keep_grads: bool = False) -> dict[str, torch.Tensor]:
    step = TrainStepInput(sae_in=x, dead_neuron_mask=dead, coefficients={}, n_training_steps=0, is_logging_step=False)
    out = BatchTopKTrainingSAE.training_forward_pass(sae, step) if dense else sae.training_forward_pass(step)
    out.loss.backward()
    grads = {name: p.grad.clone() for name, p in sae.named_parameters()} if keep_grads else {}
    torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    return grads


@torch.enable_grad()
def bench_saes(d_in: int, expansion: int, k: float, batch: int, dead_fraction: float, steps: int, repeats: int,
               device: str = "auto", seed: int = 0) -> dict:
    device = pick_device(device)
    torch.manual_seed(seed)
    sae = FastBatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=expansion * d_in, k=k, device=device,
                                                              normalize_activations="expected_average_only_in"))
    x = torch.randn(batch, d_in, device=device)  # E|x| = sqrt(d_in), the scale the trainer normalises to
    dead = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    dead[torch.randperm(sae.cfg.d_sae)[: round(dead_fraction * sae.cfg.d_sae)]] = True
    start = copy.deepcopy(sae.state_dict())
    best = {"dense": float("inf"), "sparse": float("inf")}
    grads = {}
    for _ in range(repeats):
        for path in best:
            sae.load_state_dict(start)
            opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
            grads[path] = _step(sae, opt, x, dead, path == "dense", keep_grads=True)  # untimed warm-up, compared
            synchronize(device)
            begin = time.perf_counter()
            for _ in range(steps):
                _step(sae, opt, x, dead, path == "dense")
            synchronize(device)
            best[path] = min(best[path], (time.perf_counter() - begin) / steps)
    diff = max(((grads["sparse"][n] - g).abs().max() / g.abs().max()).item() for n, g in grads["dense"].items())
    result = {"dense_ms": 1e3 * best["dense"], "sparse_ms": 1e3 * best["sparse"],
              "ratio": best["dense"] / best["sparse"], "max_rel_grad_diff": diff}
    where = f"{torch.get_num_threads()} CPU threads" if device == "cpu" else device
    print(f"SAE training step, d_in {d_in}, d_sae {sae.cfg.d_sae}, k {k}, batch {batch}, {dead_fraction:.0%} dead, "
          f"{where}: dense {result['dense_ms']:.1f} ms, sparse {result['sparse_ms']:.1f} ms "
          f"-> {result['ratio']:.2f}x; largest relative gradient difference {diff:.2e}")
    return result
