"""The compiled ground-truth model through the pipeline's own stage, with the criterion of params.yaml
(its lift threshold from the compiled model's own null)."""

import json

import pandas as pd

from fra.cli import main


def test_compiled_model_is_classified_exactly(tmp_path):
    out = tmp_path / "compiled"
    assert main(["compiled", "--params", "params.yaml", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["verdict"]["ok"], m["verdict"]  # token head, concept-only head, no-induction head
    assert m["H1"]["answer"] == "yes" and m["H2"]["answer"] == "yes" and m["H2"]["n_non_tih_with_conceptual"] == 1
    assert m["planted"]["recall_conceptual"] == 1.0 and m["planted"]["false_discovery_token_only"] == 0.0
    # negative controls: candidates reach the test, and none is confirmed
    assert all(c["n_tested"] > 0 and c["n_confirmed"] == 0 for c in m["controls"].values())
    channels = pd.read_csv(out / "channels.csv")
    confirmed = channels[channels["is_cih"]]
    assert set(confirmed["head"]) == {0, 1}  # nothing in the duplicate-token head
    # kinds and features by construction: head 0 token channels token:X -> prev_token:X, head 1 class -> prev_class
    assert set(confirmed.loc[confirmed["head"] == 0, "kind"]) == {"token"}
    assert set(confirmed.loc[confirmed["head"] == 1, "kind"]) == {"conceptual"}
    assert (confirmed.loc[confirmed["head"] == 0, ["query_token_share", "key_token_share"]] > 0.99).all().all()
    assert (confirmed.loc[confirmed["head"] == 1, "query_token_share"] < 0.5).all()
    causal = pd.read_csv(out / "causal.csv")
    assert len(causal) == len(confirmed) and causal["moves_output"].all()
    assert (causal["attention_drop"] - causal["softmax_effect"]).abs().max() < 1e-5
