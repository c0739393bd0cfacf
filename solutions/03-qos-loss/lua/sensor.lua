-- Lab 03 reference solution in Lua, run by the kit as `mqlab run sensor.lua`
-- with the kit's global `mqtt` module: LAB_COUNT readings at QoS 1, one
-- every LAB_INTERVAL_MS, through a link that drops packets and is cut.
--
-- - One client with a persistent session (clean = false). publish() with
--   wait = false hands each reading to the library at once; the library
--   keeps it until its PUBACK, and client:acked(mid) says when that came.
-- - When the link is cut, client:reconnect() connects the same client
--   again, after waiting 1 s, then 2 s, 4 s... (at most 8 s) between
--   attempts. Once the broker accepts, the library sends the readings that
--   had no PUBACK again, with DUP=1 and the same payload (the same id).
-- - Readings keep their schedule while the link is down: they wait in
--   `outbox` and go out as soon as the client is connected again.
-- - We leave as soon as every reading has its PUBACK.
--
-- mqlab.kit gives the clock (kit.now, in seconds), the wall clock in
-- milliseconds (kit.wall_ms) and a sleep that keeps the client serviced.
local kit = require "mqlab.kit"

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("sensor: " .. name .. " is not set (run me with mqlab check)", 0) end
  return v
end

local host = need_env("MQTT_HOST")
local port = tonumber(need_env("MQTT_PORT"))
local id = need_env("MQTT_CLIENT_ID")
local topic = need_env("MQTT_TOPIC")
local count = tonumber(need_env("LAB_COUNT"))
local interval = tonumber(need_env("LAB_INTERVAL_MS")) / 1000
local MIN_DELAY, MAX_DELAY = 1, 8
local DEADLINE = 25           -- seconds: give up before the kit's 30

local function log(fmt, ...)
  io.stderr:write("sensor: ", string.format(fmt, ...), "\n")
end

local client, err = mqtt.connect { host = host, port = port, id = id, clean = false, keepalive = 10 }
if not client then error("sensor: cannot connect: " .. tostring(err), 0) end

-- The n-th reading: its id is unique and the same in every re-send.
local function reading(n)
  return string.format('{"id": "%s-%04d", "ts": %d, "v": %.2f}',
                       id, n, kit.wall_ms(), 21.0 + math.random(-150, 150) / 100)
end

local start = kit.now()
local made = 0                -- readings made so far
local outbox = {}             -- readings made while the link was down
local pending = {}            -- mid -> true, until its PUBACK
local npending = 0
local delay, next_try = MIN_DELAY, nil
local was_connected = true

while true do
  local now = kit.now()
  if now - start > DEADLINE then
    log("%d readings still without PUBACK; giving up", npending + #outbox)
    client:close()
    os.exit(1)
  end
  -- Every reading on its schedule, whatever the link does.
  while made < count and now >= start + made * interval do
    made = made + 1
    outbox[#outbox + 1] = reading(made)
  end

  local connected = client:connected()
  if connected then
    while #outbox > 0 do
      local mid = client:publish(topic, outbox[1], { qos = 1, wait = false })
      if not mid then break end           -- the link went down meanwhile
      table.remove(outbox, 1)
      pending[mid] = true
      npending = npending + 1
    end
  else
    if was_connected then
      log("link lost; next attempt in %g s", delay)
      next_try = now + delay
    end
    if now >= next_try then
      local ok, why = client:reconnect(5)
      if ok then
        log("connected again")
        delay = MIN_DELAY
        connected = true
      else
        delay = math.min(delay * 2, MAX_DELAY)
        next_try = kit.now() + delay
        log("reconnect failed (%s); next attempt in %g s", tostring(why), delay)
      end
    end
  end
  was_connected = connected

  for mid in pairs(pending) do
    if client:acked(mid) then
      pending[mid] = nil
      npending = npending - 1
    end
  end
  if made == count and #outbox == 0 and npending == 0 then break end
  kit.sleep(0.01)
end

log("all %d readings acknowledged", count)
client:disconnect()
