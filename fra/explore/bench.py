"""``fra bench-pages``: the explorer pages' build time, size and click latencies in headless Chromium.

For the issue's case, a 256-token SmolLM2 text across every head of layer 17:

    OMP_NUM_THREADS=1 fra bench-pages --model smollm2 --sae models/smollm2/saes/L17 --layer 17 \\
        --corpus data/smollm2/corpus/heldout_tokens.npy --sequence 13 --tokens 256 \\
        [--channels results/smollm2/channels.csv --sae-pattern 'models/smollm2/saes/L{layer}' ...]

The text is sequence ``sequence`` of ``corpus`` read again and again (BOS once) up to ``tokens`` tokens.
Latencies are from the mouse event to the next painted frame (:meth:`fra.explore.browser.Page.click`), per head
of the layer: the head menu and the head's thumbnail, a query, a key, a channel, the strongest top channel (its
whole map drawn: for a rotary model from g_ab(i - j)), the dense-features toggle, the key's column view, hover and
zoom. Everything runs on the CPU; it prints the figures as JSON.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fra.analysis.dense import DENSITY
from fra.analysis.features import neuronpedia_base, token_strings
from fra.config import ChannelConfig
from fra.engine.resolver import resolve
from fra.explore.browser import Browser
from fra.explore.cards import corpus_cards, pipeline_cards
from fra.explore.data import Detail, single_payload
from fra.explore.dataset import channel_examples, dataset_payload, read_channels, shown_channels, text_page_links
from fra.explore.encode import Strings, page
from fra.explore.inputs import read_cards, read_features
from fra.explore.single import page_dense
from fra.models import load_model
from fra.saes import load_sae


@dataclass(frozen=True)
class Setting:
    """What is benchmarked: the single-text page of ``sae``'s ``layer`` and, with ``channels``, the channels page."""

    model: str
    sae: str  # the SAE of ``layer``
    layer: int
    corpus: str  # .npy of token ids: the text, the cards and the channels page's examples
    sequence: int = 13
    tokens: int = 256
    corpus_sequences: int = 64  # sequences the feature cards are read from
    keys_per_query: int = 8
    channels: str | None = None  # a channels.csv: also its channels page
    sae_pattern: str | None = None  # the SAE of each layer the channels page needs ({layer} filled in)
    features: str | None = None  # features.csv: the dense features (its rows first) and the channels page's cards
    cards: str | None = None
    per_head: int = 25
    n_seqs: int = 32  # corpus sequences the channels page's examples come from


