-- brokerlog.lua: what the broker saw, read from Mosquitto's own log
-- (log_type all). Each line becomes an event; unknown lines are kept
-- as {kind="other"} so nothing is silently lost.
--
-- Mosquitto 2.0 writes, for example:
--   New client connected from 127.0.0.1:42562 as subx (p2, c1, k60).
--   Received SUBSCRIBE from subx
--   <TAB>a/# (QoS 1)
--   Received PUBLISH from puby (d0, q1, r0, m1, 'a/b', ... (4 bytes))
--   Sending PUBLISH to subx (d0, q1, r0, m1, 'a/b', ... (4 bytes))
--   Received DISCONNECT from puby
--   Client puby disconnected.          (clean)
--   Client x closed its connection.     (dirty, since 2.0: "disconnected, not authorised" etc.)
--   Denied PUBLISH from s1 (d0, q1, r0, m1, 'a/b', ... (4 bytes))      (an ACL refused it)
--   Client s1 already connected, closing old connection.              (a client id taken over)
--   Client connection from 127.0.0.1:5 failed: error:0A00010B:...     (a TLS handshake failed)
--   OpenSSL Error[0]: error:0A000412:...
-- Every event keeps its line, without the timestamp, as `text`.

local M = {}

local function pubfields(rest)
  local d, q, r, m, topic, bytes = rest:match("^%(d(%d), q(%d), r(%d), m(%d+), '(.-)', %.%.%. %((%d+) bytes%)%)")
  if not d then return nil end
  return { dup = d == "1", qos = tonumber(q), retain = r == "1", mid = tonumber(m),
           topic = topic, bytes = tonumber(bytes) }
end

-- The three lines that describe a PUBLISH, and the event kind of each.
local PUBLISH_LINES = {
  { "^Received PUBLISH from (%S+) (%(.*)$", "publish_in" },
  { "^Sending PUBLISH to (%S+) (%(.*)$", "publish_out" },
  { "^Denied PUBLISH from (%S+) (%(.*)$", "denied_publish" },
}

local function publish_line(msg)
  for _, pl in ipairs(PUBLISH_LINES) do
    local who, rest = msg:match(pl[1])
    if who then
      local ev = pubfields(rest) or {}
      ev.kind, ev.client = pl[2], who
      return ev
    end
  end
end

function M.parse(log)
  local events = {}
  local last_sub
  for line in (log or ""):gmatch("[^\n]+") do
    local ts, msg = line:match("^(%d+): (.*)$")
    if not ts then msg = line end
    local ev
    local tab_filter, tab_qos = msg:match("^\t(.-) %(QoS (%d)%)$")
    if tab_filter and last_sub then
      last_sub.filters[#last_sub.filters + 1] = { filter = tab_filter, qos = tonumber(tab_qos) }
    else
      last_sub = nil
      local addr, id, p, c, k = msg:match("^New client connected from (%S+) as (.-) %(p(%d+), c(%d), k(%d+)")
      if addr then
        ev = { kind = "connect", client = id, addr = addr, protocol = tonumber(p),
               clean = c == "1", keepalive = tonumber(k) }
        local u = msg:match(", u'(.-)'%)")
        if u then ev.username = u end
      end
      if not ev then
        id = msg:match("^Received SUBSCRIBE from (.+)$")
        if id then ev = { kind = "subscribe", client = id, filters = {} }; last_sub = ev end
      end
      if not ev then ev = publish_line(msg) end
      if not ev then
        id = msg:match("^Received DISCONNECT from (.+)$")
        if id then ev = { kind = "disconnect_packet", client = id } end
      end
      if not ev then
        id = msg:match("^Client (.-) disconnected%.$")
        if id then ev = { kind = "disconnected", client = id, clean = true } end
      end
      if not ev then
        id = msg:match("^Client (.-) closed its connection%.$")
        if id then ev = { kind = "disconnected", client = id, clean = false } end
      end
      if not ev then
        id = msg:match("^Client (.-) has exceeded timeout")
        if id then ev = { kind = "disconnected", client = id, clean = false, timeout = true } end
      end
      if not ev then
        id = msg:match("^Client (.-) already connected, closing old connection%.?$")
        if id then ev = { kind = "takeover", client = id } end
      end
      if not ev then
        local addr, why = msg:match("^Client connection from (%S+) failed: (.*)$")
        if addr then ev = { kind = "tls_failure", addr = addr, why = why }
        elseif msg:match("^OpenSSL Error") then ev = { kind = "tls_failure", why = msg } end
      end
      if not ev then
        local t = msg:match("^Will message specified %((%d+) bytes%) %(r%d, q%d%)%.?$")
        if t then ev = { kind = "will", bytes = tonumber(t) } end
      end
      ev = ev or { kind = "other" }
      ev.text = msg
      ev.t = tonumber(ts)
      events[#events + 1] = ev
    end
  end
  return events
end

-- Events of one kind (and, optionally, one client).
function M.select(events, kind, client)
  local out = {}
  for _, e in ipairs(events) do
    if e.kind == kind and (client == nil or e.client == client) then out[#out + 1] = e end
  end
  return out
end

return M
