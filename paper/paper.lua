-- The paper's own pandoc filter, listed under `filters:` in _quarto.yml, so Quarto and the offline route
-- (fra/report/build/build.py) both run it. For Typst only:
-- * provenance lines ([Source: ...]{.provenance}) in small grey type on a line of their own, unjustified
--   (they hold long unbreakable names); HTML styles the span with paper.css;
-- * a long table, which fra.report.tables.table wraps in a `.breakable` div, breaks across pages where it
--   stands instead of floating like every other figure and table (layout.typ).
if not FORMAT:match("typst") then
  return {}
end

local SMALL = "#set text(size: 0.78em, fill: luma(70), hyphenate: false)"

local function provenance(el)
  return el.t == "Span" and el.classes:includes("provenance")
end

return {
  { -- a paragraph that ends with its provenance line: the line becomes an unjustified block of its own
    Para = function(el)
      local last = el.content[#el.content]
      if last and provenance(last) then
        local text = pandoc.Inlines { pandoc.RawInline("typst", "#block[#set par(justify: false)\n" .. SMALL .. "\n") }
        text:extend(last.content)
        text:insert(pandoc.RawInline("typst", "]"))
        el.content:remove(#el.content)
        return { el, pandoc.Plain(text) }
      end
    end,
  },
  { -- provenance lines inside captions (layout.typ keeps captions unjustified)
    Span = function(el)
      if provenance(el) then
        local out = pandoc.Inlines { pandoc.RawInline("typst", "#linebreak()#text(size: 0.78em, fill: luma(70), "
          .. "hyphenate: false)[") }
        out:extend(el.content)
        out:insert(pandoc.RawInline("typst", "]"))
        return out
      end
    end,
    Div = function(el)
      if el.classes:includes("breakable") then
        local scope = "#[#show figure: set figure(placement: none)\n#show figure: set block(breakable: true)"
        local out = pandoc.Blocks { pandoc.RawBlock("typst", scope) }
        out:extend(el.content)
        out:insert(pandoc.RawBlock("typst", "]"))
        return out
      end
    end,
  },
}
