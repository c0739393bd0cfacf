-- probe.lua: grade subscription filters the way a broker would, by
-- subscribing with them for real and publishing every topic of a list.
-- Used by the labs that ask students for filters (01, 02).

local topics = require "mqlab.topics"
local kit = require "mqlab.kit"

local M = {}

-- Parse an answers file: lines "KEY filter [filter...]". Keys are
-- matched without case; lines starting with "//" and blank lines are
-- notes. Returns { KEY = {filters...} } and a list of lines it could
-- not read ({line=, text=}).
function M.parse_answers(text, keys)
  local want = {}
  for _, k in ipairs(keys) do want[k:upper()] = k end
  local answers, unknown = {}, {}
  local n = 0
  for line in ((text or "") .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", "")
    local trimmed = line:match("^%s*(.-)%s*$")
    if trimmed ~= "" and not trimmed:match("^//") then
      local key, rest = trimmed:match("^([%w%-_]+)[:%s]%s*(.*)$")
      if not key then key, rest = trimmed, "" end
      local k = want[key:upper()]
      if k then
        local list = {}
        for f in rest:gmatch("%S+") do list[#list + 1] = f end
        answers[k] = list
      else
        unknown[#unknown + 1] = { line = n, text = trimmed }
      end
    end
  end
  return answers, unknown
end

-- answers: { KEY = {filters...} }; list: topics to publish.
-- Returns { KEY = { got = {topic=true...}, error = msg|nil } } measured
-- on the broker through ctx.
function M.run(ctx, answers, list)
  local results = {}
  local subs = {}
  local tag = string.format("%x", kit.wall_ms() % 0xffffff)
  local endtopic = "mqlab-probe/" .. tag .. "/end"
  for key, filters in pairs(answers) do
    local r = { got = {}, filters = filters }
    results[key] = r
    for _, f in ipairs(filters) do
      local ok, why = topics.valid_filter(f)
      if not ok then r.error = string.format("'%s': %s", f, why); break end
    end
    if not r.error and #filters > 0 then
      local c, msg = ctx:client { id = "mqlab-probe-" .. key:lower(), clean = true }
      if not c then error("probe client: " .. tostring(msg), 0) end
      for _, f in ipairs(filters) do
        local g, err = c:subscribe(f, 1)
        if not g or g == 128 then r.error = string.format("'%s': %s", f, err or "refused by the broker"); break end
      end
      c:subscribe(endtopic, 1)
      subs[key] = c
    end
  end
  local pub = assert(ctx:client { id = "mqlab-probe-pub", clean = true })
  for _, t in ipairs(list) do assert(pub:publish(t, "probe", { qos = 1 })) end
  assert(pub:publish(endtopic, "end", { qos = 1 }))
  -- QoS 1 to one subscriber keeps order: once "end" arrives, everything
  -- published before it has arrived too.
  for key, c in pairs(subs) do
    while true do
      local m = c:wait(5)
      if not m then results[key].error = results[key].error or "no answer from the broker"; break end
      if m.topic == endtopic then break end
      results[key].got[m.topic] = true
    end
    c:close()
  end
  pub:close()
  return results
end

-- The topics of list that filter selects, by the MQTT rules.
function M.expected(filter, list)
  local out = {}
  for _, t in ipairs(list) do
    if topics.matches(filter, t) then out[t] = true end
  end
  return out
end

-- Compare two sets; returns missing (in want, not got) and extra lists.
function M.diff(want, got, order)
  local missing, extra = {}, {}
  for _, t in ipairs(order) do
    if want[t] and not got[t] then missing[#missing + 1] = t end
    if got[t] and not want[t] then extra[#extra + 1] = t end
  end
  return missing, extra
end

return M
