-- Lab 07: MQTT over TLS, both ends.
--
-- The student hands in a broker config (mosquitto.conf) and a `client`
-- program. They are graded apart, so that a broken config does not hide
-- a good client, and the other way round:
--
--   the config  is run by a real mosquitto after mqlab.brokerconf has
--               made it safe (every listener moved to a free port on
--               127.0.0.1, certs/... pointing at the kit's PKI). Then the
--               kit probes it from outside, as an attacker or a careless
--               device would: which certificate it presents, which TLS
--               versions complete a handshake, whether a plain CONNECT
--               gets an answer on 8883 or on a listener that mosquitto
--               would have opened to the whole network, whether an MQTT
--               client without a user name gets in over TLS;
--   the client  is run against the kit's own TLS broker (kit config,
--               kit certificates) and must publish one reading and leave
--               with a DISCONNECT; then against three impostors, TLS
--               listeners whose certificate is wrong in one way each
--               (another CA, another host name, expired). It must abort
--               the handshake, send nothing, exit non-zero by itself and
--               say why on stderr.
--
-- Everything is judged from the wire, the broker's log and how the
-- program ended, never from the student's source. (cafile, and trusting
-- other CAs besides MQTT_CAFILE, cannot be seen that way: the
-- instructions do not demand them.)

local kit = require "mqlab.kit"
local tls = require "mqlab.tls"
local brokerconf = require "mqlab.brokerconf"
local brokermod = require "mqlab.broker"
local brokerlog = require "mqlab.brokerlog"
local wire = require "mqlab.wire"
local text = require "mqlab.text"

local PROG_TIMEOUT = 10     -- seconds the client may take against the kit's broker
local IMP_TIMEOUT = 8       -- seconds the client may spend on an impostor
local TLS_PORT = 8883       -- where MQTT over TLS lives (IANA)

-- Defined below the plan (after the checks).
local IMPOSTORS
local client_env, as_written, tls_listener, list_listeners, need_tls_listener, where, start_hint
local face_impostor, judge_impostor, setup

local function params(rng)
  local plant = rng:pick({ "planta-1", "planta-2", "planta-3" })
  local zone = rng:pick({ "norte", "sur", "este", "oeste" })
  local hex = rng:hex(4)
  return {
    client_id = "gw-" .. plant .. "-" .. hex,
    topic = "acme/v1/" .. plant .. "/" .. zone .. "/gw-" .. hex .. "/temp",
    timeout_s = PROG_TIMEOUT,
  }
end


---------------------------------------------------------------- the checks, in the order a student meets them

