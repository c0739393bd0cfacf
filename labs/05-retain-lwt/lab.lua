-- Lab 05: presence with a retained state and a Last Will.
--
-- The student's `presence` program is a device that runs until SIGTERM.
-- MQTT_TOPIC is the device's root; its state lives on MQTT_TOPIC/estado
-- (`online` / `offline`, retained) and its readings on MQTT_TOPIC/temp
-- (not retained). The Last Will `offline` (retained, QoS 1) goes in the
-- CONNECT, so the broker speaks for the device when it dies without a
-- word. A clean DISCONNECT discards the will, so on SIGTERM the program
-- must say `offline` itself.
--
-- One run of the program, in four acts, each waiting for what it needs
-- on the wire rather than for a fixed time:
--   1. start: it connects and says `online`; a late subscriber (a kit
--      client that subscribes afterwards) must get `online` retained;
--   2. SIGKILL, a death without a word: the kit's watcher (subscribed
--      to estado from the start) must hear the will `offline`, and a
--      late subscriber must find `offline` retained;
--   3. restart, `online` again, then the proxy cuts the link: the will
--      is delivered again, and a good program reconnects by itself and
--      says `online` once more, retained: a late subscriber finds it;
--   4. SIGTERM: the program publishes `offline` (retained) before its
--      DISCONNECT, a late subscriber sees `offline`, and it exits 0.
-- The kit's clients talk to the broker directly; only the program goes
-- through the proxy, so every connection in the trace is the program's.
-- The checks only judge what setup recorded in ctx.data. The plan
-- (params, then the checks in the order a student meets them) comes
-- first; the helpers (H) and the four acts follow, and setup is last.

local wire = require "mqlab.wire"
local kit = require "mqlab.kit"
local short = require("mqlab.text").short

local H = {}             -- helpers and the four acts, defined below the plan

local PROG_TIMEOUT = 40   -- seconds each run of the program may last
local KA_LIMIT = 60       -- the broker must give up on a dead device within this (s)
local START_WAIT = 8      -- seconds for a (re)started program to CONNECT
local SAY_WAIT = 4        -- seconds for `online` after a CONNECT
local WILL_WAIT = 2       -- seconds for a will to reach the watcher (it takes a few ms)
local BACK_WAIT = 8       -- seconds to reconnect after the cut (paho waits 1 s first)
local TERM_WAIT = 5       -- seconds to leave after SIGTERM
local LATE_WAIT = 1.5     -- seconds a late subscriber waits for the retained state
local PACE_LO, PACE_HI = 0.5, 2  -- a pace within these factors of LAB_INTERVAL_MS is kept
local DAY_MS = 86400000   -- a reading's ts must be within a day of the kit's clock

---------------------------------------------------------------- the plan

local function params(rng)
  local plant = rng:pick({ "planta-1", "planta-2", "planta-3", "planta-4" })
  local zone = rng:pick({ "norte", "sur", "este", "oeste" })
  local device = string.format("sensor-%02d", rng:int(1, 40))
  local hex = rng:hex(4)
  local root = "acme/v1/" .. plant .. "/" .. zone .. "/" .. device
  return {
    plant = plant, zone = zone, device = device, hex = hex,
    client_id = device .. "-" .. plant .. "-" .. hex,
    topic = root,
    state_topic = root .. "/estado",
    temp_topic = root .. "/temp",
    interval_ms = rng:int(10, 20) * 20,          -- 200-400 ms
    ka_max = math.ceil(KA_LIMIT / 1.5) - 1,       -- 39 s: 1.5 x 39 = 58.5 s
    timeout_s = PROG_TIMEOUT,
  }
end

-- Guided mode (mqlab start 05): a Last Will and a retained "online" by
-- hand, then a power cut the student starts, and a dashboard that
-- arrives late.
local guide = {
  step {
    id = "will",
    title = { es = "Declara tu Last Will", en = "Declare your Last Will" },
    text = {
      es = "En otra terminal, un cliente con tu client id que declara su testamento (offline, retenido, QoS 1) y se queda conectado:\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -k 5 -t '{{topic}}/cmd' --will-topic '{{state_topic}}' --will-payload offline --will-qos 1 --will-retain",
      en = "In another terminal, a client with your client id that declares its will (offline, retained, QoS 1) and stays connected:\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -k 5 -t '{{topic}}/cmd' --will-topic '{{state_topic}}' --will-payload offline --will-qos 1 --will-retain",
    },
    on = function(ev, ctx) return H.guide_will(ev, ctx) end,
  },
  step {
    id = "online",
    title = { es = "Di «online», retenido", en = "Say \"online\", retained" },
    text = {
      es = "En una tercera terminal:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i pub-{{client_id}} -t '{{state_topic}}' -q 1 -r -m online",
      en = "In a third terminal:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i pub-{{client_id}} -t '{{state_topic}}' -q 1 -r -m online",
    },
    on = function(ev, ctx) return H.guide_online(ev, ctx) end,
  },
  step {
    id = "power-cut",
    title = { es = "Se va la luz: el broker publica tu testamento", en = "The power goes: the broker publishes your will" },
    text = {
      es = "Corto el enlace de tu cliente del paso 1 sin DISCONNECT, como si se quedara sin corriente. Después, suscríbete como un panel que llega tarde:\n\n    mosquitto_sub -h {{host}} -p {{port}} -t '{{state_topic}}' -v -C 1",
      en = "I cut the link of your client from step 1 with no DISCONNECT, as if it lost power. Then subscribe as a dashboard that arrives late:\n\n    mosquitto_sub -h {{host}} -p {{port}} -t '{{state_topic}}' -v -C 1",
    },
    prompt = { es = "Pulsa Enter y corto el enlace.", en = "Press Enter and I cut the link." },
    act = function(ctx)
      ctx.proxy:cut_all()
      return { es = "Cortado. Ahora el panel que llega tarde.", en = "Cut. Now the dashboard that arrives late." }
    end,
    on = function(ev, ctx) return H.guide_late(ev, ctx) end,
  },
}

