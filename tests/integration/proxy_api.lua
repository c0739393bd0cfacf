-- proxy_api.lua: the Lua face of the fault proxy, end to end, against a
-- real broker. Run by run.py as `mqlab run tests/integration/proxy_api.lua`;
-- prints one "ok NAME" or "FAIL NAME: detail" line per assertion.
local broker = require "mqlab.broker"
local proxy = require "mqlab.proxy"
local kit = require "mqlab.kit"
local wire = require "mqlab.wire"

local function check(cond, name, detail)
  if cond then print("ok " .. name) else print("FAIL " .. name .. ": " .. tostring(detail)) end
end

local b <close> = assert(broker.start { profile = "plain" })
local px <close> = assert(proxy.start { upstream = b:port() })
check(px:port() > 0 and px:port() ~= b:port(), "the proxy listens on a port of its own", px:port())

-- Misuse raises; a rule that makes sense returns its index.
check(not pcall(px.rule, px, { action = "explode" }), "an unknown action raises")
check(not pcall(px.rule, px, { action = "drop", type = "frob" }), "an unknown packet type raises")
check(not pcall(px.rule, px, { action = "delay", type = "publish" }), "a delay without 'delay' raises")
local r_drop = px:rule { action = "drop", type = "puback", dir = "down", nth = 2 }
check(r_drop == 1, "rule{} returns its index", r_drop)

local obs <close> = assert(mqtt.connect { port = b:port(), id = "mqlab-obs", clean = true })
assert(obs:subscribe("acme/#", 1))
local c <close> = assert(mqtt.connect { port = px:port(), id = "gw-api", clean = true, keepalive = 30 })

local con = px:wait({ type = "connect", dir = "up" }, 5)
check(con and con.client_id == "gw-api" and con.clean == true and con.keepalive == 30 and con.level == 4
      and con.will == nil and con.username == false, "CONNECT decoded into fields", con and con.text)
local ack = px:wait({ type = "CONNACK" }, 5)
check(ack and ack.dir == "down" and ack.rc == 0 and ack.client == "gw-api", "CONNACK, with its connection's client id",
      ack and ack.text)

local t0 = px:count()
check(c:publish("acme/v1/api/temp", '{"id":"r-1","ts":1,"v":2}', { qos = 1 }), "first PUBLISH acknowledged")
local second = c:publish("acme/v1/api/temp", '{"id":"r-2","ts":1,"v":3}', { qos = 1, timeout = 0.5 })
check(not second, "second PUBLISH gets no PUBACK (dropped)", second)
check(px:fired(r_drop) == 1, "the rule fired once", px:fired(r_drop))
local dropped = px:wait({ type = "puback", fate = "dropped" }, 2, t0 + 1)
check(dropped and dropped.dir == "down" and dropped.id, "the trace shows the dropped PUBACK", dropped and wire.quote(dropped))
local ok, n = px:wait_count({ type = "publish", dir = "up" }, 2, 2)
check(ok and n == 2, "wait_count counts two PUBLISH up", n)
local pubs = wire.select(px:events(), { type = "PUBLISH", dir = "up" })
local r = pubs[1] and wire.reading(pubs[1].payload)
check(#pubs == 2 and pubs[1].qos == 1 and pubs[1].topic == "acme/v1/api/temp" and r and r.id == "r-1",
      "PUBLISH events carry qos, topic and payload", pubs[1] and pubs[1].text)
check(obs:wait(2, "acme/v1/api/temp") and obs:wait(2, "acme/v1/api/temp"), "both messages reached the broker")

-- A duplicate: the observer gets the next message twice.
px:rule { action = "duplicate", type = "publish", dir = "up" }
assert(c:publish("acme/v1/api/dup", "x", { qos = 1 }))
local m1, m2 = obs:wait(2, "acme/v1/api/dup"), obs:wait(2, "acme/v1/api/dup")
check(m1 and m2, "a duplicated PUBLISH is delivered twice at QoS 1")

-- Cut after the next PUBLISH, then refuse for 0.5 s: the client is cut off.
px:rule { action = "cut_after", type = "publish", dir = "up", refuse = 0.5 }
c:publish("acme/v1/api/cut", "y", { qos = 1, timeout = 1 })
local closed = px:wait({ kind = "close" }, 3)
check(closed and closed.text:find("cut", 1, true), "the trace says the link was cut", closed and closed.text)
local c2 = mqtt.connect { port = px:port(), id = "gw-api-2", timeout = 1 }
check(not c2, "a connection during the refusal window is refused")
check(px:wait({ kind = "refused" }, 2), "and the refusal is in the trace")
kit.sleep(0.6)
local c3 <close> = mqtt.connect { port = px:port(), id = "gw-api-3", timeout = 3 }
check(c3, "after the window, connections are accepted again")
local conns = wire.connections(px:events())
check(#conns == 2 and conns[1].client == "gw-api" and conns[2].client == "gw-api-3" and conns[1].closed, "wire.connections lists each connection",
      #conns)
check(wire.attempts(px:events()) >= 3, "wire.attempts counts opens and refusals", wire.attempts(px:events()))

-- A function matcher, and a timeout that returns nil.
check(px:wait(function(ev) return ev.kind == "packet" and ev.type == "SUBSCRIBE" end, 0.2) == nil,
      "wait returns nil on timeout")
local st = px:stats()
check(st.connections >= 2 and st.refused >= 1 and st.packets_up > 0 and st.bytes_down > 0, "stats add up",
      st.connections .. " " .. st.refused)
px:close()
check(not pcall(px.count, px), "a closed proxy raises on use")
px:close()
print("done")
