-- Lab 10 reference monitor in Lua, run by the kit as `mqlab run monitor.lua`
-- with the kit's global `mqtt` module: two alarms from the broker's own
-- $SYS figures, the same rules as monitor.py.
--
-- - It subscribes to MQTT_TOPIC ($SYS/broker/#); a bare '#' would get
--   nothing from $SYS.
-- - Retained messages are the last value the broker reported before we
--   subscribed, not a new report: they are skipped.
-- - ALERT clients: $SYS/broker/clients/connected falls to half or less of
--   the highest count of the last 10 s, and by at least 10 clients. Once
--   per drop: it fires again only after the count is back above half.
-- - ALERT backlog: $SYS/broker/store/messages/count went up in 3 reports
--   in a row, by at least 100 in all. A report that does not go up starts
--   the count again; once per growth.
-- - Every line is flushed at once: stdout is a pipe.
-- - SIGTERM interrupts the wait: we catch it and leave with a DISCONNECT.

local CLIENTS = "$SYS/broker/clients/connected"
local STORED = { ["$SYS/broker/store/messages/count"] = true, ["$SYS/broker/messages/stored"] = true }

local WINDOW_S = 10     -- how far back the highest client count is taken
local MIN_DROP = 10     -- fewer than this many gone is not a sharp fall
local RISES = 3         -- reports in a row going up
local MIN_GROWTH = 100  -- messages more over those reports

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("monitor: " .. name .. " is not set (run me with mqlab check)", 0) end
  return v
end

local port = tonumber(need_env("MQTT_PORT"))
if not port then error("monitor: MQTT_PORT is not a number", 0) end
local topic = os.getenv("MQTT_TOPIC") or "$SYS/broker/#"

local c, err = mqtt.connect {
  host = need_env("MQTT_HOST"), port = port,
  id = need_env("MQTT_CLIENT_ID"), clean = true, keepalive = 30,
}
if not c then error("monitor: connect: " .. tostring(err), 0) end
local granted, serr = c:subscribe(topic, 0)
if not granted or granted == 128 then
  c:disconnect()
  error("monitor: subscribe to " .. topic .. ": " .. tostring(serr or "refused"), 0)
end

local function alert(fmt, ...)
  io.stdout:write(string.format(fmt, ...), "\n")
  io.stdout:flush()
end

-- Clients: (time, count) pairs over the last WINDOW_S.
local recent, clients_alerted = {}, false

local function on_clients(now, n)
  recent[#recent + 1] = { t = now, n = n }
  -- $SYS only speaks when the value changes, so the oldest entry kept is
  -- the one still in force when the window began.
  while #recent > 1 and recent[2].t <= now - WINDOW_S do table.remove(recent, 1) end
  local peak = 0
  for _, r in ipairs(recent) do peak = math.max(peak, r.n) end
  if n * 2 <= peak and peak - n >= MIN_DROP then
    if not clients_alerted then
      alert("ALERT clients %d -> %d connected (fell %d in under %d s)", peak, n, peak - n, WINDOW_S)
      clients_alerted = true
    end
  elseif n * 2 > peak then
    clients_alerted = false
  end
end

-- Backlog: rises in a row and how much they added.
local stored_topic, last_stored, rises, growth, backlog_alerted = nil, nil, 0, 0, false

local function on_stored(n)
  if last_stored and n > last_stored then
    rises, growth = rises + 1, growth + n - last_stored
  else
    rises, growth, backlog_alerted = 0, 0, false
  end
  last_stored = n
  if rises >= RISES and growth >= MIN_GROWTH and not backlog_alerted then
    alert("ALERT backlog %d messages stored, +%d over the last %d reports", n, growth, rises)
    backlog_alerted = true
  end
end

local function watch()
  while true do
    local m, werr = c:wait(5)
    if m then
      local n = tonumber((m.payload:match("^%s*(%-?%d+)")))
      if not m.retain and n then
        if m.topic == CLIENTS then
          on_clients(m.t, n)
        elseif STORED[m.topic] then
          stored_topic = stored_topic or m.topic
          if m.topic == stored_topic then on_stored(n) end
        end
      end
    elseif werr == "disconnected" then
      return "the broker closed the connection"
    end
  end
end

-- SIGTERM raises inside c:wait(); catch it to leave with a DISCONNECT.
local ok, why = pcall(watch)
if ok then error("monitor: " .. why, 0) end
if not tostring(why):find("interrupted", 1, true) then error(why, 0) end
c:disconnect()
