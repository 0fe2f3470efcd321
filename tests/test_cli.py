import json
import subprocess
import sys

import pytest

import fra.cli
from fra.cli import main
from fra.models import gpt2_tokenizer, save_hooked
from tests.conftest import make_model, make_sae


@pytest.fixture
def files(tmp_path):
    model = make_model(d_vocab=50257, n_ctx=32)
    model.set_tokenizer(gpt2_tokenizer())
    save_hooked(model, tmp_path / "model")
    make_sae().save_model(tmp_path / "sae")
    return ["--model", str(tmp_path / "model"), "--sae", str(tmp_path / "sae"), "--device", "cpu"]


TEXT = "The cat sat on the mat. The cat sat on"


def test_resolve_json(files, capsys):
    assert main(["resolve", *files, "--layer", "1", "--head", "2", "--text", TEXT, "--json", "--top", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["residual"] < 1e-4
    assert out["tokens"][:3] == ["<|endoftext|>", "The", " cat"]
    assert len(out["channels"]) == 4
    assert out["feature_pair_share"] + out["remainder_share"] == pytest.approx(1.0)
    totals = [c["abs_total"] for c in out["channels"]]
    assert totals == sorted(totals, reverse=True)
    s = out["channels"][0]["strongest"]
    assert s["key"] <= s["query"] and out["tokens"][s["query"]] == s["query_token"]


def test_resolve_text_with_truncation(files, capsys):
    assert main(["resolve", *files, "--layer", "1", "--head", "0", "--text", TEXT, "--top-k", "3",
                 "--exclude-first"]) == 0
    out = capsys.readouterr().out
    assert "exactness residual" in out and "truncation top_k: removed" in out and "truncation exclude_first" in out


def test_resolve_bad_input_exits_2_with_message(files, capsys):
    assert main(["resolve", *files, "--layer", "7", "--head", "0", "--text", TEXT]) == 2
    assert "layer 7 is out of range" in capsys.readouterr().err
    assert main(["resolve", *files, "--layer", "1", "--head", "0", "--text", ""]) == 2
    assert "text is empty" in capsys.readouterr().err


def test_toy_data_concept_prob_override_writes_the_ablation_world(tmp_path):
    import numpy as np
    import yaml

    from fra.world.corpus import CONCEPT, TOKEN

    world = {"n_classes": 6, "class_size": 3, "n_filler": 10, "n_conceptual": 3, "seq_len": 32, "segment_min": 4,
             "segment_max": 6, "gap_max": 4, "lead_max": 2, "n_train": 40, "n_heldout": 8}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"world": world}))
    for name, prob in (("full", None), ("ablation", "0.0")):
        extra = ["--concept-prob", prob] if prob else []
        assert main(["toy-data", "--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / name),
                     "--ground-truth", str(tmp_path / f"{name}.json"), *extra]) == 0
    full, ablation = (np.load(tmp_path / n / "train_label.npy") for n in ("full", "ablation"))
    assert (full == CONCEPT).any() and not (ablation == CONCEPT).any() and (ablation == TOKEN).any()
    assert main(["toy-data", "--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "x"),
                 "--ground-truth", str(tmp_path / "x.json"), "--concept-prob", "1.5"]) == 2  # validated


def test_help_shows_zero_defaults(capsys):
    assert main(["resolve", "--help"]) == 0
    assert "keep features with activation above this (default: 0.0)" in " ".join(capsys.readouterr().out.split())


def test_a_command_imports_its_own_stage_only():
    code = ("import sys; from fra.cli import main; main(['explore-cot', '--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('fra.stages.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "['fra.stages.explore_cot']"


def test_unknown_command_lists_every_stage(capsys):
    assert main(["toy_data"]) == 2  # the module's name, not the command's
    err = capsys.readouterr().err
    assert "invalid choice: 'toy_data'" in err and "toy-data" in err and "smollm2-check" in err


def test_help_opens_with_what_fra_does_and_where_to_start(capsys):
    assert main(["--help"]) == 0
    usage, text = capsys.readouterr().out.split("\n\n", 1)
    assert usage.startswith("usage: fra ")
    assert text.startswith(fra.cli.__doc__.strip() + "\n")  # first after the usage line, laid out as written
    assert text.startswith("fra (Feature-Resolved Attention) splits an attention head's scores exactly")
    for start in ("fra resolve --model", "fra induction --model", "dvc repro", "README.md"):
        assert start in fra.cli.__doc__
