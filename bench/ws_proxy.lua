-- ws_proxy.lua: for bench/ws.sh. A broker and one proxy in front of it
-- with both ports, plain MQTT and MQTT over WebSockets; prints
-- "ports PLAIN WS" and runs until interrupted (SIGINT).
local broker = require "mqlab.broker"
local proxy = require "mqlab.proxy"
local kit = require "mqlab.kit"

local b <close> = assert(broker.start { profile = "plain" })
local px <close> = assert(proxy.start { upstream = b:port(), websocket = true })
io.stdout:write(("ports %d %d\n"):format(px:port(), px:ws_port()))
io.stdout:flush()
while true do kit.sleep(3600) end
