"""Interactive, self-contained HTML explorers of FRA results.

``single``: one text, one layer (tokens, attention, per-pair channels, channel maps, feature cards).
``dataset``: one model's channel statistics (``channels.csv``) with example contexts per channel.
``cot``: one chain-of-thought trace (sentences, the heads that receive each, the channels that carry it).
Pages embed their data and load nothing from the network.
"""
