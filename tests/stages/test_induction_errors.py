"""``fra induction``: inputs and outputs are checked before the model is run."""

import json

import numpy as np
import pytest
import yaml

from tests.stages.conftest import refuses


@pytest.fixture
def project(saved, tmp_path):
    (tmp_path / "saes").mkdir()
    (tmp_path / "saes" / "L1").symlink_to(saved / "sae", target_is_directory=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"induction": {"n_discovery": 4, "n_heldout": 4}}))
    return tmp_path


def induction(saved, root, *flags, model="gpt2"):
    return ["induction", "--model", str(saved / model), "--saes", str(root / "saes"), "--params",
            str(root / "params.yaml"), "--out", str(root / "out"), *flags]


def test_out_is_a_file(saved, project, capsys):
    (project / "out").write_text("x")
    refuses(induction(saved, project), "--out .* is a file; name a folder", capsys, project)


@pytest.mark.parametrize("content, match", [
    (None, "--ground-truth .* does not exist"),
    ("{broken", "is not valid JSON"),
    (json.dumps({"d_vocab": 3, "n_conceptual": 1}), "does not match params.yaml's world section"),
    (json.dumps([1]), "does not match params.yaml's world section"),
])
def test_bad_ground_truth(saved, project, capsys, content, match):
    if content is not None:
        (project / "gt.json").write_text(content)
    refuses(induction(saved, project, "--ground-truth", str(project / "gt.json")), match, capsys, project)


@pytest.mark.parametrize("content, match", [
    (None, "not a readable .npy array"),
    (b"garbage", "not a readable .npy array"),
    (np.zeros(5, dtype=np.int64), r"shape \(5,\); expected token ids"),
    (np.full((2, 8), 60000, dtype=np.int64), "beyond the model's vocabulary"),
])
def test_bad_corpus(saved, project, capsys, content, match):
    path = project / "c.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    refuses(induction(saved, project, "--corpus", str(path)), match, capsys, project)


def test_layers_without_an_sae(saved, project, capsys):
    refuses(induction(saved, project, "--layers", "1", "7"), r"no SAE for layer\(s\) \[7\]", capsys, project)


def test_toy_model_without_ground_truth_says_what_to_pass(saved, project, capsys):
    refuses(induction(saved, project, model="toy"), "pass --ground-truth", capsys, project)
