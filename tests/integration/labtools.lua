-- labtools.lua: the tools labs 05, 06 and 09 are built on, end to end:
-- a broker restart that keeps sessions (profile `persistence`), the
-- proxy's reorder action from Lua, read-only SQLite, the load
-- generator in the background, and kit.cpu (lab 10). Run by run.py as `mqlab run tests/integration/labtools.lua DIR`;
-- prints one "ok NAME" or "FAIL NAME: detail" line per assertion.
local broker = require "mqlab.broker"
local proxy = require "mqlab.proxy"
local sqlite = require "mqlab.sqlite"
local kit = require "mqlab.kit"
local bench = require "mqlab.bench"

local dir = assert(arg and arg[1], "usage: labtools.lua DIR (a scratch folder)")

local function check(cond, name, detail)
  if cond then print("ok " .. name) else print("FAIL " .. name .. ": " .. tostring(detail)) end
end

local function payloads(msgs)
  local out = {}
  for i, m in ipairs(msgs) do out[i] = m.payload end
  return table.concat(out, ",")
end

------------------------------------------------ a restart keeps the session

do
  local b <close> = assert(broker.start { profile = "persistence" })
  local port = b:port()
  local sub = assert(mqtt.connect { port = port, id = "lt-collector", clean = false })
  assert(sub:subscribe("lt/s/#", 1))
  sub:disconnect()
  local pub = assert(mqtt.connect { port = port, id = "lt-pub" })
  for i = 1, 3 do assert(pub:publish("lt/s/t", "q" .. i, { qos = 1 })) end
  pub:disconnect()

  local ok, err = b:restart()
  check(ok and b:port() == port and b:running(), "the broker restarts on the same port", err)
  sub = assert(mqtt.connect { port = port, id = "lt-collector", clean = false })
  local got = {}
  for _ = 1, 3 do
    local m = sub:wait(3)
    if not m then break end
    got[#got + 1] = m
  end
  check(payloads(got) == "q1,q2,q3", "messages queued for an offline session survive a clean restart", payloads(got))
  check(sub:wait(0.2) == nil, "and are delivered once")

  -- A crash (SIGKILL) loses what changed since the last save; the
  -- profile saves within about a second of any change.
  sub:disconnect()
  pub = assert(mqtt.connect { port = port, id = "lt-pub" })
  assert(pub:publish("lt/s/t", "before-crash", { qos = 1 }))
  pub:disconnect()
  local t_end = kit.now() + 5
  local function saved() return (kit.read_file(b:dir() .. "/mosquitto.db") or ""):find("before-crash", 1, true) end
  while not saved() and kit.now() < t_end do kit.sleep(0.05) end
  check(saved(), "the broker saves on its own after a change")
  b:kill()
  check(not b:running(), "kill() ends the broker at once")
  ok, err = b:restart()
  check(ok, "and it starts again after a crash", err)
  -- After a crash QoS 1 may deliver again what was already delivered
  -- (at least once): only the message saved before it is asked for.
  sub = assert(mqtt.connect { port = port, id = "lt-collector", clean = false })
  local seen = {}
  repeat
    local m = sub:wait(3)
    seen[#seen + 1] = m
  until not m or m.payload == "before-crash"
  check(#seen > 0 and seen[#seen].payload == "before-crash", "a message saved before the crash is delivered after it",
        payloads(seen))
  sub:disconnect()

  local plain <close> = assert(broker.start { profile = "plain" })
  local s2 = assert(mqtt.connect { port = plain:port(), id = "lt-c2", clean = false })
  assert(s2:subscribe("lt/p/#", 1))
  s2:disconnect()
  local p2 = assert(mqtt.connect { port = plain:port(), id = "lt-p2" })
  assert(p2:publish("lt/p/t", "lost", { qos = 1 }))
  p2:disconnect()
  plain:restart()
  s2 = assert(mqtt.connect { port = plain:port(), id = "lt-c2", clean = false })
  check(s2:wait(0.5) == nil, "the plain profile keeps nothing across a restart (the test can fail)")
  s2:disconnect()
end

------------------------------------------------ reorder from Lua

do
  local b <close> = assert(broker.start { profile = "plain" })
  local px <close> = assert(proxy.start { upstream = b:port() })
  check(not pcall(px.rule, px, { action = "reorder", behind = 0 }), "reorder with behind = 0 raises")
  local r = px:rule { action = "reorder", type = "publish", dir = "down", nth = 1, behind = 2 }
  local obs = assert(mqtt.connect { port = px:port(), id = "lt-reorder-sub" })
  assert(obs:subscribe("lt/r/#", 1))
  local pub = assert(mqtt.connect { port = b:port(), id = "lt-reorder-pub" })
  for i = 1, 4 do assert(pub:publish("lt/r/t", "r" .. i, { qos = 1 })) end
  local got = {}
  for _ = 1, 4 do
    local m = obs:wait(3)
    if not m then break end
    got[#got + 1] = m
  end
  check(payloads(got) == "r2,r3,r1,r4", "the first PUBLISH down is overtaken by the next two", payloads(got))
  check(px:fired(r) == 1, "the rule fired once", px:fired(r))
  local ev = px:wait({ type = "publish", dir = "down", fate = "reordered" }, 1)
  check(ev and ev.payload == "r1", "its event's fate is 'reordered'", ev and ev.text)
  obs:disconnect()
  pub:disconnect()
end

------------------------------------------------ SQLite, read-only

do
  check(select(3, sqlite.open(dir .. "/none.db")) == "notfound", "a missing database is 'notfound'")
  kit.write_file(dir .. "/junk.db", string.rep("not a database ", 100))
  check(select(3, sqlite.open(dir .. "/junk.db")) == "notdb", "a file that is not a database is 'notdb'")
  local db = sqlite.open(dir .. "/readings.db")
  check(db, "a database made by the sqlite3 command opens")
  if db then
    local cols = db:columns("readings")
    check(cols and table.concat(cols, ",") == "id,topic,ts,value", "columns() lists them in order",
          cols and table.concat(cols, ","))
    check(db:columns("nope") == nil, "columns() of a missing table is nil")
    local rows = db:rows("SELECT id, ts, value FROM readings WHERE value > ? ORDER BY id", 20)
    check(rows and #rows == 2 and rows[1].id == "r-1" and rows[1][1] == "r-1" and math.type(rows[1].ts) == "integer"
          and rows[2].value == 22.25, "rows() binds, and keys rows by name and position", rows and #rows)
    local none, err = db:rows("DELETE FROM readings")
    check(none == nil and tostring(err):find("readonly"), "it cannot change the student's data", err)
    check(#db:rows("SELECT * FROM readings") == 3, "the rows are all still there")
    check(db:rows("SELECT nothing FROM nowhere") == nil, "an SQL error is nil, message, not a raise")
    db:close()
    check(not pcall(db.rows, db, "SELECT 1"), "a closed database raises")
  end
end

------------------------------------------------ load in the background

do
  local b <close> = assert(broker.start { profile = "plain" })
  local sys = assert(mqtt.connect { port = b:port(), id = "lt-sys" })
  assert(sys:subscribe("$SYS/broker/clients/connected", 0))
  local run <close> = bench.start { mode = "conn", port = b:port(), clients = 60, hold = 30 }
  check(run:running(), "bench.start returns at once, the run goes on")
  -- The broker's own count, published every sys_interval, reaches the
  -- generator's 60 clients (plus the kit's observer) while the lab waits.
  local peak, t_end = 0, kit.now() + 8
  while peak < 61 and kit.now() < t_end do
    local m = sys:wait(1)
    if m then peak = math.max(peak, tonumber(m.payload) or 0) end
  end
  check(peak >= 61, "$SYS sees the generator's clients while the lab goes on", peak)
  run:stop()
  local r, err = run:wait(5)
  check(r and r.connected == 60 and r.failed == 0 and r.interrupted, "stop() ends the hold early; wait() reports it",
        r and (r.connected .. " " .. tostring(r.interrupted)) or err)
  local st <close> = bench.start { mode = "steady", port = b:port(), clients = 2, rate = 400, duration = 1, qos = 1 }
  r = st:wait(10)
  check(r and r.sent == 400 and r.received == 400 and r.lost == 0 and r.latency_ms.p50 > 0,
        "a steady run delivers everything and measures latency", r and (r.sent .. "/" .. r.received))
  check(#st:seconds() >= 1, "its seconds are there", #st:seconds())
  check(not pcall(bench.start, { mode = "sideways", port = 1 }), "an unknown mode raises")
  sys:disconnect()
end

------------------------------------------------ what a broker got of the CPUs

do
  -- Lab 10 learns its bench broker's pid from a pid_file in a folder of its own.
  local d = kit.tmpdir("lt-cpu")
  local b <close> = assert(broker.start { profile = "bench", extra = "pid_file " .. d .. "/broker.pid" })
  local pid = tonumber(kit.read_file(d .. "/broker.pid") or "")
  check(pid ~= nil, "the broker writes its pid_file into a kit.tmpdir folder", kit.read_file(d .. "/broker.pid"))
  local c0, err = nil, "no pid"
  if pid then c0, err = kit.cpu(pid) end
  check(c0 and c0.cpu >= 0, "kit.cpu reads a broker the kit started", err)
  local run <close> = assert(bench.start { mode = "burst", port = b:port(), clients = 5, messages = 3000, qos = 1 })
  local r = run:wait(20)
  local c1 = pid and kit.cpu(pid)
  check(r and c0 and c1 and (c1.run or c1.cpu) > (c0.run or c0.cpu), "its CPU time grows with a burst",
        c1 and ((c1.run or c1.cpu) .. " after " .. (c0 and (c0.run or c0.cpu) or "?")))
  check(c1 and (c1.run == nil) == (c1.wait == nil) and (c1.wait or 0) >= 0 and c1.cpu <= (c1.run or c1.cpu) + 1,
        "run and wait come together, in seconds", c1 and tostring(c1.run) .. " " .. tostring(c1.wait))
  local none, why = kit.cpu(1)
  check(none == nil and tostring(why):find("not a process the kit started", 1, true),
        "kit.cpu reads only what the kit started", why)
  check(not pcall(kit.cpu, "init"), "a pid that is not a number raises")
  b:close()
  kit.rmdir(d)
end

print("done")
