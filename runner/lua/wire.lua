-- wire.lua: reading a proxy trace, for lab files.
--
-- The proxy (mqlab.proxy) gives one table per event. Labs ask the same
-- questions of it again and again: which packets of a kind, which
-- connections and how they ended, how many connection attempts in a
-- window, what a reading's payload says. They live here, so that every
-- lab quotes the wire the same way.

local M = {}

---------------------------------------------------------------- JSON

-- A small, strict JSON decoder: enough for the payloads students send.
-- Returns value, or nil and a short reason. Never raises on bad input.
local decode

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function skip(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

local function str(s, i)
  local out, j = {}, i + 1
  while true do
    local c = s:sub(j, j)
    if c == "" then return nil, "unterminated string" end
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      local e = s:sub(j + 1, j + 1)
      if escapes[e] then
        out[#out + 1] = escapes[e]; j = j + 2
      elseif e == "u" then
        local hex = s:sub(j + 2, j + 5)
        if not hex:match("^%x%x%x%x$") then return nil, "bad \\u escape" end
        out[#out + 1] = utf8.char(tonumber(hex, 16)); j = j + 6
      else
        return nil, "bad escape"
      end
    elseif c:byte() < 32 then
      return nil, "control character in a string"
    else
      out[#out + 1] = c; j = j + 1
    end
  end
end

local function value(s, i, depth)
  if depth > 64 then return nil, "nested too deep" end
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local obj = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return obj, i + 1 end
    while true do
      if s:sub(i, i) ~= '"' then return nil, "expected a key" end
      local k, ni = str(s, i)
      if type(ni) ~= "number" then return nil, ni end
      i = skip(s, ni)
      if s:sub(i, i) ~= ":" then return nil, "expected ':'" end
      local v, vi = value(s, i + 1, depth + 1)
      if type(vi) ~= "number" then return nil, vi end
      obj[k] = v
      i = skip(s, vi)
      local d = s:sub(i, i)
      if d == "}" then return obj, i + 1 end
      if d ~= "," then return nil, "expected ',' or '}'" end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local arr, n = {}, 0
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return arr, i + 1 end
    while true do
      local v, vi = value(s, i, depth + 1)
      if type(vi) ~= "number" then return nil, vi end
      n = n + 1; arr[n] = v
      i = skip(s, vi)
      local d = s:sub(i, i)
      if d == "]" then return arr, i + 1 end
      if d ~= "," then return nil, "expected ',' or ']'" end
      i = i + 1
    end
  elseif c == '"' then
    return str(s, i)
  elseif s:find("^true", i) then return true, i + 4
  elseif s:find("^false", i) then return false, i + 5
  elseif s:find("^null", i) then return M.null, i + 4
  else
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if num and num ~= "" and num ~= "-" then
      local v = tonumber(num)
      if v then return v, i + #num end
    end
    return nil, "unexpected '" .. c .. "'"
  end
end

-- JSON null, distinct from a missing key.
M.null = setmetatable({}, { __tostring = function() return "null" end })

function decode(s)
  if type(s) ~= "string" then return nil, "not a string" end
  local ok, v, i = pcall(value, s, 1, 0)
  if not ok then return nil, "invalid JSON" end
  if type(i) ~= "number" then return nil, i end
  if skip(s, i) <= #s then return nil, "trailing characters" end
  return v
end
M.json = decode

-- A reading as LABS.md defines it: {"id": "<id>", "ts": <ms>, "v": <number>}.
-- Returns {id=, ts=, v=}, or nil and which part is wrong: "json", "id",
-- "ts" or "v".
function M.reading(payload)
  local r = decode(payload)
  if type(r) ~= "table" then return nil, "json" end
  if type(r.id) ~= "string" or r.id == "" then
    if math.type(r.id) == "integer" then r.id = tostring(r.id) else return nil, "id" end
  end
  if type(r.ts) ~= "number" then return nil, "ts" end
  if type(r.v) ~= "number" then return nil, "v" end
  return { id = r.id, ts = r.ts, v = r.v }
end

---------------------------------------------------------------- events

local function match(ev, m)
  if type(m) == "function" then return m(ev) end
  for k, want in pairs(m) do
    local got = ev[k]
    if type(got) == "string" and type(want) == "string" then
      if got:lower() ~= want:lower() then return false end
    elseif got ~= want then
      return false
    end
  end
  return true
end
M.match = match

-- The events that match (a table of field = value, or a function).
function M.select(events, m)
  local out = {}
  for _, ev in ipairs(events) do
    if match(ev, m or {}) then out[#out + 1] = ev end
  end
  return out
end

-- One line for feedback: when, which way, what.
function M.quote(ev)
  local arrow = ev.dir == "down" and "client ◀── broker" or "client ──▶ broker"
  local fate = ""
  if ev.fate and ev.fate ~= "sent" then fate = "  [" .. ev.fate:gsub("_", " ") .. "]" end
  if ev.kind ~= "packet" then arrow = "#" .. tostring(ev.conn) end
  return string.format("%+9.1f ms  %s  %s%s", ev.t or 0, arrow, ev.text or ev.type or ev.kind, fate)
end

-- The MQTT version a CONNECT's protocol level field stands for:
-- 3 is 3.1, 4 is 3.1.1, 5 is 5.0 ("MQTT 3.1.1"; "MQTT ?" when unknown).
local VERSIONS = { [3] = "3.1", [4] = "3.1.1", [5] = "5.0" }
function M.version(level)
  return "MQTT " .. (VERSIONS[level] or ("? (" .. tostring(level) .. ")"))
end

-- The packet as an indented line, for a block of feedback under the
-- sentence that explains it.
function M.block(ev) return "    " .. M.quote(ev) end

-- Per connection: {conn, client, connect, connack, disconnect, opened,
-- closed, closed_by, packets, events}, in the order they were opened.
-- disconnect is the first DISCONNECT the client sent; events holds the
-- connection's own events (open, packets, close), so a check can ask
-- wire.select(c.events, ...) about one connection only.
function M.connections(events)
  local list, by = {}, {}
  local function get(n)
    local c = by[n]
    if not c then
      c = { conn = n, packets = 0, events = {} }
      by[n] = c
      list[#list + 1] = c
    end
    return c
  end
  for _, ev in ipairs(events) do
    if ev.kind == "open" then
      local c = get(ev.conn)
      c.opened = ev.t
      c.events[#c.events + 1] = ev
    elseif ev.kind == "packet" then
      local c = get(ev.conn)
      c.packets = c.packets + 1
      c.opened = c.opened or ev.t
      c.events[#c.events + 1] = ev
      if ev.type == "CONNECT" and not c.connect then
        c.connect = ev
        c.client = ev.client_id
      elseif ev.type == "CONNACK" and not c.connack then
        c.connack = ev
      elseif ev.type == "DISCONNECT" and ev.dir == "up" and not c.disconnect then
        c.disconnect = ev
      end
    elseif ev.kind == "close" then
      local c = get(ev.conn)
      c.closed, c.closed_by = ev.t, ev.text
      c.events[#c.events + 1] = ev
    end
  end
  return list
end

-- The connection that stands for a program, from wire.connections():
-- the first whose CONNECT carried client_id, else the first that sent a
-- CONNECT at all (a program that made up its own id is still graded on
-- what it did). A connection that never sent CONNECT (a port probe, a
-- bare socket) stands for nothing. nil when there is none.
function M.program_connection(conns, client_id)
  local first
  for _, c in ipairs(conns) do
    if c.connect then
      if client_id and c.client == client_id then return c end
      first = first or c
    end
  end
  return first
end

-- Connection attempts (accepted or refused) with t0 <= t <= t1 (ms).
function M.attempts(events, t0, t1)
  local n = 0
  for _, ev in ipairs(events) do
    if (ev.kind == "open" or ev.kind == "refused") and ev.t >= (t0 or -math.huge) and ev.t <= (t1 or math.huge) then
      n = n + 1
    end
  end
  return n
end

return M
