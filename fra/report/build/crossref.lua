-- Quarto-style cross-references for the offline route: figures {#fig-x} and tables {#tbl-x},
-- referenced as @fig-x ("Figure 1") or [-@fig-x] ("1"). HTML: captions get "Figure N:" and
-- references become links. Typst numbers its figures itself, so references become native refs.
-- Typst also gets: callout divs as framed blocks (Quarto draws its own) and image paths addressed
-- from the Typst root (the paper folder). Runs after the project's filters, before --citeproc.

local typst = FORMAT:match("typst") ~= nil
local names = { fig = "Figure", tbl = "Table" }
local counts = { fig = 0, tbl = 0 }
local numbers = {}

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
  return el
end

local function reference(cite)
  local out = pandoc.Inlines {}
  for i, c in ipairs(cite.citations) do
    local k = kind(c.id)
    if not names[k] then return nil end -- a bibliography citation, for citeproc
    local n = numbers[c.id]
    if not n then error("unknown cross-reference @" .. c.id .. ": no figure or table is labelled #" .. c.id) end
    local bare = c.mode == "SuppressAuthor"
    if i > 1 then out:extend { pandoc.Str(","), pandoc.Space() } end
    if typst then
      out:insert(pandoc.RawInline("typst", bare and ("#ref(<" .. c.id .. ">, supplement: none)") or ("@" .. c.id)))
    else
      local text = bare and tostring(n) or (names[k] .. "\u{a0}" .. n)
      out:insert(pandoc.Link(text, "#" .. c.id))
    end
  end
  return out
end

local function wrap(open, el, close)
  return { pandoc.RawBlock("typst", open), el, pandoc.RawBlock("typst", close) }
end

return {
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
