"""The repository's own paper, built on fixture results in the provisional schemas it reads."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fra.report.build import build
from tests.report.conftest import write_results

PAPER = Path(__file__).parents[2] / "paper"


def toy_results() -> dict[str, tuple[str, str]]:
    rng = np.random.default_rng(0)
    heads = pd.DataFrame([(layer, head) for layer in range(2) for head in range(4)], columns=["layer", "head"])
    heads["induction"] = np.where((heads.layer == 1) & (heads["head"] < 2), [0.9, 0.85] * 4, 0.02).round(3)
    heads["previous_token"] = np.where((heads.layer == 0) & (heads["head"] == 3), 0.7, 0.05)
    heads["duplicate_token"] = 0.01
    heads["is_tih"] = heads.induction > 0.4
    channels = pd.DataFrame({
        "layer": [1, 1, 1, 0], "head": [0, 0, 3, 2], "query_feature": [5, 9, 12, 4], "key_feature": [17, 30, 41, 8],
        "support": [120, 80, 64, 30], "channel_induction_discovery": rng.uniform(0.3, 0.9, 4).round(3),
        "channel_induction_heldout": [0.71, 0.55, 0.48, 0.05], "softmax_effect": [0.2, 0.1, 0.08, 0.0],
        "p_value": [1e-4, 1e-3, 2e-3, 0.6], "q_value": [4e-4, 2e-3, 3e-3, 0.6], "is_cih": [True, True, True, False]})
    train = {"acc_token_repeat": 0.95, "acc_concept_repeat": 0.83, "ground_truth_ok": True,
             "heads": {"canonical_induction_heads": [{"head": "L1H0"}, {"head": "L1H1"}], "max_positional_control": 0.01},
             "history": [{"step": 0, "loss": 5.0}]}
    return {
        "results/toy/heads.csv": ("toy_train", heads.to_csv(index=False)),
        "results/toy/channels.csv": ("toy_channels", channels.to_csv(index=False)),
        "results/toy/metrics.json": ("toy_channels", json.dumps({"sae_error_share": 0.12, "concept_probe_accuracy": 0.8})),
        "results/toy/train_metrics.json": ("toy_train", json.dumps(train)),
        "results/engine/exactness.json": ("exactness", json.dumps({"max_abs_error": 4.1e-6, "models": 3})),
    }


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    write_results(root, toy_results())
    shutil.copytree(PAPER, root / "paper", ignore=shutil.ignore_patterns("_build", ".fra-build", "_figures"))
    subprocess.run(["git", "-C", str(root), "init", "-q"], check=True)
    return root, build(root / "paper", root / "paper/_build", route="offline")


def test_present_results_fill_their_sections_and_absent_ones_say_so(paper):
    root, built = paper
    html = (root / "paper/_build/index.html").read_text()
    assert "1 of the 6 heads that are not token induction heads" in html  # H1: L1H3
    assert "1 of the 2 token induction heads" in html  # H2: L1H0 only
    assert "token repeats with accuracy 0.95" in html and "4.1e-06" in html
    assert "<code>results/gpt2/heads.csv</code>" in html and "Results not available" in html
    manifest = json.loads(built.manifest.read_text())
    assert {f["label"] for f in manifest["figures"]} == {"fig-toy-heads", "fig-toy-channels"}
    assert manifest["commit"] == "none"  # a repository without commits