local checks = {
  check {
    id = "config-runs", points = 1,
    title = { es = "Mosquitto arranca con tu mosquitto.conf", en = "Mosquitto starts with your mosquitto.conf" },
    run = function(t, ctx)
      local d = ctx.data
      if not d.conf then
        t:fail({ es = "no encuentro mosquitto.conf en %s", en = "cannot find mosquitto.conf in %s" }, ctx.dir)
      end
      if d.refused then
        t:fail({ es = "el kit no ejecuta tu configuración: mosquitto.conf, línea %d: %s",
                 en = "the kit will not run your config: mosquitto.conf, line %d: %s" },
               d.refused.line or 0, ctx:text(d.refused.message))
      end
      if not d.sb then
        t:fail({ es = "mosquitto no arrancó con tu configuración. Lo que dijo:\n%s",
                 en = "mosquitto did not start with your config. What it said:\n%s" },
               tostring(brokerconf.explain(d.res, d.start_err)) .. start_hint(ctx, d.start_err))
      end
      local lines = {}
      for _, l in ipairs(d.res.listeners) do
        lines[#lines + 1] = ctx:text({ es = "  %s → 127.0.0.1:%d (%s)", en = "  %s → 127.0.0.1:%d (%s)" },
                                     as_written(l), l.port,
                                     l.tls and "TLS" or ctx:text({ es = "sin TLS", en = "no TLS" }))
      end
      t:pass({ es = "mosquitto arrancó con tu configuración; el kit movió tus listeners así:\n%s",
               en = "mosquitto started with your config; the kit moved your listeners like this:\n%s" },
             table.concat(lines, "\n"))
    end,
  },

  check {
    id = "tls-listener", points = 2, after = "config-runs", timeout = 15,
    title = { es = "TLS en el 8883 con el certificado del broker", en = "TLS on 8883 with the broker's certificate" },
    run = function(t, ctx)
      local d = ctx.data
      local l = need_tls_listener(t, ctx)
      local c = tls.cert { port = l.port, ca = d.cafile, name = "localhost" }
      if not c.handshake then
        t:say({ es = "ningún handshake TLS en tu %s: %s", en = "no TLS handshake on your %s: %s" },
              where(ctx, l), tostring(c.error))
        local pl = tls.plain { port = l.port }
        if pl.connack then
          t:say({ es = "en cambio, un CONNECT de MQTT en claro recibió CONNACK %s: ese listener habla MQTT sin cifrar",
                  en = "a plain MQTT CONNECT got CONNACK %s instead: that listener speaks unencrypted MQTT" }, tostring(pl.connack))
        end
        if (l.certfile or l.keyfile) and not (l.certfile and l.keyfile) then
          t:say({ es = "tu listener %d tiene %s pero no %s: mosquitto solo activa TLS con los dos, y sin ellos arranca en claro sin avisar",
                  en = "your listener %d has %s but no %s: mosquitto only turns TLS on with both, and without them it starts in clear text without a word" },
                TLS_PORT, l.certfile and "certfile" or "keyfile", l.certfile and "keyfile" or "certfile")
        else
          t:say({ es = "pon cafile, certfile y keyfile justo debajo de «listener %d»",
                  en = "put cafile, certfile and keyfile right below \"listener %d\"" }, TLS_PORT)
        end
        t:fail()
      end
      local names = table.concat(c.names or {}, ", ")
      local seen = ctx:text({ es = "%s: certificado %s emitido por %s, nombres %s, válido hasta %s",
                              en = "%s: certificate %s issued by %s, names %s, valid until %s" },
                            tostring(c.version), tostring(c.subject), tostring(c.issuer),
                            names ~= "" and names or "-", tostring(c.not_after))
      if not c.verified then
        local why = c.verify_error or "?"
        if why:find("expired") then
          t:fail({ es = "%s\nEl certificado está caducado: ningún cliente que verifique se conectará. Usa certfile certs/server.crt",
                   en = "%s\nThe certificate has expired: no client that verifies will connect. Use certfile certs/server.crt" }, seen)
        elseif why:find("hostname") or why:find("host name") then
          t:fail({ es = "%s\nLa cadena es buena, pero el certificado no es para localhost, el nombre con el que se conectan los clientes. Usa certfile certs/server.crt (y su keyfile certs/server.key)",
                   en = "%s\nThe chain is fine, but the certificate is not for localhost, the name clients dial. Use certfile certs/server.crt (and its keyfile certs/server.key)" }, seen)
        elseif why:find("issuer") then
          t:fail({ es = "%s\nNo lo firmó la CA del kit (certs/ca.crt), la única en la que confían los clientes: ellos lo tomarían por un impostor. Usa certfile certs/server.crt",
                   en = "%s\nIt was not signed by the kit's CA (certs/ca.crt), the only one clients trust: they would take your broker for an impostor. Use certfile certs/server.crt" }, seen)
        end
        t:fail({ es = "%s\nNo se verifica con la CA del kit para el nombre localhost: %s",
                 en = "%s\nIt does not verify against the kit's CA for the name localhost: %s" }, seen, why)
      end
      t:pass({ es = "%s, %s; verificado con la CA del kit para el nombre localhost",
               en = "%s, %s; verified against the kit's CA for the name localhost" }, where(ctx, l), seen)
    end,
  },

  check {
    id = "tls-versions", points = 2, after = "config-runs", timeout = 25,
    title = { es = "TLS 1.2 o superior; 1.0 y 1.1 rechazados", en = "TLS 1.2 or newer; 1.0 and 1.1 refused" },
    run = function(t, ctx)
      local l = need_tls_listener(t, ctx)
      local r = tls.versions { port = l.port }
      local errors = r.errors or {}
      local function line(v)
        if r[v] then return ctx:text({ es = "  TLS %s: aceptado", en = "  TLS %s: accepted" }, v) end
        return ctx:text({ es = "  TLS %s: rechazado (%s)", en = "  TLS %s: refused (%s)" }, v, tostring(errors[v] or "?"))
      end
      local all = table.concat({ line("1.0"), line("1.1"), line("1.2"), line("1.3") }, "\n")
      if not (r["1.2"] or r["1.3"]) then
        t:fail({ es = "el kit probó un handshake con cada versión en tu %s y ninguna moderna lo completó:\n%s\n¿Es un listener TLS? (mira «tls-listener»)",
                 en = "the kit tried a handshake with each version on your %s and no modern one completed:\n%s\nIs it a TLS listener? (see \"tls-listener\")" },
               where(ctx, l), all)
      end
      if r["1.0"] or r["1.1"] then
        t:fail({ es = "tu %s acepta versiones de TLS rotas:\n%s\nDeja «tls_version tlsv1.2» (o tlsv1.3) y no rebajes la seguridad de OpenSSL con «ciphers ...@SECLEVEL=0»",
                 en = "your %s accepts broken TLS versions:\n%s\nKeep \"tls_version tlsv1.2\" (or tlsv1.3) and do not lower OpenSSL's security level with \"ciphers ...@SECLEVEL=0\"" },
               where(ctx, l), all)
      end
      t:pass({ es = "un handshake con cada versión en %s:\n%s", en = "one handshake per version on %s:\n%s" }, where(ctx, l), all)
    end,
  },

  check {
    id = "plain-refused", points = 1, after = "config-runs", timeout = 15,
    title = { es = "MQTT en claro no entra por el 8883", en = "Plain MQTT does not get in on 8883" },
    run = function(t, ctx)
      local l = need_tls_listener(t, ctx)
      local pl = tls.plain { port = l.port }
      if pl.connack then
        t:fail({ es = "el kit envió un CONNECT de MQTT sin cifrar a tu %s y recibió CONNACK %s: ahí cualquiera habla en claro, y cualquiera escucha",
                 en = "the kit sent an unencrypted MQTT CONNECT to your %s and got CONNACK %s: anyone can talk there in clear text, and anyone can listen" },
               where(ctx, l), tostring(pl.connack))
      end
      local how = pl.error ~= nil and pl.error ~= "" and pl.error
                  or ctx:text(pl.closed and { es = "el broker cerró la conexión", en = "the broker closed the connection" }
                                         or { es = "sin respuesta", en = "no answer" })
      t:pass({ es = "un CONNECT sin cifrar en %s no obtuvo CONNACK: %s", en = "an unencrypted CONNECT on %s got no CONNACK: %s" },
             where(ctx, l), how)
    end,
  },

  check {
    id = "no-plain-outside", points = 2, after = "config-runs", timeout = 20,
    title = { es = "Nada en claro fuera de localhost", en = "Nothing in clear text beyond localhost" },
    run = function(t, ctx)
      local d = ctx.data
      local ok_lines = {}
      for _, l in ipairs(d.res.listeners) do
        local kind
        if l.exposed then
          if l.protocol == "websockets" and not l.tls then
            t:expect(false, { es = "tu «%s» (websockets) no tiene dirección ni TLS: mosquitto lo abriría en todas las interfaces, en claro",
                              en = "your \"%s\" (websockets) has no address and no TLS: mosquitto would open it on every interface, in clear text" },
                     as_written(l))
          else
            local pl = tls.plain { port = l.port }
            if pl.connack then
              t:expect(false, { es = "tu «%s» no tiene dirección: mosquitto lo abriría en todas las interfaces. El kit lo ató a 127.0.0.1 por seguridad (puerto %d) y un CONNECT en claro recibió allí CONNACK %s. Escribe «listener %d 127.0.0.1», o ponle TLS",
                                en = "your \"%s\" has no address: mosquitto would open it on every interface. The kit bound it to 127.0.0.1 for safety (port %d) and a plain CONNECT there got CONNACK %s. Write \"listener %d 127.0.0.1\", or give it TLS" },
                       as_written(l), l.port, tostring(pl.connack), l.student_port)
            else
              kind = ctx:text({ es = "abierto a la red, pero sin MQTT en claro", en = "open to the network, but no plain MQTT" })
            end
          end
        else
          kind = ctx:text(l.tls and { es = "solo local, TLS", en = "local only, TLS" } or { es = "solo local", en = "local only" })
        end
        if kind then ok_lines[#ok_lines + 1] = "  " .. as_written(l) .. ": " .. kind end
      end
      t:pass({ es = "ningún listener en claro alcanzable desde fuera:\n%s", en = "no plain listener reachable from outside:\n%s" },
             table.concat(ok_lines, "\n"))
    end,
  },

  -- allow_anonymous true: the plant's devices of this lab have no user
  -- names (lab 08 adds them), so an MQTT client without one must get in
  -- over TLS. Tried for real: a TLS CONNECT with no user name on 8883.
  check {
    id = "tls-mqtt-anonymous", points = 1, after = "tls-listener", timeout = 15,
    title = { es = "Un cliente sin usuario entra por TLS (allow_anonymous true)", en = "A client with no user name gets in over TLS (allow_anonymous true)" },
    run = function(t, ctx)
      local d = ctx.data
      local l = need_tls_listener(t, ctx)
      local c, msg, code = ctx:client { port = l.port, id = "mqlab-anonymous", clean = true, cafile = d.cafile, timeout = 5 }
      if not c then
        if code == 5 or code == 4 then
          t:fail({ es = "un CONNECT por TLS sin usuario en tu %s recibió CONNACK %d (%s): mosquitto 2 rechaza a los clientes sin usuario salvo que digas allow_anonymous true, y en este laboratorio los dispositivos no tienen usuario (eso llega en el 08)",
                   en = "a TLS CONNECT with no user name on your %s got CONNACK %d (%s): mosquitto 2 turns clients without a user name away unless you say allow_anonymous true, and in this lab the devices have no user name (that comes in lab 08)" },
                 where(ctx, l), code, ctx:text(code == 5 and { es = "no autorizado", en = "not authorised" }
                                                          or { es = "usuario o contraseña incorrectos", en = "bad user name or password" }))
        end
        t:fail({ es = "el handshake TLS en tu %s funcionó, pero un CONNECT sin usuario no recibió CONNACK 0: %s",
                 en = "the TLS handshake on your %s worked, but a CONNECT with no user name got no CONNACK 0: %s" },
               where(ctx, l), tostring(msg))
      end
      c:close()
      t:pass({ es = "un CONNECT por TLS sin usuario (CA del kit, nombre localhost) en %s recibió CONNACK 0",
               en = "a TLS CONNECT with no user name (the kit's CA, the name localhost) on %s got CONNACK 0" }, where(ctx, l))
    end,
  },

  check {
    id = "client-connects", points = 2,
    title = { es = "El cliente publica por TLS", en = "The client publishes over TLS" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if not d.prog then t:fail(d.prog_err) end
      local connects = {}
      for _, e in ipairs(brokerlog.select(d.log, "connect")) do
        if not e.client:match("^mqlab%-") then connects[#connects + 1] = e end
      end
      if #connects == 0 then
        t:say({ es = "el broker TLS del kit no vio ninguna conexión MQTT de tu cliente (%s)",
                en = "the kit's TLS broker saw no MQTT connection from your client (%s)" }, ctx:how_ended(d.prog))
        local failed = {}
        for i = 1, math.min(#d.tls_failures, 3) do
          local f = d.tls_failures[i]
          failed[i] = "  " .. f.why .. (f.n > 1 and " (×" .. f.n .. ")" or "")
        end
        if #failed > 0 then
          t:say({ es = "el broker registró:\n%s", en = "the broker logged:\n%s" },
                table.concat(failed, "\n"))
          local all = table.concat(failed, "\n")
          if all:find("wrong version number", 1, true) then
            t:say({ es = "«wrong version number»: tu cliente habló MQTT en claro a un puerto TLS. Activa TLS antes de connect(): client.tls_set(ca_certs=os.environ[\"MQTT_CAFILE\"])",
                    en = "\"wrong version number\": your client spoke plain MQTT to a TLS port. Turn TLS on before connect(): client.tls_set(ca_certs=os.environ[\"MQTT_CAFILE\"])" })
          elseif all:find("alert", 1, true) then
            t:say({ es = "tu cliente rechazó el certificado del broker del kit: ¿carga MQTT_CAFILE? ¿se conecta a MQTT_HOST (localhost) tal cual?",
                    en = "your client rejected the kit broker's certificate: does it load MQTT_CAFILE? does it connect to MQTT_HOST (localhost) as it is?" })
          end
        end
        t:fail({ es = "Su salida de error:\n%s", en = "Its stderr:\n%s" }, ctx:stderr_tail(d.prog))
      end
      local e = connects[1]
      if e.client ~= p.client_id then
        t:fail({ es = "tu cliente se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno",
                 en = "your client connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment" }, e.client, p.client_id)
      end
      local m = d.seen[1]
      if not m then
        local pubs = brokerlog.select(d.log, "publish_in", e.client)
        if #pubs > 0 then
          t:fail({ es = "conectado por TLS, pero publicó en %s y su topic es MQTT_TOPIC = %s",
                   en = "connected over TLS, but it published on %s and its topic is MQTT_TOPIC = %s" }, tostring(pubs[1].topic), p.topic)
        end
        t:fail({ es = "conectado por TLS como «%s», pero el broker no recibió ningún PUBLISH (%s). Su salida de error:\n%s",
                 en = "connected over TLS as '%s', but the broker received no PUBLISH (%s). Its stderr:\n%s" },
               e.client, ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
      end
      local r, why = wire.reading(m.payload or "")
      if not r then
        t:fail({ es = "el payload no es una lectura {\"id\", \"ts\", \"v\"} (falla «%s»): %s",
                 en = "the payload is not a reading {\"id\", \"ts\", \"v\"} (\"%s\" is wrong): %s" }, why, text.short(m.payload, 120))
      end
      local qos = m.qos
      for _, pe in ipairs(brokerlog.select(d.log, "publish_in", e.client)) do
        if pe.topic == p.topic then qos = pe.qos end
      end
      if qos ~= 1 then
        t:fail({ es = "la lectura llegó con QoS %s; publícala con qos=1", en = "the reading arrived at QoS %s; publish it with qos=1" }, tostring(qos))
      end
      if d.prog:timed_out() then
        t:fail({ es = "la lectura llegó, pero tu cliente seguía en marcha a los %d s y el kit lo paró: desconecta y sal",
                 en = "the reading arrived, but your client was still running after %d s and the kit stopped it: disconnect and exit" }, PROG_TIMEOUT)
      end
      local code = d.prog:exit_code()
      if code ~= 0 then
        t:fail({ es = "la lectura llegó, pero %s (se esperaba 0). Su salida de error:\n%s",
                 en = "the reading arrived, but %s (expected 0). Its stderr:\n%s" }, ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
      end
      t:pass({ es = "conectado por TLS a localhost como «%s»; el suscriptor del kit recibió en %s, con QoS 1: %s; salió con 0",
               en = "connected over TLS to localhost as '%s'; the kit's subscriber received on %s, at QoS 1: %s; it exited with 0" },
             e.client, p.topic, text.short(m.payload, 120))
    end,
  },

  -- Steps 2 and 3 to the letter: "one reading", and "disconnect": the
  -- broker logs "Client X disconnected." for a DISCONNECT, "Client X
  -- closed its connection." for a bare close. Apart from client-connects,
  -- so that the impostor checks do not hang on them.
  check {
    id = "client-finishes", points = 1, after = "client-connects", timeout = 10,
    title = { es = "Una sola lectura, y DISCONNECT al salir", en = "A single reading, and DISCONNECT on the way out" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local n = 0
      for _, pe in ipairs(brokerlog.select(d.log, "publish_in", p.client_id)) do
        if pe.topic == p.topic and not pe.dup then n = n + 1 end
      end
      t:expect(n <= 1, { es = "tu cliente publicó %d lecturas en MQTT_TOPIC; el paso 2 pide una", en = "your client published %d readings on MQTT_TOPIC; step 2 asks for one" }, n)
      -- The program has left, so one of the two lines is on its way.
      local bye = ctx:wait_for(function()
        return brokerlog.select(ctx:brokerlog(), "disconnected", p.client_id)[1]
      end, 5)
      if not bye or not bye.clean then
        t:fail({ es = "tu cliente publicó y salió sin enviar DISCONNECT: el broker anotó «%s». Llama a disconnect() antes de salir, y deja que salga (en paho, loop_stop() después): así el broker sabe que te fuiste a propósito (un Last Will, si lo hubiera, no se dispararía)",
                 en = "your client published and left without sending DISCONNECT: the broker logged \"%s\". Call disconnect() before you exit, and let it go out (in paho, loop_stop() after it): then the broker knows you left on purpose (a Last Will, had you one, would not fire)" },
               bye and bye.text:gsub("%.$", "") or ctx:text({ es = "nada sobre su salida", en = "nothing about it leaving" }))
      end
      t:pass({ es = "una lectura; el broker anotó «%s»: tu cliente envió DISCONNECT (%s)", en = "one reading; the broker logged \"%s\": your client sent DISCONNECT (%s)" },
             (bye.text:gsub("%.$", "")), ctx:how_ended(d.prog))
    end,
  },

  check {
    id = "rejects-impostor", points = 2, after = "client-connects", timeout = IMP_TIMEOUT + 10,
    title = { es = "Rechaza un broker con certificado de otra CA", en = "It refuses a broker whose certificate is from another CA" },
    run = function(t, ctx) judge_impostor(t, ctx, "impostor") end,
  },

  check {
    id = "rejects-wrong-host", points = 1, after = "client-connects", timeout = IMP_TIMEOUT + 10,
    title = { es = "Rechaza un certificado emitido para otro nombre", en = "It refuses a certificate issued for another name" },
    run = function(t, ctx) judge_impostor(t, ctx, "otherhost") end,
  },

  check {
    id = "rejects-expired", points = 1, after = "client-connects", timeout = IMP_TIMEOUT + 10,
    title = { es = "Rechaza un certificado caducado", en = "It refuses an expired certificate" },
    run = function(t, ctx) judge_impostor(t, ctx, "expired") end,
  },
}

-- Guided mode (mqlab start 07). The proxy reads only plain MQTT, so the
-- first step is on the plain side: what a listener without TLS gives
-- away. Then the kit opens its own TLS broker (judged from its log) and
-- an impostor (judged from what the client sent it), on Enter.
local H = {}   -- the guide's helpers, defined in "guided mode" below

local guide = {
  step {
    id = "clear",
    title = { es = "Sin TLS, todo viaja en claro", en = "Without TLS, everything travels in clear" },
    text = {
      es = "Este puerto es MQTT sin TLS, y el kit mira desde el medio, como lo haría cualquiera en la red. En otra terminal, publica una lectura con un usuario y una contraseña:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{client_id}} -u {{client_id}} -P secreto -t '{{topic}}' -q 1 -m '{\"id\":\"g1\",\"ts\":1700000000000,\"v\":21.5}'",
      en = "This port is MQTT without TLS, and the kit watches from the middle, as anyone on the network could. In another terminal, publish a reading with a user name and a password:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{client_id}} -u {{client_id}} -P secret -t '{{topic}}' -q 1 -m '{\"id\":\"g1\",\"ts\":1700000000000,\"v\":21.5}'",
    },
    on = function(ev, ctx) return H.guide_clear(ev, ctx) end,
  },
  step {
    id = "tls",
    title = { es = "El mismo mensaje por TLS, verificando al broker", en = "The same message over TLS, verifying the broker" },
    text = {
      es = "Ahora abro el broker del kit con un listener TLS (certificado para «localhost», firmado por la CA del kit). Publica lo mismo por él, verificando el certificado con --cafile y conectando a «localhost», el nombre que lleva.",
      en = "Now I open the kit's broker with a TLS listener (a certificate for \"localhost\", signed by the kit's CA). Publish the same through it, verifying the certificate with --cafile and connecting to \"localhost\", the name it carries.",
    },
    prompt = { es = "Pulsa Enter y abro el listener TLS.", en = "Press Enter and I open the TLS listener." },
    act = function(ctx) return H.guide_tls_start(ctx) end,
    poll = function(ctx) return H.guide_tls_poll(ctx) end,
  },
  step {
    id = "impostor",
    title = { es = "Un impostor: tu cliente debe negarse", en = "An impostor: your client must refuse" },
    text = {
      es = "Ahora arranco un broker falso: presenta un certificado para «localhost», pero firmado por otra CA. Lanza contra él la misma orden (mismo --cafile): mosquitto_pub debe abortar el handshake y no enviarle nada, ni el CONNECT.",
      en = "Now I start a fake broker: it presents a certificate for \"localhost\", but signed by another CA. Run the same command against it (same --cafile): mosquitto_pub must abort the handshake and send it nothing, not even the CONNECT.",
    },
    prompt = { es = "Pulsa Enter y arranco el impostor.", en = "Press Enter and I start the impostor." },
    act = function(ctx) return H.guide_impostor_start(ctx) end,
    poll = function(ctx) return H.guide_impostor_poll(ctx) end,
  },
}

---------------------------------------------------------------- helpers

-- The impostors: which certificate each one presents, and what is wrong
-- with it from the client's point of view.
IMPOSTORS = {
  impostor = { cert = "impostor", what = { es = "un certificado para localhost firmado por otra CA («mqlab impostor CA»)",
                                           en = "a certificate for localhost signed by another CA (\"mqlab impostor CA\")" } },
  otherhost = { cert = "otherhost", what = { es = "un certificado firmado por la CA del kit, pero emitido para otherhost.invalid, no para localhost",
                                             en = "a certificate signed by the kit's CA, but issued for otherhost.invalid, not for localhost" } },
  expired = { cert = "expired", what = { es = "un certificado para localhost firmado por la CA del kit, pero caducado",
                                         en = "a certificate for localhost signed by the kit's CA, but expired" } },
}


-- The environment of the client: LABS.md's, plus TLS. The host is a
-- name, not an address, because the name is what the certificate has
-- to match.
function client_env(d, port)
  return { MQTT_HOST = "localhost", MQTT_PORT = port, MQTT_CAFILE = d.cafile }
end

-- "listener 1883", "listener 1883 127.0.0.1": as the student wrote it.
-- The default listener has no line of its own: the old `port N` (and
-- `bind_address`), or mosquitto's 1883 when no listener is configured.
function as_written(l)
  if l.implicit then
    if not l.line then return "1883 (default)" end
    return string.format("port %d", l.student_port) .. (l.address and (" + bind_address " .. l.address) or "")
  end
  if l.address then return string.format("listener %d %s", l.student_port, l.address) end
  return string.format("listener %d", l.student_port)
end

-- The student's TLS listener (the one for 8883), or nil.
function tls_listener(d)
  for _, l in ipairs(d.res and d.res.listeners or {}) do
    if l.student_port == TLS_PORT then return l end
  end
end

function list_listeners(d)
  local out = {}
  for _, l in ipairs(d.res and d.res.listeners or {}) do out[#out + 1] = as_written(l) end
  return table.concat(out, ", ")
end

-- No listener for 8883: the same failure for every check that needs it.
function need_tls_listener(t, ctx)
  local l = tls_listener(ctx.data)
  if l then return l end
  local seen = list_listeners(ctx.data)
  t:fail({ es = "tu mosquitto.conf no tiene «listener %d»: es el puerto de MQTT sobre TLS. Listeners que sí tiene: %s",
           en = "your mosquitto.conf has no \"listener %d\": that is the port of MQTT over TLS. Listeners it has: %s" },
         TLS_PORT, seen ~= "" and seen or ctx:text({ es = "ninguno", en = "none" }))
end

-- "the listener 8883 (the kit ran it on 127.0.0.1:41234)"
function where(ctx, l)
  return ctx:text({ es = "«%s» (el kit lo puso en 127.0.0.1:%d)", en = "\"%s\" (the kit ran it on 127.0.0.1:%d)" },
                  as_written(l), l.port)
end

-- A word on the mosquitto errors students meet most in this lab.
function start_hint(ctx, msg)
  msg = tostring(msg)
  if msg:find("key values mismatch", 1, true) then
    return ctx:text({ es = "\n(keyfile no es la clave de certfile: server.crt va con server.key)",
                      en = "\n(keyfile is not the key of certfile: server.crt goes with server.key)" })
  elseif msg:find("Unable to load", 1, true) or msg:find("No such file", 1, true) then
    return ctx:text({ es = "\n(¿existe ese fichero? certs/... son los certificados del kit; otras rutas relativas son de tu carpeta)",
                      en = "\n(does that file exist? certs/... are the kit's certificates; other relative paths are files of your folder)" })
  end
  return ""
end

-- Run the client against an impostor and watch what reaches it. The
-- program usually gives up by itself (a refused handshake raises in
-- connect()) and is waited for: how it ends is part of the verdict. One
-- that sent a CONNECT is stopped at once (nothing can mend that); one
-- that keeps going otherwise runs into its IMP_TIMEOUT.
function face_impostor(ctx, name)
  local d = ctx.data
  local spec = IMPOSTORS[name]
  local imp, ierr = tls.impostor { cert = d.certs .. "/" .. spec.cert .. ".crt",
                                   key = d.certs .. "/" .. spec.cert .. ".key" }
  if not imp then error("the impostor could not start: " .. tostring(ierr), 0) end
  ctx:own(imp)
  local prog, err = ctx:program("client", { timeout = IMP_TIMEOUT, env = client_env(d, imp:port()) })
  if not prog then
    imp:close()
    return nil, err
  end
  while prog:running() do
    prog:wait(0.05)
    if imp:report().connect_seen then break end
  end
  -- What the client wrote just before it left may still be on its way
  -- through the impostor's thread.
  kit.sleep(0.3)
  local r = imp:report()
  local stopped = prog:running()
  if stopped then prog:stop() end
  imp:close()
  return { report = r, prog = prog, stopped = stopped }
end

-- The verdict on one impostor, shared by the three checks.
function judge_impostor(t, ctx, name)
  local spec = IMPOSTORS[name]
  local res, err = face_impostor(ctx, name)
  if not res then t:fail(err) end
  local r, prog = res.report, res.prog
  -- What it said, without the traceback `mqlab run` adds to a Lua error.
  local said = text.tail((prog:stderr():gsub("\n?stack traceback:.*$", "")), 300)
  local what = ctx:text(spec.what)
  if r.connections == 0 then
    t:fail({ es = "el impostor (%s) no recibió ninguna conexión de tu cliente (%s): ¿usa MQTT_HOST y MQTT_PORT? Su salida de error:\n%s",
             en = "the impostor (%s) got no connection from your client (%s): does it use MQTT_HOST and MQTT_PORT? Its stderr:\n%s" },
           what, ctx:how_ended(prog), ctx:stderr_tail(prog))
  end
  if r.connect_seen or r.bytes_after > 0 then
    local ids = #r.client_ids > 0 and table.concat(r.client_ids, ", ") or "?"
    if r.connect_seen then
      t:say({ es = "tu cliente completó el handshake TLS con un impostor que presentaba %s, y le envió su CONNECT (client id %s): le entregó su identidad y, si las llevara, sus credenciales",
              en = "your client completed the TLS handshake with an impostor presenting %s, and sent it its CONNECT (client id %s): it handed over its identity and, had it any, its credentials" },
            what, ids)
    else
      t:say({ es = "tu cliente completó el handshake TLS con un impostor que presentaba %s, y le envió %d bytes",
              en = "your client completed the TLS handshake with an impostor presenting %s, and sent it %d bytes" },
            what, r.bytes_after)
    end
    -- Whether it sent nothing to the other CA's impostor says which of
    -- the checks the client skips.
    local checks_chain = name ~= "impostor" and ctx.data.refused_imp and ctx.data.refused_imp.impostor
    if name == "otherhost" and checks_chain then
      t:fail({ es = "la cadena era buena, pero el nombre no: tu cliente no comprueba que el certificado sea de MQTT_HOST (localhost). En paho no llames a tls_insecure_set(True); con ssl, deja check_hostname = True",
               en = "the chain was fine but the name was not: your client does not check that the certificate belongs to MQTT_HOST (localhost). In paho, do not call tls_insecure_set(True); with ssl, leave check_hostname = True" })
    end
    if name == "expired" and checks_chain then
      t:fail({ es = "tu cliente comprueba la cadena, pero no las fechas: acepta un certificado caducado. No desactives la comprobación de validez (en OpenSSL, nada de X509_V_FLAG_NO_CHECK_TIME ni callbacks de verificación que ignoren errores)",
               en = "your client checks the chain but not the dates: it accepts an expired certificate. Do not turn off the validity check (in OpenSSL, no X509_V_FLAG_NO_CHECK_TIME and no verify callbacks that ignore errors)" })
    end
    t:fail({ es = "tu cliente no verifica el certificado del broker: con cert_reqs=ssl.CERT_NONE (o verify_mode = CERT_NONE) cualquiera en el camino se hace pasar por tu broker. Confía solo en MQTT_CAFILE: tls_set(ca_certs=os.environ[\"MQTT_CAFILE\"])",
             en = "your client does not verify the broker's certificate: with cert_reqs=ssl.CERT_NONE (or verify_mode = CERT_NONE) anyone on the path can pose as your broker. Trust only MQTT_CAFILE: tls_set(ca_certs=os.environ[\"MQTT_CAFILE\"])" })
  end
  -- It sent nothing: the other impostors' verdicts may lean on this one.
  ctx.data.refused_imp = ctx.data.refused_imp or {}
  ctx.data.refused_imp[name] = true
  -- The instructions ask for three things more: abort inside the
  -- handshake, exit non-zero, say why on stderr. Each is told apart.
  if r.handshakes > 0 then
    t:expect(false, { es = "✗ el impostor presentaba %s, y tu cliente terminó el handshake TLS con él: aceptó el certificado y solo después cerró, sin enviar nada de MQTT. Se pide abortar el handshake: deja que la biblioteca TLS verifique la cadena y el nombre durante el handshake (ca_certs = MQTT_CAFILE y comprobación del nombre activada) en vez de mirar el certificado después",
                      en = "✗ the impostor presented %s, and your client finished the TLS handshake with it: it accepted the certificate and only closed afterwards, sending no MQTT. The instructions ask to abort the handshake: let the TLS library verify the chain and the name during the handshake (ca_certs = MQTT_CAFILE and the name check on) instead of looking at the certificate afterwards" },
             what)
  end
  local code = prog:exit_code()
  if res.stopped or prog:timed_out() then
    t:expect(false, { es = "✗ tu cliente no envió nada al impostor, pero siguió en marcha y el kit lo paró a los %.0f s: ante un certificado rechazado, sal con un código distinto de 0 (quien lo lance, un script o systemd, sabrá que falló)",
                      en = "✗ your client sent nothing to the impostor, but it kept running and the kit stopped it after %.0f s: when a certificate is refused, exit with a non-zero code (whatever started it, a script or systemd, then knows it failed)" },
             prog:runtime())
  elseif code == 0 then
    t:expect(false, { es = "✗ tu cliente no envió nada al impostor, pero salió con código 0, como si hubiera publicado: sal con un código distinto de 0 cuando rechaces el certificado",
                      en = "✗ your client sent nothing to the impostor, but it exited with code 0, as if it had published: exit with a non-zero code when you refuse the certificate" })
  elseif not code then
    t:expect(false, { es = "✗ tu cliente no envió nada al impostor, pero no salió por sí mismo con un código: %s",
                      en = "✗ your client sent nothing to the impostor, but it did not exit by itself with a code: %s" }, ctx:how_ended(prog))
  end
  if said == "" then
    t:expect(false, { es = "✗ tu cliente rechazó al impostor sin decir nada en stderr: escribe allí por qué (por ejemplo, el error de verificación del certificado)",
                      en = "✗ your client refused the impostor without a word on stderr: write there why (for instance, the certificate verification error)" })
  end
  local alert = r.alerts[1] or r.errors[1]
  t:pass({ es = "el impostor presentaba %s; tu cliente abortó el handshake TLS%s, no envió ni un byte de MQTT y %s",
           en = "the impostor presented %s; your client aborted the TLS handshake%s, sent not a single MQTT byte, and %s" },
         what, alert and ctx:text({ es = " con la alerta «%s»", en = " with the alert \"%s\"" }, alert) or "", ctx:how_ended(prog))
  t:pass({ es = "tu cliente dijo: %s", en = "your client said: %s" }, said)
end

---------------------------------------------------------------- guided mode

-- Step 1: on the plain port, a CONNECT with a user name and a password,
-- and a PUBLISH on the topic: the proxy read both.
function H.guide_clear(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind ~= "packet" or ev.dir ~= "up" then return nil end
  if ev.type == "CONNECT" then
    d.creds = d.creds or {}
    d.creds[ev.conn] = ev.username and ev.password
    if not (ev.username and ev.password) then
      return false, { es = string.format("el CONNECT de «%s» no lleva usuario y contraseña: añade -u y -P, para ver que también ellos viajan en claro", ev.client_id or ""),
                      en = string.format("the CONNECT of '%s' carries no user name and password: add -u and -P, to see that they too travel in clear", ev.client_id or "") }
    end
    return nil
  end
  if ev.type ~= "PUBLISH" then return nil end
  if ev.topic ~= p.topic then
    return false, { es = string.format("publicaste en %s; tu topic es %s", ev.topic or "", p.topic),
                    en = string.format("you published on %s; your topic is %s", ev.topic or "", p.topic) }
  end
  if not (d.creds and d.creds[ev.conn]) then return nil end
  return true, { es = string.format("el proxy leyó, sin descifrar nada: el client id «%s», que había usuario y contraseña (sus bytes, en el CONNECT), el topic %s y la lectura %s. Cualquiera en el camino lee lo mismo",
                                    ev.client or "", ev.topic, ev.payload or ""),
                 en = string.format("the proxy read, deciphering nothing: client id '%s', that there was a user name and a password (their bytes, in the CONNECT), topic %s and the reading %s. Anyone on the path reads the same",
                                    ev.client or "", ev.topic, ev.payload or "") }
end

-- Step 2: the kit's TLS broker, started on Enter; its log says whether
-- the client came in over TLS and published.
function H.guide_tls_start(ctx)
  local p, d = ctx.p, ctx.data
  d.certs = d.certs or tls.certs()
  local kb, msg = brokermod.start { profile = "tls", certs = d.certs }
  if not kb then error("the kit's TLS broker did not start: " .. tostring(msg), 0) end
  d.kb = ctx:own(kb)
  -- Its own readiness probe is logged as a failed TLS session: skip it.
  d.kb_from = #brokerlog.parse(kb:log()) + 1
  local cmd = string.format("    mosquitto_pub -h localhost -p %d --cafile %s/ca.crt -i %s -t '%s' -q 1 -m '{\"id\":\"g2\",\"ts\":1700000000000,\"v\":21.5}'",
                            kb:port(), d.certs, p.client_id, p.topic)
  return { es = "Listener TLS abierto en el puerto " .. kb:port() .. ":\n\n" .. cmd,
           en = "TLS listener open on port " .. kb:port() .. ":\n\n" .. cmd }
end

function H.guide_tls_poll(ctx)
  local p, d = ctx.p, ctx.data
  local log = brokerlog.parse(d.kb:log())
  local said
  for i = d.kb_from, #log do
    local e = log[i]
    if e.kind == "tls_failure" then
      local why = tostring(e.why)
      if why:find("wrong version number", 1, true) or why:find("packet length", 1, true) or why:find("http request", 1, true) then
        said = { es = "el listener TLS rechazó una conexión (" .. why .. "): le hablaste sin TLS. Sin --cafile, mosquitto_pub envía MQTT en claro a un puerto TLS",
                 en = "the TLS listener turned a connection away (" .. why .. "): you talked to it without TLS. Without --cafile, mosquitto_pub sends plain MQTT to a TLS port" }
      elseif why:find("alert", 1, true) or why:find("certificate", 1, true) then
        said = { es = "tu cliente rechazó el certificado del broker (" .. why .. "): --cafile debe ser la CA del kit, la ruta de arriba, y -h el nombre del certificado, localhost",
                 en = "your client refused the broker's certificate (" .. why .. "): --cafile must be the kit's CA, the path above, and -h the certificate's name, localhost" }
      else
        said = { es = "el handshake TLS falló (" .. why .. ")", en = "the TLS handshake failed (" .. why .. ")" }
      end
    elseif e.kind == "publish_in" and e.topic == p.topic then
      return true, { es = string.format("el broker recibió por TLS el CONNECT de «%s» y tu PUBLISH en %s; en el cable, solo registros TLS cifrados", e.client or "", p.topic),
                     en = string.format("the broker got over TLS the CONNECT of '%s' and your PUBLISH on %s; on the wire, only encrypted TLS records", e.client or "", p.topic) }
    end
  end
  -- A client that refused the broker's certificate leaves nothing useful
  -- in the broker's log; the proxy's port is the other usual slip.
  return nil, said
end

-- Step 3: an impostor (another CA's certificate for localhost); met when
-- a client reached it and aborted the handshake with nothing sent.
function H.guide_impostor_start(ctx)
  local p, d = ctx.p, ctx.data
  d.certs = d.certs or tls.certs()
  local imp, err = tls.impostor { cert = d.certs .. "/impostor.crt", key = d.certs .. "/impostor.key" }
  if not imp then error("the impostor could not start: " .. tostring(err), 0) end
  d.imp = ctx:own(imp)
  local cmd = string.format("    mosquitto_pub -h localhost -p %d --cafile %s/ca.crt -i %s -t '%s' -q 1 -m '{\"id\":\"g3\",\"ts\":1700000000000,\"v\":21.5}'",
                            imp:port(), d.certs, p.client_id, p.topic)
  return { es = "Impostor escuchando en el puerto " .. imp:port() .. ":\n\n" .. cmd,
           en = "Impostor listening on port " .. imp:port() .. ":\n\n" .. cmd }
end

function H.guide_impostor_poll(ctx)
  local d = ctx.data
  local r = d.imp:report()
  if r.connect_seen and not d.imp_fooled then
    d.imp_fooled = true
    return false, { es = "tu cliente terminó el handshake con el impostor y le envió su CONNECT (client id " .. table.concat(r.client_ids, ", ") .. "): no verificó el certificado. Usa --cafile con la CA del kit y nunca --insecure",
                    en = "your client finished the handshake with the impostor and sent it its CONNECT (client id " .. table.concat(r.client_ids, ", ") .. "): it did not verify the certificate. Use --cafile with the kit's CA and never --insecure" }
  end
  -- A connection whose handshake never finished: a refusal, once the
  -- count holds for one more poll (not a handshake still under way).
  if r.connections <= r.handshakes then d.imp_pending = nil; return nil end
  if d.imp_pending ~= r.connections then d.imp_pending = r.connections; return nil end
  do
    local alert = r.alerts[1] and (" (" .. r.alerts[1] .. ")") or ""
    return true, { es = "tu cliente abortó el handshake" .. alert .. " y no envió ni un byte de MQTT: el impostor no se quedó ni con tu client id",
                   en = "your client aborted the handshake" .. alert .. " and sent not a single MQTT byte: the impostor did not even get your client id" }
  end
end

---------------------------------------------------------------- setup

-- Start both brokers, and run the client once against the kit's.
-- The probes of the student's broker and the impostor runs happen in
-- their checks, so that a check that is skipped costs no time.
function setup(ctx)
  local d, p = ctx.data, ctx.p
  d.certs = tls.certs()
  d.cafile = d.certs .. "/ca.crt"

  -- The kit's own TLS broker (profile "tls", the kit's certificates),
  -- never the student's config: a client is not to lose points for its
  -- config, nor gain them from it. It becomes ctx.broker, so that
  -- ctx:client and ctx:brokerlog work on it.
  local kb, kmsg, kcode = brokermod.start { profile = "tls", certs = d.certs }
  if not kb and kcode == "missing" then return nil, "missing", kmsg end
  if not kb then error("the kit's TLS broker did not start: " .. tostring(kmsg), 0) end
  ctx.broker = ctx:own(kb)

  -- The student's broker.
  d.conf = ctx:file("mosquitto.conf")
  if d.conf then
    local workdir = kit.tmpdir("mqlab-conf")
    -- Owned before the broker, so closed (removed) after it.
    ctx:own({ close = function() kit.rmdir(workdir) end })
    local res, why = brokerconf.prepare { text = d.conf, file = "mosquitto.conf", student_dir = ctx.dir,
                                          certs = d.certs, workdir = workdir }
    d.res, d.refused = res, why
    if res then
      local sb, smsg = brokermod.start { template = res.config, port = res.main_port, name = "student" }
      -- broker.start waits for mosquitto's "running" line, so a key
      -- that does not match its certificate is already an error here.
      if sb then
        d.sb = ctx:own(sb)
      else
        d.start_err = smsg
      end
    end
  end

  -- The client against the kit's broker, watched by a TLS subscriber.
  local sub = assert(ctx:client { id = "mqlab-sub", clean = true, cafile = d.cafile })
  assert(sub:subscribe(p.topic, 1))
  d.prog, d.prog_err = ctx:program("client", { timeout = PROG_TIMEOUT, env = client_env(d, kb:port()) })
  if d.prog then d.prog:wait(PROG_TIMEOUT + 2) end
  d.seen = {}
  local m = sub:wait(d.prog and 1 or 0, p.topic)
  while m do
    d.seen[#d.seen + 1] = m
    m = sub:wait(0, p.topic)
  end
  d.log = ctx:brokerlog()
  -- TLS sessions that failed after the kit's subscriber was in (before
  -- it, the broker's own readiness probe shows up as one).
  d.tls_failures = {}
  local after_sub = false
  for _, e in ipairs(d.log) do
    if e.kind == "connect" and e.client == "mqlab-sub" then after_sub = true end
    local why = e.kind == "tls_failure" and e.why
    if after_sub and why then
      local last = d.tls_failures[#d.tls_failures]
      if last and last.why == why then last.n = last.n + 1
      else d.tls_failures[#d.tls_failures + 1] = { why = why, n = 1 } end
    end
  end
end

---------------------------------------------------------------- the lab

return lab {
  id = "07-tls",
  title = { es = "TLS: broker y cliente", en = "TLS: broker and client" },
  submission = { programs = { "client" }, files = { "mosquitto.conf" } },
  setup_timeout = PROG_TIMEOUT + 20,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,

  hints = {
    { es = "El listener TLS es un bloque: «listener 8883» y, justo debajo, cafile certs/ca.crt, certfile certs/server.crt, keyfile certs/server.key y tls_version tlsv1.2. Si falta certfile o keyfile, mosquitto arranca ese listener en claro sin quejarse.",
      en = "The TLS listener is a block: \"listener 8883\" and, right below it, cafile certs/ca.crt, certfile certs/server.crt, keyfile certs/server.key and tls_version tlsv1.2. If certfile or keyfile is missing, mosquitto starts that listener in clear text without complaint." },
    { es = "Un listener sin dirección escucha en todas las interfaces. Si quieres MQTT en claro para depurar, átalo a la máquina: «listener 1883 127.0.0.1».",
      en = "A listener without an address listens on every interface. If you want plain MQTT for debugging, tie it to the machine: \"listener 1883 127.0.0.1\"." },
    { es = "En paho 1.6: client.tls_set(ca_certs=os.environ[\"MQTT_CAFILE\"]) antes de connect(). Con ca_certs solo confías en esa CA, y paho comprueba la cadena y el nombre (MQTT_HOST). Conéctate a MQTT_HOST tal cual: el certificado es para «localhost».",
      en = "In paho 1.6: client.tls_set(ca_certs=os.environ[\"MQTT_CAFILE\"]) before connect(). With ca_certs you trust only that CA, and paho checks the chain and the name (MQTT_HOST). Connect to MQTT_HOST as it is: the certificate is for \"localhost\"." },
    { es = "Nunca cert_reqs=ssl.CERT_NONE ni tls_insecure_set(True): «arreglan» un error de certificado aceptando cualquier broker, también al impostor. Si la verificación falla, connect() lanza ssl.SSLCertVerificationError: captúrala, escribe el motivo en stderr y sal con un código distinto de 0.",
      en = "Never cert_reqs=ssl.CERT_NONE or tls_insecure_set(True): they \"fix\" a certificate error by accepting any broker, the impostor too. When verification fails, connect() raises ssl.SSLCertVerificationError: catch it, write the reason to stderr and exit with a non-zero code." },
    { es = "Compruébalo a mano: openssl s_client -connect localhost:8883 -CAfile certs/ca.crt -verify_hostname localhost muestra el certificado y «Verify return code: 0 (ok)»; con -tls1_1 debe fallar.",
      en = "Check it by hand: openssl s_client -connect localhost:8883 -CAfile certs/ca.crt -verify_hostname localhost shows the certificate and \"Verify return code: 0 (ok)\"; with -tls1_1 it must fail." },
  },
}
