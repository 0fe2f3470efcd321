"""``fra explore`` end to end on a saved tiny model: text file, corpus cards, labels, head scores, the title."""

import json
import re

import numpy as np

from fra.cli import build_parser, main


def payload_of(html: str) -> dict:
    return json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S).group(1))


def test_every_explore_flag_has_help():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["explore"]
    assert [a.dest for a in sub._actions if not a.help] == []


def test_explore_with_corpus_labels_and_heads(saved, tmp_path, capsys):
    (tmp_path / "text.txt").write_text("The cat sat on the mat. The cat sat on the mat.\n\n")
    np.save(tmp_path / "corpus.npy", np.random.default_rng(0).integers(0, 50257, (10, 12)).astype(np.int32))
    cards = [{"feature": a, "kind": "current:c11" if a % 2 else "dead", "current_class": ["c11", 0.92],
              "previous_class": ["filler", 0.03]} for a in range(96)]
    (tmp_path / "cards.json").write_text(json.dumps({"L1": cards}))
    (tmp_path / "heads.csv").write_text("layer,head,induction,previous_token,is_tih\n0,0,0.99,0.1,True\n"
                                        "1,0,0.2,0.5,False\n1,1,0.1,0.0,False\n1,2,0.2,0.1,False\n1,3,0.85,0.03,True\n")
    out = tmp_path / "page.html"
    argv = ["explore", "--model", str(saved / "gpt2"), "--sae", str(saved / "sae"), "--layer", "1", "--text-file",
            str(tmp_path / "text.txt"), "-o", str(out), "--corpus", str(tmp_path / "corpus.npy"),
            "--corpus-sequences", "4", "--labels", str(tmp_path / "cards.json"), "--heads", str(tmp_path / "heads.csv"),
            "--name", "tiny"]
    assert main(argv) == 0
    assert "opens on L1.H3" in capsys.readouterr().out
    html = out.read_text()
    p = payload_of(html)
    assert "<title>FRA explorer: layer 1 of tiny</title>" in html
    assert p["names"] == {"model": "tiny", "sae": str(saved / "sae"), "corpus": str(tmp_path / "corpus.npy")}
    assert p["tokens"][-1] != "\n" and "".join(p["tokens"][1:]) == "The cat sat on the mat. The cat sat on the mat."
    assert p["cards_from"] == {"kind": "corpus", "name": str(tmp_path / "corpus.npy"), "n_seqs": 4, "n_pos": 12}
    label = "current:c11 · 92% of its activation on current tokens of class c11 (previous: filler 3%)"
    # the given label, else one from the feature's top tokens
    assert p["cards"] and all(c["label"] == label if int(a) % 2 else c["label"].startswith("top: ")
                              for a, c in p["cards"].items())
    assert all({"firing_rate", "sink_share", "token_share", "prev_token_share", "top"} <= set(c)
               for c in p["cards"].values())
    assert p["start"]["h"] == 3 and p["start"]["why"] == "induction" and p["start"]["k"] > 0
    assert p["head_scores"][3] == {"induction": 0.85, "previous_token": 0.03, "is_tih": True}

    assert main([*argv[:-2], "--start-head", "1"]) == 0  # no --name: the model folder's name
    p = payload_of(out.read_text())
    assert p["start"]["h"] == 1 and p["start"]["why"] == "chosen"
    assert "<title>FRA explorer: layer 1 of gpt2</title>" in out.read_text()


def test_explore_defaults_cards_from_the_text(saved, tmp_path):
    out = tmp_path / "page.html"
    assert main(["explore", "--model", str(saved / "gpt2"), "--sae", str(saved / "sae"), "--layer", "1", "--text",
                 "The cat sat", "-o", str(out)]) == 0
    p = payload_of(out.read_text())
    assert p["cards_from"] == {"kind": "text"} and p["head_scores"] is None
    assert all(c["label"].startswith("top: ") for c in p["cards"].values())  # no labels given: top tokens
    assert p["start"]["h"] == 0 and p["start"]["why"] == "first"
