"""Pages rendered from the jinja2 templates are byte for byte what the former string replacement made."""

import html
import json
import re
from pathlib import Path

import pytest

from fra.explore.encode import STATIC, clean, page, read_payload

ROOT = Path(__file__).parents[2]
KINDS = {"showcase.html": ("single", ("pattern.js",)), "channels.html": ("dataset", ()), "cot.html": ("cot", ())}
FIELDS = {"title": "TITLE", "css | safe": "CSS", "common_js | safe": "COMMON_JS", "js | safe": "JS",
          "data | safe": "DATA"}


def replaced_page(name: str, title: str, payload: dict, scripts: tuple[str, ...] = ()) -> str:
    """The former ``fra.explore.encode.page``, kept here only to compare: ``/*KEY*/`` markers (here put back in
    place of the template's fields) replaced in turn, the title escaped by hand."""
    template = (STATIC / f"{name}.html").read_text()
    for field, key in FIELDS.items():
        assert template.count("{{ " + field + " }}") == 1
        template = template.replace("{{ " + field + " }}", f"/*{key}*/")
    data = json.dumps(clean(payload), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    parts = {
        "TITLE": title.replace("&", "&amp;").replace("<", "&lt;"),
        "CSS": (STATIC / "common.css").read_text(),
        "COMMON_JS": "\n".join((STATIC / f).read_text() for f in ("common.js", *scripts)),
        "JS": (STATIC / f"{name}.js").read_text(),
        "DATA": data,
    }
    for k, v in parts.items():
        template = template.replace(f"/*{k}*/", v)
    return template


@pytest.mark.parametrize("path", sorted(ROOT.glob("results/*/explorer/*.html")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pipelines_pages_render_as_before(path):
    """Each committed explorer page's own title and data, through both renderers."""
    name, scripts = KINDS[path.name]
    title = html.unescape(re.search(r"<title>(.*?)</title>", path.read_text()).group(1))
    payload = read_payload(path, "--page")
    assert page(name, title, payload, scripts) == replaced_page(name, title, payload, scripts)


@pytest.mark.parametrize("name, scripts", sorted(set(KINDS.values())))
def test_text_that_could_break_the_page_renders_as_before(name, scripts):
    payload = {"tokens": ["</script><script>alert(1)</script>", "a & b", "{{ x }}", "/*DATA*/", "é ⏎"],
               "score": float("nan"), "names": {"model": "<m>"}}
    title = "FRA explorer: layer 1 of <tiny & co {{ x }}"  # no > or quotes: see below
    rendered = page(name, title, payload, scripts)
    assert rendered == replaced_page(name, title, payload, scripts)
    assert "<title>FRA explorer: layer 1 of &lt;tiny &amp; co {{ x }}</title>" in rendered
    assert rendered.count("</script>") == 2 and rendered.endswith("</html>\n")


def test_angle_brackets_and_quotes_in_a_title_are_escaped():
    """The one difference from the former renderer, which left ``>`` and quotes as they were (the page reads the
    same); none of the pipeline's titles holds one."""
    assert "<title>&lt;a&gt; &#34;b&#34; &#39;c&#39;</title>" in page("cot", "<a> \"b\" 'c'", {})