local checks = {
  check {
    id = "connects", points = 1,
    title = { es = "Se conecta con su client id", en = "It connects with its client id" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local connects = wire.select(d.events, H.is_connect)
      if #connects == 0 then ctx:why_absent(t) end
      for i, c in ipairs(connects) do
        if c.client_id ~= p.client_id then
          t:fail({ es = "la conexión %d usó el client id «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno y usa siempre el mismo\n%s",
                   en = "connection %d used the client id '%s', but MQTT_CLIENT_ID is '%s': read it from the environment and always use the same one\n%s" },
                 i, c.client_id or "", p.client_id, wire.block(c))
        end
      end
      t:pass({ es = "%d CONNECT, todos con el client id de MQTT_CLIENT_ID:\n%s",
               en = "%d CONNECT packets, all with the client id in MQTT_CLIENT_ID:\n%s" }, #connects, wire.block(connects[1]))
    end,
  },

  check {
    id = "will-declared", points = 2, after = "connects",
    title = { es = "El CONNECT declara el Last Will", en = "The CONNECT declares the Last Will" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      for i, c in ipairs(wire.select(d.events, H.is_connect)) do
        local w = c.will
        if not w then
          t:fail({ es = "el CONNECT n.º %d no lleva Last Will:\n%s\nSin él, si tu dispositivo muere sin avisar, nadie publica «offline» y el panel lo sigue viendo vivo. Decláralo antes de conectar: will_set(\"%s\", \"offline\", qos=1, retain=True)",
                   en = "CONNECT number %d carries no Last Will:\n%s\nWithout one, if your device dies without a word nobody publishes 'offline', and the dashboard keeps showing it alive. Declare it before connecting: will_set(\"%s\", \"offline\", qos=1, retain=True)" },
                 i, wire.block(c), p.state_topic)
        end
        t:expect(w.topic == p.state_topic,
                 { es = "el Last Will va a %s; el estado del dispositivo va en MQTT_TOPIC/estado = %s",
                   en = "the Last Will goes to %s; the device's state goes on MQTT_TOPIC/estado = %s" }, tostring(w.topic), p.state_topic)
        t:expect(w.payload == "offline",
                 { es = "el Last Will dice «%s»; debe decir exactamente «offline», lo que esperan los que escuchan el estado",
                   en = "the Last Will says '%s'; it must say exactly 'offline', which is what those who watch the state expect" }, short(w.payload, 40))
        t:expect(w.qos == 1,
                 { es = "el Last Will va con QoS %d, y se pide QoS 1, el valor por defecto del curso: llega también a los suscriptores con sesión persistente que estén reconectándose, sin pagar los cuatro paquetes de QoS 2",
                   en = "the Last Will has QoS %d, and QoS 1 is asked for, the course's default: it also reaches subscribers with a persistent session that are reconnecting, without paying QoS 2's four packets" }, w.qos or 0)
        t:expect(w.retain,
                 { es = "el Last Will no es retenido: quien esté escuchando en ese momento se entera, pero quien se suscriba después seguirá encontrando «online», el último estado retenido. Usa retain=True",
                   en = "the Last Will is not retained: whoever is listening at that moment finds out, but whoever subscribes later still finds 'online', the last retained state. Use retain=True" })
        if t.failed then
          t:fail({ es = "en el CONNECT n.º %d:\n%s", en = "in CONNECT number %d:\n%s" }, i, wire.block(c))
        end
      end
      t:pass({ es = "cada CONNECT deja al broker el Last Will %s:\n%s",
               en = "every CONNECT leaves the broker the Last Will %s:\n%s" }, H.will_text(d.connect1.will), wire.block(d.connect1))
    end,
  },

  check {
    id = "keepalive", points = 1, after = "connects",
    title = { es = "Un keepalive que detecta la muerte en menos de un minuto", en = "A keepalive that detects death in under a minute" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      -- Every CONNECT: a reconnection that forgets the keepalive leaves
      -- the device unwatched just the same.
      local connects = wire.select(d.events, H.is_connect)
      for i, c in ipairs(connects) do
        local ka = c.keepalive or 0
        local which = #connects > 1 and ctx:text({ es = " (CONNECT n.º %d de %d)", en = " (CONNECT number %d of %d)" }, i, #connects) or ""
        if ka == 0 then
          t:fail({ es = "tu CONNECT%s pide keepalive 0, que desactiva la comprobación: si el enlace muere sin cerrarse (un router que se cuelga, un cable cortado lejos), el broker nunca se entera, y ni publica tu Last Will ni te da por muerto. Usa entre 1 y %d s:\n%s",
                   en = "your CONNECT%s asks for keepalive 0, which turns the check off: if the link dies without closing (a router that hangs, a cable cut far away), the broker never notices, so it neither publishes your Last Will nor takes you for dead. Use 1 to %d s:\n%s" },
                 which, p.ka_max, wire.block(c))
        end
        if ka * 1.5 >= KA_LIMIT then
          t:fail({ es = "keepalive %d s%s: el broker espera 1,5 × %d = %g s de silencio antes de dar por muerto a tu dispositivo y publicar su Last Will. Durante ese tiempo el panel lo muestra vivo. Baja a %d s o menos (paho usa 60 si no dices nada), en cada conexión:\n%s",
                   en = "keepalive %d s%s: the broker waits 1.5 × %d = %g s of silence before it takes your device for dead and publishes its Last Will. All that time the dashboard shows it alive. Go down to %d s or less (paho uses 60 unless told otherwise), on every connection:\n%s" },
                 ka, which, ka, ka * 1.5, p.ka_max, wire.block(c))
        end
      end
      local ka = d.connect1.keepalive
      t:pass({ es = "keepalive %d s: si tu dispositivo calla, el broker lo da por muerto y publica su Last Will a los %g s",
               en = "keepalive %d s: if your device goes silent, the broker takes it for dead and publishes its Last Will after %g s" },
             ka, ka * 1.5)
    end,
  },

  check {
    id = "online-retained", points = 2, after = "connects",
    title = { es = "Un suscriptor que llega tarde ve «online»", en = "A late subscriber sees 'online'" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local on = d.online1
      if not on then
        local other = wire.select(d.events, function(ev) return H.is_pub(ev, p.state_topic) and ev.i < (d.kill_mark or math.huge) end)
        if #other > 0 then
          t:fail({ es = "tras conectarse, tu programa publicó en %s, pero no «online»:\n%s",
                   en = "after connecting, your program published on %s, but not 'online':\n%s" }, p.state_topic, wire.block(other[1]))
        end
        local elsewhere = wire.select(d.events, function(ev)
          return ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "up" and ev.payload == "online"
        end)
        if #elsewhere > 0 then
          t:fail({ es = "publicaste «online» en %s; el estado va en MQTT_TOPIC/estado = %s:\n%s",
                   en = "you published 'online' on %s; the state goes on MQTT_TOPIC/estado = %s:\n%s" },
                 tostring(elsewhere[1].topic), p.state_topic, wire.block(elsewhere[1]))
        end
        t:fail({ es = "en %d s tras su CONNECT, tu programa no publicó «online» en %s",
                 en = "in the %d s after its CONNECT, your program did not publish 'online' on %s" }, SAY_WAIT, p.state_topic)
      end
      if not on.retain then
        t:fail({ es = "publicaste «online» sin retain:\n%s\nLo recibe quien ya estaba suscrito, pero el broker no lo guarda: un panel que se abra después no sabe nada del dispositivo hasta que cambie de estado (el suscriptor tardío del kit no recibió nada en %g s). Publícalo con retain=True",
                 en = "you published 'online' without retain:\n%s\nWhoever was already subscribed gets it, but the broker does not keep it: a dashboard opened later knows nothing about the device until its state changes (the kit's late subscriber got nothing in %g s). Publish it with retain=True" },
               wire.block(on), LATE_WAIT)
      end
      local m = d.late1
      if not m then
        t:fail({ es = "tu PUBLISH iba con retain=1, pero un suscriptor que llegó después no recibió nada en %g s:\n%s",
                 en = "your PUBLISH had retain=1, but a subscriber that arrived afterwards got nothing in %g s:\n%s" }, LATE_WAIT, wire.block(on))
      end
      if m.payload ~= "online" or not m.retain then
        t:fail({ es = "un suscriptor que llegó después recibió %s, no «online» retenido", en = "a subscriber that arrived afterwards got %s, not a retained 'online'" },
               H.heard(m))
      end
      t:pass({ es = "publicaste «online» retenido:\n%s\ny un suscriptor que llegó después lo recibió nada más suscribirse: %s",
               en = "you published a retained 'online':\n%s\nand a subscriber that arrived afterwards got it as soon as it subscribed: %s" },
             wire.block(on), H.heard(m))
    end,
  },

  check {
    id = "readings-not-retained", points = 1, after = "connects",
    title = { es = "Las lecturas van a /temp, sin retener", en = "Readings go to /temp, not retained" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local pubs = wire.select(d.events, function(ev) return H.is_pub(ev, p.temp_topic) end)
      if #pubs == 0 then
        local other = wire.select(d.events, function(ev)
          return ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "up" and ev.topic ~= p.state_topic
        end)
        if #other > 0 then
          t:fail({ es = "ninguna lectura en %s; tu programa publicó en %s:\n%s",
                   en = "no reading on %s; your program published on %s:\n%s" }, p.temp_topic, tostring(other[1].topic), wire.block(other[1]))
        end
        t:fail({ es = "tu programa no publicó ninguna lectura en %s", en = "your program published no reading on %s" }, p.temp_topic)
      end
      local retained = wire.select(pubs, { retain = true })
      if #retained > 0 then
        t:fail({ es = "%d de tus %d lecturas iban con retain=1:\n%s\nEl broker guarda la última y se la da a cada suscriptor nuevo como si fuera de ahora, aunque el sensor lleve horas muerto. Una lectura es un instante, no un estado: publícalas con retain=False y retén solo el estado",
                 en = "%d of your %d readings had retain=1:\n%s\nThe broker keeps the last one and hands it to every new subscriber as if it were fresh, even when the sensor died hours ago. A reading is a moment, not a state: publish readings with retain=False and retain only the state" },
               #retained, #pubs, wire.block(retained[1]))
      end
      t:pass({ es = "%d lecturas en %s, todas con retain=0:\n%s", en = "%d readings on %s, all with retain=0:\n%s" },
             #pubs, p.temp_topic, wire.block(pubs[1]))
    end,
  },

  check {
    id = "readings", points = 1, after = "connects",
    title = { es = "Cada lectura es JSON con un id propio y ts en ms", en = "Each reading is JSON with its own id and ts in ms" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local pubs = wire.select(d.events, function(ev) return H.is_pub(ev, p.temp_topic) end)
      if #pubs == 0 then
        t:fail({ es = "tu programa no publicó ninguna lectura en %s", en = "your program published no reading on %s" }, p.temp_topic)
      end
      local now = kit.wall_ms()
      local seen = {}
      for _, ev in ipairs(pubs) do
        local r, why = wire.reading(ev.payload or "")
        if not r then
          t:fail({ es = "una lectura no es {\"id\": \"...\", \"ts\": <ms desde 1970>, \"v\": <número>} (%s):\n%s",
                   en = "a reading is not {\"id\": \"...\", \"ts\": <ms since 1970>, \"v\": <number>} (%s):\n%s" },
                 ctx:text(H.READING_WHY[why] or { es = why, en = why }), wire.block(ev))
        end
        if math.abs(r.ts - now) > DAY_MS then
          if math.abs(r.ts * 1000 - now) <= DAY_MS then
            t:fail({ es = "el \"ts\" de tus lecturas va en segundos (%s); se pide en milisegundos desde 1970, como el resto del curso:\n%s",
                     en = "the \"ts\" of your readings is in seconds (%s); milliseconds since 1970 are asked for, as everywhere in the course:\n%s" },
                   tostring(r.ts), wire.block(ev))
          end
          t:fail({ es = "el \"ts\" %s no es la hora de ahora en milisegundos desde 1970:\n%s",
                   en = "the \"ts\" %s is not the present time in milliseconds since 1970:\n%s" }, tostring(r.ts), wire.block(ev))
        end
        -- The same id again is a re-send only when it carries the very
        -- same reading; another reading under an old id is a repeat.
        local before = seen[r.id]
        if before and before.payload ~= ev.payload then
          t:fail({ es = "dos lecturas distintas llevan el mismo id «%s»:\n%s\n%s\nQuien las guarde por id se quedará solo con una. Dale a cada lectura un id propio (por ejemplo, el client id y un contador)",
                   en = "two different readings carry the same id '%s':\n%s\n%s\nWhoever stores them by id will keep only one. Give every reading an id of its own (for example the client id and a counter)" },
                 short(r.id, 60), wire.block(before), wire.block(ev))
        end
        seen[r.id] = before or ev
      end
      t:pass({ es = "%d lecturas JSON, cada una con su id y ts en milisegundos:\n%s", en = "%d JSON readings, each with its own id and ts in milliseconds:\n%s" },
             #pubs, wire.block(pubs[#pubs]))
    end,
  },

  check {
    id = "readings-pace", points = 1, after = "connects",
    title = { es = "Una lectura cada LAB_INTERVAL_MS", en = "One reading every LAB_INTERVAL_MS" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      -- The first connection's fresh readings, before the kit killed it:
      -- a queue flushed on reconnecting says nothing of the pace.
      local pubs = wire.select(d.events, function(ev)
        return H.is_pub(ev, p.temp_topic) and not ev.dup and ev.i < (d.kill_mark or math.huge)
      end)
      local first = pubs[1] and wire.select(pubs, { conn = pubs[1].conn }) or {}
      if #first < 2 then
        t:fail({ es = "antes de que el kit lo matara, tu programa solo envió %d lectura: no hay ritmo que medir",
                 en = "before the kit killed it your program sent only %d reading: there is no pace to measure" }, #first)
      end
      -- The pace is read from the readings' own ts (when each was taken),
      -- else from when the proxy saw them: a reading queued before the
      -- CONNACK leaves late on a busy machine, and the next one, on time,
      -- would look early.
      local function ts(ev)
        local r = wire.reading(ev.payload or "")
        return r and type(r.ts) == "number" and r.ts or nil
      end
      local t1, tn = ts(first[1]), ts(first[#first])
      local gap
      if t1 and tn and t1 >= 1e12 then gap = (tn - t1) / (#first - 1)
      else gap = (first[#first].t - first[1].t) / (#first - 1) end
      if gap < PACE_LO * p.interval_ms or gap > PACE_HI * p.interval_ms then
        t:fail({ es = "tus primeras %d lecturas salieron cada %.0f ms de media, y LAB_INTERVAL_MS es %d: usa el valor del entorno",
                 en = "your first %d readings went out every %.0f ms on average, and LAB_INTERVAL_MS is %d: use the value from the environment" },
               #first, gap, p.interval_ms)
      end
      t:pass({ es = "tus primeras %d lecturas salieron cada %.0f ms de media (LAB_INTERVAL_MS = %d)",
               en = "your first %d readings went out every %.0f ms on average (LAB_INTERVAL_MS = %d)" }, #first, gap, p.interval_ms)
    end,
  },

  check {
    id = "will-on-kill", points = 2, after = "connects",
    title = { es = "Tras un SIGKILL llega el Last Will", en = "After a SIGKILL the Last Will arrives" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if d.kill_skipped then
        t:fail({ es = "tu programa ya había terminado (%s) cuando el kit iba a matarlo: presence debe seguir en marcha hasta recibir SIGTERM. Su salida de error:\n%s",
                 en = "your program had already ended (%s) when the kit was about to kill it: presence must keep running until it gets SIGTERM. Its stderr:\n%s" },
               d.kill_skipped, ctx:stderr_tail(d.prog))
      end
      local m = d.will_kill
      if not m then
        local other = H.heard_in(d, "kill")
        local why = H.will_problem(ctx)
        if other then
          t:fail({ es = "el kit mató tu programa con SIGKILL (como un corte de corriente) y el suscriptor que escuchaba %s recibió %s, no «offline»%s",
                   en = "the kit killed your program with SIGKILL (like a power cut), and the subscriber listening on %s got %s, not 'offline'%s" },
                 p.state_topic, H.heard(other), why and (": " .. why) or "")
        end
        t:fail({ es = "el kit mató tu programa con SIGKILL (como un corte de corriente) y en %d s el suscriptor que escuchaba %s no recibió nada%s. Para el resto de la planta, el dispositivo sigue vivo",
                 en = "the kit killed your program with SIGKILL (like a power cut), and in %d s the subscriber listening on %s got nothing%s. To the rest of the plant the device is still alive" },
               WILL_WAIT, p.state_topic, why and (": " .. why) or "")
      end
      t:pass({ es = "el kit mató tu programa con SIGKILL y, %.0f ms después, el suscriptor que escuchaba %s recibió %s: tu Last Will, publicado por el broker en tu nombre",
               en = "the kit killed your program with SIGKILL and, %.0f ms later, the subscriber listening on %s got %s: your Last Will, published by the broker on your behalf" },
             (m.t - d.kill_at) * 1000, p.state_topic, H.live(m))
    end,
  },

  check {
    id = "will-retained", points = 1, after = "will-on-kill",
    title = { es = "Quien llega después de la muerte ve «offline»", en = "Who arrives after the death sees 'offline'" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local m = d.late2
      if not m then
        t:fail({ es = "un suscriptor que llegó tras la muerte de tu programa no recibió nada en %s en %g s",
                 en = "a subscriber that arrived after your program died got nothing on %s in %g s" }, p.state_topic, LATE_WAIT)
      end
      if m.payload == "online" then
        t:fail({ es = "un suscriptor que llegó tras la muerte de tu programa recibió %s: tu Last Will no era retenido, así que solo se enteró quien ya escuchaba, y el broker sigue guardando «online» para un dispositivo muerto. Declara el will con retain=True",
                 en = "a subscriber that arrived after your program died got %s: your Last Will was not retained, so only those already listening found out, and the broker still keeps 'online' for a dead device. Declare the will with retain=True" },
               H.heard(m))
      end
      if m.payload ~= "offline" or not m.retain then
        t:fail({ es = "un suscriptor que llegó tras la muerte de tu programa recibió %s, no «offline» retenido",
                 en = "a subscriber that arrived after your program died got %s, not a retained 'offline'" }, H.heard(m))
      end
      t:pass({ es = "un suscriptor que llegó tras la muerte de tu programa recibió %s nada más suscribirse: el Last Will retenido sustituyó a «online». (El que ya escuchaba lo recibió con retain=0: el flag marca un mensaje guardado que se entrega a quien llega, no uno en directo)",
               en = "a subscriber that arrived after your program died got %s as soon as it subscribed: the retained Last Will replaced 'online'. (The one already listening got it with retain=0: the flag marks a stored message handed to a newcomer, not a live one)" },
             H.heard(m))
    end,
  },

  check {
    id = "will-on-cut", points = 2, after = "connects",
    title = { es = "Tras un corte: Last Will, reconexión y «online» otra vez", en = "After a cut: Last Will, reconnection and 'online' again" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if d.cut_skipped then
        t:fail({ es = "el kit no llegó a cortar el enlace: %s", en = "the kit never got to cut the link: %s" }, d.cut_skipped)
      end
      if not d.online2 then
        t:fail({ es = "tras la muerte por SIGKILL, el kit arrancó tu programa otra vez; se conectó, pero en %d s no dijo «online» en %s, y el estado retenido sigue siendo el «offline» del Last Will:\n%s\nPublica «online» retenido en cada conexión",
                 en = "after the SIGKILL death the kit started your program again; it connected, but within %d s it did not say 'online' on %s, and the retained state is still the Last Will's 'offline':\n%s\nPublish a retained 'online' on every connection" },
               SAY_WAIT, p.state_topic, wire.block(d.connect2))
      end
      local cut = d.cut_ev
      local cutq = cut and wire.block(cut) or ""
      if not d.will_cut then
        local why = H.will_problem(ctx)
        t:fail({ es = "el proxy cortó el enlace de tu programa:\n%s\ny en %d s el suscriptor que escuchaba %s no recibió «offline»%s",
                 en = "the proxy cut your program's link:\n%s\nand in %d s the subscriber listening on %s did not get 'offline'%s" },
               cutq, WILL_WAIT, p.state_topic, why and (": " .. why) or "")
      end
      if not d.connect3 and not d.prog:running() then
        t:fail({ es = "el proxy cortó el enlace y el broker publicó tu Last Will, pero tu programa terminó (%s) en vez de reconectarse. Deja la reconexión a paho con loop_start() (o loop_forever()) y sigue en marcha hasta SIGTERM. Su salida de error:\n%s",
                 en = "the proxy cut the link and the broker published your Last Will, but your program ended (%s) instead of reconnecting. Leave reconnecting to paho with loop_start() (or loop_forever()) and keep running until SIGTERM. Its stderr:\n%s" },
               ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
      end
      if not d.connect3 then
        t:fail({ es = "el proxy cortó el enlace y el broker publicó tu Last Will, pero tu programa no volvió a conectarse en %d s (%s). Deja la reconexión a paho con loop_start() (o loop_forever())",
                 en = "the proxy cut the link and the broker published your Last Will, but your program did not connect again within %d s (%s). Leave reconnecting to paho with loop_start() (or loop_forever())" },
               BACK_WAIT, ctx:how_ended(d.prog))
      end
      if not d.online3 or not d.back_online then
        t:fail({ es = "tras el corte, el broker publicó tu Last Will y tu programa se reconectó:\n%s\npero no volvió a decir «online». El estado retenido se queda en «offline» y el panel da por muerto a un dispositivo que funciona. Publica «online» en on_connect, que se ejecuta en cada conexión",
                 en = "after the cut the broker published your Last Will and your program reconnected:\n%s\nbut it never said 'online' again. The retained state stays 'offline', and the dashboard takes a working device for dead. Publish 'online' in on_connect, which runs on every connection" },
               wire.block(d.connect3))
      end
      if not d.online3.retain then
        t:fail({ es = "tras el corte tu programa se reconectó y dijo «online», pero sin retain:\n%s\nQuien ya escuchaba se enteró, pero el broker sigue guardando el Last Will «offline», y un suscriptor que llegó después recibió %s. Publica «online» con retain=True en cada conexión, también en las reconexiones",
                 en = "after the cut your program reconnected and said 'online', but without retain:\n%s\nThose listening found out, but the broker still keeps the Last Will 'offline', and a subscriber that arrived afterwards got %s. Publish 'online' with retain=True on every connection, reconnections too" },
               wire.block(d.online3), H.heard(d.late4))
      end
      if not d.late4 or d.late4.payload ~= "online" or not d.late4.retain then
        t:fail({ es = "tras el corte tu programa se reconectó y dijo «online» retenido:\n%s\npero un suscriptor que llegó después recibió %s",
                 en = "after the cut your program reconnected and said a retained 'online':\n%s\nbut a subscriber that arrived afterwards got %s" },
               wire.block(d.online3), H.heard(d.late4))
      end
      t:pass({ es = "el proxy cortó el enlace; %.0f ms después llegó tu Last Will %s; tu programa volvió %.1f s tras el corte y dijo «online» otra vez:\n%s\n%s",
               en = "the proxy cut the link; %.0f ms later your Last Will %s arrived; your program was back %.1f s after the cut and said 'online' again:\n%s\n%s" },
             (d.will_cut.t - d.cut_at) * 1000, H.live(d.will_cut), d.back_online.t - d.cut_at, wire.block(d.connect3), wire.block(d.online3))
    end,
  },

  check {
    id = "offline-on-sigterm", points = 2, after = "connects",
    title = { es = "Con SIGTERM publica «offline» él mismo y sale limpio", en = "On SIGTERM it publishes 'offline' itself and leaves cleanly" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if d.term_skipped then
        t:fail({ es = "tu programa ya había terminado (%s) cuando el kit iba a enviarle SIGTERM. Su salida de error:\n%s",
                 en = "your program had already ended (%s) when the kit was about to send it SIGTERM. Its stderr:\n%s" },
               d.term_skipped, ctx:stderr_tail(d.prog))
      end
      if not d.term_events then
        t:fail({ es = "el kit no llegó a enviarle SIGTERM: no se pudo volver a arrancar tu programa", en = "the kit never got to send SIGTERM: your program could not be started again" })
      end
      if d.term_ignored then
        t:fail({ es = "%d s después de SIGTERM tu programa seguía en marcha y el kit lo mató. Atrapa SIGTERM (signal.signal), despídete y sal",
                 en = "%d s after SIGTERM your program was still running, and the kit killed it. Catch SIGTERM (signal.signal), say goodbye and leave" }, TERM_WAIT)
      end
      local te = d.term_events
      local own, disc
      for _, ev in ipairs(te) do
        if not own and H.is_pub(ev, p.state_topic) and ev.payload == "offline" then own = ev end
        if not disc and ev.kind == "packet" and ev.type == "DISCONNECT" and ev.dir == "up" then disc = ev end
      end
      local late = d.late3
      if not own then
        if disc then
          t:fail({ es = "con SIGTERM tu programa se desconectó limpiamente, lo que anula el Last Will, y nunca publicó «offline»:\n%s\nUn suscriptor que llega después sigue viendo %s para un dispositivo apagado. Antes del DISCONNECT, publica «offline» retenido tú mismo",
                   en = "on SIGTERM your program disconnected cleanly, which suppresses the Last Will, and it never published 'offline':\n%s\nA subscriber arriving later still sees %s for a dead device. Before the DISCONNECT, publish a retained 'offline' yourself" },
                 wire.block(disc), H.heard(late))
        end
        t:fail({ es = "con SIGTERM tu programa no publicó «offline» ni envió DISCONNECT (%s): murió como en un corte de corriente, y esta vez el broker publicó tu Last Will por ti (un suscriptor tardío ve %s). Pero SIGTERM es una petición de parar: atrápalo (signal.signal), publica «offline» retenido, desconéctate y sal con código 0",
                 en = "on SIGTERM your program neither published 'offline' nor sent DISCONNECT (%s): it died as in a power cut, and this time the broker published your Last Will for you (a late subscriber sees %s). But SIGTERM is a request to stop: catch it (signal.signal), publish a retained 'offline', disconnect and exit with code 0" },
               ctx:how_ended(d.prog), H.heard(late))
      end
      if not own.retain then
        t:fail({ es = "con SIGTERM publicaste «offline» sin retain:\n%s\nQuien escuchaba se enteró, pero el broker sigue guardando el estado anterior, y un suscriptor que llega después ve %s. Publícalo con retain=True",
                 en = "on SIGTERM you published 'offline' without retain:\n%s\nThose listening found out, but the broker still keeps the previous state, and a subscriber arriving later sees %s. Publish it with retain=True" },
               wire.block(own), H.heard(late))
      end
      if not disc then
        t:fail({ es = "publicaste «offline», pero después no enviaste DISCONNECT (%s):\n%s\nDespídete del broker con disconnect() antes de salir",
                 en = "you published 'offline', but no DISCONNECT followed (%s):\n%s\nTake leave of the broker with disconnect() before exiting" },
               ctx:how_ended(d.prog), wire.block(own))
      end
      if not late or late.payload ~= "offline" or not late.retain then
        t:fail({ es = "publicaste «offline» y te desconectaste, pero un suscriptor que llegó después recibió %s", en = "you published 'offline' and disconnected, but a subscriber that arrived afterwards got %s" },
               H.heard(late))
      end
      local code = d.prog:exit_code()
      if code ~= 0 then
        t:fail({ es = "te despediste bien, pero el programa %s (se esperaba 0). Su salida de error:\n%s",
                 en = "your goodbye was right, but the program %s (expected 0). Its stderr:\n%s" },
               ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
      end
      t:pass({ es = "con SIGTERM tu programa publicó «offline» retenido y después se desconectó:\n%s\n%s\nUn suscriptor que llegó después vio %s; %s",
               en = "on SIGTERM your program published a retained 'offline' and then disconnected:\n%s\n%s\nA subscriber arriving later saw %s; %s" },
             wire.block(own), wire.block(disc), H.heard(late), ctx:how_ended(d.prog))
    end,
  },
}

---------------------------------------------------------------- the wire

function H.is_pub(ev, topic)
  return ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "up" and ev.topic == topic
end

function H.is_connect(ev)
  return ev.kind == "packet" and ev.type == "CONNECT" and ev.dir == "up"
end

-- A matcher: the program's PUBLISH on estado carrying `payload`.
function H.said(p, payload)
  return function(ev) return H.is_pub(ev, p.state_topic) and ev.payload == payload end
end

-- A message the kit received, for feedback: "offline" (retain=1).
function H.heard(m)
  if not m then return "—" end
  return string.format('"%s" (retain=%d)', short(m.payload, 60), m.retain and 1 or 0)
end

-- A message the watcher heard live: only its payload. (A live delivery
-- always comes with retain=0, which would only confuse here.)
function H.live(m)
  return m and string.format('"%s"', short(m.payload, 60)) or "—"
end

-- The will of a CONNECT, for feedback.
function H.will_text(w)
  if not w then return "—" end
  return string.format('%s "%s" qos=%d retain=%d', w.topic or "?", short(w.payload, 40), w.qos or 0, w.retain and 1 or 0)
end

-- Why wire.reading refused a payload, for feedback.
H.READING_WHY = {
  json = { es = "no es un objeto JSON", en = "it is not a JSON object" },
  id = { es = "falta \"id\" o no es un texto", en = "\"id\" is missing or not a string" },
  ts = { es = "falta \"ts\" o no es un número", en = "\"ts\" is missing or not a number" },
  v = { es = "falta \"v\" o no es un número", en = "\"v\" is missing or not a number" },
}

---------------------------------------------------------------- the kit's clients

-- Take what the watcher (subscribed to estado since before the program
-- started) receives, until `want` arrives or s seconds pass. Everything
-- is kept in d.heard with the act it belongs to.
function H.listen(d, p, act, want, s)
  local t_end = kit.now() + s
  while true do
    local left = t_end - kit.now()
    if left <= 0 then return nil end
    local m = d.watch:wait(left, p.state_topic)
    if not m then return nil end
    m.act = act
    d.heard[#d.heard + 1] = m
    if m.payload == want then return m end
  end
end

-- What a subscriber that arrives now finds on estado: the retained
-- state, if there is one, comes right after the SUBACK.
function H.late_view(ctx, n)
  local p = ctx.p
  local c = ctx:client { id = "mqlab-late-" .. n .. "-" .. p.hex, clean = true }
  if not c then return false end
  local m = false
  if c:subscribe(p.state_topic, 1) then m = c:wait(LATE_WAIT, p.state_topic) or false end
  c:disconnect()
  c:close()
  return m
end

-- The first message the watcher heard in `act`.
function H.heard_in(d, act)
  for _, m in ipairs(d.heard) do
    if m.act == act then return m end
  end
end

---------------------------------------------------------------- the run

-- Act 1: start, `online`, a couple of readings, a late subscriber.
function H.act_start(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  ctx:status({ es = "esperando tu CONNECT y tu «online»…", en = "waiting for your CONNECT and your 'online'…" })
  d.connect1 = ctx:wait_running(d.prog, H.is_connect, START_WAIT)
  if not d.connect1 then return end
  d.online1 = ctx:wait_running(d.prog, H.said(p, "online"), SAY_WAIT, d.connect1.i)
  -- Once the watcher hears it, the broker has stored it.
  if d.online1 then H.listen(d, p, "start", "online", WILL_WAIT) end
  -- Three readings: two gaps for readings-pace to measure.
  px:wait_count(function(ev) return H.is_pub(ev, p.temp_topic) end, 3, 4 * p.interval_ms / 1000 + 1)
  d.late1 = H.late_view(ctx, 1)
end

-- Act 2: SIGKILL, the will, and what a late subscriber finds.
function H.act_kill(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  if not d.prog:running() then
    d.kill_skipped = ctx:how_ended(d.prog)
    return
  end
  d.kill_mark = px:count()
  d.kill_at = kit.now()
  ctx:status({ es = "matando tu programa (SIGKILL) y esperando su Last Will…", en = "killing your program (SIGKILL) and waiting for its Last Will…" })
  d.prog:signal("KILL")
  d.prog:wait(3)
  d.will_kill = H.listen(d, p, "kill", "offline", WILL_WAIT)
  d.late2 = H.late_view(ctx, 2)
end

-- Act 3: restart, `online`, the proxy cuts the link: the will again,
-- then the program's own way back.
function H.act_cut(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  local mark = px:count()
  ctx:status({ es = "reiniciando tu programa…", en = "restarting your program…" })
  local ok, msg = d.prog:restart()
  if not ok then
    d.cut_skipped = msg
    return
  end
  d.connect2 = ctx:wait_running(d.prog, H.is_connect, START_WAIT, mark + 1)
  if not d.connect2 then
    d.cut_skipped = ctx:text({ es = "tras reiniciarlo, tu programa no volvió a conectarse (%s)",
                               en = "after the restart your program did not connect again (%s)" }, ctx:how_ended(d.prog))
    return
  end
  d.online2 = ctx:wait_running(d.prog, H.said(p, "online"), SAY_WAIT, d.connect2.i)
  if d.online2 then
    H.listen(d, p, "restart", "online", WILL_WAIT)
    -- Cut only once `online` is acknowledged: a client with a session
    -- would otherwise send it again after the cut (DUP=1), and that
    -- re-send is not the program saying `online` on reconnecting.
    local on = d.online2
    if (on.qos or 0) > 0 then
      local ack = on.qos == 1 and "PUBACK" or "PUBCOMP"
      px:wait(function(ev)
        return ev.kind == "packet" and ev.dir == "down" and ev.type == ack and ev.conn == on.conn and ev.id == on.id
      end, SAY_WAIT, on.i)
    end
  end
  if not d.prog:running() then
    d.cut_skipped = ctx:text({ es = "tras reiniciarlo, tu programa terminó solo (%s)",
                               en = "after the restart your program ended by itself (%s)" }, ctx:how_ended(d.prog))
    return
  end
  d.cut_mark = px:count()
  d.cut_at = kit.now()
  ctx:status({ es = "cortando el enlace: esperando la Last Will y tu reconexión…", en = "cutting the link: waiting for the Last Will and your reconnection…" })
  px:cut_all()
  d.cut_ev = px:wait({ kind = "close" }, 2, d.cut_mark + 1)
  d.will_cut = H.listen(d, p, "cut", "offline", WILL_WAIT)
  d.connect3 = ctx:wait_running(d.prog, H.is_connect, BACK_WAIT, d.cut_mark + 1)
  if d.connect3 then
    d.online3 = ctx:wait_running(d.prog, H.said(p, "online"), SAY_WAIT, d.connect3.i)
    if d.online3 then d.back_online = H.listen(d, p, "back", "online", WILL_WAIT) end
    -- What a dashboard opened now finds: the retained state after the return.
    if d.back_online then d.late4 = H.late_view(ctx, 4) end
  end
end

-- Act 4: SIGTERM, the program's own goodbye.
function H.act_term(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  if not d.prog:running() then
    d.term_skipped = ctx:how_ended(d.prog)
    return
  end
  d.term_mark = px:count()
  ctx:status({ es = "enviando SIGTERM: esperando tu despedida…", en = "sending SIGTERM: waiting for your goodbye…" })
  d.prog:signal("TERM")
  if not d.prog:wait(TERM_WAIT) then
    d.term_ignored = true
    d.prog:signal("KILL")
    d.prog:wait(2)
  end
  -- The proxy's thread may still be writing the last packets down.
  px:wait({ kind = "close" }, 2, d.term_mark + 1)
  d.term_events = px:events(d.term_mark + 1)
  d.term_heard = H.listen(d, p, "term", "offline", 2)
  d.late3 = H.late_view(ctx, 3)
end

---------------------------------------------------------------- guided mode

function H.guide_will(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "up" or ev.type ~= "CONNECT" then return nil end
  local w = ev.will
  local function no(es, en) return false, { es = es, en = en } end
  if ev.client_id ~= p.client_id then
    return no(string.format("ese CONNECT usa el client id «%s»; este paso pide %s (-i)", ev.client_id or "", p.client_id),
              string.format("that CONNECT uses client id '%s'; this step needs %s (-i)", ev.client_id or "", p.client_id))
  end
  if not w then return no("tu CONNECT no lleva testamento (--will-topic ...)", "your CONNECT carries no Last Will (--will-topic ...)") end
  if w.topic ~= p.state_topic then
    return no(string.format("tu testamento va a %s; debe ir a %s", w.topic or "", p.state_topic),
              string.format("your will goes to %s; it must go to %s", w.topic or "", p.state_topic))
  end
  if w.payload ~= "offline" then
    return no(string.format("tu testamento dice «%s»; debe decir offline", w.payload or ""),
              string.format("your will says '%s'; it must say offline", w.payload or ""))
  end
  if not w.retain then
    return no("tu testamento no es retenido: un panel que se suscriba después no lo vería (--will-retain)",
              "your will is not retained: a dashboard that subscribes later would not see it (--will-retain)")
  end
  if (w.qos or 0) ~= 1 then
    return no(string.format("tu testamento va con QoS %d; este paso pide 1 (--will-qos 1)", w.qos or 0),
              string.format("your will goes at QoS %d; this step needs 1 (--will-qos 1)", w.qos or 0))
  end
  return true, { es = string.format("CONNECT con testamento: offline, retenido, QoS 1, en %s", p.state_topic),
                 en = string.format("CONNECT with a Last Will: offline, retained, QoS 1, on %s", p.state_topic) }
end

function H.guide_online(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "up" or ev.type ~= "PUBLISH" or ev.topic ~= p.state_topic then return nil end
  if ev.payload ~= "online" then
    return false, { es = string.format("publicaste «%s»; este paso pide online", ev.payload or ""),
                    en = string.format("you published '%s'; this step needs online", ev.payload or "") }
  end
  if not ev.retain then
    return false, { es = "tu «online» no es retenido: un panel que se suscriba después no lo vería (-r)",
                    en = "your \"online\" is not retained: a dashboard that subscribes later would not see it (-r)" }
  end
  return true, { es = "«online» retenido: cualquiera que se suscriba ahora lo recibe al momento",
                 en = "\"online\" retained: whoever subscribes now gets it at once" }
end

function H.guide_late(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "down" or ev.type ~= "PUBLISH" or ev.topic ~= p.state_topic then return nil end
  if ev.payload == "offline" then
    return true, { es = "el panel que llegó tarde recibió «offline», retenido: el broker publicó tu testamento al caerse el enlace",
                   en = "the dashboard that came late got \"offline\", retained: the broker published your will when the link died" }
  end
  return false, { es = string.format("el panel recibió «%s»: ¿era retenido tu testamento (--will-retain)?", ev.payload or ""),
                  en = string.format("the dashboard got '%s': was your will retained (--will-retain)?", ev.payload or "") }
end

---------------------------------------------------------------- feedback helpers

-- What a missing will explains, or nil.
function H.will_problem(ctx)
  local c = ctx.data.connect1
  local p = ctx.p
  if not c then return nil end
  if not c.will then
    return ctx:text({ es = "tu CONNECT no llevaba Last Will, así que el broker no tenía nada que publicar por ti",
                      en = "your CONNECT carried no Last Will, so the broker had nothing to publish for you" })
  end
  if c.will.topic ~= p.state_topic then
    return ctx:text({ es = "tu Last Will va a %s, no a %s, donde escucha el kit",
                      en = "your Last Will goes to %s, not to %s, where the kit listens" }, tostring(c.will.topic), p.state_topic)
  end
  if c.will.payload ~= "offline" then
    return ctx:text({ es = "tu Last Will dice «%s», no «offline»", en = "your Last Will says '%s', not 'offline'" }, short(c.will.payload, 40))
  end
end

---------------------------------------------------------------- the lab

local function setup(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  d.heard = {}
  d.watch = assert(ctx:client { id = "mqlab-watch-" .. p.hex, clean = true })
  assert(d.watch:subscribe(p.state_topic, 1))
  d.prog, d.prog_err = ctx:program("presence", { timeout = PROG_TIMEOUT })
  if d.prog then
    H.act_start(ctx)
    if d.connect1 then
      H.act_kill(ctx)
      H.act_cut(ctx)
      H.act_term(ctx)
    end
  end
  d.events = px:events()
end

return lab {
  id = "05-retain-lwt",
  title = { es = "Presencia: retain y Last Will", en = "Presence: retain and Last Will" },
  submission = { programs = { "presence" } },
  broker = "plain",
  proxy = true,
  setup_timeout = 60,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,

  hints = {
    { es = "El Last Will se declara antes de conectar, porque viaja dentro del CONNECT: client.will_set(f\"{root}/estado\", \"offline\", qos=1, retain=True) y después client.connect(host, port, keepalive=20).",
      en = "The Last Will is declared before connecting, because it travels inside the CONNECT: client.will_set(f\"{root}/estado\", \"offline\", qos=1, retain=True), then client.connect(host, port, keepalive=20)." },
    { es = "Publica «online» con retain=True dentro de on_connect(client, userdata, flags, rc), no una sola vez al arrancar: tras un corte, el broker habrá publicado tu Last Will, y solo on_connect se entera de que has vuelto.",
      en = "Publish 'online' with retain=True inside on_connect(client, userdata, flags, rc), not once at start-up: after a cut the broker will have published your Last Will, and only on_connect knows that you are back." },
    { es = "Las lecturas son datos, no estado: publícalas en MQTT_TOPIC/temp con retain=False. Solo «online»/«offline» en estado van retenidos. Para que su id no se repita tras un reinicio, añade la hora de arranque: f\"{client_id}-{arranque_ms}-{n}\".",
      en = "Readings are data, not state: publish them on MQTT_TOPIC/temp with retain=False. Only 'online'/'offline' on estado are retained. For ids that do not repeat after a restart, add the start time: f\"{client_id}-{start_ms}-{n}\"." },
    { es = "Para SIGTERM: signal.signal(signal.SIGTERM, manejador), y que el manejador solo marque una variable. El bucle principal la ve, publica «offline» (qos=1, retain=True), espera a que info.is_published() sea cierto (con un límite), llama a disconnect() y loop_stop(), y sale con sys.exit(0).",
      en = "For SIGTERM: signal.signal(signal.SIGTERM, handler), and let the handler only set a flag. The main loop sees it, publishes 'offline' (qos=1, retain=True), waits until info.is_published() is true (with a limit), calls disconnect() and loop_stop(), and exits with sys.exit(0)." },
    { es = "Míralo en el cable: mqlab trace, y en otra terminal mosquitto_sub -h 127.0.0.1 -p 1884 -t '{{topic}}/#' -F '%r %t %p'. Lanza tu programa con MQTT_PORT=1884 y prueba kill -9 y kill -TERM: en el primer caso «offline» lo publica el broker; en el segundo, tú.",
      en = "Watch it on the wire: mqlab trace, and in another terminal mosquitto_sub -h 127.0.0.1 -p 1884 -t '{{topic}}/#' -F '%r %t %p'. Run your program with MQTT_PORT=1884 and try kill -9 and kill -TERM: in the first case the broker publishes 'offline'; in the second, you do." },
  },
}
