-- websocket.lua: the proxy's WebSocket port, for a browser's client.
-- Run by run.py (test websocket) as
--   mqlab run tests/integration/websocket.lua [CERTS_DIR]
-- It starts a broker and a proxy in front of it with websocket = true
-- (wss:// with the kit's certificate when CERTS_DIR is given), prints
-- "ports PLAIN WS", then waits for mqtt.js (ws_client.js, run by run.py)
-- to subscribe, publish two QoS 1 messages, get them back and disconnect,
-- and checks what the trace saw. One "ok NAME" or "FAIL NAME: detail"
-- line per assertion, then "done".
local broker = require "mqlab.broker"
local proxy = require "mqlab.proxy"

local function check(cond, name, detail)
  if cond then print("ok " .. name) else print("FAIL " .. name .. ": " .. tostring(detail)) end
end

local certs = arg and arg[1]
local want = certs and "wss" or "ws"
local big = 300 * 1024

local b <close> = assert(broker.start { profile = "plain" })
local px <close> = assert(proxy.start { upstream = b:port(), websocket = true, tls = certs })
check(px:ws_port() > 0 and px:ws_port() ~= px:port(), "a WebSocket port beside the plain one", px:ws_port())
io.stdout:write(("ports %d %d\n"):format(px:port(), px:ws_port()))
io.stdout:flush()

-- The client's end: its DISCONNECT, then the close. Generous: Node
-- starts slowly on a loaded machine.
local bye = px:wait({ type = "disconnect", dir = "up" }, 180)
check(bye, "the client disconnected cleanly", "no DISCONNECT within 180 s")
px:wait({ kind = "close" }, 10)

local evs = px:events()
local bad, n = {}, 0
for _, e in ipairs(evs) do
  n = n + 1
  if e.transport ~= want then bad[#bad + 1] = ("%s %s %s"):format(e.transport, e.kind, e.text) end
end
check(n > 0 and #bad == 0, "every event of the trace is marked " .. want, table.concat(bad, "; "))

local open = evs[1]
check(open and open.kind == "open" and open.text:find("over " .. want, 1, true), "the open event says " .. want,
      open and open.text)

local function sel(f)
  local out = {}
  for _, e in ipairs(evs) do
    if e.kind == "packet" and f(e) then out[#out + 1] = e end
  end
  return out
end

local con = sel(function(e) return e.type == "CONNECT" end)[1]
check(con and con.client_id == "mqlab-ws-itest", "mqtt.js's CONNECT decoded", con and con.text)
local sub = sel(function(e) return e.type == "SUBSCRIBE" end)[1]
check(sub and sub.filters[1].filter == "mqlab/ws/t" and sub.filters[1].qos == 1, "SUBSCRIBE at QoS 1", sub and sub.text)
local up = sel(function(e) return e.type == "PUBLISH" and e.dir == "up" end)
check(#up == 2 and up[1].qos == 1 and up[2].qos == 1, "two QoS 1 PUBLISH up", #up)
check(up[2] and up[1].payload_len < 100 and up[2].payload_len == big and up[2].decoded,
      "a small one, then one of 300 KiB, whole", up[2] and up[2].payload_len)
local down = sel(function(e) return e.type == "PUBLISH" and e.dir == "down" end)
check(#down == 2 and down[2] and down[2].payload_len == big, "both delivered back over the WebSocket", #down)
local acks_down = sel(function(e) return e.type == "PUBACK" and e.dir == "down" end)
local acks_up = sel(function(e) return e.type == "PUBACK" and e.dir == "up" end)
check(#acks_down == 2 and #acks_up == 2, "PUBACKs both ways", #acks_down .. " down, " .. #acks_up .. " up")
local lost = sel(function(e) return e.fate ~= "sent" end)
check(#lost == 0, "every packet forwarded", #lost)
print("done")
