-- Lab 03: QoS 1 through a link that fails.
--
-- The student's `sensor` sends LAB_COUNT readings to MQTT_TOPIC, one every
-- LAB_INTERVAL_MS, through the kit's proxy, which breaks the link on
-- purpose. Every reading must reach the kit's subscriber (directly on the
-- broker) at least once, and the program leaves as soon as every reading
-- has its PUBACK.
--
-- The fault plan counts PUBLISH packets going up (client -> broker)
-- across reconnections, so it lands on the same packets on every run:
--   drop_nth   dropped: at QoS 1 it stays unacknowledged until the next
--              reconnection, when it goes again with DUP=1;
--   cut1_nth   forwarded, then the link is cut, and for refuse_s every
--              new connection is refused: the back-off window;
--   cut2_nth   LAB_COUNT + 1: the link is cut instead of forwarding it, and
--              new connections are refused for refuse2_s (per student).
--              A program that re-sends what it lost always gets there (the
--              dropped reading and the one cut after are sent again, so it
--              sends at least LAB_COUNT + 2 PUBLISH); a QoS 0 program never
--              does. It lands on one of the last readings, so the link is
--              down when the program has published its last one: a
--              program that leaves without waiting for its PUBACKs loses
--              the readings still in flight, and one that sleeps a fixed
--              time instead of counting PUBACKs leaves too early or too
--              late for some refuse2_s.
-- The timing keeps verdicts stable: after the first cut a paho client is
-- back 3 s later (refused at +1 s, accepted at +3 s), and the parameters
-- leave at least 4.2 s of readings after the first cut. The interval
-- (220-280 ms) keeps the readings queued during that outage under 16:
-- with more than 20 QoS 2 messages unfinished Mosquitto 2.0.11 completed
-- the handshake of the extra ones but never delivered them. refuse2_s
-- stays clear of the attempts of a 1-2-4 s (paho) or 1-2-3 s
-- (libmosquitto) back-off, at +1, +3, +6 and +7 s.
--
-- Evidence: the proxy's trace (every packet of the program, with its
-- fate) and what the kit's subscriber received.

local wire = require "mqlab.wire"
local short = require("mqlab.text").short

local REFUSE_S = 2          -- seconds of refused connections after the first cut
local PROG_TIMEOUT = 30     -- seconds the program may run
local MAX_RATE = 2          -- reconnection attempts per second still called a back-off
local EXIT_GRACE_S = 2      -- seconds a program may stay after its last PUBACK

-- Helpers, defined below the plan (checks call them at grading time).
local H = {}

---------------------------------------------------------------- the plan

local function params(rng)
  local plant = rng:pick({ "planta-1", "planta-2", "planta-3" })
  local zone = rng:pick({ "norte", "sur", "este", "oeste" })
  local hex = rng:hex(4)
  local interval = rng:int(11, 14) * 20
  local drop = rng:int(2, 3)
  local cut1 = drop + rng:int(2, 3)
  local count = cut1 + math.ceil(4200 / interval) + rng:int(0, 2)
  return {
    client_id = "sensor-" .. plant .. "-" .. hex,
    topic = "acme/v1/" .. plant .. "/" .. zone .. "/sensor-" .. hex .. "/temp",
    count = count,
    interval_ms = interval,
    drop_nth = drop,
    cut1_nth = cut1,
    cut2_nth = count + 1,
    refuse_s = REFUSE_S,
    refuse2_s = rng:pick({ 0.5, 2, 4.5 }),
    timeout_s = PROG_TIMEOUT,
    grace_s = EXIT_GRACE_S,
  }
end

