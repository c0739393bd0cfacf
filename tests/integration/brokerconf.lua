-- brokerconf.lua: mqlab.brokerconf against a table of student configs,
-- then real brokers started from what it made (a TLS one with the kit's
-- certificates, a plain one with copies of a password file and an ACL).
-- Run by run.py as `mqlab run tests/integration/brokerconf.lua`; prints
-- one "ok NAME" or "FAIL NAME: detail" line per assertion, "done" at the end.
local brokerconf = require "mqlab.brokerconf"
local brokermod = require "mqlab.broker"
local kit = require "mqlab.kit"
local tls = require "mqlab.tls"

local function check(cond, name, detail)
  if cond then print("ok " .. name) else print("FAIL " .. name .. ": " .. tostring(detail)) end
end

local certs = tls.certs()
local me = kit.user()

-- A student's folder, removed at the end like every kit.tmpdir.
local student = kit.tmpdir("mqlab-student")
local function put(name, data, mode)
  local dir = name:match("^(.*)/[^/]+$")
  if dir then assert(kit.mkdir(student .. "/" .. dir)) end
  assert(kit.write_file(student .. "/" .. name, data, mode or "0644"))
end
put("acl", "user sensor\ntopic write planta/#\nuser dash\ntopic read planta/#\n")
put("sub/acl2", "topic read #\n")
put("certs/ca.crt", "the student's own certs/ folder: certs/ still means the kit's\n")
-- A password file made the way the course does (hashed by mosquitto_passwd).
local passwd_ok = os.execute("mosquitto_passwd -b -c '" .. student .. "/passwd' sensor s3cret >/dev/null 2>&1")
  and os.execute("mosquitto_passwd -b '" .. student .. "/passwd' dash d4sh >/dev/null 2>&1")
check(passwd_ok, "mosquitto_passwd made the student's password file")
os.execute("ln -s /etc/passwd '" .. student .. "/leak'")

-- prepare in a fresh private folder.
local function prep(text, extra)
  local o = { text = text, file = "mosquitto.conf", student_dir = student, certs = certs,
              workdir = kit.tmpdir("mqlab-conf") }
  for k, v in pairs(extra or {}) do o[k] = v end
  local res, why = brokerconf.prepare(o)
  return res, why, o.workdir
end

local function by_port(res, student_port)
  for _, l in ipairs(res and res.listeners or {}) do
    if l.student_port == student_port then return l end
  end
end

