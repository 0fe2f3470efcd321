"""Interactive, self-contained HTML explorers of FRA results.

``single``: one text, one layer (tokens, a zoomable attention pattern, per-pair channels, channel maps, feature cards).
``dataset``: one model's channel statistics (``channels.csv``), one row per channel, with example contexts.
``cot``: one chain-of-thought trace (sentences, the heads that receive each, the channels that carry it).
``cards`` and ``inputs``: feature cards and the pipeline outputs the pages read; ``encode``: the data a page embeds
and the page itself, rendered from the jinja2 templates in ``static/``. Pages embed their data and load nothing from
the network. ``browser``: headless Chromium for the pages' tests and ``bench`` (``fra bench-pages``).
"""