local checks = {
  -- Step 1: the client id, on every connection.
  check {
    id = "connects", points = 1,
    title = { es = "Se conecta con su client id", en = "It connects with its client id" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local connects = wire.select(d.events, { kind = "packet", type = "CONNECT", dir = "up" })
      if #connects == 0 then ctx:why_absent(t) end
      local first = connects[1]
      if first.client_id ~= p.client_id then
        t:fail({ es = "tu programa se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno\n%s",
                 en = "your program connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment\n%s" },
               first.client_id or "", p.client_id, wire.block(first))
      end
      for i = 2, #connects do
        if connects[i].client_id ~= p.client_id then
          t:fail({ es = "la conexión n.º %d usó el client id «%s»: usa siempre el mismo, o el broker lo toma por otro dispositivo\n%s",
                   en = "connection #%d used the client id '%s': always use the same one, or the broker takes it for another device\n%s" },
                 connects[i].conn or i, connects[i].client_id or "", wire.block(connects[i]))
        end
      end
      if #connects == 1 then
        t:pass({ es = "CONNECT con el client id de MQTT_CLIENT_ID:\n%s", en = "CONNECT with the client id in MQTT_CLIENT_ID:\n%s" },
               wire.block(first))
      else
        -- Numbered as the proxy numbers them (and as the other checks
        -- name them): the attempts it refused during a cut are
        -- connections too, only without a CONNECT.
        local nums = {}
        for i, c in ipairs(connects) do nums[i] = "#" .. tostring(c.conn or i) end
        local refused = {}
        for _, ev in ipairs(d.events) do
          if ev.kind == "refused" and ev.conn then refused[#refused + 1] = "#" .. tostring(ev.conn) end
        end
        local rnote = ""
        if #refused > 0 then
          rnote = ctx:text(#refused == 1 and { es = "; la %s fue un intento que el proxy rechazó durante un corte",
                                               en = "; %s was an attempt the proxy refused during a cut" }
                           or { es = "; las %s fueron intentos que el proxy rechazó durante los cortes",
                                en = "; %s were attempts the proxy refused during the cuts" }, table.concat(refused, ", "))
        end
        t:pass({ es = "CONNECT con el client id de MQTT_CLIENT_ID, el mismo en las %d conexiones que enviaron CONNECT (%s%s):\n%s",
                 en = "CONNECT with the client id in MQTT_CLIENT_ID, the same on all %d connections that sent one (%s%s):\n%s" },
               #connects, table.concat(nums, ", "), rnote,
               wire.block(first))
      end
    end,
  },

  -- Step 2: readings on MQTT_TOPIC, as JSON with their id.
  check {
    id = "readings", points = 1,
    title = { es = "Cada PUBLISH es una lectura JSON con su id", en = "Each PUBLISH is a JSON reading with its id" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if not d.prog then t:fail(d.prog_err) end
      if #d.pubs == 0 then
        t:fail({ es = "tu programa no envió ningún PUBLISH a través del proxy (%s). Su salida de error:\n%s",
                 en = "your program sent no PUBLISH through the proxy (%s). Its stderr:\n%s" },
               ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
      end
      local seen = {}
      for _, ev in ipairs(d.pubs) do
        if ev.topic ~= p.topic then
          t:fail({ es = "PUBLISH en %s, pero tu topic es MQTT_TOPIC = %s:\n%s",
                   en = "PUBLISH on %s, but your topic is MQTT_TOPIC = %s:\n%s" }, tostring(ev.topic), p.topic, wire.block(ev))
        end
        local r, why = wire.reading(ev.payload or "")
        local payload = short(ev.payload, 120)
        if why == "json" then
          t:fail({ es = "el payload no es un objeto JSON: %s", en = "the payload is not a JSON object: %s" }, payload)
        elseif why == "id" then
          t:fail({ es = "el payload no tiene «id» (un texto no vacío): %s", en = "the payload has no \"id\" (a non-empty string): %s" }, payload)
        elseif why == "ts" then
          t:fail({ es = "«ts» falta o no es un número: %s", en = "\"ts\" is missing or not a number: %s" }, payload)
        elseif why == "v" then
          t:fail({ es = "«v» falta o no es un número: %s", en = "\"v\" is missing or not a number: %s" }, payload)
        end
        if r.ts < 1e12 or r.ts > 1e14 then
          t:fail({ es = "«ts» debe ir en milisegundos desde 1970 (unos 13 dígitos), y vale %s: %s",
                   en = "\"ts\" must be milliseconds since 1970 (about 13 digits), and it is %s: %s" },
                 string.format("%.0f", r.ts), payload)
        end
        local prev = seen[r.id]
        if prev and (prev.r.ts ~= r.ts or prev.r.v ~= r.v) then
          t:fail({ es = "el id «%s» aparece en dos lecturas distintas:\n%s\n%s\nCada lectura necesita su propio id, y un reenvío repite la misma lectura tal cual",
                   en = "the id '%s' appears in two different readings:\n%s\n%s\nEach reading needs its own id, and a re-send repeats the same reading as it was" },
                 r.id, short(prev.ev.payload, 120), payload)
        end
        seen[r.id] = seen[r.id] or { r = r, ev = ev }
      end
      t:pass({ es = "%d PUBLISH en %s con %d lecturas distintas, por ejemplo %s",
               en = "%d PUBLISH packets on %s carrying %d different readings, for example %s" },
             #d.pubs, p.topic, d.sent_ids, short(d.pubs[1].payload, 120))
    end,
  },

  -- Step 2: at QoS 1.
  check {
    id = "qos1", points = 2,
    title = { es = "Publica con QoS 1", en = "It publishes at QoS 1" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if #d.pubs == 0 then
        t:fail({ es = "no hubo ningún PUBLISH que mirar", en = "there was no PUBLISH to look at" })
      end
      local by = { [0] = 0, [1] = 0, [2] = 0 }
      for _, ev in ipairs(d.pubs) do by[ev.qos or 0] = (by[ev.qos or 0] or 0) + 1 end
      if by[0] > 0 then
        local lost = math.max(0, p.count - d.arrived_n)
        if lost > 0 then
          t:fail({ es = "%d de tus %d PUBLISH llevaban QoS 0, «dispara y olvida»: nadie los confirma ni los reenvía. %d de las %d lecturas no llegaron al suscriptor: la del PUBLISH descartado y las que publicaste con el enlace caído. Publica con qos=1",
                   en = "%d of your %d PUBLISH packets had QoS 0, fire and forget: nobody acknowledges or re-sends them. %d of the %d readings never reached the subscriber: the one in the dropped PUBLISH and those you published while the link was down. Publish with qos=1" },
                 by[0], #d.pubs, lost, p.count)
        end
        t:fail({ es = "%d de tus %d PUBLISH llevaban QoS 0, «dispara y olvida»: nadie los confirma ni los reenvía. Publica con qos=1",
                 en = "%d of your %d PUBLISH packets had QoS 0, fire and forget: nobody acknowledges or re-sends them. Publish with qos=1" },
               by[0], #d.pubs)
      end
      if by[2] > 0 then
        local pubrec, pubrel = H.count_type(d.events, "PUBREC", "down"), H.count_type(d.events, "PUBREL", "up")
        local pubcomp = H.count_type(d.events, "PUBCOMP", "down")
        local total = #d.pubs + pubrec + pubrel + pubcomp
        local n = math.max(1, d.sent_ids)
        t:fail({ es = "tus PUBLISH llevaban QoS 2: tus %d lecturas costaron %d paquetes en el cable (%d PUBLISH, %d PUBREC, %d PUBREL, %d PUBCOMP), %.1f por lectura; con QoS 1 son 2 (PUBLISH y PUBACK). QoS 2 solo evita duplicados, y aquí un duplicado no hace daño: cada lectura lleva su id. Publica con qos=1",
                 en = "your PUBLISH packets had QoS 2: your %d readings cost %d packets on the wire (%d PUBLISH, %d PUBREC, %d PUBREL, %d PUBCOMP), %.1f per reading; at QoS 1 it is 2 (PUBLISH and PUBACK). QoS 2 only prevents duplicates, and here a duplicate does no harm: every reading carries its id. Publish with qos=1" },
               n, total, #d.pubs, pubrec, pubrel, pubcomp, total / n)
      end
      if d.resent > 0 then
        t:pass({ es = "los %d PUBLISH llevaban QoS 1 (%d de ellos, reenvíos con DUP=1): al menos una vez, a 2 paquetes por lectura",
                 en = "all %d PUBLISH packets had QoS 1 (%d of them re-sends with DUP=1): at least once, at 2 packets per reading" },
               #d.pubs, d.resent)
      else
        t:pass({ es = "los %d PUBLISH llevaban QoS 1: al menos una vez, a 2 paquetes por lectura",
                 en = "all %d PUBLISH packets had QoS 1: at least once, at 2 packets per reading" }, #d.pubs)
      end
    end,
  },

  -- Step 2: one every LAB_INTERVAL_MS. Judged on the time each reading
  -- first showed up on the wire, counted from the program's first
  -- connection: never ahead of that schedule on the first connection
  -- (where nothing was queued yet), and never far behind it, once the
  -- time the link was down is allowed for.
  check {
    id = "pace", points = 1,
    title = { es = "Una lectura cada LAB_INTERVAL_MS", en = "One reading every LAB_INTERVAL_MS" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local iv = p.interval_ms
      if #d.first == 0 or not d.t0 then
        t:fail({ es = "no hubo ninguna lectura que cronometrar", en = "there was no reading to time" })
      end
      local first_cut = d.cuts[1] and d.cuts[1].t or math.huge
      for k, f in ipairs(d.first) do
        if f.ev.t > first_cut then break end
        local due = d.t0 + (k - 1) * iv
        if f.ev.t < due - iv / 2 then
          t:fail({ es = "tu programa envió su lectura n.º %d a %+.0f ms de conectarse, pero a una cada %d ms (LAB_INTERVAL_MS) no tocaba hasta %+.0f ms: publica más deprisa de lo pedido. Su primera lectura y esa:\n%s\n%s\nEspera LAB_INTERVAL_MS entre una lectura y la siguiente",
                   en = "your program sent its reading no. %d at %+.0f ms after connecting, but at one every %d ms (LAB_INTERVAL_MS) it was not due until %+.0f ms: it publishes faster than asked. Its first reading and that one:\n%s\n%s\nWait LAB_INTERVAL_MS between one reading and the next" },
                 k, f.ev.t - d.t0, iv, due - d.t0, wire.block(d.first[1].ev), wire.block(f.ev))
        end
      end
      -- Lateness needs every reading on the wire: with some never sent
      -- (QoS 0 while the link was down, a program that stopped), the
      -- position of the later ones says nothing about the pace.
      local windows = H.down_windows(d, p)
      local slack = 2 * iv + 700
      local worst, wk, wdue = -math.huge, nil, nil
      for k, f in ipairs(d.sent_ids >= p.count and d.first or {}) do
        local due = d.t0 + (k - 1) * iv
        for _, w in ipairs(windows) do
          if due >= w.from and due < w.to then due = w.to end
        end
        if f.ev.t - due > worst then worst, wk, wdue = f.ev.t - due, k, due end
      end
      if worst > slack then
        t:fail({ es = "tu lectura n.º %d salió %.1f s más tarde de lo que tocaba (+%.0f ms desde tu primera conexión, a una cada %d ms y contando el tiempo que el enlace estuvo caído):\n%s\npublica una lectura cada LAB_INTERVAL_MS, también con el enlace caído (la librería las envía al reconectar)",
                 en = "your reading no. %d went out %.1f s later than due (+%.0f ms from your first connection, at one every %d ms, allowing for the time the link was down):\n%s\npublish one reading every LAB_INTERVAL_MS, also while the link is down (the library sends them once reconnected)" },
               wk, worst / 1000, wdue - d.t0, iv, wire.block(d.first[wk].ev))
      end
      local last = d.first[#d.first].ev
      t:pass({ es = "%d lecturas a una cada %d ms: ninguna antes de su hora, y la última a %+.0f ms de la primera conexión",
               en = "%d readings at one every %d ms: none ahead of its time, and the last at %+.0f ms from the first connection" },
             #d.first, iv, last.t - d.t0)
    end,
  },

  -- Step 2: the id stays the same when a reading is sent again.
  check {
    id = "same-id", points = 1, after = "readings",
    title = { es = "Un reenvío conserva el id de la lectura", en = "A re-send keeps the reading's id" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local paired = 0
      for idx, ev in ipairs(d.pubs) do
        if ev.dup and ev.id then
          local prev
          for j = idx - 1, 1, -1 do
            if d.pubs[j].id == ev.id then prev = d.pubs[j] break end
          end
          local r1 = prev and wire.reading(prev.payload or "")
          local r2 = wire.reading(ev.payload or "")
          if r1 and r2 then
            if r1.id ~= r2.id then
              t:fail({ es = "el PUBLISH con packet id %d se reenvió (DUP=1) con otra lectura: primero llevaba el id «%s» y luego «%s»:\n%s\n%s\nun reenvío repite la misma lectura, con su id",
                       en = "the PUBLISH with packet id %d was sent again (DUP=1) with another reading: first it carried the id '%s', then '%s':\n%s\n%s\na re-send repeats the same reading, with its id" },
                     ev.id, r1.id, r2.id, wire.block(prev), wire.block(ev))
            end
            paired = paired + 1
          end
        end
      end
      if d.sent_ids > p.count then
        t:fail({ es = "en el cable hubo %d ids de lectura distintos, y LAB_COUNT es %d: o tu programa envió más lecturas de las pedidas, o volvió a enviar alguna con un id nuevo. Un reenvío debe repetir la lectura tal cual, con su id, para que el receptor reconozca el duplicado",
                 en = "there were %d different reading ids on the wire, and LAB_COUNT is %d: either your program sent more readings than asked, or it sent some reading again under a new id. A re-send must repeat the reading as it was, id included, so that the receiver can tell the duplicate" },
               d.sent_ids, p.count)
      end
      if paired > 0 then
        t:pass({ es = "%s con DUP=1, cada uno con el id de lectura del PUBLISH original (mismo packet id); %d ids distintos para %d lecturas",
                 en = "%s with DUP=1, each with the reading id of the original PUBLISH (same packet id); %d different ids for %d readings" },
               ctx:text(paired == 1 and { es = "1 reenvío", en = "1 re-send" } or { es = "%d reenvíos", en = "%d re-sends" }, paired),
               d.sent_ids, p.count)
      else
        t:pass({ es = "%d ids distintos para %d lecturas: ningún reenvío cambió de id",
                 en = "%d different ids for %d readings: no re-send changed its id" }, d.sent_ids, p.count)
      end
    end,
  },

  -- Step 3: back by itself after every cut.
  check {
    id = "reconnects", points = 2, after = "connects",
    title = { es = "Se reconecta solo tras cada corte", en = "It reconnects by itself after each cut" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if #d.cuts == 0 then
        t:fail({ es = "el proxy no llegó a cortar el enlace: tu programa envió %d PUBLISH y el primer corte llega con el n.º %d",
                 en = "the proxy never got to cut the link: your program sent %d PUBLISH packets and the first cut comes with number %d" },
               #d.pubs, p.cut1_nth)
      end
      local lines = {}
      for i, cut in ipairs(d.cuts) do
        local back = H.reconnection(d, p, cut)
        if not back then
          t:fail({ es = "corte %d:\n%s\ntu programa no volvió a conectarse (%s)",
                   en = "cut %d:\n%s\nyour program did not connect again (%s)" }, i, wire.block(cut), ctx:how_ended(d.prog))
        end
        local more = wire.select(d.pubs, function(ev) return ev.conn >= back.conn end)
        if #more == 0 then
          t:fail({ es = "corte %d:\n%s\ntu programa se reconectó, pero no envió ningún PUBLISH después:\n%s",
                   en = "cut %d:\n%s\nyour program reconnected but sent no PUBLISH afterwards:\n%s" },
                 i, wire.block(cut), wire.block(back.connect))
        end
        lines[#lines + 1] = ctx:text({ es = "  corte %d a %+.0f ms → conectado de nuevo %.1f s después (conexión #%d), y %d PUBLISH desde entonces",
                                       en = "  cut %d at %+.0f ms → connected again %.1f s later (connection #%d), and %d PUBLISH packets since" },
                                     i, cut.t, (back.connect.t - cut.t) / 1000, back.conn, #more)
      end
      t:pass({ es = "el proxy cortó el enlace %s y tu programa volvió por sí solo:\n%s",
               en = "the proxy cut the link %s and your program came back by itself:\n%s" },
             ctx:times(#d.cuts), table.concat(lines, "\n"))
    end,
  },

  -- Step 3: waiting between attempts, longer each time. Judged on the
  -- attempts (refused or accepted) after each cut: not too many while
  -- the proxy refuses, and, when there were at least two waits to
  -- compare, growing ones.
  check {
    id = "backoff", points = 1, after = "reconnects",
    title = { es = "Espera entre intentos, cada vez más (back-off)", en = "It waits between attempts, longer each time (back-off)" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local lines = {}
      for i, cut in ipairs(d.cuts) do
        local refuse = (i == 1 and p.refuse_s or p.refuse2_s)
        local n = wire.attempts(d.events, cut.t, cut.t + refuse * 1000)
        local limit = math.floor(MAX_RATE * refuse) + 1
        if refuse > 0 and n > limit then
          t:fail({ es = "en los %g s tras el corte %d, mientras el proxy rechazaba conexiones, tu programa lo intentó %d veces (%.0f por segundo). Así, cuando cae la red de una planta entera, mil sensores tumban al broker al volver. Espera antes de cada intento y dobla la espera (1 s, 2 s, 4 s... con un tope): el loop_start() de paho ya lo hace (reconnect_delay_set)",
                   en = "in the %g s after cut %d, while the proxy refused connections, your program tried %d times (%.0f per second). When a whole plant's network comes back, a thousand sensors doing that knock the broker over. Wait before each attempt and double the wait (1 s, 2 s, 4 s... with a ceiling): paho's loop_start() already does it (reconnect_delay_set)" },
                 refuse, i, n, n / refuse)
        end
        local tries = H.attempts_after(d, cut)
        local waits, when = {}, {}
        local prev = cut.t
        for _, ev in ipairs(tries) do
          waits[#waits + 1] = (ev.t - prev) / 1000
          prev = ev.t
          when[#when + 1] = ctx:text(ev.kind == "refused" and { es = "+%.1f s rechazado", en = "+%.1f s refused" }
                                       or { es = "+%.1f s aceptado", en = "+%.1f s accepted" }, (ev.t - cut.t) / 1000)
        end
        if #waits >= 2 then
          local later = {}
          for j = 2, #waits do later[#later + 1] = waits[j] end
          table.sort(later)
          local median = later[(#later + 1) // 2]
          local grows = waits[#waits] >= 1.5 * waits[1] and median >= 1.25 * waits[1]
          if not grows then
            local shown = {}
            for j, w in ipairs(waits) do shown[j] = string.format("%.1f s", w) end
            t:fail({ es = "tras el corte %d, tu programa esperó %s entre intentos (%s): siempre lo mismo. Alarga la espera tras cada intento fallido (1 s, 2 s, 4 s... con un tope), para que mil sensores no vuelvan todos a la vez y al mismo ritmo",
                     en = "after cut %d your program waited %s between attempts (%s): always the same. Make the wait longer after each failed attempt (1 s, 2 s, 4 s... with a ceiling), so that a thousand sensors do not all come back at once and at the same pace" },
                   i, table.concat(shown, ", "), table.concat(when, ", "))
          end
        end
        lines[#lines + 1] = ctx:text({ es = "  corte %d a %+.0f ms, rechazando %g s: %s",
                                       en = "  cut %d at %+.0f ms, refusing for %g s: %s" },
                                     i, cut.t, refuse, table.concat(when, ", "))
      end
      t:pass({ es = "tu programa esperó entre intentos, y cada vez más cuando hubo más de uno:\n%s",
               en = "your program waited between attempts, longer each time when there was more than one:\n%s" },
             table.concat(lines, "\n"))
    end,
  },

  -- What the steps are for: every reading reaches the subscriber.
  check {
    id = "all-arrive", points = 3, after = "connects",
    title = { es = "Todas las lecturas llegan", en = "Every reading arrives" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local got = d.arrived_n
      if got == p.count then
        t:say({ es = "el suscriptor del kit recibió las %d lecturas; tras los cortes, tu programa reenvió %d PUBLISH con DUP=1",
                en = "the kit's subscriber received all %d readings; after the cuts your program sent %d PUBLISH packets again with DUP=1" },
              got, d.resent)
        if d.copies > got then
          t:say({ es = "%s (%d copias en total): es el precio de QoS 1, e inofensivo porque cada lectura lleva su id",
                  en = "%s (%d copies in all): QoS 1's price, and harmless because each reading carries its id" },
                ctx:text(d.dup_ids == 1 and { es = "1 lectura llegó más de una vez", en = "1 reading arrived more than once" }
                           or { es = "%d lecturas llegaron más de una vez", en = "%d readings arrived more than once" }, d.dup_ids),
                d.copies)
        end
        return
      end
      if got > p.count then
        t:fail({ es = "el suscriptor recibió %d lecturas distintas, pero LAB_COUNT es %d: envía exactamente LAB_COUNT",
                 en = "the subscriber received %d different readings, but LAB_COUNT is %d: send exactly LAB_COUNT" }, got, p.count)
      end
      t:say({ es = "%d de las %d lecturas no llegaron al suscriptor del kit",
              en = "%d of the %d readings never reached the kit's subscriber" }, p.count - got, p.count)
      local qos0 = #wire.select(d.pubs, { qos = 0 })
      if qos0 > 0 then
        t:fail({ es = "tus PUBLISH llevaban QoS 0: lo que el proxy descarta y lo que publicas con el enlace caído se pierde sin remedio",
                 en = "your PUBLISH packets had QoS 0: what the proxy drops, and what you publish while the link is down, is lost for good" })
      end
      if d.sent_ids < p.count then
        t:say({ es = "lecturas con id distinto que llegó a enviar tu programa: %d de %d (%s)",
                en = "readings with a distinct id that your program sent: %d of %d (%s)" }, d.sent_ids, p.count, ctx:how_ended(d.prog))
      end
      -- Readings that went on the wire but whose every copy was lost.
      local lost = {}
      for id, rd in pairs(d.readings) do
        if not d.arrived[id] then lost[#lost + 1] = rd.ev end
      end
      table.sort(lost, function(a, b) return a.i < b.i end)
      if #lost > 0 then
        for i = 1, math.min(#lost, 3) do t:say(wire.block(lost[i])) end
        if #lost > 3 then t:say({ es = "    … y %d más", en = "    … and %d more" }, #lost - 3) end
        t:say({ es = "lo que llevaba %s se perdió y tu programa no lo volvió a enviar: guarda cada lectura hasta su PUBACK y reenvíala al reconectar (paho lo hace solo con QoS 1)",
                en = "what %s carried was lost, and your program never sent it again: keep each reading until its PUBACK and re-send it after reconnecting (paho does it by itself at QoS 1)" },
              ctx:text(#lost == 1 and { es = "ese paquete", en = "that packet" } or { es = "esos paquetes", en = "those packets" }))
        local last = d.cuts[#d.cuts]
        if last and not H.reconnection(d, p, last) and d.prog and not d.prog:timed_out() then
          t:say({ es = "tu programa salió con el enlace caído, sin esperar el PUBACK de esas lecturas: no salgas hasta que todas lo tengan",
                  en = "your program left while the link was down, without waiting for those readings' PUBACK: do not exit until every one has it" })
        end
      end
      t:fail()
    end,
  },

  -- Step 4: leave as soon as every reading has its PUBACK, judged from
  -- the wire: a PUBACK for each reading reached the program, and the
  -- program's last connection ended soon after the last of them.
  check {
    id = "acked", points = 1,
    title = { es = "Sale en cuanto cada lectura tiene su PUBACK", en = "It leaves as soon as every reading has its PUBACK" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if #d.first == 0 then
        t:fail({ es = "no hubo ninguna lectura cuyo PUBACK esperar", en = "there was no reading whose PUBACK to wait for" })
      end
      if #wire.select(d.pubs, { qos = 0 }) > 0 then
        t:fail({ es = "tus PUBLISH llevaban QoS 0: el broker no confirma nada, así que tu programa no puede saber cuándo ha llegado todo. Con QoS 1, sal cuando cada lectura tenga su PUBACK",
                 en = "your PUBLISH packets had QoS 0: the broker acknowledges nothing, so your program cannot know when everything has arrived. At QoS 1, leave once every reading has its PUBACK" })
      end
      local missing, last_ack = {}, nil
      for _, f in ipairs(d.first) do
        local ack = H.ack_of(d, f.id)
        if not ack then missing[#missing + 1] = f
        elseif not last_ack or ack.t > last_ack.t then last_ack = ack end
      end
      if #missing > 0 then
        local lines = {}
        for i = 1, math.min(#missing, 3) do
          local rd = d.readings[missing[i].id]
          lines[#lines + 1] = wire.block(rd.pubs[#rd.pubs])
        end
        if #missing > 3 then lines[#lines + 1] = ctx:text({ es = "    … y %d más", en = "    … and %d more" }, #missing - 3) end
        t:fail({ es = "%d de tus %d lecturas no recibieron su PUBACK antes de que tu programa terminara (%s); el último PUBLISH de cada una:\n%s\ncuenta los PUBACK (on_publish) y no salgas hasta que cada lectura tenga el suyo: tras un corte llegan al reconectar",
                 en = "%d of your %d readings never got their PUBACK before your program ended (%s); the last PUBLISH of each:\n%s\ncount the PUBACKs (on_publish) and do not leave until every reading has one: after a cut they come once reconnected" },
               #missing, #d.first, ctx:how_ended(d.prog), table.concat(lines, "\n"))
      end
      local ended = H.program_end(d)
      if d.prog and d.prog:timed_out() then
        t:fail({ es = "la última lectura recibió su PUBACK a %+.0f ms, pero tu programa seguía en marcha a los %d s y el kit lo paró: sal en cuanto todas tengan su PUBACK",
                 en = "the last reading got its PUBACK at %+.0f ms, but your program was still running after %d s and the kit stopped it: leave as soon as every one has its PUBACK" },
               last_ack.t, PROG_TIMEOUT)
      end
      local gap = ended and (ended.t - last_ack.t) / 1000 or 0
      if gap > EXIT_GRACE_S then
        t:fail({ es = "la última lectura recibió su PUBACK a %+.0f ms y tu programa no se fue hasta %.1f s después:\n%s\n%s\nsal en cuanto cada lectura tenga su PUBACK (cuéntalos): una pausa fija es demasiado corta con un corte y demasiado larga sin él",
                 en = "the last reading got its PUBACK at %+.0f ms, and your program did not leave until %.1f s later:\n%s\n%s\nleave as soon as every reading has its PUBACK (count them): a fixed pause is too short when the link is cut and too long when it is not" },
               last_ack.t, gap, wire.block(last_ack), wire.block(ended))
      end
      t:pass({ es = "las %d lecturas tuvieron su PUBACK; el último llegó a %+.0f ms y tu programa se fue %.1f s después",
               en = "all %d readings had their PUBACK; the last came at %+.0f ms and your program left %.1f s later" },
             #d.first, last_ack.t, math.max(gap, 0))
    end,
  },

  -- Step 4: exit code 0, in time, after having published something.
  check {
    id = "exit-0", points = 1,
    title = { es = "Sale con código 0 a tiempo", en = "It exits with code 0 in time" },
    run = function(t, ctx)
      local d = ctx.data
      if not d.prog then t:fail(d.prog_err) end
      if d.prog:timed_out() then
        t:fail({ es = "tu programa seguía en marcha a los %d s y el kit lo paró: sal en cuanto todas las lecturas tengan su PUBACK. Su salida de error:\n%s",
                 en = "your program was still running after %d s and the kit stopped it: exit as soon as every reading has its PUBACK. Its stderr:\n%s" },
               PROG_TIMEOUT, ctx:stderr_tail(d.prog))
      end
      local code = d.prog:exit_code()
      if code ~= 0 then
        t:fail({ es = "%s (se esperaba 0). Su salida de error:\n%s", en = "%s (expected 0). Its stderr:\n%s" },
               ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
      end
      if #d.pubs == 0 then
        t:fail({ es = "salió con código 0, pero sin haber publicado ninguna lectura: el código 0 dice «todo entregado», y no lo estaba",
                 en = "it exited with code 0, but without publishing any reading: code 0 says \"all delivered\", and nothing was" })
      end
      t:pass({ es = "salió con código 0 a los %.1f s", en = "it exited with code 0 after %.1f s" }, d.prog:runtime())
    end,
  },
}

-- Guided mode (mqlab start 03): the student's own sensor against the
-- live broker, then a cut the student starts, to watch QoS 1 at work.
local guide = {
  step {
    id = "qos1",
    title = { es = "Tu sensor publica con QoS 1", en = "Your sensor publishes at QoS 1" },
    text = {
      es = "En otra terminal, en la carpeta de tu sensor, arráncalo contra este broker:\n\n    MQTT_HOST={{host}} MQTT_PORT={{port}} MQTT_CLIENT_ID={{client_id}} MQTT_TOPIC={{topic}} LAB_COUNT=200 LAB_INTERVAL_MS={{interval_ms}} python3 sensor.py\n\n(LAB_COUNT=200 para que dure mientras haces el paso siguiente.)",
      en = "In another terminal, in your sensor's folder, run it against this broker:\n\n    MQTT_HOST={{host}} MQTT_PORT={{port}} MQTT_CLIENT_ID={{client_id}} MQTT_TOPIC={{topic}} LAB_COUNT=200 LAB_INTERVAL_MS={{interval_ms}} python3 sensor.py\n\n(LAB_COUNT=200 so that it keeps going while you do the next step.)",
    },
    on = function(ev, ctx) return H.guide_qos1(ev, ctx) end,
  },
  step {
    id = "resend",
    title = { es = "Un PUBACK perdido: el sensor reenvía con DUP=1", en = "A lost PUBACK: the sensor sends again with DUP=1" },
    text = {
      es = "Ahora corto tu enlace justo antes de que el broker te confirme una lectura (su PUBACK no llegará). Mira cómo tu sensor se reconecta y la envía otra vez con DUP=1 y el mismo id de paquete.",
      en = "Now I cut your link just before the broker confirms a reading (its PUBACK will not arrive). Watch your sensor reconnect and send it again with DUP=1 and the same packet id.",
    },
    prompt = { es = "Pulsa Enter y corto tu enlace.", en = "Press Enter and I cut your link." },
    act = function(ctx)
      ctx.proxy:rule { action = "cut_before", type = "PUBACK", dir = "down", nth = 1 }
      return { es = "Hecho: el próximo PUBACK no llegará, y la conexión se cae con él.",
               en = "Done: the next PUBACK will not arrive, and the connection goes down with it." }
    end,
    on = function(ev, ctx) return H.guide_resend(ev, ctx) end,
  },
}

local hints = {
  { es = "Publica con qos=1 y deja la red al hilo de paho: client.loop_start(). Cuando el proxy corte, paho se reconecta solo (espera 1 s, 2 s, 4 s...) y reenvía con DUP=1 las lecturas que no tenían PUBACK.",
    en = "Publish with qos=1 and leave the network to paho's thread: client.loop_start(). When the proxy cuts the link, paho reconnects by itself (waiting 1 s, 2 s, 4 s...) and re-sends with DUP=1 the readings that had no PUBACK." },
  { es = "No esperes el PUBACK de cada lectura antes de enviar la siguiente, ni dejes de publicar con el enlace caído: con QoS 1 paho las guarda y las envía al reconectar. Mantén el ritmo: una lectura cada {{interval_ms}} ms, contando desde la primera (time.monotonic()), no desde la anterior.",
    en = "Do not wait for each reading's PUBACK before sending the next, and do not stop publishing while the link is down: at QoS 1 paho keeps them and sends them after reconnecting. Keep the pace: one reading every {{interval_ms}} ms, counted from the first (time.monotonic()), not from the previous one." },
  { es = "Para saber cuándo puedes salir, cuenta los PUBACK en on_publish(client, userdata, mid) y compáralos con los mid que devuelve publish(); sal en cuanto estén todos, sin pausas fijas. En paho 1.6, info.wait_for_publish() lanza RuntimeError con un mensaje publicado mientras estabas desconectado, aunque paho lo enviará después.",
    en = "To know when you may leave, count PUBACKs in on_publish(client, userdata, mid) and compare them with the mids publish() returns; leave as soon as they are all in, with no fixed pause. In paho 1.6, info.wait_for_publish() raises RuntimeError for a message published while disconnected, even though paho will send it later." },
  { es = "El id de cada lectura debe ser único y estable, el mismo en cada reenvío: por ejemplo f\"{client_id}-{n:04d}\". Y ts en milisegundos: int(time.time() * 1000).",
    en = "Each reading's id must be unique and stable, the same in every re-send: for example f\"{client_id}-{n:04d}\". And ts in milliseconds: int(time.time() * 1000)." },
  { es = "Míralo en el cable: mqlab trace --drop up:publish:{{drop_nth}} --cut-after up:publish:{{cut1_nth}} --refuse-after-cut {{refuse_s}}, y lanza tu sensor con MQTT_PORT=1884.",
    en = "Watch it on the wire: mqlab trace --drop up:publish:{{drop_nth}} --cut-after up:publish:{{cut1_nth}} --refuse-after-cut {{refuse_s}}, and run your sensor with MQTT_PORT=1884." },
}

---------------------------------------------------------------- guided mode

-- Step 1: a reading at QoS 1 on the topic, and the broker's PUBACK for it.
function H.guide_qos1(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind ~= "packet" then return nil end
  if ev.type == "CONNECT" and ev.dir == "up" and ev.client_id ~= p.client_id then
    return false, { es = string.format("tu sensor se conectó como «%s»; usa MQTT_CLIENT_ID (%s)", ev.client_id or "", p.client_id),
                    en = string.format("your sensor connected as '%s'; use MQTT_CLIENT_ID (%s)", ev.client_id or "", p.client_id) }
  end
  if ev.type == "PUBLISH" and ev.dir == "up" then
    if ev.topic ~= p.topic then
      return false, { es = string.format("publicó en %s; el topic es MQTT_TOPIC (%s)", ev.topic or "", p.topic),
                      en = string.format("it published on %s; the topic is MQTT_TOPIC (%s)", ev.topic or "", p.topic) }
    end
    if (ev.qos or 0) ~= 1 then
      return false, { es = string.format("su PUBLISH iba con QoS %d; este laboratorio pide QoS 1: sin PUBACK, una lectura perdida en un corte no vuelve", ev.qos or 0),
                      en = string.format("its PUBLISH went at QoS %d; this lab needs QoS 1: without a PUBACK, a reading lost in a cut never comes back", ev.qos or 0) }
    end
    d.waiting = d.waiting or {}
    d.waiting[ev.conn .. ":" .. tostring(ev.id)] = true
    return nil
  end
  if ev.type == "PUBACK" and ev.dir == "down" and d.waiting and d.waiting[ev.conn .. ":" .. tostring(ev.id)] then
    return true, { es = string.format("PUBLISH con QoS 1 y su PUBACK (id de paquete %d): el broker confirma cada lectura", ev.id or 0),
                   en = string.format("PUBLISH at QoS 1 and its PUBACK (packet id %d): the broker confirms each reading", ev.id or 0) }
  end
end

-- Step 2: after the cut, the sensor connects again and sends the
-- unconfirmed reading once more, flagged DUP=1.
function H.guide_resend(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind == "close" and not d.cut_seen then
    d.cut_seen = true
    return false, { es = "el enlace se cortó con una lectura sin confirmar", en = "the link went down with a reading unconfirmed" }
  end
  if ev.kind ~= "packet" or ev.dir ~= "up" then return nil end
  if ev.type == "CONNECT" and d.cut_seen then
    d.back = true
    return false, { es = string.format("tu sensor se reconectó (CONNECT de «%s», clean session %s)", ev.client_id or "", tostring(ev.clean)),
                    en = string.format("your sensor connected again (CONNECT from '%s', clean session %s)", ev.client_id or "", tostring(ev.clean)) }
  end
  if ev.type == "PUBLISH" and d.back then
    if ev.dup then
      return true, { es = string.format("reenvió la lectura con DUP=1 y el mismo id de paquete (%d): QoS 1 no pierde lo que el broker no confirmó", ev.id or 0),
                     en = string.format("it sent the reading again with DUP=1 and the same packet id (%d): QoS 1 does not lose what the broker did not confirm", ev.id or 0) }
    end
    d.new_after = (d.new_after or 0) + 1
    if d.new_after >= 3 then
      return false, { es = "tras reconectarse envía lecturas nuevas, pero la que se quedó sin PUBACK no ha vuelto con DUP=1: ¿usa una sesión persistente (clean_session=False) y QoS 1?",
                      en = "after reconnecting it sends new readings, but the one left without its PUBACK has not come again with DUP=1: does it use a persistent session (clean_session=False) and QoS 1?" }
    end
  end
end

---------------------------------------------------------------- helpers

-- Only the program goes through the proxy (the kit's clients connect to
-- the broker directly), so every connection on it is the program's.

-- What the proxy passed on to the broker.
local FORWARDED = { sent = true, duplicated = true, delayed = true, cut_after = true }
local CUT = { cut_before = true, cut_after = true, cut_mid = true }

-- Read the trace once: the program's packets, its connections, the cuts,
-- and each reading in the order it first showed up.
function H.read_trace(d, p)
  d.pubs = wire.select(d.events, { kind = "packet", type = "PUBLISH", dir = "up" })
  d.conns = wire.connections(d.events)
  d.cuts = wire.select(d.events, function(ev) return ev.kind == "packet" and CUT[ev.fate] == true end)
  d.t0 = d.conns[1] and d.conns[1].opened
  d.readings = {}         -- id -> {r = reading, ev = first PUBLISH, pubs = every PUBLISH}
  d.first = {}            -- {id =, ev =}, in the order the readings first showed up
  d.sent_ids = 0
  d.resent = 0
  for _, ev in ipairs(d.pubs) do
    if ev.dup then d.resent = d.resent + 1 end
    local r = ev.topic == p.topic and wire.reading(ev.payload or "")
    if r then
      local rd = d.readings[r.id]
      if not rd then
        rd = { r = r, ev = ev, pubs = {} }
        d.readings[r.id] = rd
        d.first[#d.first + 1] = { id = r.id, ev = ev }
        d.sent_ids = d.sent_ids + 1
      end
      rd.pubs[#rd.pubs + 1] = ev
    end
  end
  -- Acknowledgements that reached the program, by connection and packet id.
  d.acks = {}
  for _, ev in ipairs(d.events) do
    if ev.kind == "packet" and ev.dir == "down" and (ev.type == "PUBACK" or ev.type == "PUBCOMP")
       and ev.fate == "sent" and ev.id then
      local key = ev.conn .. ":" .. ev.id
      d.acks[key] = d.acks[key] or {}
      table.insert(d.acks[key], ev)
    end
  end
end

-- What the kit's subscriber received. Every reading the proxy passed on
-- is waited for (a short while each); then what is queued is taken.
function H.collect(d, p, sub)
  d.arrived, d.arrived_n, d.copies, d.dup_ids = {}, 0, 0, 0
  local function take(m)
    d.copies = d.copies + 1
    local r = wire.reading(m.payload or "")
    if not r then return end
    local n = (d.arrived[r.id] or 0) + 1
    d.arrived[r.id] = n
    if n == 1 then d.arrived_n = d.arrived_n + 1 end
    if n == 2 then d.dup_ids = d.dup_ids + 1 end
  end
  local want = {}
  for _, ev in ipairs(d.pubs) do
    local r = FORWARDED[ev.fate] and ev.topic == p.topic and wire.reading(ev.payload or "")
    if r then want[r.id] = true end
  end
  local function waiting()
    for id in pairs(want) do
      if not d.arrived[id] then return true end
    end
    return false
  end
  while waiting() do
    local m = sub:wait(2, p.topic)
    if not m then break end
    take(m)
  end
  for _, m in ipairs(sub:drain()) do take(m) end
end

-- The connection the program made after a cut, accepted by the broker.
function H.reconnection(d, p, cut)
  for _, c in ipairs(d.conns) do
    if c.conn > cut.conn and (c.opened or 0) >= cut.t and c.connect
       and c.connect.client_id == p.client_id and c.connack and (c.connack.rc or c.connack.reason) == 0 then
      return c
    end
  end
end

function H.count_type(events, typ, dir)
  return #wire.select(events, { kind = "packet", type = typ, dir = dir })
end

-- The times the link was down: from each cut to the next connection the
-- proxy accepted (open), or for ever.
function H.down_windows(d, p)
  local out = {}
  for _, cut in ipairs(d.cuts) do
    local back = H.reconnection(d, p, cut)
    out[#out + 1] = { from = cut.t, to = back and back.opened or math.huge }
  end
  return out
end

-- The connection attempts after a cut, refused or accepted, up to and
-- including the first the proxy accepted.
function H.attempts_after(d, cut)
  local out = {}
  for _, ev in ipairs(d.events) do
    if ev.i > cut.i and (ev.kind == "refused" or ev.kind == "open") then
      out[#out + 1] = ev
      if ev.kind == "open" then break end
    end
  end
  return out
end

-- The acknowledgement that reached the program for reading id: a PUBACK
-- (QoS 1) or PUBCOMP (QoS 2) on the connection of one of its PUBLISH
-- packets, with the same packet id, after it. The earliest such.
function H.ack_of(d, id)
  local rd = d.readings[id]
  local best
  for _, ev in ipairs(rd and rd.pubs or {}) do
    local want = (ev.qos == 2) and "PUBCOMP" or "PUBACK"
    for _, a in ipairs(ev.id and d.acks[ev.conn .. ":" .. ev.id] or {}) do
      if a.i > ev.i and a.type == want and (not best or a.t < best.t) then best = a break end
    end
  end
  return best
end

-- When the program left, as the wire shows it: the end (its DISCONNECT,
-- else the close) of its last connection, unless the proxy cut that one.
function H.program_end(d)
  local last = d.conns[#d.conns]
  if not last then return nil end
  if last.disconnect then return last.disconnect end
  for i = #last.events, 1, -1 do
    local ev = last.events[i]
    if ev.kind == "packet" and CUT[ev.fate] then return nil end
    if ev.kind == "close" then return ev end
  end
  return nil
end

---------------------------------------------------------------- the run

-- Run the sensor once through the faulty proxy; keep the trace and what
-- the kit's subscriber received.
local function setup(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  local sub = assert(ctx:client { id = "mqlab-sub", clean = true })
  assert(sub:subscribe(p.topic, 1))
  px:rule { action = "drop", type = "publish", dir = "up", nth = p.drop_nth }
  px:rule { action = "cut_after", type = "publish", dir = "up", nth = p.cut1_nth, refuse = p.refuse_s }
  px:rule { action = "cut_before", type = "publish", dir = "up", nth = p.cut2_nth, refuse = p.refuse2_s }
  d.prog, d.prog_err = ctx:program("sensor", { timeout = PROG_TIMEOUT })
  if d.prog then ctx:status({ es = "cortando el enlace tras el PUBLISH %d…", en = "cutting the link after PUBLISH %d…" }, p.cut1_nth) end
  local cut = d.prog and ctx:wait_running(d.prog, { fate = "cut_after" }, PROG_TIMEOUT)
  if cut then ctx:status({ es = "esperando tu reconexión…", en = "waiting for your reconnection…" }) end
  if cut and ctx:wait_running(d.prog, { type = "CONNACK", dir = "down" }, PROG_TIMEOUT, cut.i) then ctx:status({ es = "reconectado: esperando a que tu sensor termine…", en = "reconnected: waiting for your sensor to finish…" }) end
  if d.prog then d.prog:wait(PROG_TIMEOUT + 5) end
  d.events = px:events()
  H.read_trace(d, p)
  H.collect(d, p, sub)
end

return lab {
  id = "03-qos-loss",
  title = { es = "QoS 1 en un enlace que falla", en = "QoS 1 over a failing link" },
  submission = { programs = { "sensor" } },
  broker = "plain",
  proxy = true,
  setup_timeout = PROG_TIMEOUT + 20,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,
  hints = hints,
}
