"""Feature profiles (sink and token shares) and channel kinds, on hand-made activations."""

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.kinds import classify, feature_profiles, with_shares
from fra.config import ChannelConfig

TOKENS = torch.tensor([[0, 5, 6, 5, 7, 9], [0, 6, 5, 8, 5, 9]])  # BOS = 0; special token 9


def test_feature_profiles_sink_and_token_shares():
    f = torch.zeros(2, 6, 4)
    f[:, 0, 0] = 3.0  # fires on BOS only: a sink
    f[0, 5, 0] = 1.0  # and once on the special token
    f[TOKENS == 5, 1] = 1.0  # token 5 wherever it is: one current token
    f[0, 1:5, 2] = 1.0  # several current tokens, always after BOS or 5/6
    f[:, 2, 3] = 2.0  # positions 2: previous tokens 5 and 6
    out = feature_profiles(f, TOKENS, [10, 11, 12, 13], special={0, 9}).set_index("feature")
    assert out.loc[10, "sink_share"] == pytest.approx(1.0)
    assert out.loc[11, "sink_share"] == 0 and out.loc[11, "token_share"] == pytest.approx(1.0)
    assert out.loc[12, "token_share"] == pytest.approx(0.5)  # tokens 5, 6, 5, 7: half on 5
    assert out.loc[12, "prev_token_share"] == pytest.approx(0.5)  # previous tokens 0, 5, 6, 5: half on 5
    assert out.loc[13, "prev_token_share"] == pytest.approx(0.5) and out.loc[13, "token_share"] == pytest.approx(0.5)
    assert out.loc[11, "firing_rate"] == pytest.approx(4 / 12)
    dead = feature_profiles(torch.zeros(2, 6, 1), TOKENS, [3], special={0})
    assert np.isnan(dead.sink_share.iloc[0])


def test_classify_kinds_from_features_probes_and_sink_shares():
    """Sink first; conceptual when confirmed across tokens (any probe row of the channel) or when both features span
    several tokens; else token. A concept-only head's class features confirmed on exact repeats are conceptual."""
    profiles = pd.DataFrame({"layer": 1, "feature": [1, 2, 3, 4], "firing_rate": 0.1,
                             "sink_share": [0.9, 0.1, 0.2, 0.0], "token_share": [0.5, 0.95, 0.3, 0.35],
                             "prev_token_share": [0.5, 0.2, 0.9, 0.3]})
    channels = pd.DataFrame({
        "probe": ["random_repeat", "concept_templates", "random_repeat", "text_repeat", "random_repeat", "text_repeat"],
        "layer": 1, "head": [0, 0, 0, 0, 1, 1], "query_feature": [2, 3, 1, 2, 4, 3], "key_feature": [3, 3, 2, 3, 4, 3],
        "is_cih": [True, True, True, False, True, True]})
    cfg = ChannelConfig(sink_share=0.5, token_share=0.5)
    out = classify(with_shares(channels, profiles, cfg), cfg)
    # 2x3: token features; 3x3 on templates: cross-token; 1x2: sink; 4x4 class features on exact repeats: conceptual;
    # 3x3 of head 1, confirmed on text only: its query feature spans tokens but its key feature does not -> token
    assert out["kind"].tolist() == ["token", "conceptual", "sink", "", "conceptual", "token"]
    assert out["feature_kind"].tolist() == ["token", "mixed", "mixed", "token", "multi-token", "mixed"]
    assert out["query_token_share"].tolist() == [0.95, 0.3, 0.5, 0.95, 0.35, 0.3]  # current-token share (query side)
    assert out["key_token_share"].tolist() == [0.9, 0.9, 0.2, 0.9, 0.3, 0.9]  # previous-token share (key side)
    assert out["query_sink_share"].tolist() == [0.1, 0.2, 0.9, 0.1, 0.0, 0.2]
    never = profiles.assign(sink_share=np.nan, token_share=np.nan)  # features that never fire on the corpus
    again = classify(with_shares(channels, never, ChannelConfig()), ChannelConfig())
    assert again["feature_kind"].tolist()[:3] == ["unknown"] * 3
    assert again["kind"].tolist() == ["token", "conceptual", "token", "", "token", "token"]