local function lines_of(text)
  local t = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do t[#t + 1] = l end
  return t
end

local function has_line(text, pattern)
  for _, l in ipairs(lines_of(text)) do
    if l:match(pattern) then return true end
  end
  return false
end

-- Every listener line of the result binds 127.0.0.1; the first is @PORT@.
local function all_loopback(res)
  local n, first = 0, nil
  for _, l in ipairs(lines_of(res.config)) do
    local w = l:match("^listener (%S+)")
    if w then
      n = n + 1
      first = first or w
      if not l:match("^listener %S+ 127%.0%.0%.1$") then return false, l end
    end
  end
  return n > 0 and first == "@PORT@", string.format("%d listeners, first %s", n, tostring(first))
end

-- ---------------------------------------------------------------------
-- The kit's file helpers that prepare() stands on

local function mode_of(path)
  local h = io.popen("stat -c %a '" .. path .. "'")
  local m = h:read("l")
  h:close()
  return m
end

do
  local d = kit.tmpdir("mqlab-kit")
  check(kit.write_file(d .. "/a", "uno\0dos") and kit.read_file(d .. "/a") == "uno\0dos" and mode_of(d .. "/a") == "600",
        "kit.write_file writes the bytes, 0600 by default")
  check(kit.write_file(d .. "/a", "tres", "0644") and kit.read_file(d .. "/a") == "tres" and mode_of(d .. "/a") == "644",
        "kit.write_file replaces a file, with the mode given", mode_of(d .. "/a"))
  check(not pcall(kit.write_file, d .. "/b", "x", 0600), "a mode written 0600 (six hundred in Lua) raises")
  check(kit.copy_file(d .. "/a", d .. "/b") and kit.read_file(d .. "/b") == "tres" and mode_of(d .. "/b") == "600",
        "kit.copy_file copies, 0600 whatever the source's mode")
  local ok, why = kit.copy_file(d, d .. "/c")
  check(not ok and why:find("not a regular file", 1, true), "kit.copy_file refuses a folder", why)
  ok, why = kit.write_file("/nonexistent-mqlab/x", "y")
  check(not ok and why:find("/nonexistent-mqlab/x", 1, true), "kit.write_file says where it could not write", why)
  local h = io.popen("id -un")
  local id = h:read("l")
  h:close()
  check(kit.user() == id, "kit.user() is who runs the kit", kit.user())
  kit.rmdir(d)
end

-- ---------------------------------------------------------------------
-- Good configs and how their listeners are mapped

local TLS_CONF = [[
# Lab 07, as a student writes it
per_listener_settings false
allow_anonymous true

listener 8883
cafile certs/ca.crt
certfile certs/server.crt
keyfile certs/server.key
tls_version tlsv1.2

listener 1883 127.0.0.1
]]

do
  local res, why = prep(TLS_CONF)
  check(res, "a TLS config is accepted", why and why.text.en)
  if res then
    local t, p = by_port(res, 8883), by_port(res, 1883)
    check(#res.listeners == 2 and t and p, "two listeners, found by the student's port", #res.listeners)
    check(t and t.tls and t.exposed and t.address == nil and t.protocol == "mqtt" and t.tls_version == "tlsv1.2"
          and t.line == 5 and not t.require_certificate,
          "listener 8883: TLS, no address, so exposed as written", t and (tostring(t.tls) .. tostring(t.exposed)))
    check(p and not p.tls and not p.exposed and p.address == "127.0.0.1" and p.line == 11,
          "listener 1883 127.0.0.1: plain, loopback only", p and tostring(p.exposed))
    check(res.main_port == t.port and t.port ~= p.port and t.port ~= 8883 and p.port ~= 1883,
          "the first listener's free port is main_port", res.main_port)
    local ok, why2 = all_loopback(res)
    check(ok, "every listener is written as listener PORT 127.0.0.1", why2)
    check(has_line(res.config, "^listener " .. p.port .. " 127%.0%.0%.1$"), "the second listener gets its own port")
    check(has_line(res.config, "^cafile " .. certs:gsub("%p", "%%%0") .. "/ca%.crt$")
          and has_line(res.config, "^keyfile " .. certs:gsub("%p", "%%%0") .. "/server%.key$"),
          "certs/ is the kit's certs folder (not the student's certs/)", res.config)
    check(next(res.copies) == nil, "the kit's certificates are not copied")
    check(res.settings.allow_anonymous == "true" and res.settings.per_listener_settings == "false"
          and res.settings.password_file == nil, "settings as written")
    check(has_line(res.config, "^user @USER@$") and has_line(res.config, "^log_dest file @LOG@$")
          and has_line(res.config, "^log_type all$") and has_line(res.config, "^log_timestamp_format %%s$")
          and has_line(res.config, "^connection_messages true$"), "the kit's own lines are appended")
    check(lines_of(res.config)[5] == "listener @PORT@ 127.0.0.1" and res.line_map[5] == 5 and res.line_map[11] == 11,
          "line numbers are kept", lines_of(res.config)[5])
  end
end

-- 1883, 8883 and a websockets listener on 9001.
do
  local res, why = prep([[
listener 1883
listener 8883 0.0.0.0
cafile ../certs/ca.crt
certfile ./certs/server.crt
keyfile certs/server.key
listener 9001
protocol websockets
allow_anonymous true
]])
  check(res, "1883/8883/9001 config accepted", why and why.text.en)
  if res then
    local a, b, w = by_port(res, 1883), by_port(res, 8883), by_port(res, 9001)
    check(a and b and w and a.exposed and b.exposed and b.address == "0.0.0.0" and w.exposed,
          "no address and 0.0.0.0 are exposed")
    check(w and w.protocol == "websockets" and not w.tls and b.tls and not a.tls, "protocol and TLS per listener")
    local seen, distinct = {}, true
    for _, l in ipairs(res.listeners) do
      if seen[l.port] or l.port == l.student_port then distinct = false end
      seen[l.port] = true
    end
    check(distinct, "three distinct free ports, none the student's")
    local ls = lines_of(res.config)
    check(ls[6] == "listener " .. w.port .. " 127.0.0.1" and ls[7] == "socket_domain ipv4" and ls[8] == "protocol websockets",
          "the websockets listener is told IPv4 (else libwebsockets opens every interface)", res.config)
    check(res.line_map[7] == false and res.line_map[8] == 7, "line_map skips the added line")
    check(brokerconf.explain(res, "Error: x (config line 8)") == "Error: x (mosquitto.conf line 7)"
          and brokerconf.explain(res, "Error: x (config line 7)"):find("added", 1, true),
          "explain() names the student's line", brokerconf.explain(res, "Error: x (config line 8)"))
  end
end

-- `port 1883` old style, with and without bind_address.
do
  local res = prep("port 1883\nallow_anonymous true\n")
  local l = res and res.listeners[1]
  check(l and #res.listeners == 1 and l.student_port == 1883 and l.address == nil and l.exposed and l.implicit
        and l.line == 1, "port 1883: a listener on 1883 with no address", l and l.student_port)
  check(res and lines_of(res.config)[1] == "listener @PORT@ 127.0.0.1" and not has_line(res.config, "^port "),
        "port becomes listener @PORT@ 127.0.0.1 on its own line", res and res.config)
  res = prep("allow_anonymous true\nport 1884\nbind_address 127.0.0.1\n")
  l = res and res.listeners[1]
  check(l and l.student_port == 1884 and l.address == "127.0.0.1" and not l.exposed and l.line == 2,
        "bind_address is the default listener's address", l and tostring(l.address))
  check(res and lines_of(res.config)[1] == "listener @PORT@ 127.0.0.1" and res.line_map[1] == false
        and res.line_map[2] == 1 and not has_line(res.config, "^bind_address"),
        "the default listener goes above the options it owns", res and res.config)
  check(#res.notes == 2 and res.notes[1].line == 2 and res.notes[1].message.es ~= "", "port and bind_address are noted",
        #res.notes)
end

-- No listener at all: mosquitto's local-only mode on 1883.
do
  local res = prep("# nothing but\n\nallow_anonymous false\n")
  local l = res and res.listeners[1]
  check(l and #res.listeners == 1 and l.student_port == 1883 and l.address == "127.0.0.1" and not l.exposed
        and l.local_only, "no listener: like listener 1883 127.0.0.1", l and l.student_port)
  check(res and lines_of(res.config)[2] == "listener @PORT@ 127.0.0.1" and res.line_map[3] == 3,
        "it takes a blank line, so line numbers stay")
  check(res and has_line(res.config, "^allow_anonymous true$"),
        "local-only mode lets anonymous clients in, as mosquitto does")
  -- An option of the default listener opens it on every interface.
  res = prep("max_qos 1\n")
  l = res and res.listeners[1]
  check(l and l.student_port == 1883 and l.exposed and l.address == nil,
        "no listener but max_qos: 1883 on every interface, as mosquitto does", l and tostring(l.exposed))
  -- Beside an explicit listener, TLS options before it make the default listener too.
  res = prep("cafile certs/ca.crt\nlistener 8883 127.0.0.1\n")
  local d, e = res and by_port(res, 1883), res and by_port(res, 8883)
  check(d and e and d.exposed and d.implicit and d.line == nil and res.listeners[2] == d and res.main_port == e.port,
        "cafile before the first listener opens 1883 too (listed last)", res and #res.listeners)
end

-- Files of the student's folder: copied, 0600, absolute in the config.
do
  local res, why, wd = prep(string.format([[
per_listener_settings true
listener 1883 127.0.0.1
allow_anonymous false
password_file passwd
acl_file ./acl
listener 1884 127.0.0.1
password_file sub/../passwd
acl_file sub/acl2
listener 1885 127.0.0.1
acl_file %s/acl
persistence true
persistence_location data/
]], student))
  check(res, "relative and absolute paths into the student's folder are accepted", why and why.text.en)
  if res then
    local cp, ca = res.copies["passwd"], res.copies["./acl"]
    check(cp and ca and cp:sub(1, #kit.realpath(wd)) == kit.realpath(wd) and kit.exists(cp),
          "the files are copied into workdir", cp)
    check(res.copies["sub/../passwd"] and res.copies["sub/acl2"] and res.copies[student .. "/acl"],
          "each path as written has its copy")
    check(kit.read_file(cp) == kit.read_file(student .. "/passwd"), "the copy holds the same bytes")
    local mode = io.popen("stat -c %a '" .. cp .. "'"):read("l")
    check(mode == "600", "copies are 0600", mode)
    check(has_line(res.config, "^password_file " .. cp:gsub("%p", "%%%0") .. "$"), "the config points at the copy")
    local l1 = by_port(res, 1883)
    check(l1 and l1.password_file == "passwd" and l1.allow_anonymous == "false" and l1.acl_file == "./acl",
          "per-listener settings as written")
    local loc = res.config:match("\npersistence_location (%S+)\n")
    check(loc and loc == kit.realpath(wd) .. "/data/" and kit.is_dir(loc),
          "a relative persistence_location is made inside workdir", loc)
  end
end

-- ---------------------------------------------------------------------
-- Refusals: each names the line and says why, in both languages

local REFUSED = {
  { "user other than me", "listener 1883\nuser nobody-else\n", 2, "as you" },
  { "include_dir", "listener 1883\ninclude_dir /etc/mosquitto/conf.d\n", 2, "include_dir" },
  { "plugin", "plugin /usr/lib/x.so\nlistener 1883\n", 1, "plugins" },
  { "auth_plugin", "listener 1883\nauth_plugin /usr/lib/x.so\n", 2, "plugins" },
  { "bridge connection", "listener 1883\n\nconnection cloud\naddress broker.example.com:1883\n", 3, "bridge" },
  { "bridge address", "listener 1883\naddress broker.example.com\n", 2, "bridge" },
  { "log_dest file outside", "listener 1883\nlog_dest file /var/log/mosquitto/mosquitto.log\n", 2, "outside" },
  { "log_dest file climbing out", "listener 1883\nlog_dest file ../../x.log\n", 2, "outside" },
  { "persistence_location outside", "persistence true\npersistence_location /var/lib/mosquitto/\n", 2, "outside" },
  { "persistence_location climbing out", "persistence_location ../\n", 1, "outside" },
  { "persistence_file with a path", "persistence_file ../../etc/x.db\n", 1, "file name" },
  { "pid_file", "pid_file /run/mosquitto/mosquitto.pid\nlistener 1883\n", 1, "pid_file" },
  { "missing password file", "listener 1883\n\npassword_file passwd-missing\n", 3,
    "passwd-missing is referenced but not in your folder" },
  { "path climbing out with ..", "listener 1883\nacl_file ../acl\n", 2, "out of your folder" },
  { "absolute path outside", "listener 8883\ncafile /etc/mosquitto/ca_certificates/ca.crt\n", 2, "absolute path" },
  { "link to a file outside", "listener 1883\npassword_file leak\n", 2, "link" },
  { "a folder as a file", "listener 1883\nacl_file sub\n", 2, "folder" },
  { "not one of the kit's certificates", "listener 8883\ncafile certs/nope.crt\n", 2, "kit's certificate folder" },
  { "a kit placeholder", "listener 1883\nacl_file @DIR@/acl\n", 2, "@DIR@" },
  { "a listener without a port", "listener\n", 1, "port" },
  { "a port out of range", "port 70000\n", 1, "port" },
}

for _, case in ipairs(REFUSED) do
  local name, text, line, words = case[1], case[2], case[3], case[4]
  local res, why = prep(text)
  check(not res and why and why.line == line, "refused: " .. name .. " (line " .. line .. ")",
        res and "accepted" or (why and why.line))
  if why then
    check(why.message.en:find(words, 1, true) and why.message.es ~= "" and why.message.es ~= why.message.en
          and why.text.en:find("mosquitto.conf, line " .. line, 1, true)
          and why.text.es:find("mosquitto.conf, línea " .. line, 1, true),
          "refused: " .. name .. ": says why, in es and en", why.message.en)
  end
end

do
  local _, why = prep("listener 1883\npassword_file passwd-missing\n")
  check(why and why.message.en == "passwd-missing is referenced but not in your folder (password_file)"
        and why.directive == "password_file", "the missing-file sentence", why and why.message.en)
  local res = prep("listener 1883\nuser " .. me .. "\n")
  check(res and not has_line(res.config, "^user " .. me .. "$") and res.notes[1].line == 2,
        "user <me> is dropped with a note (the kit appends its own)")
  res = prep("listener 1883\nlog_dest stdout\nlog_dest file mosquitto.log\nlog_type error\nlog_timestamp false\n"
             .. "log_timestamp_format %Y\nconnection_messages false\nhttp_dir www\n")
  local dropped = 0
  for _, l in ipairs(lines_of(res and res.config or "")) do
    if l:match("^# %[mqlab: dropped%]") then dropped = dropped + 1 end
  end
  check(res and dropped == 7 and #res.notes == 7 and res.line_map[8] == 8, "logging lines are dropped with notes",
        res and #res.notes)
  check(not pcall(brokerconf.prepare, { text = "listener 1883\n" }), "prepare without workdir raises")
end

-- ---------------------------------------------------------------------
-- Real brokers from the results

-- The sockets of 127.0.0.1 and of every other address, from /proc.
local function listening(port)
  local where = {}
  for _, f in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local h = io.open(f)
    if h then
      for l in h:lines() do
        local addr, p, st = l:match("^%s*%d+: (%x+):(%x+) %x+:%x+ (%x+)")
        if addr and tonumber(p, 16) == port and st == "0A" then where[#where + 1] = addr end
      end
      h:close()
    end
  end
  return where
end

local function only_loopback(port)
  local w = listening(port)
  if #w == 0 then return false, "not listening" end
  for _, a in ipairs(w) do
    if a ~= "0100007F" then return false, a end
  end
  return true
end

do
  local res, why = prep(TLS_CONF .. "listener 9001\nprotocol websockets\n")
  check(res, "TLS + websockets config prepared", why and why.text.en)
  local b, msg = brokermod.start { template = res.config, port = res.main_port, name = "student-tls" }
  check(b, "mosquitto runs the prepared TLS config", msg)
  if b then
    local t, p, w = by_port(res, 8883), by_port(res, 1883), by_port(res, 9001)
    kit.sleep(0.3)
    for _, l in ipairs({ t, p, w }) do
      local ok, where = only_loopback(l.port)
      check(ok, "listener " .. l.student_port .. " listens on 127.0.0.1 only", where)
    end
    local ca = certs .. "/ca.crt"
    for _, host in ipairs({ "localhost", "127.0.0.1" }) do
      local c, m = mqtt.connect { host = host, port = t.port, cafile = ca, id = "bc-tls", timeout = 5 }
      check(c, "the kit's TLS client connects to 8883 as " .. host, m)
      if c then c:close() end
    end
    local c, m = mqtt.connect { port = t.port, cafile = certs .. "/impostor-ca.crt", timeout = 5 }
    check(not c and m:find("certificate verify failed", 1, true), "with another CA the handshake fails, saying why", m)
    c, m = mqtt.connect { port = t.port, timeout = 2 }
    check(not c, "a plain client gets nothing from the TLS listener", m)
    c, m = mqtt.connect { port = p.port, id = "bc-plain", timeout = 5 }
    check(c, "the plain loopback listener answers", m)
    if c then c:close() end
    b:close()
  end
end

do
  local res, why = prep([[
per_listener_settings false
allow_anonymous false
password_file passwd
acl_file acl
listener 1883
]])
  check(res, "password_file/acl_file config prepared", why and why.text.en)
  local b, msg = brokermod.start { template = res.config, port = res.main_port, name = "student-acl" }
  check(b, "mosquitto runs it, reading the copies", msg)
  if b then
    local port = res.main_port
    local dash, m1 = mqtt.connect { port = port, id = "bc-dash", username = "dash", password = "d4sh", timeout = 5 }
    check(dash, "dash logs in with its password", m1)
    local sensor, m2 = mqtt.connect { port = port, id = "bc-sensor", username = "sensor", password = "s3cret", timeout = 5 }
    check(sensor, "sensor logs in with its password", m2)
    local bad, m3, code = mqtt.connect { port = port, id = "bc-bad", username = "sensor", password = "nope", timeout = 5 }
    check(not bad and code == 5, "a wrong password is refused (CONNACK 5)", m3)
    local anon, _, code2 = mqtt.connect { port = port, id = "bc-anon", timeout = 5 }
    check(not anon and code2 == 5, "anonymous is refused", code2)
    if dash and sensor then
      dash:subscribe("planta/#", 1)
      sensor:publish("planta/t", "21.5", { qos = 1 })
      local got = dash:wait(3, "planta/#")
      check(got and got.payload == "21.5", "the ACL lets sensor write and dash read", got and got.payload)
      dash:publish("planta/t", "forged", { qos = 1 })
      check(dash:wait(1, "planta/#") == nil, "the ACL keeps dash from writing")
    end
    if dash then dash:close() end
    if sensor then sensor:close() end
    b:close()
  end
end

do
  -- mosquitto's own complaint, with the student's line number.
  local res = prep("max_qos 1\nno_such_option 1\n")
  local b, msg = brokermod.start { template = res.config, port = res.main_port, name = "student-bad" }
  check(not b and msg:find("no_such_option", 1, true), "a config mosquitto rejects fails with its words", msg)
  if b then b:close() end
  local said = brokerconf.explain(res, msg or "")
  check(said:find("mosquitto.conf line 2", 1, true), "explain() points at the student's line 2", said)
end

print("done")
