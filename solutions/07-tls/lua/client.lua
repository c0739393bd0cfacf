-- Lab 07 reference solution in Lua, run by the kit as `mqlab run client.lua`
-- with the kit's global `mqtt` module: one reading over TLS, trusting only
-- the CA in MQTT_CAFILE.
--
-- With `cafile`, mqtt.connect speaks TLS, trusts that file alone, and
-- checks that the broker's certificate names the host we dialled. When
-- either check fails the handshake is aborted and connect returns nil and
-- the reason: the CONNECT never leaves the machine.

-- Raising (rather than os.exit) lets `mqlab run` print the message on
-- stderr, where the kit shows it, exit non-zero and still close its
-- resources.
local function die(client, what, msg)
  if client then client:disconnect() end
  error("client: " .. what .. ": " .. tostring(msg), 0)
end

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then die(nil, name, "not set (run me with mqlab check)") end
  return v
end

local host = need_env("MQTT_HOST")
local id = need_env("MQTT_CLIENT_ID")
local topic = need_env("MQTT_TOPIC")
local port = tonumber(need_env("MQTT_PORT"))
if not port then die(nil, "MQTT_PORT", "not a number") end

local c, err = mqtt.connect {
  host = host, port = port, id = id, clean = true, keepalive = 30,
  cafile = need_env("MQTT_CAFILE"), tls_version = "tlsv1.2",
}
if not c then die(nil, "refusing to talk to " .. host .. ":" .. port, err) end

-- ts in milliseconds since 1970; os.time() has whole seconds only, and
-- the kit asks for a plausible time, not a precise one.
local reading = string.format('{"id": "%s-0001", "ts": %d, "v": %.2f}', id, os.time() * 1000, 21.4)
local mid, perr = c:publish(topic, reading, { qos = 1 })
if not mid then die(c, "publish", perr) end

c:disconnect()
io.stderr:write("client: published " .. id .. "-0001 on " .. topic .. " over TLS\n")