def repeated(every: torch.Tensor, seq: int, n: int) -> torch.Tensor:
    """BOS, then sequence ``seq``'s tokens after BOS again and again, ``n`` tokens in all."""
    body = every[seq, 1:]
    reps = -(-(n - 1) // len(body))
    return torch.cat([every[seq, :1], body.repeat(reps)])[:n][None]


def sizes(payload: dict, html: str) -> dict:
    return {"html_mb": round(len(html.encode()) / 1e6, 3),
            "parts_kb": {k: round(len(json.dumps(v, separators=(",", ":"))) / 1e3, 1) for k, v in payload.items()}}


def single(s: Setting, model, out: Path) -> tuple[dict, dict]:
    t = {}
    t0 = time.perf_counter()
    sae = load_sae(s.sae, s.layer, "cpu")
    every = torch.from_numpy(np.load(s.corpus).astype(np.int64))
    tokens = repeated(every, s.sequence, s.tokens)
    corpus = every[:s.corpus_sequences]
    t["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dense = page_dense(model, sae, corpus, s.layer, read_features(s.features) if s.features else None)
    t["dense_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    resolved = resolve(model, sae, tokens, s.layer)
    t["resolve_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    payload, feats = single_payload(resolved, token_strings(model, tokens)[0], detail=Detail(max_keys=s.keys_per_query),
                                    dense=dense)
    t["payload_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    strings = Strings()
    payload["cards"] = corpus_cards(model, sae, corpus, feats, {}, strings, exclude=tokens)
    payload.update(strings=strings.table, neuronpedia=neuronpedia_base(sae), names={"model": s.model},
                   cards_from={"kind": "corpus", "n_seqs": s.corpus_sequences, "n_pos": int(every.shape[1])},
                   dense_from={"kind": "corpus", "features": s.features is not None, "density": DENSITY,
                               "sink_share": ChannelConfig().sink_share})
    t["cards_s"] = time.perf_counter() - t0
    html = page("single", f"bench: layer {s.layer}", payload, scripts=("pattern.js",))
    (out / "single.html").write_text(html)
    maps = payload.get("rope") or payload["coef"]
    return {"tokens": int(tokens.shape[1]), "heads": len(resolved.heads),
            "pairs_with_detail": payload["pairs"]["h"]["shape"][0], "dense_features": len(payload["dense_features"]),
            "rotary": "rope" in payload, "whole_map_channels": maps["h"]["shape"][0],
            **({"rope_values": payload["rope"]["g"]["shape"][0]} if "rope" in payload else {}),
            "build": {k: round(v, 2) for k, v in t.items()}, **sizes(payload, html)}, payload


def click_single(browser: Browser, url: str, P: int, heads: int) -> dict:
    pg = browser.page(url)
    t0 = time.perf_counter()
    pg.js("window.fraReady = false")
    pg.call("Page.reload")
    pg.wait("document.readyState === 'complete' && !!window.fraReady", 60)
    load_ms = (time.perf_counter() - t0) * 1e3
    ms: dict[str, list[float]] = {k: [] for k in ("head", "thumb", "query", "key", "channel", "top_channel", "dense",
                                                  "key_view", "hover", "zoom_in", "zoom_fit")}
    unembedded = 0  # map cells where both features are active but no value is embedded
    for h in range(heads):
        ms["head"].append(pg.js(f"(() => {{ const t = performance.now(), s = document.getElementById('head');"
                                f" s.value = '{(h + 1) % heads}'; s.dispatchEvent(new Event('change'));"
                                " return performance.now() - t; })()"))
        ms["thumb"].append(pg.click(f'#thumbs .thumb[data-h="{h}"]'))
        ms["query"].append(pg.click(f'#tokens .tok[data-i="{P - 1 - 7 * h}"]'))
        j = pg.js("(() => { const { h, i } = fraExplorer.state; for (let j = i; j >= 0; j--) {"  # it shows channels
                  " const n = pairOf(h, i, j); if (n !== undefined && topListed(n, i, j)) return j; }"
                  " return null; })()")
        ms["key"].append(pg.click("#keys .tok.has" if j is None else f'#keys .tok[data-j="{j}"]'))
        if pg.js("!!document.querySelector('#channels tr.clickable')"):
            ms["channel"].append(pg.click("#channels tr.clickable"))
        if pg.js("!!document.querySelector('#top tr.clickable:not(.sel)')"):  # another channel: a new whole map
            ms["top_channel"].append(pg.click("#top tr.clickable:not(.sel)"))
            unembedded += pg.js("[...fraExplorer.map.m.vals.values()].filter(v => v === null).length")
        for _ in range(2):  # dense-feature channels shown, then collapsed again
            ms["dense"].append(pg.click("#show-dense"))
        ms["key_view"] += [pg.click("#view-col"), pg.click("#view-row")]
        x, y = pg.js("(() => { const v = fraExplorer.view, g = v.grids[0], r = g.canvas.getBoundingClientRect(),"
                     " c = g.side() / v.n; const i = fraExplorer.state.i, j = fraExplorer.state.j;"
                     " return [r.left + MARGIN + (j - v.c0 + .5) * c, r.top + MARGIN + (i - v.r0 + .5) * c]; })()")
        pg.js("window.__t0 = performance.now()")
        pg.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        ms["hover"].append(pg.js(
            "new Promise(r => requestAnimationFrame(() => setTimeout(() => r(performance.now() - window.__t0))))",
            await_promise=True))
        ms["zoom_in"].append(pg.click("#zoom-in"))
        ms["zoom_fit"].append(pg.click("#zoom-fit"))
    errors = pg.errors()
    return {"load_ms": round(load_ms), "errors": errors, "map_cells_unembedded": unembedded,
            "click_to_paint_ms": {k: {"median": round(statistics.median(v), 1), "max": round(max(v), 1), "n": len(v)}
                                  for k, v in ms.items() if v}}


def dataset(s: Setting, model, out: Path, single_payload_: dict) -> dict:
    t = {}
    t0 = time.perf_counter()
    rows = shown_channels(read_channels(s.channels), s.per_head)
    chans = sorted({tuple(int(x) for x in c) for c in rows[["layer", "head", "query_feature", "key_feature"]].values})
    layers = sorted({c[0] for c in chans})
    saes = {la: load_sae(s.sae_pattern.format(layer=la), la, "cpu") for la in layers}
    tokens = torch.from_numpy(np.load(s.corpus).astype(np.int64))[:s.n_seqs]
    t["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    examples, attn = channel_examples(model, saes, tokens, chans)
    t["examples_s"] = time.perf_counter() - t0
    strings = Strings()
    feats = {la: sorted({x for c in chans if c[0] == la for x in c[2:]}) for la in layers}
    cards = pipeline_cards(feats, read_cards(s.cards), read_features(s.features), {}, strings) if s.cards else None
    links = ("single.html", text_page_links(single_payload_, chans))
    payload = dataset_payload(rows, s.model, examples, attn, token_strings(model, tokens), cards, strings, links)
    html = page("dataset", "bench: channels", payload)
    (out / "channels.html").write_text(html)
    return {"channels": len(chans), "probe_rows": len(rows), "build": {k: round(v, 2) for k, v in t.items()},
            **sizes(payload, html)}


def click_dataset(browser: Browser, url: str) -> dict:
    pg = browser.page(url)
    ms = {"row": [pg.click(f"#table tr[data-ch]:nth-child({n})") for n in range(2, 8)],
          "sort": [pg.click('th[data-col="support"]'), pg.click('th[data-col="q_value"]')]}
    for v in ("confirmed", "all"):
        ms.setdefault("filter", []).append(pg.js(
            f"(() => {{ const s = document.getElementById('status'); s.value = '{v}';"
            " s.dispatchEvent(new Event('change')); return fraExplorer.lastUpdate.ms; })()"))
    return {"errors": pg.errors(),
            "click_to_paint_ms": {k: {"median": round(statistics.median(v), 1), "max": round(max(v), 1)}
                                  for k, v in ms.items()}}


def bench_pages(s: Setting, out: str | Path | None = None) -> dict:
    """Build the pages into ``out`` (default: a temporary folder), time them in Chromium and print the figures."""
    out = Path(out or tempfile.mkdtemp(prefix="fra-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_model(s.model, "cpu")
    report = {"model_load_s": round(time.perf_counter() - t0, 2), "torch_threads": torch.get_num_threads()}
    report["single"], payload = single(s, model, out)
    if s.channels:
        report["dataset"] = dataset(s, model, out, payload)
    browser = Browser()
    try:
        report["single"]["browser"] = click_single(browser, (out / "single.html").as_uri(), report["single"]["tokens"],
                                                   report["single"]["heads"])
        if s.channels:
            report["dataset"]["browser"] = click_dataset(browser, (out / "channels.html").as_uri())
    finally:
        browser.close()
    report["pages"] = str(out)
    print(json.dumps(report, indent=1))
    return report
