-- Lab 04 reference solution in Lua, run by the kit as `mqlab run
-- dispenser.lua` with the kit's global `mqtt` module: LAB_COUNT dose
-- commands, each carried out exactly once through a link that loses
-- packets and is cut in the middle of the exchanges.
--
-- - QoS 2 with a persistent session (clean = false) under the kit's
--   client id: the broker remembers which exchanges it has seen.
-- - publish() with wait = false hands every command to the library at
--   once; client:acked(mid) says when its PUBCOMP has come.
-- - After a cut, client:reconnect() connects the same client again (the
--   same session), waiting 1 s, 2 s, 4 s... between attempts. The library
--   then finishes each exchange where it stopped: the PUBLISH again
--   (DUP=1) when the PUBREC was lost, only the PUBREL when the PUBCOMP was.
--   The program never publishes a command twice itself.
-- - It leaves once every command is complete.
local kit = require "mqlab.kit"

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("dispenser: " .. name .. " is not set (run me with mqlab check)", 0) end
  return v
end

local host = need_env("MQTT_HOST")
local port = tonumber(need_env("MQTT_PORT"))
local id = need_env("MQTT_CLIENT_ID")
local topic = need_env("MQTT_TOPIC")
local count = tonumber(need_env("LAB_COUNT"))
local MIN_DELAY, MAX_DELAY = 1, 4
local DEADLINE = 35           -- seconds: give up before the kit's 40

local function log(fmt, ...)
  io.stderr:write("dispenser: ", string.format(fmt, ...), "\n")
end

local client, err = mqtt.connect { host = host, port = port, id = id, clean = false, keepalive = 20 }
if not client then error("dispenser: cannot connect: " .. tostring(err), 0) end

local batch = string.format("%08x", math.random(0, 0x7fffffff))
local sent = 0                -- commands handed to the library
local pending = {}            -- mid -> true, until its PUBCOMP
local npending = 0
local delay, next_try = MIN_DELAY, nil
local was_connected = true
local start = kit.now()

while true do
  local now = kit.now()
  if now - start > DEADLINE then
    log("%d commands not complete; giving up", npending + count - sent)
    client:close()
    os.exit(1)
  end
  local connected = client:connected()
  if connected then
    while sent < count do
      local n = sent + 1
      local payload = string.format('{"id": "%s-%d", "ts": %d, "v": %.1f}', batch, n, kit.wall_ms(), 2.5 * (1 + n % 3))
      local mid = client:publish(topic, payload, { qos = 2, wait = false })
      if not mid then break end           -- the link went down meanwhile
      sent = n
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
        log("connected again to the same session")
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
  if sent == count and npending == 0 then break end
  kit.sleep(0.01)
end

log("all %d commands complete", count)
client:disconnect()
