-- Lab 08: an end-to-end hardened broker for the student's plant.
--
-- The student hands in a Mosquitto configuration (mosquitto.conf, passwd,
-- acl) for a plant of five devices whose names and passwords the kit
-- gives them. The kit runs that broker, made safe by mqlab.brokerconf
-- (loopback ports, private copies of the files, the kit's own logging),
-- and attacks it the way a careless or hostile device would: one check per
-- attack. Every attack is graded by what happened, never by reading the
-- ACL: the CONNACK code, whether a message got through, and the broker's
-- own log ("Denied PUBLISH from ...").
-- The passwd file is also read as a file (passwd-accounts, hashed-passwd):
-- which accounts it holds is not something an attack can show.

local brokerlog = require "mqlab.brokerlog"
local kit = require "mqlab.kit"
local brokermod = require "mqlab.broker"
local text = require "mqlab.text"

-- The kit's observer. The hash is mosquitto_passwd's for ADMIN_PASSWORD;
-- it only ever exists in the private copy of the student's passwd.
local ADMIN = "mqlab-admin"
local ADMIN_PASSWORD = "kit-observer-3e9a61d0c4b7"
local ADMIN_HASH = "$7$101$pJZJRg7uqPYPlqZ1$/pZ4WK7VnkeGaCfPxfRLs54VDXyu0YhS4eZo+2d8ulflfsrJ"
                .. "+y841fZM1B9qC2EY59BLm7b958007TYXy5rWwg=="

local WAIT = 5        -- seconds for one CONNACK, PUBACK or marker: far more than a local broker needs
local FLOW_WAIT = 4   -- seconds for the legitimate messages of legit-flows to arrive, all together

-- The helpers the checks call, defined below the plan (after the checks).
local passwd_source, has_account, KIND
local connack, lines_of, log_since, denied_line, passwd_complaints, indent_lines, parse_passwd, is_hash, payload
local tls_opts, dial, with_session, need_admin, observe, attack, no_acl_note, judge, collect, may_read
local Session

---------------------------------------------------------------- the plant

local EXTRA_MEASURES = { "humedad", "presion", "vibracion", "ruido-db" }

local function params(rng)
  local n = rng:int(1, 9)
  local plant = "planta-" .. n
  local other = "planta-" .. (n % 9 + 1)
  local zones = rng:sample({ "norte", "sur", "este", "oeste" }, 2)
  local extra = rng:sample(EXTRA_MEASURES, 3)
  local sensors, used = {}, {}
  for i = 1, 3 do
    local name
    repeat name = "sensor-" .. rng:hex(3) until not used[name]
    used[name] = true
    -- The first two share a zone: an ACL that grants a whole zone lets
    -- one of them write the other's topics, and the attacks show it.
    local zone = zones[i <= 2 and 1 or 2]
    local root = "acme/v1/" .. plant .. "/" .. zone .. "/" .. name
    sensors[i] = {
      kind = "sensor", name = name, password = rng:hex(12), zone = zone, root = root,
      measures = { "temp", extra[i] }, data = { root .. "/temp", root .. "/" .. extra[i] },
      cmd = root .. "/cmd",
      -- The same device's path in another plant: an ACL written with a
      -- '+' for the plant (to reuse it everywhere) grants it too.
      elsewhere = "acme/v1/" .. other .. "/" .. zone .. "/" .. name .. "/temp",
    }
  end
  local dashboard = { kind = "dashboard", name = "dashboard-" .. rng:hex(4), password = rng:hex(12) }
  local gateway = { kind = "gateway", name = "gateway-" .. rng:hex(4), password = rng:hex(12) }
  local p = {
    plant = plant, other_plant = other, zones = zones,
    sensors = sensors, dashboard = dashboard, gateway = gateway,
    devices = { sensors[1], sensors[2], sensors[3], dashboard, gateway },
    plant_filter = "acme/v1/" .. plant .. "/#",
    cmd_filter = "acme/v1/" .. plant .. "/+/+/cmd",
    -- Topics of another plant: nobody of this plant may read or write them.
    outside_data = "acme/v1/" .. other .. "/" .. zones[1] .. "/sensor-" .. rng:hex(3) .. "/temp",
    outside_cmd = "acme/v1/" .. other .. "/" .. zones[2] .. "/valvula-" .. rng:hex(2) .. "/cmd",
  }
  for i, s in ipairs(sensors) do
    p["s" .. i] = s.name
    p["s" .. i .. "_pw"] = s.password
    p["s" .. i .. "_data1"] = s.data[1]
    p["s" .. i .. "_data2"] = s.data[2]
    p["s" .. i .. "_cmd"] = s.cmd
  end
  p.dash, p.dash_pw = dashboard.name, dashboard.password
  p.gw, p.gw_pw = gateway.name, gateway.password
  p.zone1, p.zone2 = sensors[1].zone, sensors[3].zone
  return p
end

---------------------------------------------------------------- the checks, in the order a student meets them

-- A check that logs its devices in afresh and closes them at the end (see Session).
local function session(fn) return function(t, ctx) return with_session(fn, t, ctx) end end

local checks = {
  check {
    id = "config-runs", points = 2,
    title = { es = "Mosquitto arranca con tu configuración", en = "Mosquitto starts with your configuration" },
    run = function(t, ctx)
      local d = ctx.data
      if d.conf_missing then
        t:fail({ es = "no encuentro mosquitto.conf en %s", en = "cannot find mosquitto.conf in %s" }, ctx.dir)
      end
      if d.refused then
        t:fail({ es = "mosquitto.conf, línea %s: %s", en = "mosquitto.conf, line %s: %s" },
               tostring(d.refused.line or "?"), text.pick(d.refused.message, ctx.lang))
      end
      if not d.entry then
        t:fail({ es = "tu configuración no tiene ningún listener MQTT (TCP) por el que el kit pueda entrar; añade «listener 1883»",
                 en = "your configuration has no MQTT (TCP) listener the kit can connect to; add \"listener 1883\"" })
      end
      if not ctx.broker then
        t:fail({ es = "Mosquitto no arrancó con tu configuración. Dijo:\n%s",
                 en = "Mosquitto did not start with your configuration. It said:\n%s" }, text.tail(d.broker_err or "", 800))
      end
      local ls = {}
      for _, l in ipairs(d.conf.listeners or {}) do
        ls[#ls + 1] = string.format("%s%s → 127.0.0.1:%s", tostring(l.student_port or "?"),
                                    l.protocol == "websockets" and " (websockets)" or (l.tls and " (TLS)" or ""), tostring(l.port or "?"))
      end
      t:pass({ es = "Mosquitto 2.0 arrancó con tu configuración (listener %s; password_file %s; acl_file %s)",
               en = "Mosquitto 2.0 started with your configuration (listener %s; password_file %s; acl_file %s)" },
             table.concat(ls, ", "), tostring(d.settings.password_file or "-"), tostring(d.settings.acl_file or "-"))
      -- What the kit changed on the way, so nothing surprises the student.
      for _, n in ipairs(d.conf.notes or {}) do
        t:pass({ es = "  línea %d: %s", en = "  line %d: %s" }, n.line, text.pick(n.message, ctx.lang))
      end
    end,
  },

  check {
    id = "no-anonymous", points = 2, after = "config-runs",
    title = { es = "Nadie entra sin usuario", en = "Nobody gets in without a user name" },
    run = function(t, ctx)
      local d = ctx.data
      local lines, open = {}, 0
      for _, l in ipairs(d.conf.listeners or {}) do
        if l.protocol == "websockets" then
          lines[#lines + 1] = ctx:text({ es = "listener %s: websockets, el kit no lo prueba",
                                         en = "listener %s: websockets, the kit does not try it" }, tostring(l.student_port))
        else
          local opts = { port = l.port, id = "mqlab-anonymous", clean = true, timeout = WAIT }
          -- A TLS listener is tried over TLS, trusting the kit's CA.
          tls_opts(ctx, l, opts)
          local c, msg, code
          if l.tls then
            -- pcall: a TLS failure of any kind is an answer here, not a bug.
            local ok
            ok, c, msg, code = pcall(ctx.client, ctx, opts)
            if not ok then
              if tostring(c):find("interrupted by the user", 1, true) then error(c, 0) end
              c, msg, code = nil, tostring(c), "error"
            end
          else
            c, msg, code = ctx:client(opts)
          end
          if c then
            open = open + 1
            c:close()
            lines[#lines + 1] = ctx:text({ es = "✗ listener %s: un CONNECT anónimo (sin usuario) recibió CONNACK 0: cualquiera puede conectarse",
                                           en = "✗ listener %s: an anonymous CONNECT (no user name) got CONNACK 0: anyone can connect" },
                                         tostring(l.student_port))
          else
            lines[#lines + 1] = ctx:text({ es = "✓ listener %s: un CONNECT anónimo recibió %s",
                                           en = "✓ listener %s: an anonymous CONNECT got %s" },
                                         tostring(l.student_port), connack(ctx, code, msg))
          end
        end
      end
      if open > 0 then
        t:fail({ es = "%s\nEscribe allow_anonymous false%s.", en = "%s\nWrite allow_anonymous false%s." }, table.concat(lines, "\n"),
               d.settings.per_listener_settings == "true"
                 and ctx:text({ es = " en cada listener (con per_listener_settings true, cada uno tiene sus reglas)",
                                en = " on every listener (with per_listener_settings true, each one has its own rules)" }) or "")
      end
      if d.settings.allow_anonymous == "true" then
        lines[#lines + 1] = ctx:text({
          es = "(tu mosquitto.conf dice allow_anonymous true; el broker echó al anónimo de todos modos, por ejemplo porque use_username_as_clientid rechaza a quien no trae usuario, pero dilo claro: allow_anonymous false)",
          en = "(your mosquitto.conf says allow_anonymous true; the broker turned the anonymous client away anyway, for instance because use_username_as_clientid refuses clients without a user name, but say it plainly: allow_anonymous false)" })
      end
      t:pass({ es = "%s", en = "%s" }, table.concat(lines, "\n"))
    end,
  },

  -- Policy 2 on the file itself. It runs whatever else fails (even when
  -- the broker does not start), so that a missing device or an unknown
  -- account is named at once, not one run later.
  check {
    id = "passwd-accounts", points = 2,
    title = { es = "passwd tiene justo las cuentas de tus cinco dispositivos", en = "passwd holds exactly your five devices' accounts" },
    run = function(t, ctx)
      local p = ctx.p
      local name, body, none = passwd_source(ctx)
      local devs = {}
      for _, dev in ipairs(p.devices) do devs[#devs + 1] = dev.name end
      if none then
        t:fail({ es = "%s: no hay ninguna cuenta, así que ninguno de tus dispositivos (%s) puede entrar",
                 en = "%s: there is no account at all, so none of your devices (%s) can log in" },
               ctx:text(none), table.concat(devs, ", "))
      end
      local entries = parse_passwd(body)
      local known, seen, unknown, twice, missing = {}, {}, {}, {}, {}
      for _, dev in ipairs(p.devices) do known[dev.name] = dev end
      local line = ctx:text({ es = "línea", en = "line" })
      for _, e in ipairs(entries) do
        if not known[e.name] then
          unknown[#unknown + 1] = string.format("%s (%s %d)", e.name, line, e.line)
        elseif seen[e.name] then
          twice[#twice + 1] = string.format("%s (%s %d, %d)", e.name, line, seen[e.name], e.line)
        end
        seen[e.name] = seen[e.name] or e.line
      end
      for _, dev in ipairs(p.devices) do
        if not seen[dev.name] then missing[#missing + 1] = string.format("%s (%s)", dev.name, ctx:text(KIND[dev.kind])) end
      end
      if #unknown > 0 then
        t:expect(false, { es = "✗ cuentas que no están en la lista de tus dispositivos: %s. Una cuenta de más (compartida, de administración, de pruebas) es una llave que nadie vigila: bórrala con mosquitto_passwd -D %s NOMBRE",
                          en = "✗ accounts that are not in your devices' list: %s. An extra account (shared, admin, for tests) is a key nobody watches: remove it with mosquitto_passwd -D %s NAME" },
                 table.concat(unknown, ", "), name)
      end
      if #missing > 0 then
        t:expect(false, { es = "✗ dispositivos sin cuenta en %s: %s. No pueden entrar; añádelos con mosquitto_passwd -b %s USUARIO CONTRASEÑA",
                          en = "✗ devices with no account in %s: %s. They cannot log in; add them with mosquitto_passwd -b %s USER PASSWORD" },
                 name, table.concat(missing, ", "), name)
      end
      if #twice > 0 then
        t:expect(false, { es = "✗ %s repite cuentas: %s. Deja una línea por dispositivo",
                          en = "✗ %s lists accounts twice: %s. Leave one line per device" },
                 name, table.concat(twice, ", "))
      end
      t:pass({ es = "%s tiene exactamente las %d cuentas de tus dispositivos, una vez cada una: %s",
               en = "%s holds exactly your %d devices' accounts, once each: %s" }, name, #devs, table.concat(devs, ", "))
    end,
  },

  check {
    id = "hashed-passwd", points = 2, after = "config-runs",
    title = { es = "Contraseñas guardadas como hash", en = "Passwords stored as hashes" },
    run = function(t, ctx)
      local d = ctx.data
      if not d.passwd_name then
        t:fail({ es = "mosquitto.conf no tiene password_file: sin él no hay cuentas, ni una por dispositivo ni ninguna",
                 en = "mosquitto.conf has no password_file: without one there are no accounts, let alone one per device" })
      end
      local entries, bad = parse_passwd(d.passwd_text)
      if #entries == 0 then
        t:fail({ es = "%s no tiene ninguna cuenta", en = "%s holds no account" }, d.passwd_name)
      end
      local plain = {}
      for _, e in ipairs(entries) do
        if not is_hash(e.hash) then plain[#plain + 1] = string.format("%s (%s %d)", e.name, ctx:text({ es = "línea", en = "line" }), e.line) end
      end
      local said = passwd_complaints(ctx)
      if #plain > 0 then
        t:say({ es = "%s guarda %d contraseña(s) en claro: %s. Quien lea el fichero (una copia de seguridad, un repositorio) tiene las credenciales.",
                en = "%s keeps %d password(s) in clear text: %s. Whoever reads the file (a backup, a repository) has the credentials." },
              d.passwd_name, #plain, table.concat(plain, ", "))
        if #said > 0 then
          t:say({ es = "Mosquitto 2.0 además las descarta al arrancar, así que esos dispositivos no pueden entrar:\n%s",
                  en = "Mosquitto 2.0 also discards them at start, so those devices cannot log in:\n%s" }, indent_lines(said))
        end
        t:fail({ es = "Convierte el fichero con mosquitto_passwd -U %s, o créalo con mosquitto_passwd -c / -b.",
                 en = "Convert the file with mosquitto_passwd -U %s, or make it with mosquitto_passwd -c / -b." }, d.passwd_name)
      end
      if #bad > 0 or #said > 0 then
        t:fail({ es = "el broker no aceptó %s tal cual (líneas que no son usuario:hash: %s):\n%s",
                 en = "the broker did not take %s as it is (lines that are not user:hash: %s):\n%s" },
               d.passwd_name, #bad > 0 and table.concat(bad, ", ") or "-", indent_lines(said))
      end
      local kinds = {}
      for _, e in ipairs(entries) do kinds[e.hash:sub(1, 3)] = true end
      t:pass({ es = "%s: %d cuentas, todas con hash (%s; $7$ es PBKDF2-SHA512, lo que escribe mosquitto_passwd), y el broker las cargó sin quejarse",
               en = "%s: %d accounts, all hashed (%s; $7$ is PBKDF2-SHA512, what mosquitto_passwd writes), and the broker loaded them without complaint" },
             d.passwd_name, #entries, kinds["$7$"] and kinds["$6$"] and "$7$, $6$" or (kinds["$7$"] and "$7$" or "$6$"))
    end,
  },

  check {
    id = "legit-flows", points = 2, after = "config-runs", timeout = 25,
    title = { es = "Todo lo legítimo sigue funcionando", en = "Every legitimate flow still works" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local c, refused = {}, {}
      for _, dev in ipairs(p.devices) do
        local cl, msg, code = s:login(dev)
        if cl then c[dev.name] = cl
        else
          local why = connack(ctx, code, msg)
          if not has_account(ctx, dev.name) then
            why = why .. ctx:text({ es = "; no tiene cuenta en %s", en = "; it has no account in %s" }, ctx.data.passwd_name or "passwd")
          end
          refused[#refused + 1] = string.format("%s: %s", dev.name, why)
        end
      end
      if #refused > 0 then
        local said = passwd_complaints(ctx)
        t:fail({ es = "con su usuario y su contraseña, no pudieron entrar:\n    %s%s",
                 en = "with their own user name and password, these could not log in:\n    %s%s" },
               table.concat(refused, "\n    "),
               #said > 0 and ctx:text({ es = "\nEl broker dijo al arrancar:\n%s", en = "\nThe broker said at start:\n%s" }, indent_lines(said)) or "")
      end
      local dash, gw = c[p.dashboard.name], c[p.gateway.name]
      local subs = { { dash, p.dashboard.name, p.plant_filter }, { gw, p.gateway.name, p.plant_filter } }
      for _, sn in ipairs(p.sensors) do subs[#subs + 1] = { c[sn.name], sn.name, sn.cmd } end
      for _, sb in ipairs(subs) do
        local g, err = sb[1]:subscribe(sb[3], 1, WAIT)
        if not g or g > 2 then
          t:fail({ es = "%s no pudo suscribirse a %s: %s", en = "%s could not subscribe to %s: %s" }, sb[2], sb[3],
                 g and "SUBACK " .. g or tostring(err))
        end
      end

      local from = #ctx.broker:log() + 1
      local readings, who = {}, {}
      for _, sn in ipairs(p.sensors) do
        for _, topic in ipairs(sn.data) do
          local body = payload(ctx, "reading")
          local mid, err = c[sn.name]:publish(topic, body, { qos = 1, timeout = WAIT })
          if not mid then
            t:fail({ es = "%s no pudo publicar en %s: %s", en = "%s could not publish on %s: %s" }, sn.name, topic, tostring(err))
          end
          readings[body] = topic
          who[body] = sn.name
        end
      end
      local commands = {}
      for _, sn in ipairs(p.sensors) do
        local body = string.format('{"id": "mqlab-cmd-%d", "ts": %d, "orden": "calibrar"}', ctx.data.seq, kit.wall_ms())
        ctx.data.seq = ctx.data.seq + 1
        local mid, err = gw:publish(sn.cmd, body, { qos = 1, timeout = WAIT })
        if not mid then
          t:fail({ es = "%s no pudo publicar en %s: %s", en = "%s could not publish on %s: %s" }, p.gateway.name, sn.cmd, tostring(err))
        end
        commands[sn.name] = { [body] = sn.cmd }
        who[body] = p.gateway.name
      end

      -- Everything was acknowledged, so the broker has already routed it:
      -- the waits below end as soon as the last copy arrives.
      local deadline = kit.now() + FLOW_WAIT
      local problems = {}
      local function missing(receiver, want, seen)
        for body, topic in pairs(want) do
          if not seen[body] then
            local denied = denied_line(ctx, who[body], topic, from)
            if denied then
              problems[#problems + 1] = ctx:text({ es = "%s no recibió %s: el broker rechazó el PUBLISH de %s («%s»); su ACL no le deja escribir ahí",
                                                   en = "%s did not receive %s: the broker refused %s's PUBLISH (\"%s\"); its ACL does not let it write there" },
                                                 receiver, topic, who[body], denied)
            else
              problems[#problems + 1] = ctx:text({ es = "%s no recibió %s (de %s, que el broker sí aceptó): su ACL no le deja leerlo",
                                                   en = "%s did not receive %s (from %s, which the broker accepted): its ACL does not let it read it" },
                                                 receiver, topic, who[body])
            end
          end
        end
      end
      missing(p.dashboard.name, readings, collect(dash, readings, deadline))
      missing(p.gateway.name, readings, collect(gw, readings, deadline))
      for _, sn in ipairs(p.sensors) do
        missing(sn.name, commands[sn.name], collect(c[sn.name], commands[sn.name], deadline))
      end
      if #problems > 0 then
        table.sort(problems)
        t:fail({ es = "los cinco dispositivos entraron, pero:\n    %s", en = "the five devices logged in, but:\n    %s" },
               table.concat(problems, "\n    "))
      end
      t:pass({ es = "los 5 dispositivos entraron con sus credenciales (CONNACK 0); las 6 lecturas de los 3 sensores llegaron al panel y al gateway, y las 3 órdenes del gateway llegaron a su sensor",
               en = "the 5 devices logged in with their own credentials (CONNACK 0); the 6 readings of the 3 sensors reached the dashboard and the gateway, and the gateway's 3 commands reached their sensor" })
    end),
  },

  check {
    id = "wrong-password", points = 1, after = "legit-flows",
    title = { es = "Una contraseña equivocada no abre", en = "A wrong password does not open" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local s1 = p.sensors[1]
      local tries = {
        { who = s1.name, id = s1.name, username = s1.name, password = s1.password:reverse() .. "x",
          what = { es = "%s con una contraseña equivocada", en = "%s with a wrong password" } },
        { who = "intruso-" .. p.plant, id = "intruso-" .. p.plant, username = "intruso-" .. p.plant, password = s1.password,
          what = { es = "el usuario desconocido %s", en = "the unknown user %s" } },
        { who = s1.name, id = s1.name, username = s1.name,
          what = { es = "%s sin contraseña", en = "%s with no password" } },
      }
      local lines, open = {}, 0
      for _, tr in ipairs(tries) do
        local c, msg, code = s:login(nil, tr)
        local what = ctx:text(tr.what, tr.who)
        if c then
          open = open + 1
          lines[#lines + 1] = ctx:text({ es = "✗ %s recibió CONNACK 0: entró", en = "✗ %s got CONNACK 0: it got in" }, what)
        else
          lines[#lines + 1] = ctx:text({ es = "✓ %s recibió %s", en = "✓ %s got %s" }, what, connack(ctx, code, msg))
        end
      end
      if open > 0 then
        t:fail({ es = "%s\n¿Falta password_file en mosquitto.conf? Sin él, Mosquitto no comprueba contraseñas.",
                 en = "%s\nIs password_file missing from mosquitto.conf? Without it, Mosquitto checks no password." },
               table.concat(lines, "\n"))
      end
      t:pass({ es = "%s", en = "%s" }, table.concat(lines, "\n"))
    end),
  },

  check {
    id = "one-credential-each", points = 2, after = "legit-flows",
    title = { es = "Una credencial por dispositivo", en = "One credential per device" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local devs = p.devices
      local opened, refused = {}, 0
      for i, dev in ipairs(devs) do
        local other = devs[i % #devs + 1]
        local c = s:login(dev, { password = other.password })
        if c then
          opened[#opened + 1] = ctx:text({ es = "%s entró con la contraseña de %s (CONNACK 0)",
                                           en = "%s opened with %s's password (CONNACK 0)" }, dev.name, other.name)
          c:close()
        else
          refused = refused + 1
        end
      end
      if #opened > 0 then
        t:fail({ es = "%s\nCada dispositivo necesita su propia contraseña: si se filtra una, se filtra solo esa.",
                 en = "%s\nEach device needs its own password: if one leaks, only that one leaks." },
               table.concat(opened, "\n"))
      end
      -- Extra or shared accounts in the file are passwd-accounts' part.
      t:pass({ es = "ningún dispositivo abre con la contraseña de otro (%d intentos, %d rechazados)",
               en = "no device opens with another's password (%d tries, %d refused)" }, #devs, refused)
    end),
  },

  check {
    id = "sensor-own-topics", points = 2, after = "legit-flows",
    title = { es = "Un sensor solo escribe en sus dos medidas, de su planta", en = "A sensor writes only on its two measures, in its plant" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local results = {}
      for i, sn in ipairs(p.sensors) do
        local victim = p.sensors[i % 3 + 1]
        local c = s:must_login(sn)
        results[#results + 1] = attack(t, ctx, c, sn.name, victim.data[1])
        results[#results + 1] = attack(t, ctx, c, sn.name, sn.elsewhere)
      end
      judge(t, ctx, results, { es = "Un sensor comprometido podría falsear las lecturas de otro, o las de otra planta. Dale escritura solo en sus dos topics de medida, uno a uno, con el nombre de tu planta (sin «+» en su lugar).",
                               en = "A compromised sensor could forge another's readings, or another plant's. Give it write access to its two measure topics only, one by one, with your plant's name (no '+' in its place)." })
    end),
  },

  check {
    id = "sensor-no-commands", points = 2, after = "legit-flows",
    title = { es = "Un sensor no publica órdenes", en = "A sensor does not publish commands" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local results = {}
      for i, sn in ipairs(p.sensors) do
        local c = s:must_login(sn)
        results[#results + 1] = attack(t, ctx, c, sn.name, sn.cmd)
        results[#results + 1] = attack(t, ctx, c, sn.name, p.sensors[i % 3 + 1].cmd)
      end
      local wide = "…/" .. p.sensors[1].name .. "/#"
      judge(t, ctx, results, { es = "Las órdenes son del gateway. Ojo: escribir en " .. wide .. " incluye su propio cmd, y un «topic deny …/cmd» le quitaría también leerlo.",
                               en = "Commands belong to the gateway. Beware: write on " .. wide .. " includes its own cmd, and a \"topic deny …/cmd\" would also stop it reading it." })
    end),
  },

  check {
    id = "dashboard-read-only", points = 1, after = "legit-flows",
    title = { es = "El panel solo lee", en = "The dashboard only reads" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local c = s:must_login(p.dashboard)
      local results = {
        attack(t, ctx, c, p.dashboard.name, p.sensors[1].data[1]),
        attack(t, ctx, c, p.dashboard.name, p.sensors[2].cmd),
        attack(t, ctx, c, p.dashboard.name, p.outside_data),
      }
      judge(t, ctx, results, { es = "Un panel lo ve todo, y si alguien lo toma no debe poder mover nada: topic read, nunca readwrite.",
                               en = "A dashboard sees everything, and whoever takes it over must not be able to change anything: topic read, never readwrite." })
    end),
  },

  check {
    id = "gateway-commands-only", points = 1, after = "legit-flows",
    title = { es = "El gateway solo publica órdenes de su planta", en = "The gateway publishes only its plant's commands" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local c = s:must_login(p.gateway)
      local results = {
        attack(t, ctx, c, p.gateway.name, p.sensors[1].data[1]),
        attack(t, ctx, c, p.gateway.name, p.outside_cmd),
      }
      judge(t, ctx, results, { es = "El gateway lee la planta y escribe solo en " .. p.cmd_filter .. ": ni lecturas falsas ni órdenes a otra planta.",
                               en = "The gateway reads the plant and writes only on " .. p.cmd_filter .. ": no forged readings, no commands to another plant." })
    end),
  },

  check {
    id = "no-root-wildcard", points = 2, after = "legit-flows", timeout = 20,
    title = { es = "Suscribirse a # no da más de lo que toca", en = "Subscribing to # gives no more than allowed" },
    run = session(function(t, ctx, s)
      local p, d = ctx.p, ctx.data
      need_admin(t, ctx)
      local c, granted = {}, {}
      for _, dev in ipairs(p.devices) do
        c[dev.name] = s:must_login(dev)
        granted[dev.name] = c[dev.name]:subscribe("#", 1, WAIT)
      end
      -- Probes: another plant, every sensor's data, and (first round of
      -- markers) every sensor's cmd, which only that sensor may read. Then
      -- a final marker on every sensor's cmd: whatever the probes leaked
      -- is queued before a device's final marker.
      local probes = { p.outside_data }
      for _, sn in ipairs(p.sensors) do probes[#probes + 1] = sn.data[1] end
      for _, sn in ipairs(p.sensors) do probes[#probes + 1] = sn.cmd end
      for _, topic in ipairs(probes) do
        assert(d.admin:publish(topic, payload(ctx, "probe"), { qos = 1, timeout = WAIT }))
      end
      local markers = {}
      for _, sn in ipairs(p.sensors) do
        local body = payload(ctx, "marker")
        markers[sn.name] = body
        assert(d.admin:publish(sn.cmd, body, { qos = 1, timeout = WAIT }))
      end
      local last = markers[p.sensors[3].name]
      local lines, leaks = {}, 0
      for _, dev in ipairs(p.devices) do
        local want = dev.kind == "sensor" and markers[dev.name] or last
        local leaked, done = {}, false
        while not done do
          local m = c[dev.name]:wait(WAIT)
          if not m then break end
          if m.payload == want then done = true
          elseif not may_read(p, dev, m.topic) then leaked[#leaked + 1] = m.topic end
        end
        if not done then
          t:fail({ es = "%s, suscrito a #, no recibió el marcador del kit en un topic que sí puede leer", en = "%s, subscribed to #, did not receive the kit's marker on a topic it may read" }, dev.name)
        end
        if #leaked > 0 then
          leaks = leaks + 1
          lines[#lines + 1] = ctx:text({ es = "✗ %s se suscribió a # y recibió %s: lee fuera de lo suyo",
                                         en = "✗ %s subscribed to # and received %s: it reads beyond its own" },
                                       dev.name, table.concat(leaked, ", "))
        else
          lines[#lines + 1] = ctx:text({ es = "✓ %s: SUBACK %s, y solo recibió lo que puede leer", en = "✓ %s: SUBACK %s, and it received only what it may read" },
                                       dev.name, tostring(granted[dev.name]))
        end
      end
      observe(t, ctx)   -- the probes and markers, out of the observer's way
      if leaks > 0 then
        t:fail({ es = "%s\nMosquitto 2.0 acepta cualquier SUBSCRIBE y filtra cada mensaje con la ACL al entregarlo: una línea «topic read #» deja leer todo el broker. Da a cada uno solo sus topics: a un sensor, solo su cmd (no …/sensor-xxx/#).%s",
                 en = "%s\nMosquitto 2.0 accepts any SUBSCRIBE and filters each message through the ACL when it delivers it: a \"topic read #\" line lets a device read the whole broker. Give each one only its topics: a sensor, its cmd only (not …/sensor-xxx/#).%s" },
               table.concat(lines, "\n"), no_acl_note(ctx))
      end
      t:pass({ es = "%s\n(el kit publicó en %s, en los datos de cada sensor y en el cmd de cada sensor)", en = "%s\n(the kit published on %s, on each sensor's data and on each sensor's cmd)" },
             table.concat(lines, "\n"), p.outside_data)
    end),
  },

  check {
    id = "no-sys", points = 1, after = "legit-flows", timeout = 20,
    title = { es = "Ningún dispositivo lee $SYS", en = "No device reads $SYS" },
    run = session(function(t, ctx, s)
      local p, d = ctx.p, ctx.data
      need_admin(t, ctx)
      -- The control: the observer may read $SYS; if even it gets
      -- nothing, this broker publishes no $SYS and nothing can leak.
      assert(d.admin:subscribe("$SYS/#", 1, WAIT))
      local sys = 0
      for _, m in ipairs(observe(t, ctx)) do
        if m.topic:match("^%$SYS/") then sys = sys + 1 end
      end
      assert(d.admin:unsubscribe("$SYS/#", WAIT))
      local c = {}
      for _, dev in ipairs(p.devices) do
        c[dev.name] = s:must_login(dev)
        assert(c[dev.name]:subscribe(dev.kind == "sensor" and dev.cmd or p.plant_filter, 1, WAIT))
        c[dev.name]:subscribe("$SYS/#", 1, WAIT)
      end
      local markers = {}
      for _, sn in ipairs(p.sensors) do
        markers[sn.name] = payload(ctx, "marker")
        assert(d.admin:publish(sn.cmd, markers[sn.name], { qos = 1, timeout = WAIT }))
      end
      local last = markers[p.sensors[3].name]
      local lines, leaks = {}, 0
      for _, dev in ipairs(p.devices) do
        local want = dev.kind == "sensor" and markers[dev.name] or last
        local got, first, done = 0, nil, false
        while not done do
          local m = c[dev.name]:wait(WAIT)
          if not m then break end
          if m.payload == want then done = true
          elseif m.topic:match("^%$SYS/") then got = got + 1; first = first or m.topic end
        end
        if got > 0 then
          leaks = leaks + 1
          lines[#lines + 1] = ctx:text({ es = "✗ %s se suscribió a $SYS/# y recibió %d mensajes (%s, …)",
                                         en = "✗ %s subscribed to $SYS/# and received %d messages (%s, …)" }, dev.name, got, first)
        elseif not done then
          t:fail({ es = "%s no recibió el marcador del kit en un topic que sí puede leer", en = "%s did not receive the kit's marker on a topic it may read" }, dev.name)
        else
          lines[#lines + 1] = ctx:text({ es = "✓ %s: suscrito a $SYS/#, no recibió nada", en = "✓ %s: subscribed to $SYS/#, received nothing" }, dev.name)
        end
      end
      observe(t, ctx)
      if leaks > 0 then
        t:fail({ es = "%s\n$SYS cuenta quién está conectado, cuánto tráfico hay y qué versión corre: información para un atacante. «#» no incluye $SYS; lo abre una línea «topic read $SYS/#», que es para la cuenta de monitorización, no para los dispositivos.%s",
                 en = "%s\n$SYS tells who is connected, how much traffic there is and which version runs: information for an attacker. '#' does not include $SYS; a \"topic read $SYS/#\" line opens it, and that belongs to the monitoring account, not to devices.%s" },
               table.concat(lines, "\n"), no_acl_note(ctx))
      end
      if sys == 0 then
        lines[#lines + 1] = ctx:text({ es = "(este broker no publica $SYS: ni el observador del kit recibió nada)",
                                       en = "(this broker publishes no $SYS: not even the kit's observer received any)" })
      else
        lines[#lines + 1] = ctx:text({ es = "(el observador del kit sí recibió %d mensajes de $SYS)", en = "(the kit's observer did receive %d $SYS messages)" }, sys)
      end
      t:pass({ es = "%s", en = "%s" }, table.concat(lines, "\n"))
    end),
  },

  check {
    id = "no-id-takeover", points = 2, after = "legit-flows",
    title = { es = "Nadie echa a otro usando su client id", en = "Nobody knocks another off with its client id" },
    run = session(function(t, ctx, s)
      local p = ctx.p
      local victim, thief = p.sensors[1], p.sensors[2]
      local vc = s:must_login(victim)
      local from = #ctx.broker:log() + 1
      local tc, msg, code = s:login(thief, { id = victim.name })
      if not tc then
        t:pass({ es = "%s, con su propia contraseña y el client id «%s», recibió %s",
                 en = "%s, with its own password and the client id '%s', got %s" }, thief.name, victim.name, connack(ctx, code, msg))
        return
      end
      -- A round trip on the victim: if the broker closed it, this fails
      -- now, without waiting for a timeout.
      local alive = vc:publish(victim.data[1], payload(ctx, "reading"), { qos = 1, timeout = WAIT }) and vc:connected()
      local events = log_since(ctx, from)
      local kicked = brokerlog.select(events, "takeover")
      local named
      for _, e in ipairs(brokerlog.select(events, "connect")) do
        if e.username == thief.name then named = e.client end
      end
      if not alive then
        t:fail({ es = "%s entró con su propia contraseña y el client id «%s», y el broker cerró la conexión de %s%s. Cualquier dispositivo puede echar a otro de la planta, una y otra vez. Ata el client id al usuario: use_username_as_clientid true.",
                 en = "%s logged in with its own password and the client id '%s', and the broker closed %s's connection%s. Any device can knock another off the plant, again and again. Tie the client id to the user: use_username_as_clientid true." },
               thief.name, victim.name, victim.name,
               #kicked > 0 and string.format(" («%s»)", kicked[1].text) or "")
      end
      t:pass({ es = "%s entró con el client id «%s» y el broker lo llamó «%s»; %s siguió conectado",
               en = "%s logged in with the client id '%s' and the broker named it '%s'; %s stayed connected" },
             thief.name, victim.name, tostring(named or "?"), victim.name)
    end),
  },
}

-- Guided mode (mqlab start 08): the kit's broker with an ACL of the
-- kit's for this plant (no passwords: the guide is about authorisation;
-- anonymous clients get nothing), a dashboard that reads the plant, a
-- sensor that may write its readings, and a compromised sensor that the
-- broker acknowledges but does not let through.
local H = {}   -- the guide's helpers, defined in "guided mode" below

local guide = {
  step {
    id = "dashboard",
    title = { es = "El dashboard lee la planta", en = "The dashboard reads the plant" },
    text = {
      es = "Este broker lleva una ACL para tu planta (la del kit, no la tuya). En otra terminal, el dashboard, con su usuario como client id (déjalo abierto):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{dash}} -u {{dash}} -P {{dash_pw}} -t '{{plant_filter}}' -v",
      en = "This broker has an ACL for your plant (the kit's, not yours). In another terminal, the dashboard, with its user name as its client id (leave it running):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{dash}} -u {{dash}} -P {{dash_pw}} -t '{{plant_filter}}' -v",
    },
    on = function(ev, ctx) return H.guide_dashboard(ev, ctx) end,
  },
  step {
    id = "sensor",
    title = { es = "Un sensor publica donde puede", en = "A sensor publishes where it may" },
    text = {
      es = "En una tercera terminal, el sensor {{s1}} publica una lectura en uno de SUS topics de medida:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{s1}} -u {{s1}} -P {{s1_pw}} -t '{{s1_data1}}' -q 1 -m 21.5\n\nTu dashboard la imprime.",
      en = "In a third terminal, sensor {{s1}} publishes a reading on one of ITS measure topics:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{s1}} -u {{s1}} -P {{s1_pw}} -t '{{s1_data1}}' -q 1 -m 21.5\n\nYour dashboard prints it.",
    },
    on = function(ev, ctx) return H.guide_sensor(ev, ctx) end,
  },
  step {
    id = "denied",
    title = { es = "Un sensor comprometido: PUBACK, pero nada pasa", en = "A compromised sensor: PUBACK, yet nothing gets through" },
    text = {
      es = "Ahora el kit se hace pasar por {{s1}} (con su usuario, como un equipo robado) y publica con QoS 1 una lectura falsa en {{s2_data1}} y un comando en {{s2_cmd}}; después una lectura suya, en {{s1_data2}}. Mira el dashboard: Mosquitto 2 responde PUBACK también a lo que la ACL le prohíbe, así que el PUBACK no prueba nada; lo que cuenta es qué se entrega.",
      en = "Now the kit poses as {{s1}} (with its user name, like a stolen device) and publishes at QoS 1 a fake reading on {{s2_data1}} and a command on {{s2_cmd}}; then a reading of its own, on {{s1_data2}}. Watch the dashboard: Mosquitto 2 answers PUBACK even to what the ACL forbids, so a PUBACK proves nothing; what counts is what gets delivered.",
    },
    prompt = { es = "Pulsa Enter y el sensor comprometido publica.", en = "Press Enter and the compromised sensor publishes." },
    act = function(ctx) return H.guide_compromised(ctx) end,
    on = function(ev, ctx) return H.guide_denied(ev, ctx) end,
  },
}

---------------------------------------------------------------- small helpers

-- Seeing what got through needs an observer that may read everything. The
-- kit adds one account, mqlab-admin, to the private copies of passwd and
-- acl: a user section appended at the end, which cannot change what the
-- student's own users may do. It subscribes to '#' for the whole run. To
-- know that a refused message is not merely late, each attack is followed
-- by a marker the observer publishes to itself: Mosquitto serves one
-- client's outgoing queue in order, so whatever the attack let through
-- reaches the observer before the marker does. No fixed sleeps.
--
-- Mosquitto 2.0.11 facts the checks rely on (tried by hand):
-- - a publish the ACL refuses is logged "Denied PUBLISH from <id> (...)"
--   and, in MQTT 3.1.1, still acknowledged with a PUBACK;
-- - a SUBSCRIBE is always granted with the QoS asked for: the ACL filters
--   each message when it is delivered. So a '#' subscription is graded by
--   what arrives, not by the SUBACK;
-- - '#' never matches $SYS topics, and the $SYS tree is retained: a
--   subscriber that may read it gets it at once;
-- - plaintext lines of the password file are dropped at start ("Error:
--   Invalid password hash type for user X, removing entry."), so those
--   devices cannot log in;
-- - a CONNECT with a client id in use closes the older connection ("Client
--   X already connected, closing old connection."), unless
--   use_username_as_clientid replaces the id with the user name (which
--   also turns away clients without a user name);
-- - "topic deny" is checked before every grant, for reading as well as
--   writing.


KIND = {
  sensor = { es = "sensor", en = "sensor" },
  dashboard = { es = "panel", en = "dashboard" },
  gateway = { es = "gateway", en = "gateway" },
}

local CONNACK = {
  [1] = { es = "versión de protocolo no aceptada", en = "unacceptable protocol version" },
  [2] = { es = "client id rechazado", en = "client id rejected" },
  [3] = { es = "servidor no disponible", en = "server unavailable" },
  [4] = { es = "usuario o contraseña incorrectos", en = "bad user name or password" },
  [5] = { es = "no autorizado", en = "not authorised" },
}

-- "CONNACK 5 (not authorised)", or what went wrong when no CONNACK came.
function connack(ctx, code, msg)
  if code == nil then return "CONNACK 0" end
  if math.type(code) == "integer" then
    local why = CONNACK[code]
    return why and string.format("CONNACK %d (%s)", code, ctx:text(why)) or "CONNACK " .. code
  end
  return ctx:text({ es = "sin CONNACK: %s", en = "no CONNACK: %s" }, tostring(msg))
end

function lines_of(s)
  local out = {}
  for line in ((s or "") .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = (line:gsub("\r$", "")) end
  return out
end

-- The broker's log from byte `from` on, parsed (see mqlab.brokerlog).
function log_since(ctx, from)
  return brokerlog.parse(ctx.broker:log():sub(from or 1))
end

-- The broker's "Denied PUBLISH from <who> (..., '<topic>', ...)" line
-- after byte `from`, or nil.
function denied_line(ctx, who, topic, from)
  for _, e in ipairs(brokerlog.select(log_since(ctx, from), "denied_publish", who)) do
    if e.topic == topic then return e.text end
  end
end

-- What the broker said about the password file when it started.
function passwd_complaints(ctx)
  local out = {}
  for _, e in ipairs(log_since(ctx)) do
    local low = e.text:lower()
    if e.text:find("^Error") and (low:find("password") or low:find("hash")) then out[#out + 1] = e.text end
  end
  return out
end

-- Lines of the broker's log (not packets: wire.block quotes those), as
-- an indented block of at most n (6) lines.
function indent_lines(list, n)
  local out = {}
  for i = 1, math.min(#list, n or 6) do out[i] = "    " .. list[i] end
  if #list > (n or 6) then out[#out + 1] = "    …" end
  return table.concat(out, "\n")
end

-- The student's password file for passwd-accounts: its name and text,
-- or nil, nil and why there are no accounts at all. It needs no broker:
-- when mosquitto.conf is missing or refused, the folder's "passwd" (the
-- name the instructions give) is read instead.
function passwd_source(ctx)
  local d = ctx.data
  if d.passwd_text then return d.passwd_name, d.passwd_text end
  if d.settings then
    if not d.settings.password_file then
      return nil, nil, { es = "mosquitto.conf no tiene password_file", en = "mosquitto.conf has no password_file" }
    end
    return nil, nil, { es = "no encuentro el fichero " .. d.settings.password_file .. " que nombra password_file",
                       en = "cannot find the file " .. d.settings.password_file .. " that password_file names" }
  end
  local body = ctx:file("passwd")
  if not body then return nil, nil, { es = "no encuentro passwd en tu carpeta", en = "cannot find passwd in your folder" } end
  return "passwd", body
end

-- Whether the student's passwd has an account for name (true when the
-- kit could not read the file: then it claims nothing).
function has_account(ctx, name)
  if not ctx.data.passwd_text then return true end
  for _, e in ipairs((parse_passwd(ctx.data.passwd_text))) do
    if e.name == name then return true end
  end
  return false
end

-- The entries of a password file: { {name=, hash=, line=}, ... } plus the
-- lines that are not "name:secret" at all.
function parse_passwd(s)
  local entries, bad = {}, {}
  for i, line in ipairs(lines_of(s)) do
    local l = line:match("^%s*(.-)%s*$")
    if l ~= "" and not l:match("^#") then
      local name, secret = l:match("^([^:]+):(.*)$")
      if name then entries[#entries + 1] = { name = name, hash = secret, line = i }
      else bad[#bad + 1] = i end
    end
  end
  return entries, bad
end

function is_hash(s) return s:match("^%$[67]%$") ~= nil end

-- A reading as the course writes them, unique per publish.
function payload(ctx, tag)
  local d = ctx.data
  d.seq = d.seq + 1
  return string.format('{"id": "mqlab-%s-%d", "ts": %d, "v": %d.5}', tag, d.seq, kit.wall_ms(), 20 + d.seq % 10)
end

---------------------------------------------------------------- connections

-- TLS options for a listener: the kit's CA (the certs/ folder the student
-- may point at), and its client certificate where one is required.
function tls_opts(ctx, l, opts)
  if l.tls then
    opts.cafile = ctx.data.certs .. "/ca.crt"
    if l.require_certificate then
      opts.certfile, opts.keyfile = ctx.data.certs .. "/client.crt", ctx.data.certs .. "/client.key"
    end
  end
  return opts
end

-- A kit client on the listener the checks use (see setup).
function dial(ctx, opts)
  opts.port = ctx.data.entry.port
  return ctx:client(tls_opts(ctx, ctx.data.entry, opts))
end

-- Each check logs its devices in afresh and closes them at the end,
-- whatever happens: with use_username_as_clientid, a device's next login
-- would otherwise knock out the connection an earlier check left open.
Session = {}
Session.__index = Session

function with_session(fn, t, ctx)
  local s = setmetatable({ ctx = ctx, t = t, clients = {} }, Session)
  local ok, err = pcall(fn, t, ctx, s)
  for i = #s.clients, 1, -1 do pcall(function() s.clients[i]:close() end) end
  if not ok then error(err, 0) end
end

-- Log in as dev (or with other credentials / client id in opts). Returns
-- the client, or nil, message, code (the CONNACK code when refused).
function Session:login(dev, opts)
  opts = opts or {}
  local c, msg, code = dial(self.ctx, {
    id = opts.id or dev.name, username = opts.username or (dev and dev.name), clean = true,
    password = opts.password or (dev and dev.password), timeout = WAIT,
  })
  if c then self.clients[#self.clients + 1] = c end
  return c, msg, code
end

-- Log in as dev or end the check: legit-flows passed, so this only fails
-- when something unusual happened, and then the student must see it.
function Session:must_login(dev, opts)
  local c, msg, code = self:login(dev, opts)
  if not c then
    self.t:fail({ es = "%s no pudo entrar: %s", en = "%s could not log in: %s" }, dev.name, connack(self.ctx, code, msg))
  end
  return c
end

function need_admin(t, ctx)
  if not ctx.data.admin then
    t:fail({ es = "el observador del kit (%s) no pudo entrar en tu broker: %s",
             en = "the kit's observer (%s) could not log in to your broker: %s" }, ADMIN, ctx.data.admin_err or "?")
  end
  return ctx.data.admin
end

-- The messages the kit's observer received since the last call, up to a
-- marker it publishes to itself now: anything delivered before the marker
-- was published is in the list.
function observe(t, ctx)
  local d = ctx.data
  need_admin(t, ctx)
  d.seq = d.seq + 1
  local marker = "mqlab/marker/" .. d.seq
  local ok, err = d.admin:publish(marker, "marker", { qos = 1, timeout = WAIT })
  local got = {}
  while ok do
    local m = d.admin:wait(WAIT)
    if not m then err = "no marker"; break end
    if m.topic == marker then return got end
    got[#got + 1] = m
  end
  t:fail({ es = "el observador del kit (%s) dejó de recibir mensajes (%s): ¿tu configuración limita a los clientes que no son de la planta?",
           en = "the kit's observer (%s) stopped receiving messages (%s): does your config restrict clients that are not of the plant?" },
         ADMIN, tostring(err))
end

-- Publish as `who` on `topic` and find out whether it got through.
-- Returns { topic, delivered (the observer received it), denied (the log
-- line), lost (the connection was closed instead) }.
function attack(t, ctx, client, who, topic)
  local body = payload(ctx, "attack")
  local from = #ctx.broker:log() + 1
  local mid, err = client:publish(topic, body, { qos = 1, timeout = WAIT })
  local r = { who = who, topic = topic, lost = not mid and err or nil }
  for _, m in ipairs(observe(t, ctx)) do
    if m.topic == topic and m.payload == body then r.delivered = true end
  end
  r.denied = denied_line(ctx, who, topic, from)
  return r
end

-- Said after a failed authorisation check when there is no ACL at all:
-- then the cause is not a line of the acl file.
function no_acl_note(ctx)
  if ctx.data.settings.acl_file then return "" end
  return ctx:text({ es = "\nTu mosquitto.conf no tiene acl_file: sin él, quien entra puede leer y escribir cualquier topic.",
                    en = "\nYour mosquitto.conf has no acl_file: without one, whoever logs in may read and write any topic." })
end

-- Grade a list of attack results: a line of evidence each; the check
-- fails when any got through (or when, oddly, nothing says it was stopped).
function judge(t, ctx, results, harm)
  local lines, breaches = {}, 0
  for _, r in ipairs(results) do
    if r.delivered then
      breaches = breaches + 1
      lines[#lines + 1] = ctx:text({ es = "✗ %s publicó en %s y el observador del kit lo recibió",
                                     en = "✗ %s published on %s and the kit's observer received it" }, r.who, r.topic)
    elseif r.denied then
      lines[#lines + 1] = ctx:text({ es = "✓ %s → %s: rechazado; el broker anotó «%s»", en = "✓ %s → %s: refused; the broker logged \"%s\"" },
                                   r.who, r.topic, r.denied)
    elseif r.lost then
      lines[#lines + 1] = ctx:text({ es = "✓ %s → %s: el broker cerró la conexión (%s)", en = "✓ %s → %s: the broker closed the connection (%s)" },
                                   r.who, r.topic, r.lost)
    else
      breaches = breaches + 1
      lines[#lines + 1] = ctx:text({ es = "? %s → %s: no llegó al observador, pero el broker tampoco anotó «Denied PUBLISH»",
                                     en = "? %s → %s: it did not reach the observer, yet the broker logged no \"Denied PUBLISH\" either" },
                                   r.who, r.topic)
    end
  end
  if breaches > 0 then
    t:fail({ es = "%s\n%s%s", en = "%s\n%s%s" }, table.concat(lines, "\n"), ctx:text(harm), no_acl_note(ctx))
  end
  t:pass({ es = "%s", en = "%s" }, table.concat(lines, "\n"))
end

-- Wait until client has received every topic/payload pair in want (a set
-- keyed by payload), or the deadline passes. Returns the set of payloads seen.
function collect(client, want, deadline)
  local seen = {}
  local missing = 0
  for _ in pairs(want) do missing = missing + 1 end
  while missing > 0 do
    local left = deadline - kit.now()
    if left <= 0 then break end
    local m = client:wait(left)
    if not m then break end
    if want[m.payload] and want[m.payload] == m.topic and not seen[m.payload] then
      seen[m.payload] = true
      missing = missing - 1
    end
  end
  return seen
end

-- What a device may read, by the lab's policy: used to tell a leak from
-- a message the device was entitled to.
function may_read(p, dev, topic)
  if dev.kind == "sensor" then return topic == dev.cmd end
  return topic:sub(1, #p.plant_filter - 1) == p.plant_filter:sub(1, -2)
end

---------------------------------------------------------------- setup

local function setup(ctx)
  local d = ctx.data
  d.seq = 0
  local conf = ctx:file("mosquitto.conf")
  if not conf then d.conf_missing = true; return end

  -- Loaded here, not at the top: only a grading needs them, and
  -- `mqlab show` or `list` read this file too.
  local tls = require "mqlab.tls"
  local brokerconf = require "mqlab.brokerconf"
  d.certs = tls.certs()
  local res, why = brokerconf.prepare { text = conf, file = "mosquitto.conf", student_dir = ctx.dir,
                                        certs = d.certs, workdir = ctx.workdir }
  if not res then d.refused = why; return end
  d.conf = res
  d.settings = res.settings or {}
  -- Devices and observer use the first plain MQTT listener; a config
  -- with TLS listeners only is used over TLS. (no-anonymous tries them all.)
  for _, l in ipairs(res.listeners or {}) do
    if l.protocol ~= "websockets" then
      if not l.tls then d.entry = l; break end
      d.entry = d.entry or l
    end
  end

  -- The student's passwd, as handed in (before the observer is added).
  local pwname = d.settings.password_file
  d.passwd_name = pwname
  local pwcopy = pwname and res.copies and res.copies[pwname]
  if pwcopy then d.passwd_text = kit.read_file(pwcopy) or "" end
  if not d.entry then return end
  if pwcopy then
    local s = d.passwd_text
    if s ~= "" and not s:match("\n$") then s = s .. "\n" end
    assert(kit.write_file(pwcopy, s .. ADMIN .. ":" .. ADMIN_HASH .. "\n"))
  end
  local aclname = d.settings.acl_file
  local aclcopy = aclname and res.copies and res.copies[aclname]
  if aclcopy then
    local s = kit.read_file(aclcopy) or ""
    assert(kit.write_file(aclcopy, s .. "\n\n# added by mqlab: the kit's observer\nuser " .. ADMIN
                                      .. "\ntopic readwrite #\ntopic read $SYS/#\n"))
  end

  local b, msg, code = brokermod.start { template = res.config, port = res.main_port, name = "student" }
  -- No mosquitto on this machine is not the student's fault: stop here.
  if not b and code == "missing" then return nil, "missing", msg end
  if not b then d.broker_err = brokerconf.explain(res, msg); return end
  ctx.broker = ctx:own(b)

  local admin, amsg, acode = dial(ctx, { id = ADMIN, username = ADMIN, password = ADMIN_PASSWORD,
                                         clean = true, timeout = WAIT })
  if admin then
    local granted = admin:subscribe("#", 1, WAIT)
    if granted and granted <= 2 then d.admin = admin
    else d.admin_err = "SUBSCRIBE #: " .. tostring(granted) end
  else
    d.admin_err = connack(ctx, acode, amsg)
  end
end

---------------------------------------------------------------- guided mode

-- The guide's broker: the kit's plain profile plus an ACL written from
-- the plant (each sensor writes its two measures and reads its cmd; the
-- dashboard reads the plant; the gateway reads it and writes commands).
function H.guide_broker(ctx)
  local p = ctx.p
  local dir = kit.tmpdir("mqlab-guide-acl")
  -- Owned before the broker, so removed after it.
  ctx:own({ close = function() kit.rmdir(dir) end })
  local lines = {}
  for _, s in ipairs(p.sensors) do
    lines[#lines + 1] = "user " .. s.name
    lines[#lines + 1] = "topic write " .. s.data[1]
    lines[#lines + 1] = "topic write " .. s.data[2]
    lines[#lines + 1] = "topic read " .. s.cmd
    lines[#lines + 1] = ""
  end
  lines[#lines + 1] = "user " .. p.dash
  lines[#lines + 1] = "topic read " .. p.plant_filter
  lines[#lines + 1] = ""
  lines[#lines + 1] = "user " .. p.gw
  lines[#lines + 1] = "topic read " .. p.plant_filter
  lines[#lines + 1] = "topic write " .. p.cmd_filter
  assert(kit.write_file(dir .. "/acl", table.concat(lines, "\n") .. "\n"))
  return { profile = "plain", extra = "acl_file " .. dir .. "/acl\n" }
end

-- A CONNECT of the guide: a user name, and the client id it asks for.
function H.guide_connect(ev, want)
  if ev.type ~= "CONNECT" or ev.dir ~= "up" then return nil end
  if not ev.username then
    return false, { es = string.format("tu CONNECT no lleva usuario: en este broker un cliente anónimo no puede leer ni escribir nada. Añade -u %s -P ...", want),
                    en = string.format("your CONNECT carries no user name: on this broker an anonymous client may read and write nothing. Add -u %s -P ...", want) }
  end
  if ev.client_id ~= want then
    return false, { es = string.format("te conectaste como «%s»; este paso es del dispositivo %s (-i %s -u %s)", ev.client_id or "", want, want, want),
                    en = string.format("you connected as '%s'; this step belongs to device %s (-i %s -u %s)", ev.client_id or "", want, want, want) }
  end
end

-- Step 1: the dashboard subscribes to the plant.
function H.guide_dashboard(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind ~= "packet" or ev.dir ~= "up" then return nil end
  if ev.type == "CONNECT" then
    d.user_conns = d.user_conns or {}
    d.user_conns[ev.conn] = ev.username and true or nil
    return H.guide_connect(ev, p.dash)
  end
  -- An anonymous dashboard was told already: it would get nothing.
  if ev.type ~= "SUBSCRIBE" or ev.client ~= p.dash or not (d.user_conns or {})[ev.conn] then return nil end
  for _, f in ipairs(ev.filters or {}) do
    if f.filter == "#" then
      return false, { es = string.format("suscrito a «#»: Mosquitto lo concede (SUBACK), pero la ACL solo le entregaría lo de su planta. Pide lo que el dashboard puede leer: %s", p.plant_filter),
                      en = string.format("subscribed to '#': Mosquitto grants it (SUBACK), yet the ACL would deliver only the plant. Ask for what the dashboard may read: %s", p.plant_filter) }
    end
    if f.filter ~= p.plant_filter then
      return false, { es = string.format("te suscribiste a %s; el dashboard lee %s", f.filter or "", p.plant_filter),
                      en = string.format("you subscribed to %s; the dashboard reads %s", f.filter or "", p.plant_filter) }
    end
  end
  d.dash_conn = ev.conn
  return true, { es = string.format("el dashboard %s, con usuario, suscrito a %s", p.dash, p.plant_filter),
                 en = string.format("dashboard %s, with a user name, subscribed to %s", p.dash, p.plant_filter) }
end

-- Step 2: a reading of sensor 1 on its own topic, delivered to the
-- dashboard. A PUBLISH the ACL forbids is named as such: it gets its
-- PUBACK and goes nowhere.
function H.guide_sensor(ev, ctx)
  local p, d = ctx.p, ctx.data
  local s1 = p.sensors[1]
  if ev.kind == "close" and ev.conn == d.dash_conn then
    return false, { es = "tu dashboard se cerró: ábrelo otra vez, como en el paso 1", en = "your dashboard closed: open it again, as in step 1" }
  end
  if ev.kind ~= "packet" then return nil end
  if ev.dir == "up" and ev.type == "SUBSCRIBE" and ev.client == p.dash then
    for _, f in ipairs(ev.filters or {}) do
      if f.filter == p.plant_filter then d.dash_conn = ev.conn end
    end
    return nil
  end
  if ev.dir == "up" and ev.type == "CONNECT" and ev.client_id ~= p.dash then return H.guide_connect(ev, s1.name) end
  if ev.type ~= "PUBLISH" then return nil end
  if ev.dir == "up" and ev.client == s1.name and ev.topic ~= s1.data[1] and ev.topic ~= s1.data[2] then
    return false, { es = string.format("%s no puede publicar en %s: el broker le responderá PUBACK igualmente y lo tirará, y tu dashboard no recibe nada. Sus topics: %s y %s",
                                       s1.name, ev.topic or "", s1.data[1], s1.data[2]),
                    en = string.format("%s may not publish on %s: the broker will answer PUBACK all the same and drop it, and your dashboard gets nothing. Its topics: %s and %s",
                                       s1.name, ev.topic or "", s1.data[1], s1.data[2]) }
  end
  if ev.dir == "down" and ev.conn == d.dash_conn and (ev.topic == s1.data[1] or ev.topic == s1.data[2]) then
    return true, { es = string.format("la ACL dejó pasar la lectura de %s en %s, y el dashboard la recibió", s1.name, ev.topic),
                   en = string.format("the ACL let %s's reading on %s through, and the dashboard got it", s1.name, ev.topic) }
  end
end

-- Step 3: the kit, through the proxy (so the trace shows it), publishes
-- as sensor 1 twice where it may not and once where it may. The last is
-- the marker: once it reaches the dashboard, the two before it (same
-- client, QoS 1, in order) were dropped, not late.
function H.guide_compromised(ctx)
  local p, d = ctx.p, ctx.data
  local s1, s2 = p.sensors[1], p.sensors[2]
  d.denied, d.acked = { [s2.data[1]] = true, [s2.cmd] = true }, {}
  local c, msg = ctx:client { host = p.host, port = p.port, id = s1.name, username = s1.name, password = s1.password,
                              clean = true, timeout = 5 }
  if not c then return { es = "no pude conectar el sensor: " .. tostring(msg), en = "could not connect the sensor: " .. tostring(msg) } end
  c:publish(s2.data[1], "99.9", { qos = 1 })
  c:publish(s2.cmd, "reinicio", { qos = 1 })
  c:publish(s1.data[2], "42", { qos = 1 })
  c:disconnect()
  return { es = "Publicado, como " .. s1.name .. ": " .. s2.data[1] .. ", " .. s2.cmd .. " y " .. s1.data[2] .. ".",
           en = "Published, as " .. s1.name .. ": " .. s2.data[1] .. ", " .. s2.cmd .. " and " .. s1.data[2] .. "." }
end

function H.guide_denied(ev, ctx)
  local p, d = ctx.p, ctx.data
  local s1 = p.sensors[1]
  if ev.kind ~= "packet" then return nil end
  if ev.type == "PUBLISH" and ev.dir == "up" and ev.client == s1.name and d.denied[ev.topic or ""] then
    d.ids = d.ids or {}
    d.ids[ev.conn .. ":" .. tostring(ev.id)] = ev.topic
    return nil
  end
  if ev.type == "PUBACK" and ev.dir == "down" and d.ids and d.ids[ev.conn .. ":" .. tostring(ev.id)] then
    d.acked[#d.acked + 1] = d.ids[ev.conn .. ":" .. tostring(ev.id)]
    return false, { es = string.format("PUBACK del broker para %s, prohibido por la ACL", d.ids[ev.conn .. ":" .. tostring(ev.id)]),
                    en = string.format("PUBACK from the broker for %s, which the ACL forbids", d.ids[ev.conn .. ":" .. tostring(ev.id)]) }
  end
  if ev.type ~= "PUBLISH" or ev.dir ~= "down" or ev.conn ~= d.dash_conn then return nil end
  if d.denied[ev.topic or ""] then
    return false, { es = string.format("¡el dashboard recibió %s, que la ACL prohíbe a %s!", ev.topic, s1.name),
                    en = string.format("the dashboard got %s, which the ACL forbids to %s!", ev.topic, s1.name) }
  end
  if ev.topic == s1.data[2] then
    return true, { es = string.format("el dashboard recibió solo %s: el broker confirmó con PUBACK %d publicaciones prohibidas y no las entregó a nadie. Con Mosquitto 2, una ACL se juzga por lo que se entrega, no por el PUBACK", s1.data[2], #d.acked),
                   en = string.format("the dashboard got only %s: the broker confirmed %d forbidden publishes with PUBACK and delivered them to no one. With Mosquitto 2, judge an ACL by what gets delivered, not by the PUBACK", s1.data[2], #d.acked) }
  end
end

---------------------------------------------------------------- the lab

return lab {
  id = "08-acl",
  title = { es = "Seguridad de extremo a extremo: usuarios y ACLs", en = "End-to-end security: users and ACLs" },
  submission = { files = { "mosquitto.conf", "passwd", "acl" } },
  params = params,
  setup = setup,
  setup_timeout = 30,
  checks = checks,
  guide = guide,
  guide_broker = function(ctx) return H.guide_broker(ctx) end,

  hints = {
    { es = "Empieza por quién entra: allow_anonymous false y password_file passwd. Crea el fichero con mosquitto_passwd -c passwd {{s1}} y añade los demás con mosquitto_passwd -b passwd USUARIO CONTRASEÑA. Si ya lo tienes en claro, mosquitto_passwd -U passwd lo convierte a hashes.",
      en = "Start with who gets in: allow_anonymous false and password_file passwd. Make the file with mosquitto_passwd -c passwd {{s1}} and add the others with mosquitto_passwd -b passwd USER PASSWORD. If you already have it in clear text, mosquitto_passwd -U passwd turns it into hashes." },
    { es = "El fichero acl va por secciones: una línea «user NOMBRE» y debajo sus líneas «topic read|write|readwrite TOPIC», hasta el siguiente «user». Las líneas antes del primer «user» son para los anónimos. Lo que ninguna línea permite está prohibido.",
      en = "The acl file goes by sections: a line \"user NAME\" and below it its \"topic read|write|readwrite TOPIC\" lines, until the next \"user\". Lines before the first \"user\" are for anonymous clients. Whatever no line allows is forbidden." },
    { es = "Para un sensor, escribe sus dos medidas una a una (topic write {{s1_data1}}); un comodín como …/{{s1}}/# también le deja escribir en su propio cmd. Y «topic deny» gana a todo, también a la lectura: un deny sobre su cmd le impide recibir sus órdenes.",
      en = "For a sensor, list its two measures one by one (topic write {{s1_data1}}); a wildcard such as …/{{s1}}/# also lets it write on its own cmd. And \"topic deny\" beats everything, reading included: a deny on its cmd stops it receiving its commands." },
    { es = "Mosquitto no impide por defecto que un cliente entre con el client id de otro: cierra la conexión vieja. use_username_as_clientid true sustituye el client id por el usuario, y así cada uno solo puede ser él mismo.",
      en = "By default Mosquitto does not stop a client from connecting with another's client id: it closes the old connection. use_username_as_clientid true replaces the client id with the user name, so each one can only be itself." },
    { es = "Mosquitto 2.0 acepta cualquier SUBSCRIBE (incluido #) y filtra al entregar: lo que cuenta es lo que la ACL deja leer. «topic read #» abre todo el broker; «#» no incluye $SYS, pero «topic read $SYS/#» sí lo abre. El panel y el gateway: topic read {{plant_filter}}.",
      en = "Mosquitto 2.0 accepts any SUBSCRIBE (# included) and filters on delivery: what counts is what the ACL lets a device read. \"topic read #\" opens the whole broker; '#' does not include $SYS, but \"topic read $SYS/#\" opens it. The dashboard and the gateway: topic read {{plant_filter}}." },
  },
}
