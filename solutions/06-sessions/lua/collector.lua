-- Lab 06 reference collector in Lua, run by the kit as `mqlab run collector.lua`
-- with the kit's global `mqtt` module: a persistent session keeps what
-- arrives while we are away.
--
-- - The same client id every time and clean = false: the broker keeps our
--   session (the subscription and a queue of QoS 1 messages) after we
--   leave, and hands it back, queue first, when we connect again.
-- - The subscription is at QoS 1: the broker queues for an absent client
--   only what it would deliver at QoS 1 or 2.
-- - Each message becomes one line `TOPIC PAYLOAD`, flushed at once.
-- - mqtt.catch_sigterm(): SIGTERM only sets a flag; we then DISCONNECT
--   (which does not end a persistent session) and return: exit code 0.

local kit = require "mqlab.kit"   -- kit.now(): seconds, monotonic

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("collector: " .. name .. " not set (run me with mqlab check)", 0) end
  return v
end

local host = need_env("MQTT_HOST")
local port = tonumber(need_env("MQTT_PORT"))
local id = need_env("MQTT_CLIENT_ID")
local topic = need_env("MQTT_TOPIC")

mqtt.catch_sigterm()

local function log(msg) io.stderr:write("collector: ", msg, "\n") end

-- A connected, subscribed client, or nil once SIGTERM came. Waits 1 s,
-- 2 s, 4 s... between attempts.
local function connect()
  local delay = 1
  while not mqtt.sigterm() do
    local c, err = mqtt.connect { host = host, port = port, id = id, clean = false, keepalive = 30 }
    if c then
      -- Subscribing again costs nothing, and covers a session the broker lost.
      local granted, serr = c:subscribe(topic, 1)
      if granted and granted ~= 128 then return c end
      err = serr or "the broker refused the subscription"
      c:close()
    end
    log("cannot connect (" .. tostring(err) .. "); again in " .. delay .. " s")
    local t_end = kit.now() + delay
    while not mqtt.sigterm() and kit.now() < t_end do mqtt.pump(0.05) end
    delay = math.min(delay * 2, 8)
  end
end

local c = connect()
while c and not mqtt.sigterm() do
  local m, err = c:wait(0.1)
  if m then
    io.stdout:write(m.topic, " ", m.payload, "\n")
    io.stdout:flush()
  elseif err == "disconnected" then
    log("link lost; reconnecting")
    c:close()
    c = connect()
  end
end
if c then
  c:disconnect()
  c:close()
end
log("stopped")
