-- Lab 05 reference solution in Lua, run by the kit as `mqlab run presence.lua`
-- with the kit's global `mqtt` module: a device that says whether it is alive.
--
-- - The Last Will (`offline`, retained, QoS 1) travels in every CONNECT:
--   if the device dies without a word, the broker says it for us.
-- - After every successful connection we publish `online`, retained: after
--   a cut the broker has just published the will, and only a new `online`
--   puts the state right.
-- - Readings go to MQTT_TOPIC/temp, not retained, with ids that stay
--   unique across restarts (the start time is part of them).
-- - The module does not reconnect by itself: when the link is gone we
--   connect again, waiting 1 s, 2 s, 4 s... between attempts.
-- - mqtt.catch_sigterm(): SIGTERM only sets a flag, so we can publish
--   `offline` ourselves (a clean DISCONNECT discards the will), disconnect
--   and return normally, which is exit code 0.

local kit = require "mqlab.kit"   -- kit.now(): seconds, monotonic; kit.wall_ms(): ms since 1970

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("presence: " .. name .. " not set (run me with mqlab check)", 0) end
  return v
end

local host = need_env("MQTT_HOST")
local port = tonumber(need_env("MQTT_PORT"))
local id = need_env("MQTT_CLIENT_ID")
local root = need_env("MQTT_TOPIC")
local interval = (tonumber(os.getenv("LAB_INTERVAL_MS")) or 1000) / 1000

local STATE = root .. "/estado"
local TEMP = root .. "/temp"
local KEEPALIVE = 20            -- the broker gives up on us after 1.5 x 20 = 30 s of silence

mqtt.catch_sigterm()

local function log(msg) io.stderr:write("presence: ", msg, "\n") end

-- Sleep up to s seconds, waking at once on SIGTERM.
local function nap(s)
  local t_end = kit.now() + s
  while not mqtt.sigterm() and kit.now() < t_end do mqtt.pump(math.min(0.05, t_end - kit.now())) end
end

-- A connected client that has said `online`, or nil once SIGTERM came.
local function connect()
  local delay = 1
  while not mqtt.sigterm() do
    local c, err = mqtt.connect {
      host = host, port = port, id = id, clean = false, keepalive = KEEPALIVE,
      will = { topic = STATE, payload = "offline", qos = 1, retain = true },
    }
    if c then
      local mid, perr = c:publish(STATE, "online", { qos = 1, retain = true })
      if mid then
        log("connected, online")
        return c
      end
      err = perr
      c:close()
    end
    log("cannot connect (" .. tostring(err) .. "); again in " .. delay .. " s")
    nap(delay)
    delay = math.min(delay * 2, 8)
  end
end

local boot = math.floor(kit.wall_ms())
local n = 0
local c = connect()
local next_due = kit.now()
while c and not mqtt.sigterm() do
  if not c:connected() then
    log("link lost; reconnecting")
    c:close()
    c = connect()
    next_due = kit.now()
  elseif kit.now() >= next_due then
    n = n + 1
    local reading = string.format('{"id": "%s-%d-%05d", "ts": %d, "v": %.2f}',
                                  id, boot, n, math.floor(kit.wall_ms()), 21 + (math.random() - 0.5) * 3)
    local mid, err = c:publish(TEMP, reading, { qos = 1, retain = false })
    if not mid then log("reading " .. n .. " not acknowledged: " .. tostring(err)) end
    next_due = next_due + interval
  else
    mqtt.pump(math.min(0.05, next_due - kit.now()))
  end
end

-- SIGTERM: our own goodbye, since the clean DISCONNECT discards the will.
if c and c:connected() then
  local mid, err = c:publish(STATE, "offline", { qos = 1, retain = true, timeout = 3 })
  if not mid then log("offline not acknowledged: " .. tostring(err)) end
  c:disconnect()
else
  log("not connected: the will has said offline for us")
end
if c then c:close() end
log("offline, bye")
