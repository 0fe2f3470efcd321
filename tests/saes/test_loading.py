"""``load_saes`` on local folders: one SAELens folder per layer (names free, the hook gives the layer), or one
folder."""

import pytest

from fra.errors import FRAError
from fra.saes import load_saes
from tests.conftest import make_model, make_sae


@pytest.fixture
def model():
    return make_model()


def save(folder, hook):
    make_sae(hook=hook).save_model(str(folder))


def test_a_folder_of_sae_folders_by_hook_layer(model, tmp_path):
    save(tmp_path / "first", "blocks.1.hook_resid_pre")  # folder names are free
    save(tmp_path / "second", "blocks.0.ln1.hook_normalized")
    (tmp_path / "notes").mkdir()  # folders without cfg.json are ignored
    assert sorted(load_saes(str(tmp_path), None, model)) == [0, 1]
    assert sorted(load_saes(str(tmp_path), [1], model)) == [1]
    with pytest.raises(FRAError,
                       match=r"no SAE for layer\(s\) \[5\] \(it has \[0, 1\]\).*or add their SAELens folders"):
        load_saes(str(tmp_path), [1, 5], model)


def test_one_sae_folder_is_its_layers_sae(model, tmp_path):
    save(tmp_path / "L1", "blocks.1.hook_resid_pre")
    saes = load_saes(str(tmp_path / "L1"), None, model)
    assert list(saes) == [1] and saes[1].cfg.metadata.hook_name == "blocks.1.hook_resid_pre"
    assert list(load_saes(str(tmp_path / "L1"), [1], model)) == [1]
    with pytest.raises(FRAError, match=r"no SAE for layer\(s\) \[0\] \(it has \[1\]\); drop them from --layers$"):
        load_saes(str(tmp_path / "L1"), [0], model)


def test_a_folder_without_saes_says_what_to_pass(model, tmp_path):
    (tmp_path / "L1").mkdir()
    with pytest.raises(FRAError, match="holds no SAELens SAE folders .*pass the folder that holds one per layer"):
        load_saes(str(tmp_path), None, model)


def test_two_saes_for_one_layer_and_a_hook_without_layer_are_refused(model, tmp_path):
    save(tmp_path / "a", "blocks.1.hook_resid_pre")
    save(tmp_path / "b", "blocks.1.ln1.hook_normalized")
    with pytest.raises(FRAError, match="both hold an SAE for layer 1"):
        load_saes(str(tmp_path), None, model)
    save(tmp_path / "c", "hook_embed")
    with pytest.raises(FRAError, match="its hook `hook_embed` names no layer"):
        load_saes(str(tmp_path / "c"), None, model)
