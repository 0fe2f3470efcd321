import subprocess

import pypandoc
import pytest

from fra.report.build.pandoc import FILTER

DOC = """\
# Intro {#sec-intro}

See @sec-meth, [-@sec-sub] and @sec-app-a.

::: {.content-visible when-format="html"}
Screen only.
:::

::: {.content-hidden when-format="html"}
Print only.
:::

# Method {#sec-meth}

## Sub {#sec-sub}

# References {.unnumbered}

# Appendix {.unnumbered .appendix}

# First {#sec-app-a}

## Inner {#sec-app-a1}
"""


def convert(text: str, to: str) -> str:
    run = subprocess.run([pypandoc.get_pandoc_path(), "-f", "markdown", "-t", to, "--number-sections",
                          "--lua-filter", str(FILTER)], input=text, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(run.stderr)
    return run.stdout


def test_html_numbers_sections_and_letters_the_appendix():
    html = " ".join(convert(DOC, "html5").split())
    assert '<a href="#sec-meth">Section 2</a>' in html and '<a href="#sec-sub">2.1</a>' in html
    assert '<a href="#sec-app-a">Appendix A</a>' in html
    assert '<span class="header-section-number">A.1</span> Inner' in html
    assert 'id="references">References' in html  # unnumbered stays so
    assert "Screen only." in html and "Print only." not in html


def test_typst_letters_the_appendix_after_a_page_break():
    typ = convert(DOC, "typst")
    assert "@sec-meth" in typ and "#ref(<sec-sub>, supplement: none)" in typ
    assert typ.index('#set heading(numbering: "A.1", supplement: [Appendix])') < typ.index("<sec-app-a>")
    assert "Print only." in typ and "Screen only." not in typ


def test_an_unknown_section_is_an_error():
    with pytest.raises(RuntimeError, match="unknown cross-reference @sec-none"):
        convert("See @sec-none.\n", "html5")


def test_a_figure_of_results_not_produced_is_named_so_only_where_the_document_says_so():
    notice = "::: {.callout-note}\n**Results not available.** `results/x.csv` has not been produced.\n:::\n\n"
    assert "Figure\u00a0(not produced here)" in convert(notice + "See @fig-x.\n", "html5")
    with pytest.raises(RuntimeError, match="unknown cross-reference @fig-x"):
        convert("See @fig-x.\n", "html5")
    with pytest.raises(RuntimeError, match="unknown cross-reference @sec-x"):
        convert(notice + "See @sec-x.\n", "html5")
