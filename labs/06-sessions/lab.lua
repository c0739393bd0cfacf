-- Lab 06: persistent sessions, and a producer that survives a broker restart.
--
-- Two programs, run one after the other through the kit's proxy, on a
-- broker with persistence on (broker-config/persistence.conf), so that
-- sessions and queued messages outlive a restart of the broker itself.
-- The kit's own clients connect to the broker directly, and only one
-- program runs at a time, so every connection on the proxy in a phase
-- belongs to that phase's program. Setup (H.run_collector, then
-- H.run_producer, below the plan) only records; the checks judge.
--
-- collector: the kit waits for its SUBACK, publishes live_n messages and
--   waits for the lines; stops it with SIGTERM (it must DISCONNECT and
--   exit 0), waits until the broker's log says it is gone, publishes
--   offline_n QoS 1 messages and starts it again with the same
--   environment: the CONNACK must say session present = 1 and every
--   queued message must be printed.
-- producer: once the proxy has seen restart_after readings (counted, so
--   the fault lands on the same packet every run), the kit stops the
--   broker for OUTAGE_S seconds and starts it again on the same folder.
--   A kit subscriber with a persistent session (clean=false, QoS 1)
--   reconnects with the same id and must get every reading. While the
--   broker is down the proxy accepts each connection attempt and closes
--   it (an `open`, an `error` and a `close` in the trace), so the
--   attempts can be counted. paho (1 s, then 2 s...) tries once while
--   the broker is down and is back 3 s after the cut.

local wire = require "mqlab.wire"
local kit = require "mqlab.kit"
local short = require("mqlab.text").short

local H = {}                    -- helpers and the two runs, defined below the plan

local OUTAGE_S = 2              -- seconds the broker stays down
local PRODUCER_TIMEOUT = 25     -- seconds the producer may run
local COLLECTOR_TIMEOUT = 40    -- a ceiling; the kit stops the collector long before
local SUBSCRIBE_S = 10          -- seconds to wait for the collector's SUBACK
local PRINT_S = 3               -- seconds to wait for the collector's lines
local TERM_S = 3                -- seconds a collector gets to leave after SIGTERM
local MAX_RATE = 2              -- connection attempts per second still called waiting
local PACE_LO, PACE_HI = 0.5, 2 -- a pace within these factors of LAB_INTERVAL_MS is kept
local DAY_MS = 86400000         -- a reading's ts must be within a day of the kit's clock

local COLLECTOR = { es = "colector", en = "collector" }
local PRODUCER = { es = "productor", en = "producer" }

local SENSORS = { "sensor-01", "sensor-02", "sensor-03", "sensor-04", "sensor-05",
                  "sensor-06", "sensor-07", "sensor-08", "sensor-09" }

---------------------------------------------------------------- the plan

local function params(rng)
  local plant = rng:pick({ "planta-1", "planta-2", "planta-3" })
  local zone = rng:pick({ "norte", "sur", "este", "oeste" })
  local hex = rng:hex(4)
  local dev_hex = rng:hex(4)
  local dev = "sensor-" .. dev_hex
  local zone_root = "acme/v1/" .. plant .. "/" .. zone
  local sensors = rng:sample(SENSORS, 3)
  return {
    plant = plant, zone = zone, hex = hex, zone_root = zone_root,
    sensors = sensors, sensors_text = table.concat(sensors, ", "),
    collector_id = "collector-" .. plant .. "-" .. hex,
    collector_topic = zone_root .. "/+/temp",
    producer_id = "sensor-" .. plant .. "-" .. dev_hex,
    producer_topic = zone_root .. "/" .. dev .. "/temp",
    state_topic = zone_root .. "/" .. dev .. "/estado",
    count = rng:int(10, 13),
    interval_ms = rng:int(8, 11) * 20,
    restart_after = rng:int(3, 5),
    live_n = rng:int(2, 3),
    offline_n = rng:int(4, 6),
    outage_s = OUTAGE_S,
    timeout_s = PRODUCER_TIMEOUT,
  }
end

