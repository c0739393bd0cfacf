-- brokerlog.lua: what the broker saw, read from Mosquitto's own log
-- (log_type all). Each line becomes an event; unknown lines are kept
-- as {kind="other"} so nothing is silently lost.
--
-- Mosquitto 2.0 writes, for example:
--   New client connected from 127.0.0.1:42562 as subx (p2, c1, k60).
--   New client connected from 127.0.0.1:58725 as puby (p2, c1, k60, u'u1').
--   Will message specified (3 bytes) (r1, q1).
--   <TAB>will/t                                    (the will's topic)
--   Sending CONNACK to puby (0, 0)
--   Received SUBSCRIBE from subx
--   <TAB>a/# (QoS 1)
--   subx 1 a/#                                      (log_type subscribe: id, QoS, filter)
--   Sending SUBACK to subx
--   Received UNSUBSCRIBE from subx
--   <TAB>a/#
--   subx a/#                                        (log_type unsubscribe: id, filter)
--   Received PUBLISH from puby (d0, q1, r0, m1, 'a/b', ... (4 bytes))
--   Sending PUBLISH to subx (d0, q1, r0, m1, 'a/b', ... (4 bytes))
--   Received DISCONNECT from puby
--   Client puby disconnected.          (clean)
--   Client x closed its connection.     (dirty, as is "has exceeded timeout, disconnecting.")
--   Denied PUBLISH from s1 (d0, q1, r0, m1, 'a/b', ... (4 bytes))      (an ACL refused it)
--   Client s1 already connected, closing old connection.              (a client id taken over)
--   Client connection from 127.0.0.1:5 failed: error:0A00010B:...     (a TLS handshake failed)
--   OpenSSL Error[0]: error:0A000412:...
-- Every event keeps its line, without the timestamp, as `text`.
--
-- Besides the lines above, events of kind "unsubscribe" (with its filters)
-- and "will" (with its client, topic, QoS and retain flag).
--
-- Client ids, usernames, topics and filters come from the programs being
-- graded and may hold any character but control ones (mosquitto refuses
-- those), so a line cannot be split in two, but its middle can imitate
-- anything. Hence:
-- - Fields are read from the fixed ends of a line, and the client's text
--   is what is left in between.
-- - When that still leaves several readings (an id that holds
--   " (d0, q1, r0, m1, '"), the client ids that connected earlier in the
--   log pick one; if none or several fit, the event gets
--   `ambiguous = true`, `client = nil` and its readings in `candidates`.
-- - The "id QoS filter" and "id filter" lines are all client text; they
--   are read only as the echo of the filter line just before them.
-- - A line of 999 bytes may have been cut (mosquitto's buffer is 1000),
--   losing its fixed end: it gets `truncated = true`, no field is read
--   from its client text, and it is ambiguous when that leaves its client
--   or its fields unknown.
-- select() leaves ambiguous events out, so a lab never credits a client
-- for a line it may not have caused.

local M = {}

-- mosquitto formats each line, timestamp included, into 1000 bytes.
local CUT = 999

-- Where the fields of a PUBLISH, and of a connect with a username, start.
local PUB_MARK = " %(d(%d), q(%d), r(%d), m(%d+), '"
local USER_MARK = " %(p(%d+), c(%d), k(%d+), u'"

local function starts(s, prefix) return s:sub(1, #prefix) == prefix end

-- Every place `pat` matches in `s`, as { start, stop, captures... }.
local function occurrences(s, pat)
  local out, init = {}, 1
  while true do
    local m = table.pack(s:find(pat, init))
    if not m[1] then return out end
    out[#out + 1] = m
    init = m[1] + 1
  end
end

-- The one reading, or else the one whose client id had connected
-- (`known`, only when the log goes back to the broker's start).
local function pick(cands, known)
  if #cands == 1 then return cands[1] end
  if not known then return nil end
  local hit
  for _, c in ipairs(cands) do
    if known[c.client] then
      if hit then return nil end
      hit = c
    end
  end
  return hit
end

local function settle(ev, cands, chosen)
  if chosen then
    for k, v in pairs(chosen) do ev[k] = v end
  else
    ev.ambiguous, ev.candidates = true, cands
  end
  return ev
end

-- The three lines that describe a PUBLISH, and the event kind of each.
local PUBLISH_LINES = {
  { "Received PUBLISH from ", "publish_in" },
  { "Sending PUBLISH to ", "publish_out" },
  { "Denied PUBLISH from ", "denied_publish" },
}

-- "<id> (dD, qQ, rR, mM, '<topic>', ... (N bytes))". The end is fixed; the
-- marker before the topic may also appear inside the id or the topic, so
-- each place it occurs is a reading. Readings mosquitto cannot write are
-- dropped: the message id is 0 exactly at QoS 0, and a topic published
-- on is not empty and has no wildcard.
local function publish_line(msg, cut, known)
  for _, pl in ipairs(PUBLISH_LINES) do
    if starts(msg, pl[1]) then
      local ev = { kind = pl[2] }
      if cut then
        ev.truncated, ev.ambiguous, ev.candidates = true, true, {}
        return ev
      end
      local body, bytes = msg:sub(#pl[1] + 1):match("^(.*)', %.%.%. %((%d+) bytes%)%)$")
      local cands = {}
      for _, o in ipairs(body and occurrences(body, PUB_MARK) or {}) do
        local d, q, r, m = tonumber(o[3]), tonumber(o[4]), tonumber(o[5]), tonumber(o[6])
        local topic = body:sub(o[2] + 1)
        if d <= 1 and q <= 2 and r <= 1 and (q == 0) == (m == 0) and topic ~= "" and not topic:find("[+#]") then
          cands[#cands + 1] = { client = body:sub(1, o[1] - 1), dup = d == 1, qos = q, retain = r == 1, mid = m,
                                topic = topic, bytes = tonumber(bytes) }
        end
      end
      ev.bytes = tonumber(bytes)
      return settle(ev, cands, pick(cands, known))
    end
  end
end

-- The readings of what follows "as " in a connect line: "<id> (pP, cC,
-- kK)." (one reading: the end is fixed) or "<id> (pP, cC, kK, u'<user>')."
-- (one per place the marker occurs, since the id and the username are
-- both the client's).
local function connect_readings(rest)
  local id, p, c, k = rest:match("^(.*) %(p(%d+), c(%d), k(%d+)%)%.$")
  if id then return { { client = id, protocol = tonumber(p), clean = c == "1", keepalive = tonumber(k) } } end
  local cands = {}
  if rest:sub(-3) == "')." then
    for _, o in ipairs(occurrences(rest, USER_MARK)) do
      if o[2] + 3 <= #rest then
        cands[#cands + 1] = { client = rest:sub(1, o[1] - 1), protocol = tonumber(o[3]), clean = o[4] == "1",
                              keepalive = tonumber(o[5]), username = rest:sub(o[2] + 1, -4) }
      end
    end
  end
  return cands
end

-- The client id in the CONNACK that answers the connect on line i:
-- mosquitto writes the connect line, the will lines and the CONNACK in
-- one go, and the CONNACK line ends in fixed text.
local function connack_id(lines, i)
  local l, j = lines[i + 1], nil
  if l and l.msg:match("^Will message specified ") then j = i + 3
  elseif l and l.msg == "No will message specified." then j = i + 2 end
  l = j and lines[j]
  if l and not l.cut then return l.msg:match("^Sending CONNACK to (.*) %(%d+, %d+%)$") end
end

-- "Client <id> ...": the kinds read from the fixed end of the line.
local CLIENT_LINES = {
  { "^Client (.*) disconnected%.$", { kind = "disconnected", clean = true } },
  { "^Client (.*) closed its connection%.$", { kind = "disconnected", clean = false } },
  { "^Client (.*) has exceeded timeout, disconnecting%.$", { kind = "disconnected", clean = false, timeout = true } },
  { "^Client (.*) already connected, closing old connection%.?$", { kind = "takeover" } },
}

-- The lines that start a group: the filter lines (and their echoes) follow.
local GROUP_LINES = {
  { "^Received SUBSCRIBE from (.*)$", "subscribe" },
  { "^Received UNSUBSCRIBE from (.*)$", "unsubscribe" },
}

-- The log's lines: timestamp, message, and whether the end may be lost
-- (999 bytes, or the last line before mosquitto finished writing it).
local function split(log)
  local lines, pos = {}, 1
  while pos <= #log do
    local nl = log:find("\n", pos, true)
    local raw = log:sub(pos, (nl or #log + 1) - 1)
    pos = (nl or #log) + 1
    if raw ~= "" then
      local ts, msg = raw:match("^(%d+): (.*)$")
      lines[#lines + 1] = { t = tonumber(ts), msg = msg or raw, cut = #raw >= CUT or not nl }
    end
  end
  return lines
end

-- Whether `msg`, right after a filter line of `group`, is the echo of it
-- ("id QoS filter" or "id filter"): the exact line when all is known;
-- when a cut hid part of it, any line that starts like the id. Erring
-- towards "echo" only ever hides a line of that same client.
local function is_echo(msg, cut, group)
  local exp = group.expect
  if exp then return msg == exp or (cut and starts(exp, msg)) end
  local head = group.client and group.client .. " " or group.vis
  return starts(msg, head) or (cut and starts(head, msg))
end

-- A filter line ("\t<filter> (QoS q)" or "\t<filter>"), added to its group.
local function filter_line(msg, cut, group)
  local f = { truncated = cut or nil }
  group.expect = nil
  if cut then
    -- Only the start of the filter is known; so is that of its echo.
  elseif group.ev.kind == "subscribe" then
    local filter, q = msg:match("^\t(.*) %(QoS (%d)%)$")
    if filter then
      f.filter, f.qos = filter, tonumber(q)
      if group.client then group.expect = group.client .. " " .. q .. " " .. filter end
    end
  else
    f.filter = msg:sub(2)
    if group.client then group.expect = group.client .. " " .. f.filter end
  end
  group.ev.filters[#group.ev.filters + 1] = f
end

-- The event of line i, which is no filter line. `st` holds what the lines
-- before said: the client ids that connected (`known`), whether the log
-- starts with the broker (`complete`), the last event, and, set here,
-- the group or will whose lines come next.
local function line_event(lines, i, st)
  local msg, cut = lines[i].msg, lines[i].cut
  local addr, rest = msg:match("^New client connected from (%S+) as (.*)$")
  if addr then
    local ev = { kind = "connect", addr = addr }
    local acked = connack_id(lines, i)
    if cut then
      ev.truncated, ev.ambiguous, ev.candidates, ev.client = true, true, {}, acked
    else
      local cands = connect_readings(rest)
      local chosen = #cands == 1 and cands[1] or nil
      for _, c in ipairs(cands) do
        if not chosen and c.client == acked then chosen = c end
        st.known[c.client] = true
      end
      settle(ev, cands, chosen)
    end
    if ev.client then st.known[ev.client] = true end
    return ev
  end
  for _, g in ipairs(GROUP_LINES) do
    local id = msg:match(g[1])
    if id then
      local ev = { kind = g[2], filters = {} }
      st.group = { ev = ev }
      if cut then
        ev.truncated, ev.ambiguous, st.group.vis = true, true, id
      else
        ev.client, st.group.client = id, id
      end
      return ev
    end
  end
  local ev = publish_line(msg, cut, st.complete and st.known or nil)
  if ev then return ev end
  local id = msg:match("^Received DISCONNECT from (.*)$")
  if id then
    if cut then return { kind = "disconnect_packet", truncated = true, ambiguous = true } end
    return { kind = "disconnect_packet", client = id }
  end
  if not cut then
    for _, cl in ipairs(CLIENT_LINES) do
      id = msg:match(cl[1])
      if id then
        ev = { client = id }
        for k, v in pairs(cl[2]) do ev[k] = v end
        return ev
      end
    end
  end
  local addr2, why = msg:match("^Client connection from (%S+) failed: (.*)$")
  if addr2 then return { kind = "tls_failure", addr = addr2, why = why } end
  if msg:match("^OpenSSL Error") then return { kind = "tls_failure", why = msg } end
  local b, r, q = msg:match("^Will message specified %((%d+) bytes%) %(r(%d), q(%d)%)%.?$")
  if b then
    ev = { kind = "will", bytes = tonumber(b), retain = r == "1", qos = tonumber(q) }
    -- Written right after the connect line of the same client.
    if st.last and st.last.kind == "connect" then ev.client = st.last.client end
    st.will = ev
    return ev
  end
  return { kind = "other", truncated = cut or nil }
end

function M.parse(log)
  local lines = split(log or "")
  local st = {
    known = {},
    -- Only a log that starts with the broker lists every client id.
    complete = lines[1] ~= nil and lines[1].msg:match("^mosquitto version %S+ starting$") ~= nil,
  }
  local events = {}
  local orphan  -- a filter line outside any group: its echo may come next
  for i, l in ipairs(lines) do
    local msg, cut = l.msg, l.cut
    local tab = msg:sub(1, 1) == "\t"
    local group, ev = st.group, nil
    if tab and st.will then
      if not cut then st.will.topic = msg:sub(2) end
      st.will = nil
    elseif tab and group then
      filter_line(msg, cut, group)
      group.after_filter = true
    elseif tab then
      -- A line whose start we did not see (a log read from the middle):
      -- keep it, and do not trust the line after it.
      ev = { kind = "other" }
      orphan = true
    elseif group and group.after_filter and is_echo(msg, cut, group) then
      group.after_filter = false
    elseif orphan then
      ev = { kind = "other", ambiguous = true }
      orphan = nil
    else
      st.group, st.will = nil, nil
      ev = line_event(lines, i, st)
    end
    if group and not tab then group.after_filter = false end
    if ev then
      ev.text = msg
      ev.t = l.t
      events[#events + 1] = ev
      st.last = ev
    end
  end
  return events
end

-- Events of one kind (and, optionally, one client). Ambiguous events are
-- left out: which client caused them is not known.
function M.select(events, kind, client)
  local out = {}
  for _, e in ipairs(events) do
    if e.kind == kind and not e.ambiguous and (client == nil or e.client == client) then out[#out + 1] = e end
  end
  return out
end

return M
