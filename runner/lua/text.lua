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
-- author's mistake and is reported with `where`.
function M.fill(s, params, where)
  return (s:gsub("{{([%w_]+)}}", function(k)
    local v = params[k]
    if v == nil then error((where or "text") .. ": no parameter '" .. k .. "'", 0) end
    return tostring(v)
  end))
end

return M