local checks = {
  -- collector, step 1 and 2: who it is, its session, its subscription.
  check {
    id = "collector-session", points = 2,
    title = { es = "Colector: client id estable, clean session 0 y suscripción QoS 1",
              en = "Collector: stable client id, clean session 0 and a QoS 1 subscription" },
    run = function(t, ctx)
      local c, p = ctx.data.col, ctx.p
      if not c.first then ctx:why_absent(t, { prog = c.prog, err = c.err, name = COLLECTOR }) end
      local first = c.first.connect
      if (first.client_id or "") == "" then
        t:fail({ es = "tu colector se conectó con un client id vacío: el broker se inventa uno distinto en cada conexión, y con él una sesión nueva. Usa MQTT_CLIENT_ID (%s):\n%s",
                 en = "your collector connected with an empty client id: the broker makes up a different one on every connection, and a new session with it. Use MQTT_CLIENT_ID (%s):\n%s" },
               p.collector_id, wire.block(first))
      end
      if first.client_id ~= p.collector_id then
        t:fail({ es = "tu colector se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno. La sesión es de un client id:\n%s",
                 en = "your collector connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment. A session belongs to one client id:\n%s" },
               first.client_id or "", p.collector_id, wire.block(first))
      end
      if first.clean then
        t:fail({ es = "tu CONNECT pidió clean session 1: el broker borra la sesión (la suscripción y la cola) en cuanto te desconectas, y lo publicado mientras no estás se pierde. Usa clean_session=False:\n%s",
                 en = "your CONNECT asked for clean session 1: the broker wipes the session (the subscription and the queue) as soon as you disconnect, and what is published while you are away is lost. Use clean_session=False:\n%s" },
               wire.block(first))
      end
      for _, x in ipairs(c.conns) do
        if x.connect.client_id ~= p.collector_id then
          t:fail({ es = "la conexión #%d usó el client id «%s»: usa siempre MQTT_CLIENT_ID. Con otro id el broker abre una sesión nueva y vacía:\n%s",
                   en = "connection #%d used the client id '%s': always use MQTT_CLIENT_ID. With another id the broker opens a new, empty session:\n%s" },
                 x.conn, x.connect.client_id or "", wire.block(x.connect))
        end
        if x.connect.clean then
          t:fail({ es = "la conexión #%d pidió clean session 1, y con ella el broker tira la sesión que guardaba:\n%s",
                   en = "connection #%d asked for clean session 1, and with it the broker throws away the session it kept:\n%s" },
                 x.conn, wire.block(x.connect))
        end
      end
      local ev, f = H.collector_sub(c, p)
      if not ev then
        if #c.subscribes > 0 then
          local got = {}
          for _, e in ipairs(c.subscribes[1].filters or {}) do got[#got + 1] = e.filter end
          t:fail({ es = "tu colector se suscribió a %s, pero MQTT_TOPIC es %s:\n%s",
                   en = "your collector subscribed to %s, but MQTT_TOPIC is %s:\n%s" },
                 table.concat(got, ", "), p.collector_topic, wire.block(c.subscribes[1]))
        end
        t:fail({ es = "tu colector se conectó pero no envió ningún SUBSCRIBE (%s)", en = "your collector connected but sent no SUBSCRIBE (%s)" },
               ctx:how_ended(c.prog))
      end
      if (f.qos or 0) == 0 then
        t:fail({ es = "te suscribiste con QoS 0. Un mensaje se entrega con el menor QoS de los dos (el del PUBLISH y el de la suscripción), y el broker no guarda mensajes QoS 0 para un cliente desconectado: lo que llegue mientras no estás se pierde. Suscríbete con qos=1:\n%s",
                 en = "you subscribed at QoS 0. A message is delivered at the lower of the two (the PUBLISH's QoS and the subscription's), and the broker keeps no QoS 0 message for a disconnected client: whatever comes while you are away is lost. Subscribe with qos=1:\n%s" },
               wire.block(ev))
      end
      local ack = wire.select(c.events, function(e) return H.is_pkt(e, "SUBACK", "down") and e.conn == ev.conn end)[1]
      if ack and ack.codes and ack.codes[1] == 128 then
        t:fail({ es = "el broker rechazó tu suscripción:\n%s\n%s", en = "the broker refused your subscription:\n%s\n%s" }, wire.block(ev), wire.block(ack))
      end
      if f.qos == 2 then
        t:say({ es = "(QoS 2 también guarda los mensajes, pero aquí basta QoS 1: los mensajes llevan id)",
                en = "(QoS 2 keeps the messages too, but QoS 1 is enough here: the messages carry ids)" })
      end
      t:pass({ es = "%s como «%s» con clean session 0, y SUBSCRIBE a %s con QoS %d:\n%s\n%s",
               en = "%s as '%s' with clean session 0, and SUBSCRIBE to %s at QoS %d:\n%s\n%s" },
             ctx:text(#c.conns == 1 and { es = "una conexión", en = "one connection" }
                        or { es = "%d conexiones, todas", en = "%d connections, all" }, #c.conns),
             p.collector_id, p.collector_topic, f.qos, wire.block(first), wire.block(ev))
    end,
  },

  -- collector, step 3: the lines, while it runs.
  check {
    id = "collector-live", points = 1,
    title = { es = "Colector: imprime lo que llega (TOPIC PAYLOAD)", en = "Collector: prints what arrives (TOPIC PAYLOAD)" },
    run = function(t, ctx)
      local c = ctx.data.col
      if not c.first then ctx:why_absent(t, { prog = c.prog, err = c.err, name = COLLECTOR }) end
      if not c.suback and c.left_early then
        t:fail({ es = "tu colector terminó sin llegar a suscribirse (%s); tiene que seguir en marcha hasta recibir SIGTERM. Su salida de error:\n%s",
                 en = "your collector ended without ever subscribing (%s); it must keep running until it gets SIGTERM. Its stderr:\n%s" },
               ctx:how_ended(c.prog), ctx:stderr_tail(c.prog))
      end
      if not c.suback then
        t:fail({ es = "el kit espera tu SUBACK antes de publicar, y no llegó ninguno en %d s (%s). Suscríbete a MQTT_TOPIC nada más conectar (en on_connect)",
                 en = "the kit waits for your SUBACK before it publishes, and none came within %d s (%s). Subscribe to MQTT_TOPIC as soon as you connect (in on_connect)" },
               SUBSCRIBE_S, ctx:how_ended(c.prog))
      end
      local got, missing = H.printed(c.live_out, c.live)
      if got == #c.live then
        t:pass({ es = "el kit publicó %d mensajes y tu colector imprimió los %d, por ejemplo:\n    %s",
                 en = "the kit published %d messages and your collector printed all %d, for example:\n    %s" },
               #c.live, got, short(c.live[1], 140))
        return
      end
      local delivered = #wire.select(c.events, function(e)
        return H.is_pkt(e, "PUBLISH", "down") and e.conn == c.suback.conn
      end)
      t:say({ es = "el kit publicó %d mensajes con tu colector en marcha; impresos: %d. Falta, por ejemplo:\n    %s",
              en = "the kit published %d messages while your collector ran; printed: %d. Missing, for example:\n    %s" },
            #c.live, got, short(missing[1], 140))
      local _, lines = H.line_set(c.live_out)
      if delivered > 0 then
        t:say({ es = "el broker sí los entregó: el proxy vio %d PUBLISH hacia tu colector. Imprime cada uno como «TOPIC PAYLOAD» (topic, un espacio, payload) y haz flush (print(..., flush=True))",
                en = "the broker did deliver them: the proxy saw %d PUBLISH packets going to your collector. Print each as 'TOPIC PAYLOAD' (topic, one space, payload) and flush (print(..., flush=True))" },
              delivered)
      else
        t:say({ es = "el proxy no vio ningún PUBLISH hacia tu colector: ¿se suscribió a MQTT_TOPIC?",
                en = "the proxy saw no PUBLISH going to your collector: did it subscribe to MQTT_TOPIC?" })
      end
      if #lines > 0 then
        t:say({ es = "su salida empieza así:\n    %s", en = "its output starts with:\n    %s" }, short(lines[1], 140))
      end
      t:fail()
    end,
  },

  -- collector, step 4: SIGTERM, and a clean leave.
  check {
    id = "collector-leaves", points = 1,
    title = { es = "Colector: con SIGTERM se desconecta y sale con código 0",
              en = "Collector: on SIGTERM it disconnects and exits with code 0" },
    run = function(t, ctx)
      local c = ctx.data.col
      if not c.first then ctx:why_absent(t, { prog = c.prog, err = c.err, name = COLLECTOR }) end
      if not c.suback and not c.left_early then
        t:fail({ es = "el kit no llegó a enviarle SIGTERM: espera antes tu SUBACK, y no llegó (mira «collector-live»)",
                 en = "the kit never got to send it SIGTERM: it first waits for your SUBACK, which never came (see 'collector-live')" })
      end
      if not c.offline then
        t:fail({ es = "tu colector ya no estaba en marcha cuando el kit iba a enviarle SIGTERM (%s): tiene que seguir hasta recibirlo. Su salida de error:\n%s",
                 en = "your collector was no longer running when the kit was about to send it SIGTERM (%s): it must keep running until it gets one. Its stderr:\n%s" },
               ctx:how_ended(c.prog), ctx:stderr_tail(c.prog))
      end
      local conn = c.term_conn
      local disc = conn and conn.disconnect
      if not c.left_on_term then
        t:fail({ es = "%d s después de SIGTERM tu colector seguía en marcha y el kit lo mató con SIGKILL. Atrapa SIGTERM (signal.signal), llama a disconnect() y sal",
                 en = "%d s after SIGTERM your collector was still running, and the kit killed it with SIGKILL. Catch SIGTERM (signal.signal), call disconnect() and leave" }, TERM_S)
      end
      if not c.term_code then
        t:fail({ es = "tu colector murió por la señal %s, sin DISCONNECT: no la atrapa, así que el sistema lo mata y el broker solo ve cortarse el enlace (y publicaría tu Last Will, si lo tuvieras). Atrapa SIGTERM (signal.signal), llama a disconnect() y sal con código 0",
                 en = "your collector died from signal %s, with no DISCONNECT: it does not catch it, so the system kills it and the broker only sees the link drop (and would publish your Last Will, if you had one). Catch SIGTERM (signal.signal), call disconnect() and exit with code 0" },
               tostring(c.term_sig))
      end
      if not disc then
        t:fail({ es = "tras SIGTERM tu colector salió (código %d), pero sin enviar DISCONNECT: para el broker, el enlace simplemente se cortó. Llama a disconnect() antes de salir. Su conexión:\n%s",
                 en = "after SIGTERM your collector left (code %d), but sent no DISCONNECT: to the broker the link simply dropped. Call disconnect() before leaving. Its connection:\n%s" },
               c.term_code, conn and wire.block(conn.connect) or "")
      end
      if c.term_code ~= 0 then
        t:fail({ es = "tras SIGTERM tu colector envió DISCONNECT, pero salió con código %d (se esperaba 0). Su salida de error:\n%s",
                 en = "after SIGTERM your collector sent DISCONNECT, but exited with code %d (expected 0). Its stderr:\n%s" },
               c.term_code, ctx:stderr_tail(c.prog))
      end
      t:pass({ es = "con SIGTERM tu colector se despidió del broker y salió con código 0 (un DISCONNECT no borra una sesión persistente: solo clean session 1 lo hace):\n%s",
               en = "on SIGTERM your collector took leave of the broker and exited with code 0 (a DISCONNECT does not end a persistent session: only clean session 1 does):\n%s" },
             wire.block(disc))
    end,
  },

  -- collector, the return: the session and its queue.
  check {
    id = "collector-offline", points = 3, after = "collector-live",
    title = { es = "Colector: recibe al volver lo publicado mientras estaba parado",
              en = "Collector: gets on its return what was published while it was stopped" },
    run = function(t, ctx)
      local c, p = ctx.data.col, ctx.p
      if not c.offline then
        t:fail({ es = "tu colector ya no estaba en marcha cuando el kit iba a pararlo (%s)", en = "your collector was no longer running when the kit was about to stop it (%s)" },
               ctx:how_ended(c.prog))
      end
      local stop_note = ctx:text(c.left_on_term and { es = "el kit paró tu colector con SIGTERM", en = "the kit stopped your collector with SIGTERM" }
                                   or { es = "el kit paró tu colector (con SIGKILL, porque SIGTERM no bastó)", en = "the kit stopped your collector (with SIGKILL, as SIGTERM was not enough)" })
      if not c.restarted then
        t:fail({ es = "%s, pero no pudo arrancarlo otra vez: %s", en = "%s, but could not start it again: %s" }, stop_note, tostring(c.restart_err))
      end
      local got, missing = H.printed(c.offline_out, c.offline)
      local again = c.again
      local sp = again and again.connack and again.connack.session_present
      if got == #c.offline and sp then
        t:pass({ es = "%s y publicó %d mensajes QoS 1 mientras estaba parado. Al volver, el broker respondió session present = 1 y tu colector imprimió los %d:\n%s\n%s",
                 en = "%s and published %d QoS 1 messages while it was stopped. When it came back the broker answered session present = 1 and your collector printed all %d:\n%s\n%s" },
               stop_note, #c.offline, got, wire.block(again.connect), wire.block(again.connack))
        return
      end
      t:say({ es = "%s y publicó %d mensajes QoS 1 mientras estaba parado; al volver, tu colector imprimió %d",
              en = "%s and published %d QoS 1 messages while it was stopped; when it came back your collector printed %d" },
            stop_note, #c.offline, got)
      if not again then
        t:fail({ es = "tu colector no volvió a conectarse tras arrancarlo de nuevo (%s). Su salida de error:\n%s",
                 en = "your collector did not connect again after being started once more (%s). Its stderr:\n%s" },
               ctx:how_ended(c.prog), ctx:stderr_tail(c.prog))
      end
      local first = c.first.connect
      if again.connect.client_id ~= first.client_id then
        t:fail({ es = "la primera vez te conectaste como «%s» y al volver como «%s». La sesión, con los mensajes guardados, es de un client id; con otro el broker abre una sesión vacía (session present = 0). Usa siempre MQTT_CLIENT_ID:\n%s\n%s\n%s",
                 en = "the first time you connected as '%s' and on your return as '%s'. The session, with the messages it kept, belongs to one client id; with another the broker opens an empty one (session present = 0). Always use MQTT_CLIENT_ID:\n%s\n%s\n%s" },
               first.client_id or "", again.connect.client_id or "", wire.block(first), wire.block(again.connect), wire.block(again.connack or again.connect))
      end
      if first.clean or again.connect.clean then
        local which = first.clean and c.first or again
        t:fail({ es = "%s pidió clean session 1: al desconectarte, el broker borró tu sesión y los %d mensajes que llegaron después no se guardaron para nadie. Al volver el CONNACK lo dice, session present = 0:\n%s\n%s\nUsa clean_session=False",
                 en = "%s asked for clean session 1: when you disconnected the broker wiped your session, and the %d messages that came afterwards were kept for nobody. On your return the CONNACK says so, session present = 0:\n%s\n%s\nUse clean_session=False" },
               ctx:text({ es = "tu CONNECT (conexión #%d)", en = "your CONNECT (connection #%d)" }, which.conn), #c.offline,
               wire.block(which.connect), wire.block(again.connack or again.connect))
      end
      if not sp then
        t:fail({ es = "al volver, el broker respondió session present = 0: no tenía ninguna sesión tuya guardada:\n%s\n%s",
                 en = "on your return the broker answered session present = 0: it had no session of yours:\n%s\n%s" },
               wire.block(again.connect), wire.block(again.connack or again.connect))
      end
      local ev, f = H.collector_sub(c, p)
      if f and (f.qos or 0) == 0 then
        t:fail({ es = "la sesión sí estaba (session present = 1), pero tu suscripción es QoS 0: los mensajes te tocan con QoS 0 y el broker no guarda QoS 0 para un cliente desconectado, así que no había nada en la cola. Suscríbete con qos=1:\n%s\n%s",
                 en = "the session was there (session present = 1), but your subscription is QoS 0: the messages reach you at QoS 0, and the broker keeps no QoS 0 message for a disconnected client, so the queue was empty. Subscribe with qos=1:\n%s\n%s" },
               wire.block(ev), wire.block(again.connack))
      end
      local delivered = #wire.select(c.events, function(e)
        return H.is_pkt(e, "PUBLISH", "down") and e.conn == again.conn
      end)
      t:fail({ es = "el broker respondió session present = 1 y el proxy vio %d PUBLISH hacia tu colector tras volver, pero faltan líneas, por ejemplo:\n    %s\nImprime cada mensaje como «TOPIC PAYLOAD» y haz flush",
               en = "the broker answered session present = 1 and the proxy saw %d PUBLISH packets going to your collector after its return, but lines are missing, for example:\n    %s\nPrint each message as 'TOPIC PAYLOAD' and flush" },
             delivered, short(missing[1] or "", 140))
    end,
  },

  -- producer, step 1: who it is and its Last Will, on every CONNECT.
  check {
    id = "producer-will", points = 1,
    title = { es = "Productor: su client id y un Last Will retenido en cada CONNECT",
              en = "Producer: its client id and a retained Last Will in every CONNECT" },
    run = function(t, ctx)
      local r, p = ctx.data.prod, ctx.p
      if #(r.connects or {}) == 0 then ctx:why_absent(t, { prog = r.prog, err = r.err, name = PRODUCER }) end
      local first = r.connects[1]
      for i, ev in ipairs(r.connects) do
        if ev.client_id ~= p.producer_id then
          t:fail({ es = "tu productor se conectó (CONNECT n.º %d) como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno. Con el mismo id en cada conexión, el broker le devuelve su sesión al volver:\n%s",
                   en = "your producer connected (CONNECT number %d) as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment. With the same id on every connection, the broker hands its session back when it returns:\n%s" },
                 i, ev.client_id or "", p.producer_id, wire.block(ev))
        end
      end
      if not first.will then
        t:fail({ es = "tu CONNECT no declara ningún Last Will. Si tu productor desaparece sin DISCONNECT (se queda sin corriente, pierde la red), nadie se entera. Antes de connect(): will_set(\"%s\", \"offline\", qos=1, retain=True):\n%s",
                 en = "your CONNECT declares no Last Will. If your producer vanishes without a DISCONNECT (a power cut, a lost network), nobody finds out. Before connect(): will_set(\"%s\", \"offline\", qos=1, retain=True):\n%s" },
               p.state_topic, wire.block(first))
      end
      if not first.will.retain then
        t:fail({ es = "tu Last Will (en %s) no es retenido: solo lo verá quien esté suscrito en el momento en que caes; un panel que se abra después no sabrá nada. Usa retain=True:\n%s",
                 en = "your Last Will (on %s) is not retained: only those subscribed at the moment you fall will see it; a dashboard opened later will know nothing. Use retain=True:\n%s" },
               first.will.topic or "?", wire.block(first))
      end
      for _, ev in ipairs(r.connects) do
        if not (ev.will and ev.will.retain) then
          t:fail({ es = "la conexión #%d ya no llevaba el Last Will retenido:\n%s", en = "connection #%d no longer carried the retained Last Will:\n%s" },
                 ev.conn, wire.block(ev))
        end
      end
      t:pass({ es = "tus %d CONNECT llevan MQTT_CLIENT_ID y declaran el Last Will «%s» en %s, QoS %d, retenido:\n%s",
               en = "your %d CONNECT packets carry MQTT_CLIENT_ID and declare the Last Will '%s' on %s, QoS %d, retained:\n%s" },
             #r.connects, short(first.will.payload, 40), first.will.topic or "?", first.will.qos or 0, wire.block(first))
    end,
  },

  -- producer, step 2: QoS 1, the payload, the pace.
  check {
    id = "producer-qos", points = 1,
    title = { es = "Productor: cada lectura con QoS 1", en = "Producer: every reading at QoS 1" },
    run = function(t, ctx)
      local r, p = ctx.data.prod, ctx.p
      if #(r.connects or {}) == 0 then ctx:why_absent(t, { prog = r.prog, err = r.err, name = PRODUCER }) end
      if #r.pubs == 0 then
        t:fail({ es = "tu productor no publicó nada en %s (%s)", en = "your producer published nothing on %s (%s)" },
               p.producer_topic, ctx:how_ended(r.prog))
      end
      local by = { [0] = {}, {}, {} }
      for _, ev in ipairs(r.pubs) do
        local q = by[ev.qos or 0]
        q[#q + 1] = ev
      end
      if #by[0] > 0 then
        t:fail({ es = "%d de tus %d PUBLISH en %s llevaban QoS 0, por ejemplo:\n%s\nCon QoS 0 nadie guarda la lectura: si el enlace cae, se pierde, y no hay PUBACK que esperar antes de salir. Publica con qos=1",
                 en = "%d of your %d PUBLISH packets on %s had QoS 0, for example:\n%s\nAt QoS 0 nobody keeps the reading: if the link falls it is lost, and there is no PUBACK to wait for before leaving. Publish with qos=1" },
               #by[0], #r.pubs, p.producer_topic, wire.block(by[0][1]))
      end
      if #by[2] > 0 then
        t:fail({ es = "%d de tus %d PUBLISH llevaban QoS 2, por ejemplo:\n%s\nQoS 2 cuesta cuatro paquetes por lectura para evitar un duplicado, y aquí un duplicado no hace daño: cada lectura lleva su id. Se pide QoS 1, el valor por defecto del curso",
                 en = "%d of your %d PUBLISH packets had QoS 2, for example:\n%s\nQoS 2 costs four packets per reading to avoid a duplicate, and here a duplicate does no harm: every reading carries its id. QoS 1 is asked for, the course's default" },
               #by[2], #r.pubs, wire.block(by[2][1]))
      end
      t:pass({ es = "tus %d PUBLISH en %s llevaban QoS 1:\n%s", en = "your %d PUBLISH packets on %s had QoS 1:\n%s" },
             #r.pubs, p.producer_topic, wire.block(r.pubs[1]))
    end,
  },

  check {
    id = "producer-readings", points = 1,
    title = { es = "Productor: lecturas JSON, una cada LAB_INTERVAL_MS", en = "Producer: JSON readings, one every LAB_INTERVAL_MS" },
    run = function(t, ctx)
      local r, p = ctx.data.prod, ctx.p
      if #(r.connects or {}) == 0 then ctx:why_absent(t, { prog = r.prog, err = r.err, name = PRODUCER }) end
      if #r.pubs == 0 then
        t:fail({ es = "tu productor no publicó nada en %s (%s)", en = "your producer published nothing on %s (%s)" },
               p.producer_topic, ctx:how_ended(r.prog))
      end
      local bad, why = H.bad_reading(r.pubs)
      if bad then
        t:fail({ es = "una lectura no es {\"id\": \"...\", \"ts\": <ms desde 1970>, \"v\": <número>} (%s):\n%s",
                 en = "a reading is not {\"id\": \"...\", \"ts\": <ms since 1970>, \"v\": <number>} (%s):\n%s" },
               ctx:text(why), wire.block(bad))
      end
      local gap, n = H.pace(r.pubs, r.n_down)
      if not gap then
        t:fail({ es = "tu productor solo envió %d lectura antes de que el kit parase el broker: no hay ritmo que medir (%s)",
                 en = "your producer sent only %d reading before the kit stopped the broker: there is no pace to measure (%s)" },
               n, ctx:how_ended(r.prog))
      end
      if gap < PACE_LO * p.interval_ms or gap > PACE_HI * p.interval_ms then
        t:fail({ es = "tus primeras %d lecturas salieron cada %.0f ms de media, y LAB_INTERVAL_MS es %d: usa el valor del entorno",
                 en = "your first %d readings went out every %.0f ms on average, and LAB_INTERVAL_MS is %d: use the value from the environment" },
               n, gap, p.interval_ms)
      end
      t:pass({ es = "%d PUBLISH con lecturas JSON bien formadas; antes de la caída, una cada %.0f ms de media (LAB_INTERVAL_MS = %d)",
               en = "%d PUBLISH packets with well-formed JSON readings; before the outage, one every %.0f ms on average (LAB_INTERVAL_MS = %d)" },
             #r.pubs, gap, p.interval_ms)
    end,
  },

  -- producer, step 3: the broker restart.
  check {
    id = "producer-survives", points = 3,
    title = { es = "Productor: ninguna lectura se pierde al reiniciar el broker",
              en = "Producer: no reading is lost when the broker restarts" },
    run = function(t, ctx)
      local r, p = ctx.data.prod, ctx.p
      if #(r.connects or {}) == 0 then ctx:why_absent(t, { prog = r.prog, err = r.err, name = PRODUCER }) end
      if not r.reached then
        t:fail({ es = "el kit reinicia el broker cuando ha visto %d de tus lecturas en %s, y tu productor solo envió %d (%s). Su salida de error:\n%s",
                 en = "the kit restarts the broker once it has seen %d of your readings on %s, and your producer sent only %d (%s). Its stderr:\n%s" },
               p.restart_after, p.producer_topic, #r.pubs, ctx:how_ended(r.prog), ctx:stderr_tail(r.prog))
      end
      if r.restart_err then
        t:fail({ es = "el kit no pudo volver a arrancar el broker: %s", en = "the kit could not start the broker again: %s" }, r.restart_err)
      end
      if r.sub_err then
        t:fail({ es = "el suscriptor del kit no pudo volver a conectarse al broker: %s", en = "the kit's subscriber could not connect to the broker again: %s" }, r.sub_err)
      end
      local cut_t = r.cut and r.cut.t or 0
      local qos0 = wire.select(r.pubs, { qos = 0 })
      if not r.back and #qos0 > 0 then
        t:fail({ es = "el broker cayó a %+.0f ms y volvió %.1f s después, y tu productor no se conectó de nuevo (%s). Tus lecturas iban con QoS 0:\n%s\nSin conexión, paho tira una lectura QoS 0 (publish() devuelve MQTT_ERR_NO_CONN) y no le queda nada pendiente: tu productor terminó su bucle con el broker caído y se fue antes del siguiente intento de reconexión. De %d lecturas, el suscriptor del kit recibió %d. Con qos=1 paho las guarda hasta su PUBACK, y esperar esos PUBACK lo mantiene en marcha hasta volver",
                 en = "the broker went down at %+.0f ms and came back %.1f s later, and your producer did not connect again (%s). Your readings went at QoS 0:\n%s\nWith no connection paho throws a QoS 0 reading away (publish() returns MQTT_ERR_NO_CONN) and has nothing left pending: your producer finished its loop with the broker down and left before its next reconnection attempt. Of %d readings, the kit's subscriber received %d. With qos=1 paho keeps them until their PUBACK, and waiting for those PUBACKs keeps it running until it is back" },
               cut_t, r.outage_s, ctx:how_ended(r.prog), wire.block(qos0[1]), p.count, r.arrived_n)
      end
      if not r.back then
        t:fail({ es = "el broker cayó a %+.0f ms y volvió %.1f s después, pero tu productor no se conectó de nuevo (%s). Reconecta solo: loop_start() de paho lo hace. Su salida de error:\n%s",
                 en = "the broker went down at %+.0f ms and came back %.1f s later, but your producer did not connect again (%s). Reconnect by yourself: paho's loop_start() does. Its stderr:\n%s" },
               cut_t, r.outage_s, ctx:how_ended(r.prog), ctx:stderr_tail(r.prog))
      end
      local story = ctx:text({ es = "el broker cayó a %+.0f ms, tras tu lectura n.º %d, y estuvo parado %.1f s; tu productor volvió %.1f s después del corte (conexión #%d, session present = %d)",
                               en = "the broker went down at %+.0f ms, after your reading number %d, and stayed down %.1f s; your producer came back %.1f s after the cut (connection #%d, session present = %d)" },
                             cut_t, p.restart_after, r.outage_s, (r.back.connect.t - cut_t) / 1000, r.back.conn,
                             r.back.connack.session_present and 1 or 0)
      if r.arrived_n == p.count then
        t:say({ es = "%s:\n%s", en = "%s:\n%s" }, story, wire.block(r.back.connack))
        t:say({ es = "el suscriptor del kit, con sesión persistente, recibió las %d lecturas; %d salieron por primera vez tras la reconexión (tu productor las guardó) y %d PUBLISH fueron reenvíos con DUP=1",
                en = "the kit's subscriber, with a persistent session, received all %d readings; %d went out for the first time after the reconnection (your producer kept them) and %d PUBLISH packets were re-sends with DUP=1" },
              p.count, r.late, r.resent)
        if r.copies > p.count then
          t:say({ es = "(%d copias en total: un repetido es el precio de QoS 1, e inofensivo porque cada lectura lleva su id)",
                  en = "(%d copies in all: a repeat is QoS 1's price, and harmless because each reading carries its id)" }, r.copies)
        end
        return
      end
      if r.arrived_n > p.count then
        t:fail({ es = "%s. El suscriptor recibió %d lecturas distintas, pero LAB_COUNT es %d: envía exactamente LAB_COUNT, cada una con su id, y el mismo id en cada reenvío",
                 en = "%s. The subscriber received %d different readings, but LAB_COUNT is %d: send exactly LAB_COUNT, each with its id, and the same id in every re-send" },
               story, r.arrived_n, p.count)
      end
      t:say({ es = "%s. Pero %d de las %d lecturas no llegaron al suscriptor del kit",
              en = "%s. But %d of the %d readings never reached the kit's subscriber" }, story, p.count - r.arrived_n, p.count)
      if #qos0 > 0 then
        t:fail({ es = "%d de tus %d PUBLISH llevaban QoS 0: sin conexión, paho los tira (publish() devuelve MQTT_ERR_NO_CONN) y nadie los reenvía. Publica con qos=1: paho los guarda hasta su PUBACK y los envía al volver",
                 en = "%d of your %d PUBLISH packets had QoS 0: with no connection paho throws them away (publish() returns MQTT_ERR_NO_CONN) and nobody sends them again. Publish with qos=1: paho keeps them until their PUBACK and sends them once back" },
               #qos0, #r.pubs)
      end
      if r.sent_ids < p.count then
        t:say({ es = "lecturas con id distinto que llegó a enviar tu productor: %d de %d (%s)",
                en = "readings with a distinct id your producer sent: %d of %d (%s)" }, r.sent_ids, p.count, ctx:how_ended(r.prog))
      end
      local lost = {}
      for id, ev in pairs(r.readings) do
        if not r.arrived[id] then lost[#lost + 1] = ev end
      end
      table.sort(lost, function(a, b) return a.i < b.i end)
      for i = 1, math.min(#lost, 3) do t:say(wire.block(lost[i])) end
      if #lost > 3 then t:say({ es = "    … y %d más", en = "    … and %d more" }, #lost - 3) end
      if #lost > 0 then
        t:say({ es = "esas lecturas salieron hacia el broker y no llegaron, y tu productor no las volvió a enviar tras reconectar: guárdalas hasta su PUBACK (paho lo hace con QoS 1)",
                en = "those readings went out towards the broker and never arrived, and your producer did not send them again after reconnecting: keep them until their PUBACK (paho does at QoS 1)" })
      end
      t:fail()
    end,
  },

  check {
    id = "producer-backoff", points = 1,
    title = { es = "Productor: espera entre intentos mientras el broker está caído",
              en = "Producer: waits between attempts while the broker is down" },
    run = function(t, ctx)
      local r = ctx.data.prod
      if #(r.connects or {}) == 0 then ctx:why_absent(t, { prog = r.prog, err = r.err, name = PRODUCER }) end
      if not r.reached or r.restart_err then
        t:fail({ es = "el broker no llegó a reiniciarse (mira «producer-survives»): no hay caída que mirar",
                 en = "the broker was never restarted (see 'producer-survives'): there is no outage to look at" })
      end
      local n, secs = r.attempts, r.outage_s
      local limit = math.floor(MAX_RATE * secs) + 1
      local t0 = r.cut and r.cut.t or 0
      if n > limit then
        local k, tk = 0, t0
        for _, ev in ipairs(r.events) do
          if ev.i > r.n_down and (ev.kind == "open" or ev.kind == "refused") then
            k, tk = k + 1, ev.t
            if k == math.min(n, 100) then break end
          end
        end
        t:fail({ es = "en los %.1f s que el broker estuvo caído, tu productor intentó conectarse %d veces (%.0f por segundo; los primeros %d intentos, en %.0f ms tras el corte). Cuando un broker vuelve de un reinicio, mil dispositivos haciendo eso lo tumban otra vez. Espera antes de cada intento y dobla la espera (1 s, 2 s, 4 s... con un tope): el loop_start() de paho ya lo hace (reconnect_delay_set)",
                 en = "in the %.1f s the broker was down, your producer tried to connect %d times (%.0f per second; the first %d attempts within %.0f ms of the cut). When a broker comes back from a restart, a thousand devices doing that knock it over again. Wait before each attempt and double the wait (1 s, 2 s, 4 s... with a ceiling): paho's loop_start() already does it (reconnect_delay_set)" },
               secs, n, n / secs, k, tk - t0)
      end
      if not r.back then
        -- Whether an attempt fell inside the outage before the program
        -- left is a matter of milliseconds: only the return is judged.
        t:fail({ es = "tu productor no volvió a conectarse (%s): una espera entre intentos solo se ve en un cliente que vuelve cuando el broker regresa (mira «producer-survives»)",
                 en = "your producer never connected again (%s): waiting between attempts only shows in a client that comes back once the broker does (see 'producer-survives')" },
               ctx:how_ended(r.prog))
      end
      t:pass({ es = "con el broker caído %.1f s, tu productor lo intentó %s (%s): eso es esperar entre intentos",
               en = "with the broker down for %.1f s, your producer tried %s (%s): that is waiting between attempts" },
             secs, ctx:times(n), H.attempt_story(ctx, r.events, r.n_down, t0, r.conns))
    end,
  },

  -- producer, step 4: every PUBACK, then exit 0.
  check {
    id = "producer-exit", points = 1,
    title = { es = "Productor: sale con código 0 cuando cada lectura tiene su PUBACK",
              en = "Producer: exits with code 0 once every reading has its PUBACK" },
    run = function(t, ctx)
      local r = ctx.data.prod
      if not r.prog then t:fail(r.err) end
      if r.prog:timed_out() then
        t:fail({ es = "tu productor seguía en marcha a los %d s y el kit lo paró: sal en cuanto todas las lecturas tengan su PUBACK. Su salida de error:\n%s",
                 en = "your producer was still running after %d s and the kit stopped it: exit as soon as every reading has its PUBACK. Its stderr:\n%s" },
               PRODUCER_TIMEOUT, ctx:stderr_tail(r.prog))
      end
      local code = r.prog:exit_code()
      if code ~= 0 then
        t:fail({ es = "%s (se esperaba 0). Su salida de error:\n%s", en = "%s (expected 0). Its stderr:\n%s" },
               ctx:how_ended(r.prog), ctx:stderr_tail(r.prog))
      end
      local open = H.unacked(r)
      if #open > 0 then
        local q0 = (open[1].qos or 0) == 0
        t:fail(q0 and { es = "tu productor salió con código 0, pero %d de tus %d lecturas no tuvieron nunca PUBACK: iban con QoS 0, que no tiene acuse, así que no sabes si llegaron. Por ejemplo:\n%s",
                        en = "your producer exited with code 0, but %d of your %d readings never had a PUBACK: they went at QoS 0, which has no acknowledgement, so you cannot know they arrived. For example:\n%s" }
                  or { es = "tu productor salió con código 0, pero %d de tus %d lecturas no tuvieron su PUBACK antes de que se fuera: cuenta los PUBACK (on_publish) y sal cuando estén todos. Por ejemplo:\n%s",
                       en = "your producer exited with code 0, but %d of your %d readings had no PUBACK before it left: count the PUBACKs (on_publish) and leave once all are in. For example:\n%s" },
               #open, r.sent_ids, wire.block(open[1]))
      end
      t:pass({ es = "las %d lecturas tuvieron su PUBACK y tu productor salió con código 0 a los %.1f s",
               en = "all %d readings had their PUBACK, and your producer exited with code 0 after %.1f s" }, r.sent_ids, r.prog:runtime())
    end,
  },
}

-- Guided mode (mqlab start 06): a collector with a persistent session,
-- messages published while it is away, and a broker restart on Enter
-- before it comes back: the CONNACK says session present and the queue
-- is delivered.
local guide = {
  step {
    id = "collector",
    title = { es = "Un colector con sesión persistente", en = "A collector with a persistent session" },
    text = {
      es = "En otra terminal, un colector con el client id {{collector_id}}, clean session 0 (-c) y QoS 1:\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{collector_id}} -c -q 1 -t '{{collector_topic}}' -v",
      en = "In another terminal, a collector with the client id {{collector_id}}, clean session 0 (-c) and QoS 1:\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{collector_id}} -c -q 1 -t '{{collector_topic}}' -v",
    },
    on = function(ev, ctx) return H.guide_collector(ev, ctx) end,
  },
  step {
    id = "away",
    title = { es = "Publica mientras el colector no está", en = "Publish while the collector is away" },
    text = {
      es = "Para el colector (Ctrl-C en su terminal). Con él fuera, publica una lectura con QoS 1 desde otro cliente:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i pub-{{hex}} -t '{{zone_root}}/sensor-01/temp' -q 1 -m hola-1\n\nEl broker la guarda en la sesión del colector.",
      en = "Stop the collector (Ctrl-C in its terminal). With it away, publish a reading at QoS 1 from another client:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i pub-{{hex}} -t '{{zone_root}}/sensor-01/temp' -q 1 -m hola-1\n\nThe broker keeps it in the collector's session.",
    },
    on = function(ev, ctx) return H.guide_away(ev, ctx) end,
  },
  step {
    id = "restart",
    title = { es = "El broker se reinicia; el colector vuelve", en = "The broker restarts; the collector comes back" },
    text = {
      es = "Reinicio el broker: este perfil guarda en disco las sesiones y sus colas. Después, arranca el colector otra vez con la misma orden del paso 1 y mira el CONNACK (session present) y lo que imprime.",
      en = "I restart the broker: this profile keeps sessions and their queues on disk. Then start the collector again with the same command as in step 1, and watch the CONNACK (session present) and what it prints.",
    },
    prompt = { es = "Pulsa Enter y reinicio el broker.", en = "Press Enter and I restart the broker." },
    act = function(ctx) return H.guide_restart(ctx) end,
    on = function(ev, ctx) return H.guide_back(ev, ctx) end,
  },
}

---------------------------------------------------------------- guided mode

local function both(es, en) return { es = es, en = en } end

-- Whether a topic is one of those the collector's filter takes.
function H.guide_matches(p, topic)
  return type(topic) == "string" and topic:match("^" .. p.zone_root:gsub("%p", "%%%0") .. "/[^/]+/temp$") ~= nil
end

-- Keep, across steps, which collector connections are open and which
-- messages were published for it while it was away.
function H.guide_track(ev, ctx)
  local p, d = ctx.p, ctx.data
  d.col_open = d.col_open or {}
  d.queued = d.queued or {}
  if ev.kind == "close" then d.col_open[ev.conn] = nil end
  if ev.kind == "packet" and ev.type == "CONNECT" and ev.dir == "up" and ev.client_id == p.collector_id then
    d.col_open[ev.conn] = true
  end
end

-- Step 1: CONNECT with the collector's id and clean session 0, and a
-- SUBSCRIBE to its filter at QoS 1 or 2.
function H.guide_collector(ev, ctx)
  local p, d = ctx.p, ctx.data
  H.guide_track(ev, ctx)
  if ev.kind ~= "packet" or ev.dir ~= "up" then return nil end
  if ev.type == "CONNECT" then
    d.clean = d.clean or {}
    d.clean[ev.conn] = ev.clean
    if ev.client_id ~= p.collector_id then
      return false, both(string.format("ese CONNECT usa el client id «%s»: la sesión es de un client id, y el del colector es %s (-i)", ev.client_id or "", p.collector_id),
                         string.format("that CONNECT uses client id '%s': a session belongs to one client id, and the collector's is %s (-i)", ev.client_id or "", p.collector_id))
    end
    if ev.clean then
      return false, both("tu CONNECT pide clean session 1: el broker borrará la suscripción y la cola en cuanto te desconectes, y lo publicado mientras no estás se pierde. Añade -c (clean session 0)",
                         "your CONNECT asks for clean session 1: the broker will wipe the subscription and the queue as soon as you disconnect, and what is published while you are away is lost. Add -c (clean session 0)")
    end
    return nil
  end
  if ev.type ~= "SUBSCRIBE" or ev.client ~= p.collector_id or (d.clean and d.clean[ev.conn]) then return nil end
  for _, f in ipairs(ev.filters or {}) do
    if f.filter ~= p.collector_topic then
      return false, both(string.format("te suscribiste a %s; el colector escucha %s", f.filter, p.collector_topic),
                         string.format("you subscribed to %s; the collector listens to %s", f.filter, p.collector_topic))
    end
    if (f.qos or 0) == 0 then
      return false, both("tu SUBSCRIBE pidió QoS 0: el broker no guarda mensajes QoS 0 para un cliente ausente. Usa -q 1",
                         "your SUBSCRIBE asked for QoS 0: the broker keeps no QoS 0 message for a client that is away. Use -q 1")
    end
    return true, both(string.format("«%s» con clean session 0 y suscrito a %s con QoS %d: el broker guardará su sesión", p.collector_id, p.collector_topic, f.qos),
                      string.format("'%s' with clean session 0, subscribed to %s at QoS %d: the broker will keep its session", p.collector_id, p.collector_topic, f.qos))
  end
end

-- Step 2: with no collector connection open, a QoS 1 PUBLISH on a topic
-- its filter takes, from another client, acknowledged by the broker.
function H.guide_away(ev, ctx)
  local p, d = ctx.p, ctx.data
  local was_collector = ev.kind == "close" and d.col_open and d.col_open[ev.conn]
  H.guide_track(ev, ctx)
  if was_collector and not next(d.col_open) and not d.said_gone then
    d.said_gone = true
    return false, both("tu colector se ha ido: ahora publica", "your collector is gone: now publish")
  end
  if ev.kind ~= "packet" then return nil end
  d.away_pubs = d.away_pubs or {}
  if ev.type == "CONNECT" and ev.dir == "up" and ev.client_id == p.collector_id and ev.clean then
    return false, both("un cliente con el id del colector y clean session 1 acaba de borrar su sesión: la suscripción se ha perdido. Vuelve a conectar el colector como en el paso 1 (-c), páralo y publica",
                       "a client with the collector's id and clean session 1 has just wiped its session: the subscription is gone. Connect the collector again as in step 1 (-c), stop it and publish")
  end
  if ev.type == "PUBLISH" and ev.dir == "up" then
    if ev.client == p.collector_id then
      return false, both("ese PUBLISH viene de un cliente con el id del colector: al conectarse ocupó su sesión. Publica con otro id (-i pub-...)",
                         "that PUBLISH comes from a client with the collector's id: connecting took its session over. Publish with another id (-i pub-...)")
    end
    if not H.guide_matches(p, ev.topic) then
      return false, both(string.format("publicaste en %s, que no entra en el filtro del colector (%s)", ev.topic or "", p.collector_topic),
                         string.format("you published on %s, which the collector's filter (%s) does not take", ev.topic or "", p.collector_topic))
    end
    if next(d.col_open) then
      return false, both("tu colector sigue conectado, así que lo recibe en directo. Páralo primero (Ctrl-C) y publica mientras no está",
                         "your collector is still connected, so it gets it live. Stop it first (Ctrl-C) and publish while it is away")
    end
    if (ev.qos or 0) == 0 then
      return false, both("publicaste con QoS 0: el broker no guarda mensajes QoS 0 para un cliente ausente, y este se pierde. Usa -q 1",
                         "you published at QoS 0: the broker keeps no QoS 0 message for a client that is away, and this one is lost. Use -q 1")
    end
    d.away_pubs[ev.conn .. ":" .. tostring(ev.id)] = ev
    return nil
  end
  if ev.type == "PUBACK" and ev.dir == "down" then
    local pub = d.away_pubs[ev.conn .. ":" .. tostring(ev.id)]
    if pub then
      d.queued[pub.topic .. " " .. (pub.payload or "")] = ev.i
      return true, both(string.format("%s %s publicado con QoS 1 y confirmado (PUBACK) con el colector fuera: el broker lo guarda en su sesión", pub.topic, pub.payload or ""),
                        string.format("%s %s published at QoS 1 and acknowledged (PUBACK) with the collector away: the broker keeps it in its session", pub.topic, pub.payload or ""))
    end
  end
end

-- Step 3, on Enter: restart the broker (stop, then start on the same
-- folder). If the collector already came back and took its queue before
-- the Enter, say so: there is nothing left to wait for.
function H.guide_restart(ctx)
  local p, d = ctx.p, ctx.data
  local open, got = false, false
  for _, ev in ipairs(ctx.proxy:events()) do
    H.guide_track(ev, ctx)
    local kept = ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "down" and ev.client == p.collector_id
                 and d.queued[(ev.topic or "") .. " " .. (ev.payload or "")]
    if kept and ev.i > kept then
      got = true
    end
  end
  open = next(d.col_open) ~= nil
  local ok, err = ctx.broker:restart()
  if not ok then
    return both("no pude reiniciar el broker: " .. tostring(err), "I could not restart the broker: " .. tostring(err))
  end
  if got then
    d.queued = {}
    return both("Broker reiniciado. Tu colector ya había vuelto y recibido lo guardado antes del Enter: páralo, publica otra vez con QoS 1 (paso 2) y arráncalo de nuevo.",
                "Broker restarted. Your collector had already come back and got what was kept before the Enter: stop it, publish again at QoS 1 (step 2) and start it once more.")
  end
  if open then
    return both("Broker reiniciado. Tu colector estaba conectado y se ha caído con él; si vuelve solo, se verá aquí.",
                "Broker restarted. Your collector was connected and went down with it; if it comes back by itself, it shows here.")
  end
  return both("Broker reiniciado, con las sesiones que guardaba en disco. Ahora arranca el colector.",
              "Broker restarted, with the sessions it kept on disk. Now start the collector.")
end

-- Step 3: the collector back with its id and clean session 0; the
-- CONNACK says session present, and the message kept for it arrives.
function H.guide_back(ev, ctx)
  local p, d = ctx.p, ctx.data
  H.guide_track(ev, ctx)
  if ev.kind ~= "packet" then return nil end
  d.back = d.back or {}
  if ev.type == "CONNECT" and ev.dir == "up" then
    if ev.client_id == p.collector_id and ev.clean then
      d.queued = {}
      return false, both("el colector volvió con clean session 1: el broker ha tirado su sesión y lo que guardaba en ella. Repite el paso 2 (colector con -c, páralo, publica con -q 1) y vuelve con -c",
                         "the collector came back with clean session 1: the broker has thrown its session away, with what it kept in it. Do step 2 again (collector with -c, stop it, publish with -q 1) and come back with -c")
    end
    if ev.client_id == p.collector_id then d.back[ev.conn] = true end
    return nil
  end
  if ev.type == "SUBSCRIBE" and ev.dir == "up" and ev.client ~= p.collector_id then
    for _, f in ipairs(ev.filters or {}) do
      if f.filter == p.collector_topic then
        local es, en = string.format("como «%s»", ev.client or "?"), string.format("as '%s'", ev.client or "?")
        if (ev.client or "") == "" then
          es, en = "sin client id (el broker se inventa uno)", "with no client id (the broker makes one up)"
        end
        return false, both(string.format("ese suscriptor se conectó %s: un client id nuevo es una sesión nueva y vacía. Lo guardado espera a %s (-i %s -c)", es, p.collector_id, p.collector_id),
                           string.format("that subscriber connected %s: a new client id is a new, empty session. What was kept waits for %s (-i %s -c)", en, p.collector_id, p.collector_id))
      end
    end
    return nil
  end
  if ev.type == "PUBLISH" and ev.dir == "up" and ev.client ~= p.collector_id and H.guide_matches(p, ev.topic)
     and not next(d.col_open) and (ev.qos or 0) > 0 then
    -- Published again while away (after a wrong return): kept as well.
    d.queued[ev.topic .. " " .. (ev.payload or "")] = ev.i
    return nil
  end
  if ev.type == "CONNACK" and ev.dir == "down" and d.back[ev.conn] then
    if not ev.session_present then
      return false, both("el broker respondió session present 0: no tenía ninguna sesión de este client id. ¿Se conectó antes alguien con este id y clean session 1?",
                         "the broker answered session present 0: it had no session for this client id. Did something connect with this id and clean session 1 before?")
    end
    d.sp_conn = ev.conn
    return false, both("CONNACK con session present 1: el broker conservó la sesión también tras reiniciarse",
                       "CONNACK with session present 1: the broker kept the session, even across its restart")
  end
  if ev.type == "PUBLISH" and ev.dir == "down" and ev.conn == d.sp_conn
     and d.queued[(ev.topic or "") .. " " .. (ev.payload or "")] then
    return true, both(string.format("el colector recibió %s %s, publicado mientras no estaba y guardado a través del reinicio: nada se perdió", ev.topic or "", ev.payload or ""),
                      string.format("the collector received %s %s, published while it was away and kept across the restart: nothing was lost", ev.topic or "", ev.payload or ""))
  end
end

---------------------------------------------------------------- helpers

function H.is_pkt(ev, typ, dir)
  return ev.kind == "packet" and ev.type == typ and (dir == nil or ev.dir == dir)
end

-- The printed lines of a program's output, trailing blanks removed.
function H.line_set(out)
  local set, list = {}, {}
  for line in (out or ""):gmatch("[^\n]+") do
    line = line:gsub("%s+$", "")
    if line ~= "" then
      set[line] = true
      list[#list + 1] = line
    end
  end
  return set, list
end

-- Which of the wanted "TOPIC PAYLOAD" lines appear in out.
function H.printed(out, want)
  local set = H.line_set(out)
  local got, missing = 0, {}
  for _, w in ipairs(want) do
    if set[w] then got = got + 1 else missing[#missing + 1] = w end
  end
  return got, missing
end

-- A message the kit publishes for the collector: one of the zone's
-- sensors, with a reading payload of the course's shape.
function H.kit_message(p, n, tag)
  local sensor = p.sensors[(n - 1) % #p.sensors + 1]
  local topic = p.zone_root .. "/" .. sensor .. "/temp"
  local ts = math.tointeger(math.floor(kit.wall_ms())) or 0
  local payload = string.format('{"id":"%s-%s%d","ts":%d,"v":%.1f}', sensor, tag, n, ts, 19.5 + n * 0.4)
  return topic, payload
end

-- The first entry of a SUBSCRIBE for filter, or nil.
local function sub_entry(ev, filter)
  for _, f in ipairs(ev.filters or {}) do
    if f.filter == filter then return f end
  end
end

-- The collector's subscription to its filter: the SUBSCRIBE event and
-- its entry for MQTT_TOPIC (nil when it never subscribed to it).
function H.collector_sub(c, p)
  for _, ev in ipairs(c.subscribes or {}) do
    local f = sub_entry(ev, p.collector_topic)
    if f then return ev, f end
  end
end

-- The first connection opened at or after event index `from`.
local function conn_from(conns, from)
  for _, c in ipairs(conns) do
    if c.connect and c.connect.i >= from then return c end
  end
end

-- The last connection opened before event index `mark`.
local function conn_before(conns, mark)
  local found
  for _, c in ipairs(conns) do
    if c.connect and c.connect.i < mark then found = c end
  end
  return found
end

-- "+1.0 s refused, +3.0 s accepted": the attempts after t0 (ms), up to
-- the first one the broker accepted.
function H.attempt_story(ctx, events, from, t0, conns)
  local accepted = {}
  for _, c in ipairs(conns) do
    if c.connack and (c.connack.rc or c.connack.reason or 0) == 0 then accepted[c.conn] = true end
  end
  local out = {}
  for _, ev in ipairs(events) do
    if ev.i > from and (ev.kind == "open" or ev.kind == "refused") then
      local ok = ev.kind == "open" and accepted[ev.conn]
      out[#out + 1] = ctx:text(ok and { es = "+%.1f s aceptado", en = "+%.1f s accepted" }
                                  or { es = "+%.1f s sin broker", en = "+%.1f s no broker" }, (ev.t - t0) / 1000)
      if ok then break end
      if #out >= 6 then
        out[#out + 1] = "…"
        break
      end
    end
  end
  return table.concat(out, ", ")
end

-- The first reading PUBLISH whose payload is not a reading, and why
-- (a {es, en} text); nil when all are.
function H.bad_reading(pubs)
  local now = kit.wall_ms()
  for _, ev in ipairs(pubs) do
    local rd, why = wire.reading(ev.payload or "")
    if not rd then
      return ev, ({ json = { es = "no es un objeto JSON", en = "it is not a JSON object" },
                    id = { es = "falta \"id\" o no es un texto", en = "\"id\" is missing or not a string" },
                    ts = { es = "falta \"ts\" o no es un número", en = "\"ts\" is missing or not a number" },
                    v = { es = "falta \"v\" o no es un número", en = "\"v\" is missing or not a number" } })[why]
                 or { es = why, en = why }
    end
    if math.abs(rd.ts - now) > DAY_MS then
      if math.abs(rd.ts * 1000 - now) <= DAY_MS then
        return ev, { es = "\"ts\" va en segundos; se pide en milisegundos desde 1970", en = "\"ts\" is in seconds; milliseconds since 1970 are asked for" }
      end
      return ev, { es = "\"ts\" no son los milisegundos desde 1970 de ahora", en = "\"ts\" is not the present time in milliseconds since 1970" }
    end
  end
end

-- The mean gap (ms) between the first readings, those sent before the
-- broker went down (all of them if it never did), and how many there
-- were; nil when fewer than two. Only fresh PUBLISH packets (DUP=0) on
-- the first connection that sent any: re-sends and a queue flushed on
-- reconnecting say nothing about the program's pace.
function H.pace(pubs, n_down)
  local first
  for _, ev in ipairs(pubs) do
    if not ev.dup and (not n_down or ev.i <= n_down) and (first == nil or ev.conn == first[1].conn) then
      first = first or {}
      first[#first + 1] = ev
    end
  end
  local n = first and #first or 0
  if n < 2 then return nil, n end
  -- From the readings' own ts (when each was taken) when they are in ms:
  -- a reading queued before the CONNACK leaves late on a busy machine,
  -- and the next one, on time, would look early on the wire.
  local r1, rn = wire.reading(first[1].payload or ""), wire.reading(first[n].payload or "")
  if r1 and rn and r1.ts >= 1e12 and rn.ts >= 1e12 then return (rn.ts - r1.ts) / (n - 1), n end
  return (first[n].t - first[1].t) / (n - 1), n
end

-- The readings (one PUBLISH per distinct id, the first) that no PUBLISH
-- carrying their id ever had a PUBACK for.
function H.unacked(r)
  local acked = {}
  for _, ev in ipairs(r.events) do
    if H.is_pkt(ev, "PUBACK", "down") and ev.fate == "sent" then acked[ev.conn .. "/" .. tostring(ev.id)] = true end
  end
  local done = {}
  for _, ev in ipairs(r.pubs) do
    local rd = wire.reading(ev.payload or "")
    if rd and (ev.qos or 0) > 0 and acked[ev.conn .. "/" .. tostring(ev.id)] then done[rd.id] = true end
  end
  local open = {}
  for id, ev in pairs(r.readings) do
    if not done[id] then open[#open + 1] = ev end
  end
  table.sort(open, function(a, b) return a.i < b.i end)
  return open
end

---------------------------------------------------------------- the collector's run

-- Run the collector through its two phases; keep the evidence in d.col.
function H.run_collector(ctx)
  local p, px = ctx.p, ctx.proxy
  local c = { from = px:count() + 1 }
  ctx.data.col = c
  local pub = assert(ctx:client { id = "mqlab-pub-" .. p.hex, clean = true })

  c.prog, c.err = ctx:program("collector", {
    timeout = COLLECTOR_TIMEOUT,
    env = { MQTT_CLIENT_ID = p.collector_id, MQTT_TOPIC = p.collector_topic, LAB_COUNT = false, LAB_INTERVAL_MS = false },
  })
  if not c.prog then return end

  -- 1. Live: once subscribed, a few messages that must be printed.
  ctx:status({ es = "tu collector: esperando su SUBSCRIBE…", en = "your collector: waiting for its SUBSCRIBE…" })
  c.suback = ctx:wait_running(c.prog, { kind = "packet", type = "SUBACK", dir = "down" }, SUBSCRIBE_S, c.from)
  c.left_early = not c.suback and not c.prog:running()
  if c.suback then
    c.live = {}
    for n = 1, p.live_n do
      local topic, payload = H.kit_message(p, n, "L")
      assert(pub:publish(topic, payload, { qos = 1 }))
      c.live[n] = topic .. " " .. payload
    end
    ctx:wait_for(function() return (H.printed(c.prog:stdout(), c.live)) == #c.live end, PRINT_S)
    c.live_out = c.prog:stdout()
  end

  -- 2. Offline: SIGTERM, messages while it is away, then the same program again.
  if c.suback and c.prog:running() then
    local function gone()
      local n = 0
      for _, ev in ipairs(ctx:brokerlog()) do
        if ev.kind == "disconnected" then n = n + 1 end
      end
      return n
    end
    local before = gone()
    c.term_mark = px:count() + 1
    ctx:status({ es = "parando tu collector (SIGTERM) y publicando mientras no está…", en = "stopping your collector (SIGTERM) and publishing while it is away…" })
    c.prog:signal("TERM")
    c.left_on_term = c.prog:wait(TERM_S) == true
    if not c.left_on_term then c.prog:signal("KILL"); c.prog:wait(2) end
    c.term_code, c.term_sig = c.prog:exit_code()
    -- The broker must know the client is offline before the messages go,
    -- or they would be written to a connection that is already dead.
    c.broker_saw_leave = ctx:wait_for(function() return gone() > before end, 3)
    c.offline = {}
    for n = 1, p.offline_n do
      local topic, payload = H.kit_message(p, n, "Q")
      assert(pub:publish(topic, payload, { qos = 1 }))
      c.offline[n] = topic .. " " .. payload
    end
    c.out_before = #c.prog:stdout()
    c.restart_from = px:count() + 1
    ctx:status({ es = "reiniciando tu collector: esperando los mensajes de su sesión…", en = "restarting your collector: waiting for its session's messages…" })
    c.restarted, c.restart_err = c.prog:restart()
    if c.restarted then
      -- Until every message is printed; or until the CONNACK says the
      -- session is gone, since then nothing was kept to come.
      local function no_session(ev)
        return H.is_pkt(ev, "CONNACK", "down") and not ev.session_present
      end
      ctx:wait_for(function()
        return (H.printed(c.prog:stdout():sub(c.out_before + 1), c.offline)) == #c.offline
          or px:wait(no_session, 0, c.restart_from)
      end, PRINT_S + 1)
    end
    c.offline_out = c.prog:stdout():sub(c.out_before + 1)
  end
  c.prog:stop()
  pub:close()

  c.events = px:events(c.from, px:count())
  c.conns = {}
  for _, x in ipairs(wire.connections(c.events)) do
    if x.connect then c.conns[#c.conns + 1] = x end
  end
  c.first = c.conns[1]
  c.again = c.restart_from and conn_from(c.conns, c.restart_from)
  c.term_conn = c.term_mark and conn_before(c.conns, c.term_mark)
  c.subscribes = wire.select(c.events, { kind = "packet", type = "SUBSCRIBE", dir = "up" })
end

---------------------------------------------------------------- the producer's run

function H.run_producer(ctx)
  local p, px = ctx.p, ctx.proxy
  local r = { arrived = {}, arrived_n = 0, copies = 0 }
  ctx.data.prod = r
  local sub_id = "mqlab-sub-" .. p.hex
  local marker = "mqlab/sync/" .. p.hex
  local function take(m)
    if m.topic ~= p.producer_topic then return end
    r.copies = r.copies + 1
    local rd = wire.reading(m.payload or "")
    if rd then
      if not r.arrived[rd.id] then r.arrived_n = r.arrived_n + 1 end
      r.arrived[rd.id] = (r.arrived[rd.id] or 0) + 1
    end
  end
  local sub = assert(ctx:client { id = sub_id, clean = false })
  assert(sub:subscribe(p.producer_topic, 1))
  assert(sub:subscribe(marker, 1))

  r.from = px:count() + 1
  r.prog, r.err = ctx:program("producer", {
    timeout = PRODUCER_TIMEOUT,
    env = { MQTT_CLIENT_ID = p.producer_id, MQTT_TOPIC = p.producer_topic },
  })
  if not r.prog then return end
  ctx:status({ es = "tu producer: esperando %d lecturas antes de parar el broker…", en = "your producer: waiting for %d readings before stopping the broker…" }, p.restart_after)

  -- The fault, placed by packet count: after the restart_after-th reading.
  local function reading_up(ev)
    return H.is_pkt(ev, "PUBLISH", "up") and ev.topic == p.producer_topic
  end
  local t_end = kit.now() + 10 + p.restart_after * p.interval_ms / 1000
  repeat
    r.reached = px:wait_count(reading_up, p.restart_after, 0.1, r.from)
  until r.reached or not r.prog:running() or kit.now() >= t_end

  if r.reached then
    r.n_down = px:count()
    local t0 = kit.now()
    ctx:status({ es = "broker parado %g s: tu producer debe seguir y reconectarse…", en = "broker down for %g s: your producer must keep going and reconnect…" }, OUTAGE_S)
    ctx.broker:stop()
    ctx:sleep(OUTAGE_S)          -- the outage itself: the broker stays down this long
    r.n_restart = px:count()
    r.outage_s = kit.now() - t0
    local ok, err = ctx.broker:restart()
    if not ok then r.restart_err = err or "?" end
    -- What the kit's subscriber got before the stop, then the same
    -- session again: the broker kept it, and the queue, on disk.
    for _, m in ipairs(sub:drain()) do take(m) end
    sub:close()
    if ok then
      sub, r.sub_err = ctx:client { id = sub_id, clean = false }
      if sub then
        assert(sub:subscribe(p.producer_topic, 1))
        assert(sub:subscribe(marker, 1))
      end
    else
      sub = nil
    end
  end

  ctx:status({ es = "esperando a que tu producer termine…", en = "waiting for your producer to finish…" })
  r.prog:wait(PRODUCER_TIMEOUT + 5)
  if sub then
    -- A message of its own: it comes back after every delivery the broker
    -- had queued for this subscriber before it.
    if sub:publish(marker, "end", { qos = 1 }) then sub:wait(5, marker) end
    for _, m in ipairs(sub:drain()) do take(m) end
  end

  r.events = px:events(r.from, px:count())
  r.connects = wire.select(r.events, { kind = "packet", type = "CONNECT", dir = "up" })
  r.conns = {}
  for _, x in ipairs(wire.connections(r.events)) do
    if x.connect then r.conns[#r.conns + 1] = x end
  end
  r.pubs = wire.select(r.events, reading_up)
  r.readings, r.sent_ids, r.resent, r.late = {}, 0, 0, 0
  for _, ev in ipairs(r.pubs) do
    if ev.dup then r.resent = r.resent + 1 end
    local rd = wire.reading(ev.payload or "")
    if rd and not r.readings[rd.id] then
      r.readings[rd.id] = ev
      r.sent_ids = r.sent_ids + 1
      -- Published while the broker was down: first on the wire after it.
      if r.n_down and ev.i > r.n_down then r.late = r.late + 1 end
    end
  end
  if r.n_down then
    -- The cut: the producer's connection closing once the broker went.
    for _, ev in ipairs(r.events) do
      if ev.i > r.n_down and ev.kind == "close" then r.cut = ev break end
    end
    r.attempts = 0
    for _, ev in ipairs(r.events) do
      if ev.i > r.n_down and ev.i <= r.n_restart and (ev.kind == "open" or ev.kind == "refused") then
        r.attempts = r.attempts + 1
      end
    end
    for _, x in ipairs(r.conns) do
      if x.connect.i > r.n_restart and x.connack and (x.connack.rc or 0) == 0 then r.back = x break end
    end
  end
end

---------------------------------------------------------------- the lab

-- The collector first, then the producer, one at a time; each phase
-- keeps its part of the trace.
local function setup(ctx)
  H.run_collector(ctx)
  H.run_producer(ctx)
end

return lab {
  id = "06-sessions",
  title = { es = "Sesiones persistentes y reinicios del broker",
            en = "Persistent sessions and broker restarts" },
  submission = { programs = { "collector", "producer" } },
  broker = "persistence",
  proxy = true,
  setup_timeout = 90,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,

  hints = {
    { es = "La sesión es del client id: mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False), en los dos programas. Con clean_session=True el broker olvida tu suscripción y tu cola al desconectarte.",
      en = "The session belongs to the client id: mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False), in both programs. With clean_session=True the broker forgets your subscription and your queue when you disconnect." },
    { es = "Colector: suscríbete en on_connect con client.subscribe(topic, qos=1), imprime en on_message con print(f\"{msg.topic} {msg.payload.decode()}\", flush=True) y deja la red a client.loop_start(). Para salir con SIGTERM: signal.signal(signal.SIGTERM, ...) que avise al hilo principal, y entonces disconnect() y loop_stop().",
      en = "Collector: subscribe in on_connect with client.subscribe(topic, qos=1), print in on_message with print(f\"{msg.topic} {msg.payload.decode()}\", flush=True) and leave the network to client.loop_start(). To leave on SIGTERM: signal.signal(signal.SIGTERM, ...) that tells the main thread, then disconnect() and loop_stop()." },
    { es = "Un mensaje llega con el menor QoS entre el del PUBLISH y el de tu suscripción, y Mosquitto no guarda mensajes QoS 0 para un cliente desconectado: para que te esperen, suscríbete con QoS 1.",
      en = "A message arrives at the lower of the PUBLISH's QoS and your subscription's, and Mosquitto keeps no QoS 0 message for a disconnected client: for messages to wait for you, subscribe at QoS 1." },
    { es = "Productor: client.will_set(\"{{state_topic}}\", \"offline\", qos=1, retain=True) antes de connect(). Publica con qos=1 y loop_start(): cuando el broker cae, paho guarda las lecturas, se reconecta con back-off (1 s, 2 s, 4 s...) y las envía al volver.",
      en = "Producer: client.will_set(\"{{state_topic}}\", \"offline\", qos=1, retain=True) before connect(). Publish with qos=1 and loop_start(): when the broker goes down, paho keeps the readings, reconnects with back-off (1 s, 2 s, 4 s...) and sends them once it is back." },
    { es = "No llames a reconnect() en un bucle sin pausa: con el broker caído, cada intento falla al instante y harías cientos por segundo. Si llevas tú el bucle de red, espera entre intentos y dobla la espera; o deja que lo haga loop_start(). Para saber cuándo salir, cuenta los PUBACK en on_publish.",
      en = "Do not call reconnect() in a loop with no pause: with the broker down each attempt fails at once, and you would make hundreds a second. If you run the network loop yourself, wait between attempts and double the wait; or let loop_start() do it. To know when to leave, count the PUBACKs in on_publish." },
  },
}
