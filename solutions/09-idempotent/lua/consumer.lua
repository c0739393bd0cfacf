-- Lab 09 reference solution in Lua, run by the kit as `mqlab run
-- consumer.lua`: an idempotent consumer with the kit's global `mqtt`
-- client and its SQLite module.
--
-- QoS 1 delivers "at least once", and not always in order. Each reading
-- is stored once because the database remembers what it holds: `id` is
-- the PRIMARY KEY and every write is INSERT OR IGNORE, so a copy of a
-- stored reading changes nothing, even after a SIGKILL and a restart.
--
-- A reading is acknowledged only once it is committed: the client is
-- connected with manual_ack, so its PUBACK leaves when client:ack(msg) is
-- called, after the INSERT (each exec outside a transaction is its own
-- commit). A consumer killed between the two loses nothing: the broker
-- never got the PUBACK and sends the reading again.
--
-- A payload that is not a valid reading is logged, acknowledged (there
-- is nothing to store, and it must not come back at every start) and
-- skipped. The session is persistent (clean = false, the stable client
-- id), the course's default. SIGTERM interrupts the wait and ends the
-- script; `mqlab run` then closes the database and the connection.

local sqlite = require "mqlab.sqlite"

local function need_env(name)
  local v = os.getenv(name)
  if not v or v == "" then error("consumer: " .. name .. " is not set", 0) end
  return v
end

local TOPIC = need_env("MQTT_TOPIC")
local ID = need_env("MQTT_CLIENT_ID")

local db = assert(sqlite.open(need_env("LAB_DB"), "rw"))
assert(db:exec([[CREATE TABLE IF NOT EXISTS readings (
                   id    TEXT PRIMARY KEY,
                   topic TEXT NOT NULL,
                   ts    INTEGER NOT NULL,
                   value REAL NOT NULL)]]))

---------------------------------------------------------------- JSON

-- The payload as a flat JSON object of strings and numbers, or nil. Enough
-- for {"id": "<id>", "ts": <ms>, "v": <number>}; anything else (nested
-- values, true/false/null, text after the object) is not a reading.
local function flat_object(s)
  local obj, i = {}, s:match("^%s*{()")
  if not i then return nil end
  if s:match("^%s*}%s*$", i) then return obj end
  while true do
    local key, j = s:match('^%s*"([^"\\]*)"%s*:%s*()', i)
    if not key then return nil end
    local str, k = s:match('^"([^"\\%c]*)"()', j)
    if str then
      obj[key], i = str, k
    else
      local num, k2 = s:match("^(-?%d+%.?%d*[eE]?[-+]?%d*)()", j)
      local n = num and tonumber(num)
      if not n then return nil end
      obj[key], i = n, k2
    end
    local sep, nx = s:match("^%s*([,}])()", i)
    if sep == "}" then return s:match("^%s*$", nx) and obj or nil end
    if sep ~= "," then return nil end
    i = nx
  end
end

local function parse(payload)
  local r = flat_object(payload)
  if not r then return nil end
  if type(r.id) ~= "string" or r.id == "" then return nil end
  if type(r.ts) ~= "number" or type(r.v) ~= "number" then return nil end
  if r.ts ~= r.ts or r.v ~= r.v or math.abs(r.ts) == math.huge or math.abs(r.v) == math.huge then return nil end
  return r
end

---------------------------------------------------------------- MQTT

-- Connect (again) until it works, subscribing on every connection: the
-- broker may not have kept the session.
local function connect()
  local delay = 1
  while true do
    local c, err = mqtt.connect { id = ID, clean = false, keepalive = 20, manual_ack = true }
    if c then
      local granted, serr = c:subscribe(TOPIC, 1)
      if granted == 1 then return c end
      io.stderr:write("consumer: subscribe: ", tostring(granted or serr), "\n")
      c:close()
    else
      io.stderr:write("consumer: connect: ", tostring(err), "\n")
    end
    mqtt.pump(delay)
    delay = math.min(delay * 2, 4)
  end
end

local function store(msg)
  local r = parse(msg.payload)
  if not r then
    io.stderr:write(string.format("consumer: skipped a malformed message on %s: %q\n", msg.topic, msg.payload:sub(1, 80)))
    return
  end
  local ts = math.type(r.ts) == "float" and r.ts == math.floor(r.ts) and math.tointeger(r.ts) or r.ts
  local n, err = db:exec("INSERT OR IGNORE INTO readings (id, topic, ts, value) VALUES (?, ?, ?, ?)",
                         r.id, msg.topic, ts, r.v + 0.0)
  if not n then error("consumer: insert " .. r.id .. ": " .. tostring(err), 0) end
  if n == 0 then io.stderr:write("consumer: already stored: ", r.id, "\n") end
end

local client = connect()
while true do
  local msg, why = client:wait(5)
  if msg then
    store(msg)          -- committed when this returns
    client:ack(msg)     -- only now does the PUBACK leave
  elseif why == "disconnected" then
    client:close()
    client = connect()
  end
end
