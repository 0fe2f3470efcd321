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


def resolve_json(files, capsys, *flags):
    capsys.readouterr()
    assert main(["resolve", *files, "--layer", "1", "--head", "2", "--text", TEXT, "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_resolve_collapses_dense_features_into_one_term(files, capsys, tmp_path):
    import numpy as np

    np.save(tmp_path / "corpus.npy", np.random.default_rng(0).integers(0, 50257, (4, 16)))
    dense_flags = ["--corpus", str(tmp_path / "corpus.npy"), "--density", "0.3"]
    every = resolve_json(files, capsys, "--top", "100000")
    out = resolve_json(files, capsys, "--top", "100000", *dense_flags)
    dense = set(out["dense"]["features"])
    assert dense and out["dense"]["n_channels"] > 0
    assert not any(c["query_feature"] in dense or c["key_feature"] in dense for c in out["channels"])
    gone = [c for c in every["channels"] if c["query_feature"] in dense or c["key_feature"] in dense]
    assert len(gone) == out["dense"]["n_channels"] and len(out["channels"]) + len(gone) == len(every["channels"])
    assert out["dense"]["total"] == pytest.approx(sum(c["total"] for c in gone), rel=1e-4, abs=1e-4)
    assert sum(out["shares"].values()) == pytest.approx(1.0)
    assert out["shares"]["dense features"] > 0 and set(out["shares"]) == {*every["shares"], "dense features"}
    assert "dense" not in resolve_json(files, capsys, *dense_flags, "--show-dense")
    assert main(["resolve", *files, "--layer", "1", "--head", "2", "--text", TEXT, *dense_flags]) == 0
    assert "dense features: " in capsys.readouterr().out


def test_resolve_refuses_features_of_another_layer(files, capsys, tmp_path):
    (tmp_path / "features.csv").write_text("layer,feature,firing_rate,sink_share,token_share,prev_token_share\n"
                                           "0,1,0.9,0.0,0.1,0.1\n")
    assert main(["resolve", *files, "--layer", "1", "--head", "2", "--text", TEXT,
                 "--features", str(tmp_path / "features.csv")]) == 2
    assert "has no features of layer 1" in capsys.readouterr().err


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
    assert out.splitlines()[-1] == "['fra.stages.args', 'fra.stages.explore_cot']"  # and the shared flag types


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
