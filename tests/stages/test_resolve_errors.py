"""``fra resolve``: bad input is refused before any work, with the fix; ``--json`` prints one object."""

import json
import shutil

import pytest

from fra.cli import main
from tests.stages.conftest import refuses

TEXT = "The cat sat on the mat. The cat"


def args(saved, **over):
    a = {"--model": saved / "gpt2", "--sae": saved / "sae", "--layer": 1, "--head": 0, "--text": TEXT, **over}
    return ["resolve", *[str(x) for kv in a.items() for x in kv]]


@pytest.mark.parametrize("over, match", [
    ({"--top": -5}, "argument --top: must be >= 1, got -5"),
    ({"--top-k": 0}, "argument --top-k: must be >= 1"),  # the flag, not a params.yaml key
    ({"--min-act": -1}, "argument --min-act: must be >= 0"),
    ({"--min-act": "nan"}, "argument --min-act: must be a finite number"),
    ({"--layer": 7}, "layer 7 is out of range"),
    ({"--head": 9}, r"head\(s\) \[9\] out of range"),
    ({"--text": ""}, "text is empty"),
    ({"--sae": "fix/nope"}, "SAE `fix/nope`: no such folder"),  # not taken for a hub name
    ({"--model": "fix/nope"}, "model `fix/nope`: no such folder"),
])
def test_bad_flags(saved, capsys, over, match):
    refuses(args(saved, **over), match, capsys, saved)


def test_text_outside_a_word_level_vocabulary(saved, capsys):
    refuses(args(saved, **{"--model": saved / "toy", "--text": "hello world"}), "outside its vocabulary", capsys, saved)


@pytest.mark.parametrize("damage, match", [
    ("cfg_garbage", "not a loadable SAELens SAE"),
    ("cfg_no_d_sae", "not a loadable SAELens SAE"),
    ("weights_missing", "not a loadable SAELens SAE"),
    ("weights_truncated", "not a loadable SAELens SAE"),
])
def test_corrupt_sae_folders(saved, tmp_path, capsys, damage, match):
    sae = tmp_path / "sae"
    shutil.copytree(saved / "sae", sae)
    cfg, weights = sae / "cfg.json", sae / "sae_weights.safetensors"
    if damage == "cfg_garbage":
        cfg.write_text("{not json")
    elif damage == "cfg_no_d_sae":
        c = json.loads(cfg.read_text())
        del c["d_sae"]
        cfg.write_text(json.dumps(c))
    elif damage == "weights_missing":
        weights.unlink()
    else:
        weights.write_bytes(weights.read_bytes()[:100])
    refuses(args(saved, **{"--sae": sae}), match, capsys, tmp_path)


@pytest.mark.parametrize("damage, match", [
    ("config_garbage", "not a valid fra model config"),
    ("weights_missing", "cannot be read as this model's weights"),
    ("weights_truncated", "cannot be read as this model's weights"),
    ("d_model_mismatch", "cannot be read as this model's weights"),
])
def test_corrupt_model_folders(saved, tmp_path, capsys, damage, match):
    model = tmp_path / "model"
    shutil.copytree(saved / "gpt2", model)
    cfg, weights = model / "hooked_config.json", model / "model.safetensors"
    if damage == "config_garbage":
        cfg.write_text("garbage")
    elif damage == "weights_missing":
        weights.unlink()
    elif damage == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        c = json.loads(cfg.read_text())
        c["d_model"], c["d_head"] = 64, 16
        cfg.write_text(json.dumps(c))
    refuses(args(saved, **{"--model": model}), match, capsys, tmp_path)


def test_json_stdout_is_exactly_one_object(saved, capsys):
    capsys.readouterr()
    assert main([*args(saved), "--json", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["residual"] < 1e-4  # the whole of stdout parses
