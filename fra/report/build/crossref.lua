-- Quarto-style cross-references for the offline route: figures {#fig-x}, tables {#tbl-x} and sections
-- {#sec-x}, referenced as @fig-x ("Figure 1", "Section 2.1") or [-@fig-x] ("1"). Sections after a heading of
-- class `appendix` are lettered ("Appendix B.2"). HTML: captions get "Figure N:", headings their numbers and
-- references become links. Typst numbers figures and headings itself, so references become native refs.
-- Both: Quarto's conditional content (`.content-visible` / `.content-hidden` with `when-format`). Typst also
-- gets: callout divs as framed blocks (Quarto draws its own) and image paths addressed from the Typst root (the
-- paper folder). Runs after the project's filters, before --citeproc.

local typst = FORMAT:match("typst") ~= nil
local names = { fig = "Figure", tbl = "Table", sec = "Section" }
local counts = { fig = 0, tbl = 0 }
local numbers = {}
local appendix = {} -- section ids in the appendix
local absent = false -- whether the document says some results were not produced (markdown.absent's notice)
local APPENDIX_TYPST = "#pagebreak(weak: true)\n#counter(heading).update(0)\n"
  .. "#set heading(numbering: \"A.1\", supplement: [Appendix])"

local function shown(el)
  local when = el.attributes["when-format"]
  if not when then return true end
  local here = typst and (when == "typst" or when == "pdf") or (not typst and when == "html")
  if el.classes:includes("content-visible") then return here end
  if el.classes:includes("content-hidden") then return not here end
  return true
end

local function letter(n)
  return string.char(64 + n)
end

-- Number the headings in document order: 1, 1.1, ... then A, A.1, ... after the `appendix` heading.
local function sections(doc)
  local level_counts, in_appendix = {}, false
  local function visit(blocks)
    local out = pandoc.Blocks {}
    for _, el in ipairs(blocks) do
      if el.t == "Div" and pandoc.utils.stringify(el):match("^Results not available") then absent = true end
      if el.t == "Div" then
        el.content = visit(el.content)
        out:insert(el)
      elseif el.t == "Header" and el.classes:includes("appendix") then
        in_appendix, level_counts = true, {}
        if typst then out:insert(pandoc.RawBlock("typst", APPENDIX_TYPST)) end
        out:insert(el)
      elseif el.t == "Header" and not el.classes:includes("unnumbered") then
        level_counts[el.level] = (level_counts[el.level] or 0) + 1
        for l = el.level + 1, 6 do level_counts[l] = nil end
        local parts = {}
        for l = 1, el.level do
          local n = level_counts[l] or 0
          parts[#parts + 1] = (l == 1 and in_appendix) and letter(n) or tostring(n)
        end
        local number = table.concat(parts, ".")
        if el.identifier ~= "" then
          if numbers[el.identifier] then error("duplicate cross-reference label #" .. el.identifier) end
          numbers[el.identifier] = number
          appendix[el.identifier] = in_appendix
        end
        if not typst then
          el.content:insert(1, pandoc.Span(pandoc.Str(number), { class = "header-section-number" }))
          el.content:insert(2, pandoc.Space())
          el.classes:insert("unnumbered") -- numbered here, not again by pandoc
        end
        out:insert(el)
      else
        out:insert(el)
      end
    end
    return out
  end
  doc.blocks = visit(doc.blocks)
  return doc
end

local function kind(id)
  return id:match("^(%a+)%-")
end

local function number(el)
  local k = kind(el.identifier)
  if not names[k] then return nil end
  if numbers[el.identifier] then error("duplicate cross-reference label #" .. el.identifier) end
  counts[k] = counts[k] + 1
  numbers[el.identifier] = counts[k]
  if typst then return nil end
  local prefix = pandoc.Inlines { pandoc.Strong { pandoc.Str(names[k] .. "\u{a0}" .. counts[k] .. ":") }, pandoc.Space() }
  local long = el.caption.long
  if #long > 0 and long[1].content then
    long[1].content = prefix .. long[1].content
  else
    long:insert(1, pandoc.Plain(prefix))
  end
  el.caption.long = long
  if el.t ~= "Table" then return el end
  -- HTML: the caption (with its provenance line) above a box that scrolls a wide table sideways on its own
  local id = el.identifier
  el.identifier = ""
  el.caption = { long = pandoc.Blocks {} }
  return pandoc.Div({ pandoc.Div(long, { class = "table-caption" }), pandoc.Div({ el }, { class = "table-scroll" }) },
    { id = id, class = "table-float" })
end

local function reference(cite)
  local out = pandoc.Inlines {}
  for i, c in ipairs(cite.citations) do
    local k = kind(c.id)
    if not names[k] then return nil end -- a bibliography citation, for citeproc
    local n = numbers[c.id]
    local bare = c.mode == "SuppressAuthor"
    if i > 1 then out:extend { pandoc.Str(","), pandoc.Space() } end
    if not n and absent and k ~= "sec" then -- a figure or table of results not produced here: its notice stands
      io.stderr:write("[WARNING] @" .. c.id .. " refers to results not produced here\n")
      out:insert(pandoc.Str((bare and "" or names[k] .. "\u{a0}") .. "(not produced here)"))
    elseif not n then
      error("unknown cross-reference @" .. c.id .. ": nothing is labelled #" .. c.id)
    elseif typst then
      out:insert(pandoc.RawInline("typst", bare and ("#ref(<" .. c.id .. ">, supplement: none)") or ("@" .. c.id)))
    else
      local name = (k == "sec" and appendix[c.id]) and "Appendix" or names[k]
      local text = bare and tostring(n) or (name .. "\u{a0}" .. n)
      out:insert(pandoc.Link(text, "#" .. c.id))
    end
  end
  return out
end

local function wrap(open, el, close)
  return { pandoc.RawBlock("typst", open), el, pandoc.RawBlock("typst", close) }
end

return {
  { Div = function(el) if not shown(el) then return {} end end },
  { Pandoc = sections },
  { Figure = number, Table = number },
  { Cite = reference },
  typst and {
    Div = function(el)
      if el.classes:find_if(function(c) return c:match("^callout") end) then
        local warn = el.classes:includes("callout-warning")
        local fill, edge = warn and "rgb(\"#fdf0e6\")" or "luma(245)", warn and "rgb(\"#c0562b\")" or "luma(150)"
        return wrap("#block(width: 100%, inset: 8pt, radius: 2pt, fill: " .. fill .. ", stroke: (left: 2pt + "
          .. edge .. "), breakable: false)[#set par(justify: false)", el, "]")
      end
    end,
    Image = function(el)
      if not el.src:match("^%a+:") and not el.src:match("^/") then
        el.src = "/" .. el.src
        return el
      end
    end,
  } or {},
}
