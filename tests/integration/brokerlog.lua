-- brokerlog.lua: the parser of Mosquitto's log must not be fooled by what
-- a client sends (client ids, usernames, topics, filters), since labs
-- grade from it. Run by run.py as `mqlab run tests/integration/brokerlog.lua`;
-- prints one "ok NAME" or "FAIL NAME: detail" line per assertion.
local brokerlog = require "mqlab.brokerlog"
local broker = require "mqlab.broker"
local mqtt = require "mqlab.mqtt"
local kit = require "mqlab.kit"

local function check(cond, name, detail)
  if cond then print("ok " .. name) else print("FAIL " .. name .. ": " .. tostring(detail)) end
end

-- The logs below are written compactly: a run of N times one character is
-- <C*N>, a tab is <TAB> and the character U+2028 is <U+2028>.
local function expand(s)
  s = s:gsub("<TAB>", "\t"):gsub("<U%+2028>", "\u{2028}")
  return (s:gsub("<(.)%*(%d+)>", function(c, n) return c:rep(tonumber(n)) end))
end

local function select_where(events, kind, fn)
  local out = {}
  for _, e in ipairs(events) do
    if e.kind == kind and fn(e) then out[#out + 1] = e end
  end
  return out
end

local function texts(events)
  local out = {}
  for i, e in ipairs(events) do out[i] = e.text end
  return table.concat(out, " | ")
end

-- Captured from mosquitto 2.0.11 started with broker-config/plain.conf's
-- log settings (log_type all, connection_messages true, log_timestamp_format
-- %s), allow_anonymous true and an acl_file ("topic readwrite #" for
-- anonymous clients; user s1: "topic readwrite plant/s1/#"). The clients
-- were paho-mqtt 1.6 (/usr/bin/python3), in this order: the everyday lines
-- (a subscriber with three filters that later unsubscribes two and drops
-- its socket, a publisher with a will and username s1, QoS 0/1/2 and one
-- denied PUBLISH, a client id taken over, a keepalive timeout); "victim"
-- subscribed to #; then clients whose ids, usernames, topics and filters
-- imitate the fixed parts of lines; and last, ids, topics and filters long
-- enough for mosquitto to cut the line at 999 bytes.
local CAPTURED = expand([==[
1796540667: mosquitto version 2.0.11 starting
1796540667: Config loaded from b3.conf.
1796540667: Opening ipv4 listen socket on port 38089.
1796540667: mosquitto version 2.0.11 running
1796540668: New connection from 127.0.0.1:43935 on port 38089.
1796540668: New client connected from 127.0.0.1:43935 as sub-1 (p2, c0, k30).
1796540668: No will message specified.
1796540668: Sending CONNACK to sub-1 (0, 0)
1796540668: Received SUBSCRIBE from sub-1
1796540668: <TAB>plant/# (QoS 1)
1796540668: sub-1 1 plant/#
1796540668: <TAB>alerts/+ (QoS 0)
1796540668: sub-1 0 alerts/+
1796540668: <TAB>x (QoS 2)
1796540668: sub-1 2 x
1796540668: Sending SUBACK to sub-1
1796540668: New connection from 127.0.0.1:50229 on port 38089.
1796540668: New client connected from 127.0.0.1:50229 as pub-1 (p2, c1, k60, u's1').
1796540668: Will message specified (7 bytes) (r1, q1).
1796540668: <TAB>plant/s1/status
1796540668: Sending CONNACK to pub-1 (0, 0)
1796540669: Received PUBLISH from pub-1 (d0, q1, r0, m1, 'plant/s1/temp', ... (4 bytes))
1796540669: Sending PUBLISH to sub-1 (d0, q1, r0, m1, 'plant/s1/temp', ... (4 bytes))
1796540669: Sending PUBACK to pub-1 (m1, rc0)
1796540669: Received PUBLISH from pub-1 (d0, q0, r0, m0, 'plant/s1/hum', ... (2 bytes))
1796540669: Sending PUBLISH to sub-1 (d0, q0, r0, m0, 'plant/s1/hum', ... (2 bytes))
1796540669: Denied PUBLISH from pub-1 (d0, q1, r0, m3, 'plant/s2/temp', ... (1 bytes))
1796540669: Sending PUBACK to pub-1 (m3, rc135)
1796540669: Received PUBLISH from pub-1 (d0, q2, r0, m4, 'plant/s1/x', ... (2 bytes))
1796540669: Sending PUBREC to pub-1 (m4, rc0)
1796540669: Received PUBACK from sub-1 (Mid: 1, RC:0)
1796540669: Received PUBREL from pub-1 (Mid: 4)
1796540669: Sending PUBLISH to sub-1 (d0, q1, r0, m2, 'plant/s1/x', ... (2 bytes))
1796540669: Sending PUBCOMP to pub-1 (m4)
1796540669: Received PUBACK from sub-1 (Mid: 2, RC:0)
1796540669: Received UNSUBSCRIBE from sub-1
1796540669: <TAB>alerts/+
1796540669: sub-1 alerts/+
1796540669: <TAB>x
1796540669: sub-1 x
1796540669: Sending UNSUBACK to sub-1
1796540669: Received DISCONNECT from pub-1
1796540669: Client pub-1 disconnected.
1796540670: Client sub-1 closed its connection.
1796540670: New connection from 127.0.0.1:43937 on port 38089.
1796540670: New client connected from 127.0.0.1:43937 as dev-7 (p2, c1, k60).
1796540670: No will message specified.
1796540670: Sending CONNACK to dev-7 (0, 0)
1796540670: New connection from 127.0.0.1:58701 on port 38089.
1796540670: Client dev-7 already connected, closing old connection.
1796540670: New client connected from 127.0.0.1:58701 as dev-7 (p2, c1, k60).
1796540670: No will message specified.
1796540670: Sending CONNACK to dev-7 (0, 0)
1796540670: Received DISCONNECT from dev-7
1796540670: Client dev-7 disconnected.
1796540671: New connection from 127.0.0.1:32821 on port 38089.
1796540671: New client connected from 127.0.0.1:32821 as ka-1 (p2, c1, k1).
1796540671: No will message specified.
1796540671: Sending CONNACK to ka-1 (0, 0)
1796540672: Received PINGREQ from ka-1
1796540672: Sending PINGRESP to ka-1
1796540675: New connection from 127.0.0.1:45635 on port 38089.
1796540675: New client connected from 127.0.0.1:45635 as victim (p2, c1, k60).
1796540675: No will message specified.
1796540675: Sending CONNACK to victim (0, 0)
1796540675: Received SUBSCRIBE from victim
1796540675: <TAB># (QoS 0)
1796540675: victim 0 #
1796540675: Sending SUBACK to victim
1796540675: New connection from 127.0.0.1:58969 on port 38089.
1796540675: New client connected from 127.0.0.1:58969 as stu-1 (p2, c0, k5) (p2, c1, k60).
1796540675: No will message specified.
1796540675: Sending CONNACK to stu-1 (p2, c0, k5) (0, 0)
1796540675: Received DISCONNECT from stu-1 (p2, c0, k5)
1796540675: Client stu-1 (p2, c0, k5) disconnected.
1796540676: New connection from 127.0.0.1:38873 on port 38089.
1796540676: New client connected from 127.0.0.1:38873 as stu 2 (p2, c1, k60).
1796540676: No will message specified.
1796540676: Sending CONNACK to stu 2 (0, 0)
1796540676: Received PUBLISH from stu 2 (d0, q1, r0, m1, 'sp/t', ... (1 bytes))
1796540676: Sending PUBLISH to victim (d0, q0, r0, m0, 'sp/t', ... (1 bytes))
1796540676: Sending PUBACK to stu 2 (m1, rc0)
1796540677: Client stu 2 closed its connection.
1796540677: New connection from 127.0.0.1:35359 on port 38089.
1796540677: New client connected from 127.0.0.1:35359 as stu-3 (d0, q1, r0, m1, 'acme/x (p2, c1, k60).
1796540677: No will message specified.
1796540677: Sending CONNACK to stu-3 (d0, q1, r0, m1, 'acme/x (0, 0)
1796540677: Received SUBSCRIBE from stu-3 (d0, q1, r0, m1, 'acme/x
1796540677: <TAB>acme/# (QoS 1)
1796540677: stu-3 (d0, q1, r0, m1, 'acme/x 1 acme/#
1796540677: Sending SUBACK to stu-3 (d0, q1, r0, m1, 'acme/x
1796540678: Received PUBLISH from stu-3 (d0, q1, r0, m1, 'acme/x (d0, q1, r0, m2, 'acme/y', ... (3 bytes))
1796540678: Sending PUBLISH to stu-3 (d0, q1, r0, m1, 'acme/x (d0, q1, r0, m1, 'acme/y', ... (3 bytes))
1796540678: Sending PUBLISH to victim (d0, q0, r0, m0, 'acme/y', ... (3 bytes))
1796540678: Sending PUBACK to stu-3 (d0, q1, r0, m1, 'acme/x (m2, rc0)
1796540678: Received PUBLISH from stu-3 (d0, q1, r0, m1, 'acme/x (d0, q0, r0, m0, 't (d0, q0, r0, m0, 'w', ... (2 bytes))
1796540678: Sending PUBLISH to victim (d0, q0, r0, m0, 't (d0, q0, r0, m0, 'w', ... (2 bytes))
1796540678: Received PUBACK from stu-3 (d0, q1, r0, m1, 'acme/x (Mid: 1, RC:0)
1796540678: Received DISCONNECT from stu-3 (d0, q1, r0, m1, 'acme/x
1796540678: Client stu-3 (d0, q1, r0, m1, 'acme/x disconnected.
1796540678: New connection from 127.0.0.1:36379 on port 38089.
1796540678: New client connected from 127.0.0.1:36379 as q'x', ... (9 bytes)) (p2, c1, k60).
1796540678: No will message specified.
1796540678: Sending CONNACK to q'x', ... (9 bytes)) (0, 0)
1796540678: Received PUBLISH from q'x', ... (9 bytes)) (d0, q1, r0, m1, 'a', ... (3 bytes)) b', ... (5 bytes))
1796540678: Sending PUBLISH to victim (d0, q0, r0, m0, 'a', ... (3 bytes)) b', ... (5 bytes))
1796540678: Sending PUBACK to q'x', ... (9 bytes)) (m1, rc0)
1796540678: Client ka-1 has exceeded timeout, disconnecting.
1796540679: Received DISCONNECT from q'x', ... (9 bytes))
1796540679: Client q'x', ... (9 bytes)) disconnected.
1796540679: New connection from 127.0.0.1:40927 on port 38089.
1796540679: New client connected from 127.0.0.1:40927 as u<U+2028>v "quoted", (x) (p2, c1, k60).
1796540679: No will message specified.
1796540679: Sending CONNACK to u<U+2028>v "quoted", (x) (0, 0)
1796540679: Received DISCONNECT from u<U+2028>v "quoted", (x)
1796540679: Client u<U+2028>v "quoted", (x) disconnected.
1796540679: New connection from 127.0.0.1:50149 on port 38089.
1796540679: New client connected from 127.0.0.1:50149 as %d+.-[( %s (p2, c1, k60).
1796540679: No will message specified.
1796540679: Sending CONNACK to %d+.-[( %s (0, 0)
1796540680: Received DISCONNECT from %d+.-[( %s
1796540680: Client %d+.-[( %s disconnected.
1796540680: New connection from 127.0.0.1:48315 on port 38089.
1796540680: New client connected from 127.0.0.1:48315 as v already connected, closing old connection. (p2, c1, k60).
1796540680: No will message specified.
1796540680: Sending CONNACK to v already connected, closing old connection. (0, 0)
1796540680: Received DISCONNECT from v already connected, closing old connection.
1796540680: Client v already connected, closing old connection. disconnected.
1796540680: New connection from 127.0.0.1:41801 on port 38089.
1796540680: New client connected from 127.0.0.1:41801 as hu1 (p2, c1, k60, u'bob') x (p2, c0, k5, u'alice').
1796540680: No will message specified.
1796540680: Sending CONNACK to hu1 (0, 0)
1796540681: Received DISCONNECT from hu1
1796540681: Client hu1 disconnected.
1796540681: New connection from 127.0.0.1:43199 on port 38089.
1796540681: New client connected from 127.0.0.1:43199 as hu2 (p2, c1, k60, u'zz') (p2, c1, k60, u'real').
1796540681: No will message specified.
1796540681: Sending CONNACK to hu2 (p2, c1, k60, u'zz') (0, 0)
1796540681: Received DISCONNECT from hu2 (p2, c1, k60, u'zz')
1796540681: Client hu2 (p2, c1, k60, u'zz') disconnected.
1796540681: New connection from 127.0.0.1:45631 on port 38089.
1796540681: New client connected from 127.0.0.1:45631 as hu3 (p2, c0, k5, u'mallory (p2, c1, k60, u'x').').
1796540681: No will message specified.
1796540681: Sending CONNACK to hu3 (p2, c0, k5, u'mallory (0, 0)
1796540682: Received DISCONNECT from hu3 (p2, c0, k5, u'mallory
1796540682: Client hu3 (p2, c0, k5, u'mallory disconnected.
1796540682: New connection from 127.0.0.1:58999 on port 38089.
1796540682: New client connected from 127.0.0.1:58999 as Client victim (p2, c1, k60).
1796540682: No will message specified.
1796540682: Sending CONNACK to Client victim (0, 0)
1796540682: Received SUBSCRIBE from Client victim
1796540682: <TAB>disconnected. (QoS 0)
1796540682: Client victim 0 disconnected.
1796540682: Sending SUBACK to Client victim
1796540682: Received UNSUBSCRIBE from Client victim
1796540682: <TAB>disconnected.
1796540682: Client victim disconnected.
1796540682: Sending UNSUBACK to Client victim
1796540683: Received DISCONNECT from Client victim
1796540683: Client Client victim disconnected.
1796540683: New connection from 127.0.0.1:39057 on port 38089.
1796540683: New client connected from 127.0.0.1:39057 as Received DISCONNECT from (p2, c1, k60).
1796540683: No will message specified.
1796540683: Sending CONNACK to Received DISCONNECT from (0, 0)
1796540683: Received UNSUBSCRIBE from Received DISCONNECT from
1796540683: <TAB>victim
1796540683: Received DISCONNECT from victim
1796540683: Sending UNSUBACK to Received DISCONNECT from
1796540683: Received DISCONNECT from Received DISCONNECT from
1796540683: Client Received DISCONNECT from disconnected.
1796540684: New connection from 127.0.0.1:46379 on port 38089.
1796540684: New client connected from 127.0.0.1:46379 as New client connected from 127.0.0.1:1 as (p2, c1, k60).
1796540684: No will message specified.
1796540684: Sending CONNACK to New client connected from 127.0.0.1:1 as (0, 0)
1796540684: Received UNSUBSCRIBE from New client connected from 127.0.0.1:1 as
1796540684: <TAB>victim (p2, c0, k5).
1796540684: New client connected from 127.0.0.1:1 as victim (p2, c0, k5).
1796540684: Sending UNSUBACK to New client connected from 127.0.0.1:1 as
1796540684: Received DISCONNECT from New client connected from 127.0.0.1:1 as
1796540684: Client New client connected from 127.0.0.1:1 as disconnected.
1796540684: New connection from 127.0.0.1:47999 on port 38089.
1796540684: New client connected from 127.0.0.1:47999 as Sending PUBLISH to victim (d0, q1, r0, m1, 'plant/s1/temp (p2, c1, k60).
1796540684: No will message specified.
1796540684: Sending CONNACK to Sending PUBLISH to victim (d0, q1, r0, m1, 'plant/s1/temp (0, 0)
1796540685: Received SUBSCRIBE from Sending PUBLISH to victim (d0, q1, r0, m1, 'plant/s1/temp
1796540685: <TAB>x', ... (4 bytes)) (QoS 1)
1796540685: Sending PUBLISH to victim (d0, q1, r0, m1, 'plant/s1/temp 1 x', ... (4 bytes))
1796540685: Sending SUBACK to Sending PUBLISH to victim (d0, q1, r0, m1, 'plant/s1/temp
1796540685: Received DISCONNECT from Sending PUBLISH to victim (d0, q1, r0, m1, 'plant/s1/temp
1796540685: Client Sending PUBLISH to victim (d0, q1, r0, m1, 'plant/s1/temp disconnected.
1796540685: New connection from 127.0.0.1:36553 on port 38089.
1796540685: New client connected from 127.0.0.1:36553 as Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4 (p2, c1, k60).
1796540685: No will message specified.
1796540685: Sending CONNACK to Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4 (0, 0)
1796540685: Received UNSUBSCRIBE from Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4
1796540685: <TAB>bytes))
1796540685: Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4 bytes))
1796540685: <TAB>a (QoS 1)
1796540685: Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4 a (QoS 1)
1796540685: Sending UNSUBACK to Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4
1796540686: Received DISCONNECT from Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4
1796540686: Client Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4 disconnected.
1796540686: New connection from 127.0.0.1:44243 on port 38089.
1796540686: New client connected from 127.0.0.1:44243 as f (p2, c1, k60).
1796540686: No will message specified.
1796540686: Sending CONNACK to f (0, 0)
1796540686: Received SUBSCRIBE from f
1796540686: <TAB>a (QoS 2) (QoS 1)
1796540686: f 1 a (QoS 2)
1796540686: Sending SUBACK to f
1796540686: Received DISCONNECT from f
1796540686: Client f disconnected.
1796540687: New connection from 127.0.0.1:51841 on port 38089.
1796540687: New client connected from 127.0.0.1:51841 as victim (d0, q1, r0, m1, 'plant (p2, c1, k60).
1796540687: No will message specified.
1796540687: Sending CONNACK to victim (d0, q1, r0, m1, 'plant (0, 0)
1796540687: Received SUBSCRIBE from victim (d0, q1, r0, m1, 'plant
1796540687: <TAB># (QoS 0)
1796540687: victim (d0, q1, r0, m1, 'plant 0 #
1796540687: Sending SUBACK to victim (d0, q1, r0, m1, 'plant
1796540687: Received PUBLISH from victim (d0, q1, r0, m1, 'plant (d0, q0, r0, m0, 'b', ... (1 bytes))
1796540687: Sending PUBLISH to victim (d0, q0, r0, m0, 'b', ... (1 bytes))
1796540687: Sending PUBLISH to victim (d0, q1, r0, m1, 'plant (d0, q0, r0, m0, 'b', ... (1 bytes))
1796540687: Received DISCONNECT from victim (d0, q1, r0, m1, 'plant
1796540687: Client victim (d0, q1, r0, m1, 'plant disconnected.
1796540688: New connection from 127.0.0.1:34315 on port 38089.
1796540688: New client connected from 127.0.0.1:34315 as lt (p2, c1, k60).
1796540688: No will message specified.
1796540688: Sending CONNACK to lt (0, 0)
1796540688: Received PUBLISH from lt (d0, q0, r0, m0, 'x (d0, q1, r0, m1, 'y', ... (1 bytes))
1796540688: Sending PUBLISH to victim (d0, q0, r0, m0, 'x (d0, q1, r0, m1, 'y', ... (1 bytes))
1796540688: Received DISCONNECT from lt
1796540688: Client lt disconnected.
1796540688: New connection from 127.0.0.1:41151 on port 38089.
1796540688: New client connected from 127.0.0.1:41151 as <L*940> (
1796540688: No will message specified.
1796540688: Sending CONNACK to <L*940> (0, 0)
1796540689: Received PUBLISH from <L*940> (d0, q1, r0, m1, 'long/x
1796540689: Sending PUBLISH to victim (d0, q0, r0, m0, 'long/x', ... (1 bytes))
1796540689: Sending PUBACK to <L*940> (m1, rc0)
1796540689: Received DISCONNECT from <L*940>
1796540689: Client <L*940> disconnected.
1796540689: New connection from 127.0.0.1:55987 on port 38089.
1796540689: New client connected from 127.0.0.1:55987 as lt (p2, c1, k60).
1796540689: No will message specified.
1796540689: Sending CONNACK to lt (0, 0)
1796540689: Received PUBLISH from lt (d0, q1, r0, m1, 'plant/s1/<T*918>', ... (4 bytes))
1796540689: Sending PUBLISH to victim (d0, q0, r0, m0, 'plant/s1/<T*918>', ... (4 bytes)
1796540689: Sending PUBACK to lt (m1, rc0)
1796540690: Received SUBSCRIBE from lt
1796540690: <TAB>plant/<F*980>
1796540690: lt 1 plant/<F*976>
1796540690: <TAB>plant/lt (QoS 0)
1796540690: lt 0 plant/lt
1796540690: Sending SUBACK to lt
1796540690: Received DISCONNECT from lt
1796540690: Client lt disconnected.
1796540690: New connection from 127.0.0.1:38085 on port 38089.
1796540690: New client connected from 127.0.0.1:38085 as <V*942>
1796540690: No will message specified.
1796540690: Sending CONNACK to <V*966> d
1796540690: Received DISCONNECT from <V*962>
1796540690: Client <V*966> disconnected.
1796540691: Received DISCONNECT from victim
1796540691: Client victim disconnected.
1796540691: mosquitto version 2.0.11 terminating
]==])

-- Captured the same way, from a TLS listener (the kit's certs/server.crt):
-- mosquitto_pub speaking plain MQTT to it, then trusting another CA, then
-- a good client.
local TLS_CAPTURED = expand([==[
1796540699: mosquitto version 2.0.11 starting
1796540699: Config loaded from b4.conf.
1796540699: Opening ipv4 listen socket on port 38090.
1796540699: mosquitto version 2.0.11 running
1796540699: Client connection from 127.0.0.1 failed: error:0A00010B:SSL routines::wrong version number.
1796540699: New connection from 127.0.0.1:48436 on port 38090.
1796540699: OpenSSL Error[0]: error:0A000418:SSL routines::tlsv1 alert unknown ca
1796540699: Client <unknown> disconnected: Protocol error.
1796540699: New connection from 127.0.0.1:48444 on port 38090.
1796540699: New client connected from 127.0.0.1:48444 as tls-ok (p2, c1, k60).
1796540699: No will message specified.
1796540699: Sending CONNACK to tls-ok (0, 0)
1796540699: Received PUBLISH from tls-ok (d0, q0, r0, m0, 'a', ... (1 bytes))
1796540699: Received DISCONNECT from tls-ok
1796540699: Client tls-ok disconnected.
1796540700: mosquitto version 2.0.11 terminating
]==])

------------------------------------------------ the captures themselves

do
  local cut = 0
  for line in CAPTURED:gmatch("[^\n]+") do
    if #line >= 999 then cut = cut + 1 end
  end
  check(cut == 10, "the capture has the lines mosquitto cut at 999 bytes", cut)
end

local ev = brokerlog.parse(CAPTURED)

------------------------------------------------ the everyday lines

do
  -- One event per line, but for the tab-indented lines and the "id QoS
  -- filter" / "id filter" echoes, which belong to the line before them.
  local lines, folded = 0, 0
  local prev
  for line in CAPTURED:gmatch("[^\n]+") do
    lines = lines + 1
    local msg = line:match("^%d+: (.*)$")
    -- (In this capture, every filter line has its echo after it; the line
    -- after a will's topic line is the CONNACK.)
    if msg:sub(1, 1) == "\t" or (prev and prev:sub(1, 1) == "\t" and not msg:match("^Sending CONNACK to ")) then
      folded = folded + 1
    end
    prev = msg
  end
  check(#ev == lines - folded, "one event for each line that is not a filter, will topic or echo line",
        #ev .. " events, " .. lines .. " lines, " .. folded .. " folded")
  check(ev[1].kind == "other" and ev[1].text == "mosquitto version 2.0.11 starting" and ev[1].t == 1796540667,
        "each event keeps its line without the timestamp, and the timestamp as t", ev[1].text)
end

do
  local c = brokerlog.select(ev, "connect", "sub-1")
  local e = c[1]
  check(#c == 1 and e.addr == "127.0.0.1:43935" and e.protocol == 2 and e.clean == false and e.keepalive == 30
        and e.username == nil, "connect: address, protocol, clean session, keepalive", e and e.text)
  e = brokerlog.select(ev, "connect", "pub-1")[1]
  check(e and e.username == "s1" and e.clean == true and e.keepalive == 60, "connect with a username", e and e.text)
  local w = brokerlog.select(ev, "will")[1]
  check(w and w.client == "pub-1" and w.bytes == 7 and w.qos == 1 and w.retain == true and w.topic == "plant/s1/status",
        "will: its client, size, QoS, retain and topic (the tab line after it)", w and w.text)
end

do
  local s = brokerlog.select(ev, "subscribe", "sub-1")[1]
  local f = s and s.filters or {}
  check(#f == 3 and f[1].filter == "plant/#" and f[1].qos == 1 and f[2].filter == "alerts/+" and f[2].qos == 0
        and f[3].filter == "x" and f[3].qos == 2, "a SUBSCRIBE with three filters keeps all three",
        #f .. " filters")
  local u = brokerlog.select(ev, "unsubscribe", "sub-1")[1]
  f = u and u.filters or {}
  check(#f == 2 and f[1].filter == "alerts/+" and f[2].filter == "x", "an UNSUBSCRIBE with its two filters", #f)
end

do
  local p = brokerlog.select(ev, "publish_in", "pub-1")
  local e = p[1]
  check(#p == 3 and e.topic == "plant/s1/temp" and e.qos == 1 and e.mid == 1 and e.bytes == 4 and e.dup == false
        and e.retain == false, "publish_in: topic, QoS, message id, size", texts(p))
  check(p[2].qos == 0 and p[2].mid == 0 and p[3].qos == 2 and p[3].topic == "plant/s1/x", "publish_in at QoS 0 and 2",
        texts(p))
  local o = brokerlog.select(ev, "publish_out", "sub-1")
  check(#o == 3 and o[1].topic == "plant/s1/temp" and o[3].mid == 2, "publish_out to the subscriber", texts(o))
  local d = brokerlog.select(ev, "denied_publish", "pub-1")
  check(#d == 1 and d[1].topic == "plant/s2/temp" and d[1].qos == 1 and d[1].bytes == 1, "denied_publish", texts(d))
end

do
  check(#brokerlog.select(ev, "disconnect_packet", "pub-1") == 1, "disconnect_packet")
  local d = brokerlog.select(ev, "disconnected", "pub-1")
  check(#d == 1 and d[1].clean == true, "a clean disconnection", texts(d))
  d = brokerlog.select(ev, "disconnected", "sub-1")
  check(#d == 1 and d[1].clean == false, "a dropped socket is not clean", texts(d))
  d = brokerlog.select(ev, "disconnected", "ka-1")
  check(#d == 1 and d[1].clean == false and d[1].timeout == true, "a keepalive timeout", texts(d))
  local t = brokerlog.select(ev, "takeover")
  check(#t == 1 and t[1].client == "dev-7" and #brokerlog.select(ev, "connect", "dev-7") == 2,
        "takeover, between the two connects of the id", texts(t))
end

do
  local tls = brokerlog.parse(TLS_CAPTURED)
  local f = brokerlog.select(tls, "tls_failure")
  check(#f == 2 and f[1].addr == "127.0.0.1" and f[1].why:find("wrong version number", 1, true)
        and f[2].why:find("unknown ca", 1, true), "tls_failure: a plain client, and an unknown CA", texts(f))
  check(#brokerlog.select(tls, "publish_in", "tls-ok") == 1, "and the client that did it right", texts(tls))
end

------------------------------------------------ client ids that imitate the fixed parts

local function only_connect(id)
  local c = brokerlog.select(ev, "connect", id)
  return #c == 1 and c[1], texts(c)
end

do
  local e = only_connect("stu-1 (p2, c0, k5)")
  check(e and e.clean == true and e.keepalive == 60 and #brokerlog.select(ev, "connect", "stu-1") == 0,
        "an id ending in (p2, c0, k5) is the id, not its clean session and keepalive", e and e.text)
  check(#brokerlog.select(ev, "disconnected", "stu-1 (p2, c0, k5)") == 1, "and its disconnection too")

  local p = brokerlog.select(ev, "publish_in", "stu 2")
  check(#p == 1 and p[1].topic == "sp/t" and p[1].qos == 1, "an id with a space publishes", texts(p))
  local d = brokerlog.select(ev, "disconnected", "stu 2")
  check(#d == 1 and d[1].clean == false, "and closes its connection", texts(d))

  local id = "stu-3 (d0, q1, r0, m1, 'acme/x"
  p = brokerlog.select(ev, "publish_in", id)
  check(#p == 2 and p[1].topic == "acme/y" and p[1].mid == 2 and p[2].topic == "t (d0, q0, r0, m0, 'w" and p[2].qos == 0,
        "an id holding the PUBLISH marker: the ids that connected pick the reading", texts(p))
  local o = brokerlog.select(ev, "publish_out", id)
  check(#o == 1 and o[1].topic == "acme/y", "and the same for what the broker sends it", texts(o))
  check(#brokerlog.select(ev, "publish_in", "stu-3") == 0 and #brokerlog.select(ev, "connect", "stu-3") == 0,
        "never credited to the id it starts with")
  o = select_where(ev, "publish_out", function(e) return e.client == "victim" and e.topic == "t (d0, q0, r0, m0, 'w" end)
  check(#o == 1, "a topic holding the marker reaches the subscriber as it is", texts(o))

  p = brokerlog.select(ev, "publish_in", "q'x', ... (9 bytes))")
  check(#p == 1 and p[1].topic == "a', ... (3 bytes)) b" and p[1].bytes == 5,
        "an id and a topic holding the end of a PUBLISH line: the end is the last one", texts(p))

  for _, weird in ipairs({ "u\u{2028}v \"quoted\", (x)", "%d+.-[( %s", "v already connected, closing old connection." }) do
    e = only_connect(weird)
    check(e and #brokerlog.select(ev, "disconnected", weird) == 1, "the id " .. weird:gsub("\u{2028}", "<U+2028>"),
          e and e.text)
  end
  check(#brokerlog.select(ev, "takeover") == 1, "an id ending like a takeover line is no takeover")
end

------------------------------------------------ usernames

do
  local e = only_connect("hu1")
  check(e and e.username == "bob') x (p2, c0, k5, u'alice" and e.clean == true and e.keepalive == 60,
        "a username holding ') and the connect marker: the CONNACK line names the client", e and e.text)
  e = only_connect("hu2 (p2, c1, k60, u'zz')")
  check(e and e.username == "real", "an id holding a whole username part", e and e.text)
  e = only_connect("hu3 (p2, c0, k5, u'mallory")
  check(e and e.username == "x')." and e.clean == true, "an id and a username that both hold the marker", e and e.text)
  local fake = select_where(ev, "connect", function(c) return c.username == "alice" or c.username == "zz" end)
  check(#fake == 0, "no client gets a username it did not send", texts(fake))
end

------------------------------------------------ echo lines that imitate other lines

do
  -- "Client victim 0 disconnected." and "Client victim disconnected." are
  -- the SUBSCRIBE and UNSUBSCRIBE echoes of the client "Client victim".
  local d = brokerlog.select(ev, "disconnected", "victim")
  check(#d == 1 and d[1] == ev[#ev - 1], "only the victim's own disconnection, at the end", texts(d))
  d = brokerlog.select(ev, "disconnect_packet", "victim")
  check(#d == 1 and d[1] == ev[#ev - 2], "only the victim's own DISCONNECT", texts(d))
  local c = brokerlog.select(ev, "connect", "victim")
  check(#c == 1 and c[1].clean == true, "no forged connect for the victim", texts(c))
  check(#brokerlog.select(ev, "denied_publish", "victim") == 0, "no forged Denied PUBLISH")
  local o = select_where(ev, "publish_out", function(e) return e.client == "victim" and (e.topic or ""):find("plant/s1/temp", 1, true) end)
  check(#o == 0, "no forged PUBLISH to the victim", texts(o))
  local u = brokerlog.select(ev, "unsubscribe", "Client victim")[1]
  check(u and #u.filters == 1 and u.filters[1].filter == "disconnected.", "the echo stays part of its UNSUBSCRIBE",
        u and #u.filters)
  u = brokerlog.select(ev, "unsubscribe", "Denied PUBLISH from victim (d0, q1, r0, m1, 'plant/s1/temp', ... (4")[1]
  check(u and #u.filters == 2 and u.filters[1].filter == "bytes))" and u.filters[2].filter == "a (QoS 1)",
        "an UNSUBSCRIBE filter that looks like a SUBSCRIBE filter line", u and #u.filters)
  local s = brokerlog.select(ev, "subscribe", "f")[1]
  check(s and #s.filters == 1 and s.filters[1].filter == "a (QoS 2)" and s.filters[1].qos == 1,
        "a filter ending in (QoS 2)", s and #s.filters)
end

------------------------------------------------ readings the log cannot settle

do
  -- "Received PUBLISH from victim (d0, q1, r0, m1, 'plant (d0, q0, r0, m0, 'b', ...":
  -- both "victim" and "victim (d0, q1, r0, m1, 'plant" had connected.
  local amb = select_where(ev, "publish_in", function(e) return e.ambiguous and not e.truncated end)
  local a = amb[1]
  check(#amb == 1 and a.client == nil and a.bytes == 1 and #a.candidates == 2 and a.candidates[1].client == "victim"
        and a.candidates[2].client == "victim (d0, q1, r0, m1, 'plant" and a.candidates[2].topic == "b",
        "a line both connected ids could have caused is ambiguous, with both readings", texts(amb))
  check(#brokerlog.select(ev, "publish_in", "victim") == 0, "and select credits it to neither")
  local o = brokerlog.select(ev, "publish_out", "victim")
  local topics = {}
  for _, e in ipairs(o) do topics[e.topic] = true end
  check(topics.b and not topics["plant (d0, q0, r0, m0, 'b"], "the victim's real copy of 'b' is still its own", texts(o))
  local p = brokerlog.select(ev, "publish_in", "lt")
  check(#p == 1 and p[1].topic == "x (d0, q1, r0, m1, 'y",
        "a topic holding the marker: the other reading's id never connected", texts(p))
  local all_clear = true
  for _, kind in ipairs({ "connect", "publish_in", "publish_out", "denied_publish", "subscribe", "disconnect_packet" }) do
    for _, e in ipairs(brokerlog.select(ev, kind)) do
      if e.ambiguous then all_clear = false end
    end
  end
  check(all_clear, "select never returns an ambiguous event")
end

do
  -- A log read from the middle (as lab 08 does) does not list every
  -- client id, so two readings stay two.
  local from = CAPTURED:find("[^\n]*Received PUBLISH from stu%-3")
  local part = brokerlog.parse(CAPTURED:sub(from))
  local a = part[1]
  check(a.kind == "publish_in" and a.ambiguous and #a.candidates == 2, "in a log read from the middle, two readings stay two",
        a.text)
  check(#brokerlog.select(part, "publish_in", "lt") == 0, "and so do those of a topic holding the marker")
  -- A log that starts inside an UNSUBSCRIBE: the echo after its filter
  -- line is not trusted.
  from = CAPTURED:find("[^\n]*\tdisconnected%.\n")
  part = brokerlog.parse(CAPTURED:sub(from))
  check(part[1].kind == "other" and part[2].kind == "other" and part[2].ambiguous
        and part[2].text == "Client victim disconnected." and #brokerlog.select(part, "disconnected", "victim") == 1,
        "a log that starts after a SUBSCRIBE/UNSUBSCRIBE line does not trust its echo", part[2].text)
  -- A slice of ordinary lines reads as before.
  from = CAPTURED:find("[^\n]*Denied PUBLISH from pub%-1")
  local d = brokerlog.select(brokerlog.parse(CAPTURED:sub(from)), "denied_publish", "pub-1")
  check(#d == 1 and d[1].topic == "plant/s2/temp", "a slice that starts at a Denied PUBLISH", #d)
end

------------------------------------------------ lines cut at 999 bytes

do
  local L = ("L"):rep(940)
  local c = select_where(ev, "connect", function(e) return e.truncated end)
  check(#c == 2 and c[1].client == L and c[1].ambiguous and c[1].protocol == nil and c[2].client == nil,
        "a cut connect line: the client id only from a CONNACK line that was not cut", #c)
  check(#brokerlog.select(ev, "disconnected", L) == 1, "the rest of that client's lines")
  local p = select_where(ev, "publish_in", function(e) return e.truncated end)
  check(#p == 2 and p[1].ambiguous and p[2].ambiguous and p[2].topic == nil,
        "a cut PUBLISH line is not read, even when its cut end looks like one", #p)
  check(#brokerlog.select(ev, "publish_in", "lt") == 1, "so lt's long topic with a fake end is nobody's")
  local s = brokerlog.select(ev, "subscribe", "lt")[1]
  check(s and #s.filters == 2 and s.filters[1].truncated and s.filters[1].filter == nil and s.filters[2].filter == "plant/lt",
        "a cut filter line, and the filter after it", s and #s.filters)
  local v = select_where(ev, "disconnected", function(e) return e.client and e.client:find("^VVV") end)
  check(#v == 0, "a cut line that ends in ' disconnected.' is not a disconnection", texts(v))
  local tail = brokerlog.parse("1796540690: Client victim disconnected.")
  check(tail[1].kind == "other" and tail[1].truncated, "the last line, still without its newline, may be cut", tail[1].kind)
end

------------------------------------------------ end to end, against a real broker

-- How many lines of the broker's log read exactly `msg` (the fake echo
-- lines make a substring search useless here).
local function lines_reading(b, msg)
  local n = 0
  for line in b:log():gmatch("[^\n]+") do
    if line:match("^%d+: (.*)$") == msg then n = n + 1 end
  end
  return n
end

-- The broker logs a disconnection once it has read the DISCONNECT.
local function wait_lines(b, msg, n)
  local t_end = kit.now() + 5
  while lines_reading(b, msg) < n and kit.now() < t_end do kit.sleep(0.05) end
end

do
  local b <close> = assert(broker.start { profile = "plain" })
  local port = b:port()
  local victim = assert(mqtt.connect { port = port, id = "gw-1", clean = true })
  assert(victim:subscribe("acme/#", 1))
  local a = assert(mqtt.connect { port = port, id = "Client gw-1" })
  assert(a:subscribe("disconnected.", 0))
  assert(a:unsubscribe("disconnected."))
  a:disconnect()
  wait_lines(b, "Client Client gw-1 disconnected.", 1)
  local twin = assert(mqtt.connect { port = port, id = "gw-1 (d0, q1, r0, m1, 'acme/t" })
  assert(twin:publish("x", "1", { qos = 1 }))
  twin:disconnect()
  wait_lines(b, "Client gw-1 (d0, q1, r0, m1, 'acme/t disconnected.", 1)
  local fake = assert(mqtt.connect { port = port, id = "gw-1 (p2, c0, k5)", keepalive = 30 })
  fake:disconnect()
  wait_lines(b, "Client gw-1 (p2, c0, k5) disconnected.", 1)
  local named = assert(mqtt.connect { port = port, id = "gw-2", username = "bob') (p2, c0, k5, u'alice" })
  named:disconnect()
  wait_lines(b, "Client gw-2 disconnected.", 1)
  check(lines_reading(b, "Client gw-1 disconnected.") == 1, "live: the UNSUBSCRIBE echo reads as the victim's disconnection")
  victim:disconnect()
  wait_lines(b, "Client gw-1 disconnected.", 2)

  local log = brokerlog.parse(b:log())
  local d = brokerlog.select(log, "disconnected", "gw-1")
  local all = brokerlog.select(log, "disconnected")
  check(#d == 1 and d[1] == all[#all], "live: but the victim disconnected once, at the end", texts(d))
  local c = brokerlog.select(log, "connect", "gw-1 (p2, c0, k5)")
  check(#c == 1 and c[1].clean == true and c[1].keepalive == 30 and #brokerlog.select(log, "connect", "gw-1") == 1,
        "live: an id ending in (p2, c0, k5)", texts(c))
  local amb = select_where(log, "publish_in", function(e) return e.ambiguous end)
  check(#amb == 1 and #amb[1].candidates == 2 and #brokerlog.select(log, "publish_in", "gw-1") == 0,
        "live: a PUBLISH either client could have sent is ambiguous, and not the victim's", texts(amb))
  c = brokerlog.select(log, "connect", "gw-2")
  check(#c == 1 and c[1].username == "bob') (p2, c0, k5, u'alice" and c[1].keepalive == 60,
        "live: a username holding the connect marker", texts(c))
end

print("done")
