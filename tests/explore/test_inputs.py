"""Reading the pipeline's outputs for the explorers: heads.csv, feature_cards.json, features.csv,
channel_features.json."""

import json
from pathlib import Path

import pytest

from fra.errors import FRAError
from fra.explore.inputs import induction_layer, read_cards, read_features, read_heads, read_labels


def heads_csv(path, rows, columns="layer,head,induction,previous_token,is_tih"):
    path.write_text(columns + "\n" + "\n".join(rows) + "\n")
    return path


def test_read_heads(tmp_path):
    path = heads_csv(tmp_path / "heads.csv", ["0,0,0.01,0.7,False", "1,0,0.8,0.02,True", "1,1,0.3,,False"])
    assert read_heads(path, 1, 4) == {0: {"induction": 0.8, "previous_token": 0.02, "is_tih": True},
                                      1: {"induction": 0.3, "previous_token": None, "is_tih": False}}
    short = heads_csv(tmp_path / "short.csv", ["1,2,0.5"], "layer,head,induction")
    assert read_heads(short, 1, 4) == {2: {"induction": 0.5, "previous_token": None, "is_tih": None}}


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("columns", r"lacks column\(s\) \['induction'\]"),
    ("layer", r"no rows for layer 1 \(layers: \[0\]\)"),
    ("head", r"names head\(s\) \[9\] of layer 1; the model has heads 0..3"),
    ("text", "non-numeric"),
    ("empty", "not a readable CSV"),
])
def test_read_heads_refuses(tmp_path, case, match):
    path = tmp_path / "heads.csv"
    if case == "columns":
        heads_csv(path, ["1,0"], "layer,head")
    elif case == "layer":
        heads_csv(path, ["0,0,0.1,0.2,False"])
    elif case == "head":
        heads_csv(path, ["1,9,0.1,0.2,False"])
    elif case == "text":
        heads_csv(path, ["1,x,0.1,0.2,False"])
    elif case == "empty":
        path.write_text("")
    with pytest.raises(FRAError, match=match):
        read_heads(path, 1, 4)


def card(a, kind, cur=("c11", 0.92), prev=("filler", 0.03)):
    return {"feature": a, "kind": kind, "current_class": list(cur), "previous_class": list(prev)}


def test_read_labels(tmp_path):
    path = tmp_path / "feature_cards.json"
    path.write_text(json.dumps({"L1": [card(0, "dead"), card(1, "current:c11"),
                                       card(2, "previous:c03", ("filler", 0.2), ("c03", 0.71)),
                                       card(3, "mixed", ("c01", 0.4), ("c02", 0.3))]}))
    assert read_labels(path, 1) == {
        1: "current:c11 · 92% of its activation on current tokens of class c11 (previous: filler 3%)",
        2: "previous:c03 · 71% of its activation on previous tokens of class c03 (current: filler 20%)",
        3: "mixed · current token class c01 40%, previous token class c02 30%",
    }
    with pytest.raises(FRAError, match=r"has no cards for layer 0 \(it has \['L1'\]\)"):
        read_labels(path, 0)
    with pytest.raises(FRAError, match="does not exist"):
        read_labels(tmp_path / "none.json", 1)
    path.write_text(json.dumps({"L1": [{"feature": 1}]}))
    with pytest.raises(FRAError, match="lacks feature, kind"):
        read_labels(path, 1)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(FRAError, match="is not a feature_cards.json"):
        read_labels(path, 1)


def test_toy_feature_cards_give_labels():
    """The pipeline's own results/toy/feature_cards.json, where present, labels its live features."""
    path = Path("results/toy/feature_cards.json")
    if not path.exists():
        pytest.skip("results/toy/feature_cards.json is built by `dvc repro toy_saes`")
    labels = read_labels(path, 1)
    assert labels and all(" · " in v for v in labels.values())


def test_induction_layer_has_the_most_token_induction_heads(tmp_path):
    path = heads_csv(tmp_path / "heads.csv", ["0,0,0.2,0.1,False", "1,0,0.9,0.0,True", "2,0,0.6,0.0,True",
                                              "2,1,0.55,0.0,True", "3,0,0.95,0.0,True"])
    assert induction_layer(path, None) == 2  # two TIHs beat one stronger head
    assert induction_layer(path, [0, 1, 3]) == 3  # one TIH each: the strongest induction head
    assert induction_layer(path, [0]) == 0
    no_tih = heads_csv(tmp_path / "plain.csv", ["0,0,0.2", "1,0,0.7", "1,1,0.1"], "layer,head,induction")
    assert induction_layer(no_tih, None) == 1
    with pytest.raises(FRAError, match=r"no heads of the layers with an SAE \(\[7\]\)"):
        induction_layer(path, [7])


def test_read_features_and_cards(tmp_path):
    (tmp_path / "features.csv").write_text("layer,feature,firing_rate,sink_share,token_share,prev_token_share\n"
                                           "1,3,0.1,0,0.5,0.2\n")
    df = read_features(tmp_path / "features.csv")
    assert df.loc[(1, 3), "token_share"] == 0.5
    (tmp_path / "bad.csv").write_text("layer,feature\n1,3\n")
    with pytest.raises(FRAError, match=r"lacks column\(s\) \['firing_rate'"):
        read_features(tmp_path / "bad.csv")
    with pytest.raises(FRAError, match="does not exist"):
        read_features(tmp_path / "none.csv")
    (tmp_path / "cards.json").write_text(json.dumps({"L1": {"3": {"top": [], "neuronpedia": None}}}))
    assert read_cards(tmp_path / "cards.json") == {1: {3: {"top": [], "neuronpedia": None}}}
    (tmp_path / "cards.json").write_text(json.dumps({"L1": [1, 2]}))
    with pytest.raises(FRAError, match="is not a channel_features.json"):
        read_cards(tmp_path / "cards.json")
