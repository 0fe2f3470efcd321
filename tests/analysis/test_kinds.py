"""Feature profiles (sink and token shares) and channel kinds, on hand-made activations."""

import numpy as np
import pandas as pd
import pytest
import torch

from fra.analysis.kinds import classify, feature_profiles
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


def test_classify_kinds_from_probe_and_sink_shares():
    profiles = pd.DataFrame({"layer": 1, "feature": [1, 2, 3], "firing_rate": 0.1, "sink_share": [0.9, 0.1, 0.2],
                             "token_share": [0.5, 0.95, 0.3], "prev_token_share": [0.5, 0.2, 0.9]})
    channels = pd.DataFrame({"probe": ["random_repeat", "concept_templates", "random_repeat", "text_repeat"],
                             "layer": 1, "query_feature": [2, 3, 1, 2], "key_feature": [3, 3, 2, 3],
                             "is_cih": [True, True, True, False]})
    out = classify(channels, profiles, ChannelConfig(sink_share=0.5))
    assert out["kind"].tolist() == ["token", "conceptual", "sink", ""]
    assert out["query_token_share"].tolist() == [0.95, 0.3, 0.5, 0.95]  # current-token share on the query side
    assert out["key_token_share"].tolist() == [0.9, 0.9, 0.2, 0.9]  # previous-token share on the key side
    assert out["query_sink_share"].tolist() == [0.1, 0.2, 0.9, 0.1]
    never = profiles.assign(sink_share=np.nan, token_share=np.nan)  # features that never fire on the corpus
    assert classify(channels, never, ChannelConfig())["kind"].tolist() == ["token", "conceptual", "token", ""]
