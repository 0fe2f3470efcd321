"""``fra induction``: inputs and outputs are checked before the model is run."""

import json

import numpy as np
import pytest
import yaml

from fra.config import WorldConfig
from fra.world.corpus import ground_truth
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
    (json.dumps({"d_vocab": 3, "n_conceptual": 1}),
     r"not a planted-world ground truth: it lacks \['bos_id', 'classes', 'tokens'\]"),
    (json.dumps([1]), "not a planted-world ground truth: it lacks"),
    (json.dumps({"d_vocab": 3, "bos_id": 0, "n_conceptual": 1, "classes": [], "tokens": []}),
     "`classes` must be a list of"),
    (json.dumps(ground_truth(WorldConfig(n_classes=31, n_conceptual=11))),
     r"n_classes is 31 in the file but 32 in .*params.yaml; n_conceptual is 11 .*Set world.n_classes: 31, "
     r"world.n_conceptual: 11 in .*params.yaml \(or pass --params FILE"),
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
    (np.full((2, 40), 5, dtype=np.int64), "rows of 40 tokens but the model's context is 32"),
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


def test_ground_truth_beyond_the_model_vocabulary(saved, project, capsys):
    world = WorldConfig(n_filler=100)  # 293 tokens; the toy model has 249
    (project / "params.yaml").write_text(yaml.safe_dump({"world": {"n_filler": 100}}))
    (project / "gt.json").write_text(json.dumps(ground_truth(world)))
    refuses(induction(saved, project, "--ground-truth", str(project / "gt.json"), model="toy"),
            "the planted world has 293 tokens but the model's vocabulary only 249", capsys, project)


def test_ground_truth_longer_than_the_model_context(saved, project, capsys):
    (project / "gt.json").write_text(json.dumps(ground_truth(WorldConfig())))  # seq_len 64, the model's n_ctx 32
    refuses(induction(saved, project, "--ground-truth", str(project / "gt.json"), model="toy"),
            r"world.seq_len \(64\) is longer than the model's context \(32 tokens\)", capsys, project)


def test_probes_longer_than_the_model_context(saved, project, capsys):
    refuses(induction(saved, project), r"probes longer than the model's context \(32 tokens\): random_repeat 61, "
            r"concept_templates 64; .*set induction.repeat_max <= 15 in .*params.yaml; the English concept templates "
            "take 64 tokens", capsys, project)
