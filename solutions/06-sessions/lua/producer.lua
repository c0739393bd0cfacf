-- Lab 06 reference producer in Lua, run by the kit as `mqlab run producer.lua`
-- with the kit's global `mqtt` module: LAB_COUNT readings that survive a
-- broker restart.
--
-- - The same client id on every connection and clean = false.
-- - A Last Will in every CONNECT: `offline`, retained, QoS 1, on the
--   device's `estado` topic; `online` there once connected, and `offline`
--   ourselves before the clean DISCONNECT (which discards the will).
-- - QoS 1: client:publish returns once the PUBACK is in. When it fails
--   because the link is gone, we connect again, waiting 1 s, 2 s, 4 s...
--   between attempts, and send the same reading again, with the same id:
--   the broker may already have it, and a duplicate does no harm.
-- - So when the loop ends every reading has had its PUBACK, and returning
--   normally is exit code 0.

local kit = require "mqlab.kit"   -- kit.now(): seconds, monotonic; kit.wall_ms(): ms since 1970

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("producer: " .. name .. " not set (run me with mqlab check)", 0) end
  return v
end

local host = need_env("MQTT_HOST")
local port = tonumber(need_env("MQTT_PORT"))
local id = need_env("MQTT_CLIENT_ID")
local topic = need_env("MQTT_TOPIC")
local count = math.tointeger(tonumber(need_env("LAB_COUNT")))
local interval = tonumber(need_env("LAB_INTERVAL_MS")) / 1000

-- acme/v1/planta-1/norte/sensor-07/temp -> acme/v1/planta-1/norte/sensor-07/estado
local state = topic:gsub("/[^/]*$", "") .. "/estado"

local function log(msg) io.stderr:write("producer: ", msg, "\n") end

-- Wait s seconds, keeping the connection serviced.
local function nap(s)
  local t_end = kit.now() + s
  while kit.now() < t_end do mqtt.pump(t_end - kit.now()) end
end

-- A connected client that has said `online`; tries until it gets one.
local function connect()
  local delay = 1
  while true do
    local c, err = mqtt.connect {
      host = host, port = port, id = id, clean = false, keepalive = 10,
      will = { topic = state, payload = "offline", qos = 1, retain = true },
    }
    if c then
      local mid, perr = c:publish(state, "online", { qos = 1, retain = true })
      if mid then return c end
      err = perr
      c:close()
    end
    log("cannot connect (" .. tostring(err) .. "); again in " .. delay .. " s")
    nap(delay)
    delay = math.min(delay * 2, 30)
  end
end

local c = connect()
local start = kit.now()
for i = 1, count do
  local reading = string.format('{"id": "%s-%04d", "ts": %d, "v": %.2f}',
                                id, i, math.floor(kit.wall_ms()), 21 + (math.random() - 0.5) * 3)
  while true do
    local mid, err = c:publish(topic, reading, { qos = 1, timeout = 5 })
    if mid then break end
    log("reading " .. i .. " not acknowledged (" .. tostring(err) .. "); reconnecting")
    c:close()
    c = connect()
  end
  -- Keep the schedule, whatever happened to the broker meanwhile.
  local due = start + i * interval
  if due > kit.now() then nap(due - kit.now()) end
end

-- Leaving on purpose: say so, since the DISCONNECT discards the will.
c:publish(state, "offline", { qos = 1, retain = true, timeout = 2 })
c:disconnect()
c:close()
log("all " .. count .. " readings acknowledged")
