"""``--model compiled``: the explorers of the hand-set model open on its concept-only head, at a concept repeat,
on the channel the construction plants there (class -> prev_class of the query's class)."""

import pandas as pd
import pytest

from fra.cli import main
from fra.explore.compiled import CORPUS_NAME, SAE_NAME
from fra.explore.encode import read_payload
from fra.world.compiled import EXPECTED, EXPECTED_CHANNEL, EXPECTED_TIH, compiled_features, compiled_world
from tests.explore.test_single_browser import pair_detail
from tests.stages.conftest import refuses

# the stage's text: the conceptual tokens (classes c00..c03) come back as other members of their class, the rest
# (fillers, token-only class c06) as themselves
TEXT = "c02m0 f05 c06m1 f11 c01m3 f07 c03m2 f09 c02m2 f05 c06m1 f11 c01m0 f07 c03m1 f09"
NAMES = compiled_features(compiled_world())
CONCEPT_HEAD = next(h for (_, h), kind in EXPECTED.items() if kind == "conceptual" and not EXPECTED_TIH[(1, h)])


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    d = tmp_path_factory.mktemp("compiled")
    # head 0 the strongest induction head: the page opens on the concept-only head all the same
    (d / "heads.csv").write_text("layer,head,induction,previous_token,is_tih\n1,0,0.99,0.02,True\n"
                                 "1,1,0.0001,0.03,False\n1,2,0.0,0.0,False\n")
    assert main(["explore", "--model", "compiled", "--layer", "auto", "--text", TEXT, "--heads", str(d / "heads.csv"),
                 "--corpus-sequences", "32", "-o", str(d / "showcase.html")]) == 0
    channels = pd.DataFrame({"probe": ["concept_repeat", "token_repeat"], "group": ["class02", "all"],
                             "layer": [1, 1], "head": [1, 0], "query_feature": [NAMES.index("class:c02"),
                                                                                NAMES.index("token:f05")],
                             "key_feature": [NAMES.index("prev_class:c02"), NAMES.index("prev_token:f05")],
                             "support": [1.0, 1.0], "is_cih": [True, True], "kind": ["conceptual", "token"]})
    channels.to_csv(d / "channels.csv", index=False)
    assert main(["explore-dataset", "--channels", str(d / "channels.csv"), "--model", "compiled", "--n-seqs", "16",
                 "--text-page", str(d / "showcase.html"), "-o", str(d / "channels.html")]) == 0
    return d, read_payload(d / "showcase.html", "x"), read_payload(d / "channels.html", "x")


def test_the_text_page_opens_on_the_concept_only_head_at_a_concept_repeat(pages):
    _, p, _ = pages
    start, tokens = p["start"], p["tokens"]
    assert CONCEPT_HEAD == 1 and p["heads"][start["h"]] == CONCEPT_HEAD and start["why"] == "chosen"
    q, k = start["q"], start["k"]
    # the induction target of a concept repeat: the token after an earlier *other* member of the query's class
    assert (tokens[q], tokens[k - 1], tokens[k]) == ("c02m2", "c02m0", "f05")
    terms, chans = pair_detail(p, start["h"], q, k)
    query_space, key_space = EXPECTED_CHANNEL[(1, CONCEPT_HEAD)]
    assert [(NAMES[a], NAMES[b]) for a, b, _ in chans] == [(f"{query_space}:c02", f"{key_space}:c02")]
    assert chans[0][2] == pytest.approx(12.0, abs=0.01) and p["residual"] < 1e-3  # BETA, exactly the score
    assert p["names"] == {"model": "compiled", "sae": SAE_NAME, "corpus": CORPUS_NAME}
    assert p["cards_from"]["n_seqs"] == 32 and p["cards"][str(NAMES.index("class:c02"))]["label"] == "class:c02"


def test_the_dataset_page_has_the_compiled_corpus_and_names(pages):
    _, _, p = pages
    assert p["cards_from"] == "corpus" and p["cards"][f"L1:{NAMES.index('prev_class:c02')}"]["label"] == \
        "prev_class:c02"
    assert p["text_page"]["href"] == "showcase.html"


@pytest.mark.parametrize("flags, match", [
    (["--model", "compiled", "--sae", "s", "--layer", "1"], "--model compiled builds its own SAE .* drop --sae"),
    (["--model", "compiled", "--labels", "l.json", "--layer", "1"], "drop --labels"),
    (["--model", "compiled", "--layer", "0"], "has its SAE at layer 1 only; pass --layer 1"),
    (["--model", "m", "--layer", "1"], "--sae is required .* unless --model compiled"),
])
def test_refused(tmp_path, capsys, flags, match):
    refuses(["explore", *flags, "--text", TEXT, "-o", str(tmp_path / "p.html")], match, capsys, tmp_path)


def test_the_page_loads_on_the_concept_head(browser, pages):
    d, p, _ = pages
    pg = browser.page((d / "showcase.html").as_uri())
    assert pg.errors() == []
    start = p["start"]
    assert pg.js("[fraExplorer.state.h, fraExplorer.state.i, fraExplorer.state.j]") == [1, start["q"], start["k"]]
    assert "Opened on L1.H1" in pg.text("#guide")
    assert "null" not in pg.text("#pair")  # one term only: no "show all" button in its place
