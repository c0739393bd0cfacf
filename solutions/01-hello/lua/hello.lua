-- Lab 01 reference solution in Lua, run by the kit as `mqlab run hello.lua`
-- with the kit's global `mqtt` module: connect with the kit's client id,
-- subscribe, publish "hola", print our own message back, DISCONNECT.
--
-- The module is synchronous: subscribe() returns once the SUBACK is in,
-- so publishing right after it is already "publishing on SUBACK".

-- Raising (rather than os.exit) lets `mqlab run` print the message on
-- stderr, where the kit shows it, exit non-zero and still close its
-- resources.
local function die(client, what, msg)
  if client then client:disconnect() end
  error("hello: " .. what .. ": " .. tostring(msg), 0)
end

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then die(nil, name, "not set (run me with mqlab check)") end
  return v
end

local topic = need_env("MQTT_TOPIC")
local port = tonumber(need_env("MQTT_PORT"))
if not port then die(nil, "MQTT_PORT", "not a number") end

local c, err = mqtt.connect {
  host = need_env("MQTT_HOST"), port = port,
  id = need_env("MQTT_CLIENT_ID"), clean = true, keepalive = 30,
}
if not c then die(nil, "connect", err) end

local granted, serr = c:subscribe(topic, 1)
if not granted then die(c, "subscribe", serr) end
if granted == 128 then die(c, "subscribe", "the broker refused " .. topic) end

local mid, perr = c:publish(topic, "hola", { qos = 1 })
if not mid then die(c, "publish", perr) end

-- Wait only for our own topic, with a deadline below the kit's 10 s.
local m, werr = c:wait(8, topic)
if not m then die(c, "waiting for our own message", werr) end

print(m.topic .. " " .. m.payload)
io.stdout:flush()   -- stdout is a pipe: flush before leaving
c:disconnect()
