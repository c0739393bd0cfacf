-- text.lua: bilingual texts. A text is a string or {es=..., en=...}.

local M = {}

function M.pick(t, lang)
  if type(t) == "table" then return t[lang] or t.en or t.es or "" end
  return tostring(t or "")
end

-- Pick the language, then string.format with the arguments (if any).
function M.format(t, lang, ...)
  local s = M.pick(t, lang)
  if select("#", ...) > 0 then s = string.format(s, ...) end
  return s
end

-- Replace {{name}} with params[name]. An unknown name is the lab
-- author's mistake and is reported with `where`; when where is a file
-- (the text is that whole file), with the placeholder's line too.
function M.fill(s, params, where, is_file)
  return (s:gsub("(){{([%w_]+)}}", function(pos, k)
    local v = params[k]
    if v == nil then
      if is_file then
        local _, nl = s:sub(1, pos):gsub("\n", "")
        error(string.format("%s:%d: no parameter '%s'", where, nl + 1, k), 0)
      end
      error((where or "text") .. ": no parameter '" .. k .. "'", 0)
    end
    return tostring(v)
  end))
end

-- The end of s (trailing blanks removed), at most n bytes, "…" when cut:
-- the end of a program's stderr is where the error is.
function M.tail(s, n)
  s = tostring(s or ""):gsub("%s+$", "")
  if #s <= n then return s end
  return "…" .. s:sub(-n)
end

-- s on one line, at most n bytes (default 100), "…" when cut.
function M.short(s, n)
  s = tostring(s or ""):gsub("[\r\n]", " ")
  n = n or 100
  if #s <= n then return s end
  return s:sub(1, n) .. "…"
end

-- s with every occurrence of the plain text a replaced by b (no
-- patterns: paths are full of '-' and '.').
function M.replace(s, a, b)
  if a == "" then return s end
  local out, i = {}, 1
  while true do
    local j, k = s:find(a, i, true)
    if not j then break end
    out[#out + 1] = s:sub(i, j - 1)
    out[#out + 1] = b
    i = k + 1
  end
  out[#out + 1] = s:sub(i)
  return table.concat(out)
end

-- "once", "twice", "3 times", in the student's language.
function M.times(n, lang)
  if n == 1 then return M.pick({ es = "una vez", en = "once" }, lang) end
  if n == 2 then return M.pick({ es = "dos veces", en = "twice" }, lang) end
  return string.format(M.pick({ es = "%d veces", en = "%d times" }, lang), n)
end

return M
