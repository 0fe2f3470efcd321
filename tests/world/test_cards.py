import torch

from fra.config import WorldConfig
from fra.world.cards import feature_cards
from fra.world.corpus import generate, token_classes, token_names

WORLD = WorldConfig(n_classes=6, class_size=3, n_filler=10, n_conceptual=3, seq_len=32, segment_min=4, segment_max=6,
                    gap_max=4, lead_max=2)


def test_cards_find_current_and_previous_token_features():
    world = WORLD
    tokens = generate(world, 10, seed=1).tokens
    cls = torch.from_numpy(token_classes(world))
    prev = torch.cat([torch.zeros(10, 1, dtype=torch.long), tokens[:, :-1]], 1)
    f = torch.stack([(cls[tokens] == 2).float(), (cls[prev] == 4).float() * (torch.arange(32) > 0),
                     (tokens == 0).float(), (cls[tokens] == -1).float()], -1).flatten(0, 1)
    cards = feature_cards(f, tokens, token_names(world), token_classes(world), 3)
    assert cards[0]["kind"] == "current:c02" and cards[0]["current_class"] == ["c02", 1.0]
    assert cards[1]["kind"] == "previous:c04" and cards[1]["previous_class"] == ["c04", 1.0]
    assert cards[2]["kind"] == "current:BOS" and cards[3]["kind"] == "current:filler"
    for c in cards:
        assert sum(s for _, s in c["top_current"]) <= 1.0001 and len(c["top_previous"]) <= 3
