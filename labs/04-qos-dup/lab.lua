-- Lab 04: QoS 2 and the duplicate.
--
-- Two parts. qos.txt answers which QoS suits five situations of the
-- student's plant. The dispenser program sends LAB_COUNT transactional
-- commands (doses) that must be carried out exactly once, through the
-- kit's proxy, which loses packets and cuts the link in the middle of
-- the QoS 1 and QoS 2 exchanges. A subscriber of the kit, connected to
-- the broker directly at QoS 2, counts how often each command arrives.
-- The instructions ask for what the checks judge: a persistent session
-- kept on every reconnection (persistent-session), exactly LAB_COUNT
-- commands at QoS 2 with a ts in ms and a dose above 0 (qos2,
-- all-delivered), each arriving once (exactly-once), and exit 0 once
-- every PUBCOMP is in (exit-0).
--
-- The fault plan, counted by packet so that it lands on the same packets
-- in every run (counts run across reconnections):
--   drop up PUBLISH #1         a QoS 0 command is lost for good; QoS 1
--                              and 2 re-send it after the next cut
--   cut before down PUBACK #2  a QoS 1 client re-sends that command with
--                              DUP=1 and the broker delivers it again
--   cut before down PUBREC #2  QoS 2, first half: the broker has not
--                              delivered yet, so the re-sent PUBLISH does
--                              no harm (and with a persistent session the
--                              broker knows it already)
--   cut before down PUBCOMP #3 QoS 2, second half: the broker delivered
--                              at the PUBREL. A persistent session re-sends
--                              the PUBREL (exactly once); a clean session
--                              re-sends the PUBLISH and it is delivered again
-- A client that publishes one command at a time would wait for ever
-- after the dropped PUBLISH (MQTT 3.1.1 re-sends only on reconnection),
-- so when such a link stays silent the kit cuts it, as a real broken
-- link would end. Pipelined clients never go quiet and never meet it.

local wire = require "mqlab.wire"
local kit = require "mqlab.kit"
local short = require("mqlab.text").short

local PROGRAM_TIMEOUT = 40   -- seconds the dispenser gets
local QUIET_CUT = 3          -- seconds of silence after a lost QoS 1/2 PUBLISH before the kit cuts the link
local NSCEN = 5              -- cases in qos.txt

-- Defined below the plan (checks call them at grading time).
local SCENARIOS, WHY
local parse_qos, command_key, analyse, label, find, ids_of
local completed, connect_of, dup_story, explain_dup, watch, cut_conn
local H = {}                -- the guided mode's helpers (H.guide_*), below the plan

---------------------------------------------------------------- the plan

local function params(rng)
  local plant = rng:pick({ "planta-1", "planta-2", "planta-3", "planta-4" })
  local hex = rng:hex(4)
  local by = { [0] = {}, [1] = {}, [2] = {} }
  for i, s in ipairs(SCENARIOS) do table.insert(by[s.qos], i) end
  -- One of each QoS for sure, then two more from what is left.
  local chosen, taken = {}, {}
  for q = 0, 2 do
    local i = rng:pick(by[q])
    chosen[#chosen + 1], taken[i] = i, true
  end
  local rest = {}
  for i in ipairs(SCENARIOS) do if not taken[i] then rest[#rest + 1] = i end end
  for _, i in ipairs(rng:sample(rest, NSCEN - #chosen)) do chosen[#chosen + 1] = i end
  chosen = rng:shuffle(chosen)

  local scen, lines_es, lines_en = {}, {}, {}
  for n, i in ipairs(chosen) do
    local s = SCENARIOS[i]
    scen[n] = { n = n, qos = s.qos, name = s.name }
    lines_es[n] = string.format("%d. %s", n, s.es)
    lines_en[n] = string.format("%d. %s", n, s.en)
  end
  return {
    plant = plant, hex = hex,
    client_id = "dispenser-" .. plant .. "-" .. hex,
    -- company/version/plant/zone/device/what, as lab 02 teaches: the
    -- command goes under `cmd`, and what it asks for is in the payload.
    topic = "acme/v1/" .. plant .. "/farmacia/dispensador-" .. hex .. "/cmd",
    count = rng:int(6, 9),
    timeout = PROGRAM_TIMEOUT,
    scenarios = scen,
    scenarios_es = table.concat(lines_es, "\n"),
    scenarios_en = table.concat(lines_en, "\n"),
  }
end

local checks = {
  -- Part 1: qos.txt.
  check {
    id = "qos-answers", points = 2,
    title = { es = "qos.txt: el QoS de cada caso", en = "qos.txt: the QoS of each case" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if d.qos_missing then
        t:fail({ es = "no encuentro qos.txt: escribe una línea «N Q» por cada uno de los %d casos",
                 en = "qos.txt not found: write one line \"N Q\" for each of the %d cases" }, NSCEN)
      end
      local q = d.qos
      for _, pr in ipairs(q.problems) do
        local why = ({
          format = { es = "escribe «N Q», por ejemplo «2 1»", en = "write \"N Q\", for example \"2 1\"" },
          scenario = { es = "no hay caso con ese número (son del 1 al %d)", en = "there is no case with that number (they go from 1 to %d)" },
          qos = { es = "el QoS es 0, 1 o 2", en = "QoS is 0, 1 or 2" },
        })[pr.why]
        t:say({ es = "línea %d, «%s», no se entiende: %s", en = "line %d, \"%s\", cannot be read: %s" },
              pr.line, pr.text, ctx:text(why, NSCEN))
      end
      local right = 0
      for _, s in ipairs(p.scenarios) do
        local got = q.answers[s.n]
        local name = ctx:text(s.name)
        if got == nil then
          t:expect(false, { es = "caso %d (%s): sin respuesta", en = "case %d (%s): no answer" }, s.n, name)
        elseif q.repeated[s.n] then
          t:expect(false, { es = "caso %d (%s): tiene dos respuestas distintas; deja una", en = "case %d (%s): it has two different answers; keep one" },
                   s.n, name)
        elseif got ~= s.qos then
          t:expect(false, { es = "caso %d (%s): escribiste QoS %d, pero es QoS %d: %s",
                            en = "case %d (%s): you wrote QoS %d, but it is QoS %d: %s" },
                   s.n, name, got, s.qos, ctx:text(WHY[s.qos][got]))
        else
          right = right + 1
        end
      end
      t:pass({ es = "los %d casos tienen el QoS adecuado", en = "all %d cases have the right QoS" }, right)
    end,
  },

  -- Step 1: the client id...
  check {
    id = "connects", points = 1,
    title = { es = "El dispensador se conecta con su client id", en = "The dispenser connects with its client id" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local a = d.a
      if #a.connects == 0 then ctx:why_absent(t) end
      local e = a.connects[1]
      if e.client_id ~= p.client_id then
        t:fail({ es = "tu programa se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno\n%s",
                 en = "your program connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment\n%s" },
               tostring(e.client_id), p.client_id, wire.block(e))
      end
      local ack = a.conns[1] and a.conns[1].connack
      if ack and ack.rc and ack.rc ~= 0 then
        t:fail({ es = "el broker rechazó la conexión (CONNACK %d):\n%s", en = "the broker refused the connection (CONNACK %d):\n%s" },
               ack.rc, wire.block(ack))
      end
      t:pass({ es = "CONNECT como «%s»:\n%s", en = "CONNECT as '%s':\n%s" }, p.client_id, wire.block(e))
    end,
  },

  -- Step 1: ...with a persistent session, kept on every reconnection;
  -- step 3: back by itself after each cut.
  check {
    id = "persistent-session", points = 2, after = "connects",
    title = { es = "Sesión persistente: clean session 0, y vuelve a ella tras cada corte",
              en = "Persistent session: clean session 0, and it comes back to it after each cut" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local conns = d.a.conns
      local clean, other = {}, {}
      for _, c in ipairs(conns) do
        if c.connect.clean then clean[#clean + 1] = c end
        if c.connect.client_id ~= p.client_id then other[#other + 1] = c end
      end
      local function nums(list)
        local out = {}
        for _, c in ipairs(list) do out[#out + 1] = "#" .. c.conn end
        return table.concat(out, ", ")
      end
      if #clean > 0 then
        t:expect(false, { es = "%d de tus %d conexiones (%s) pidieron clean session 1: el broker borra la sesión y, con ella, los intercambios QoS 2 a medias. Usa clean_session=False:\n%s",
                          en = "%d of your %d connections (%s) asked for clean session 1: the broker wipes the session and, with it, the QoS 2 exchanges in flight. Use clean_session=False:\n%s" },
                 #clean, #conns, nums(clean), wire.block(clean[#clean].connect))
      end
      if #other > 0 then
        t:expect(false, { es = "las conexiones %s usaron otro client id que «%s»; la sesión es de un client id, y con otro el broker empieza de cero:\n%s",
                          en = "connections %s used a client id other than '%s'; a session belongs to one client id, and with another the broker starts from nothing:\n%s" },
                 nums(other), p.client_id, wire.block(other[1].connect))
      end
      if t.failed then t:fail() end
      -- A connection the link lost (the proxy cut it, or the kit did
      -- after a silence) must be followed by another one.
      local last = conns[#conns]
      if last and d.prog and not d.prog:timed_out() and cut_conn(d, last.conn) then
        t:fail({ es = "el enlace se cortó en la conexión #%d y tu programa no volvió a conectarse (%s): reconéctate solo, con el mismo client id y clean session 0, y termina lo que quedó a medias:\n%s",
                 en = "the link was cut on connection #%d and your program never connected again (%s): reconnect by yourself, with the same client id and clean session 0, and finish what was left half done:\n%s" },
               last.conn, ctx:how_ended(d.prog), wire.block(cut_conn(d, last.conn)))
      end
      for i = 2, #conns do
        local c = conns[i]
        if c.connack and not c.connack.session_present then
          t:expect(false, { es = "tras el corte, el CONNACK de la conexión #%d dijo session present = 0: el broker no conservaba tu sesión:\n%s\n%s",
                            en = "after the cut, the CONNACK of connection #%d said session present = 0: the broker had not kept your session:\n%s\n%s" },
                   c.conn, wire.block(c.connect), wire.block(c.connack))
        end
      end
      if #conns == 1 then
        t:pass({ es = "una conexión, como «%s» con clean session 0 (no hubo reconexión)", en = "one connection, as '%s' with clean session 0 (there was no reconnection)" },
               p.client_id)
      else
        local last = conns[#conns]
        t:pass({ es = "%d conexiones, todas como «%s» con clean session 0; tras cada corte el broker respondió session present = 1:\n%s",
                 en = "%d connections, all as '%s' with clean session 0; after each cut the broker answered session present = 1:\n%s" },
               #conns, p.client_id, wire.block(last.connack or last.connect))
      end
    end,
  },

  -- Step 2: at QoS 2.
  check {
    id = "qos2", points = 2, after = "connects",
    title = { es = "Las órdenes viajan con QoS 2", en = "The commands travel at QoS 2" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local a = d.a
      if #a.pubs == 0 then
        local others = {}
        for topic in pairs(a.other_topics) do others[#others + 1] = topic end
        table.sort(others)
        if #others > 0 then
          t:fail({ es = "tu programa publicó en %s, pero MQTT_TOPIC es %s", en = "your program published on %s, but MQTT_TOPIC is %s" },
                 table.concat(others, ", "), p.topic)
        end
        t:fail({ es = "el proxy no vio ningún PUBLISH de tu programa en %s", en = "the proxy saw no PUBLISH from your program on %s" }, p.topic)
      end
      local byq = { [0] = {}, [1] = {}, [2] = {} }
      for _, c in ipairs(a.cmds) do
        local q = c.pubs[1].qos or 0
        byq[q][#byq[q] + 1] = c
      end
      if #byq[0] == 0 and #byq[1] == 0 then
        local shown = a.pubs[1]
        for _, ev in ipairs(a.pubs) do
          if ev.fate == "sent" then shown = ev break end
        end
        t:pass({ es = "los PUBLISH de tus %d órdenes llevaban QoS 2, por ejemplo:\n%s", en = "the PUBLISH packets of your %d commands had QoS 2, for example:\n%s" },
               #a.cmds, wire.block(shown))
        return
      end
      if #byq[0] > 0 then
        local lost
        for _, c in ipairs(byq[0]) do
          if c.deliveries == 0 then lost = c break end
        end
        if lost then
          t:say({ es = "%d órdenes con QoS 0 («dispara y olvida»): el proxy perdió %s y nadie lo volvió a enviar:\n%s",
                  en = "%d commands at QoS 0 (\"fire and forget\"): the proxy lost %s and nobody sent it again:\n%s" },
                #byq[0], label(ctx, lost), wire.block(lost.pubs[1]))
        else
          t:say({ es = "%d órdenes con QoS 0 («dispara y olvida»): si el enlace pierde una, nadie la reenvía",
                  en = "%d commands at QoS 0 (\"fire and forget\"): if the link loses one, nobody sends it again" }, #byq[0])
        end
      end
      if #byq[1] > 0 then
        local dup
        for _, c in ipairs(byq[1]) do
          if c.deliveries > 1 then dup = c break end
        end
        if dup then
          local st = dup_story(dup, d.events)
          t:say({ es = "%d órdenes con QoS 1 («al menos una vez»): %s llegó %s, porque tras perderse su PUBACK tu cliente la reenvió:\n%s\n%s",
                  en = "%d commands at QoS 1 (\"at least once\"): %s arrived %s, because after its PUBACK was lost your client re-sent it:\n%s\n%s" },
                #byq[1], label(ctx, dup), ctx:times(dup.deliveries), wire.block(st and st.sent or dup.pubs[1]),
                wire.block(st and st.resend or dup.pubs[#dup.pubs]))
        else
          t:say({ es = "%d órdenes con QoS 1 («al menos una vez»): si se pierde un PUBACK, el cliente reenvía la orden y el broker la entrega otra vez",
                  en = "%d commands at QoS 1 (\"at least once\"): if a PUBACK is lost, the client re-sends the command and the broker delivers it again" }, #byq[1])
        end
      end
      t:fail({ es = "una orden que no debe perderse ni repetirse necesita QoS 2", en = "a command that must be neither lost nor repeated needs QoS 2" })
    end,
  },

  -- Step 2: LAB_COUNT commands, each its own id; step 3: none lost.
  check {
    id = "all-delivered", points = 1, after = "connects",
    title = { es = "Todas las órdenes llegan", en = "Every command arrives" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local a = d.a
      if #a.cmds == 0 then
        t:fail({ es = "el proxy no vio ninguna orden de tu programa en %s", en = "the proxy saw no command from your program on %s" }, p.topic)
      end
      for _, c in ipairs(a.cmds) do
        if not c.id then
          local why = ({
            json = { es = "no es JSON", en = "it is not JSON" },
            id = { es = "le falta «id» (texto)", en = "it lacks \"id\" (a string)" },
            ts = { es = "le falta «ts» (número, ms)", en = "it lacks \"ts\" (a number, ms)" },
            v = { es = "le falta «v» (número)", en = "it lacks \"v\" (a number)" },
          })[c.why or "json"]
          t:fail({ es = "el payload de %s no es {\"id\", \"ts\", \"v\"}: %s", en = "the payload of %s is not {\"id\", \"ts\", \"v\"}: %s" },
                 label(ctx, c), ctx:text(why))
        end
      end
      for _, c in ipairs(a.cmds) do
        local r = c.id and wire.reading(c.payload or "")
        if r and (r.ts < 1e12 or r.ts > 1e14) then
          t:fail({ es = "«ts» de %s debe ir en milisegundos desde 1970 (unos 13 dígitos), y vale %s", en = "\"ts\" of %s must be milliseconds since 1970 (about 13 digits), and it is %s" },
                 label(ctx, c), string.format("%.0f", r.ts))
        end
        if r and not (r.v > 0) then
          t:fail({ es = "«v» de %s es la dosis en ml, un número mayor que 0, y vale %s", en = "\"v\" of %s is the dose in ml, a number above 0, and it is %s" },
                 label(ctx, c), tostring(r.v))
        end
      end
      if #a.cmds > p.count then
        t:fail({ es = "el proxy vio %d órdenes distintas (ids distintos), pero LAB_COUNT es %d: cada orden de más es una dosis de más. Publica exactamente LAB_COUNT órdenes",
                 en = "the proxy saw %d different commands (different ids), but LAB_COUNT is %d: every extra command is an extra dose. Publish exactly LAB_COUNT commands" },
               #a.cmds, p.count)
      end
      t:expect(#a.cmds >= p.count,
               { es = "el proxy vio %d órdenes distintas (ids distintos) y LAB_COUNT es %d: ¿tienen todas un id propio?",
                 en = "the proxy saw %d different commands (different ids) and LAB_COUNT is %d: does each have an id of its own?" },
               #a.cmds, p.count)
      for _, c in ipairs(a.cmds) do
        if c.deliveries == 0 then
          local lines = {}
          for _, ev in ipairs(c.pubs) do lines[#lines + 1] = wire.block(ev) end
          if #c.pubs == 1 and c.pubs[1].fate ~= "sent" then
            t:expect(false, { es = "%s no llegó nunca al suscriptor: el proxy perdió su PUBLISH y tu cliente no lo volvió a enviar:\n%s",
                              en = "%s never reached the subscriber: the proxy lost its PUBLISH and your client did not send it again:\n%s" },
                     label(ctx, c), table.concat(lines, "\n"))
          else
            t:expect(false, { es = "%s no llegó nunca al suscriptor. Sus PUBLISH:\n%s", en = "%s never reached the subscriber. Its PUBLISH packets:\n%s" },
                     label(ctx, c), table.concat(lines, "\n"))
          end
        end
      end
      t:pass({ es = "las %d órdenes llegaron al suscriptor del kit", en = "all %d commands reached the kit's subscriber" }, #a.cmds)
    end,
  },

  -- Step 3: none repeated.
  check {
    id = "exactly-once", points = 3, after = "connects",
    title = { es = "Ninguna orden llega dos veces", en = "No command arrives twice" },
    run = function(t, ctx)
      local d = ctx.data
      local a = d.a
      if a.delivered == 0 then
        t:fail({ es = "ninguna orden llegó al suscriptor del kit: no hay nada que contar", en = "no command reached the kit's subscriber: there is nothing to count" })
      end
      -- A repeat is born across a reconnection: without one, "exactly
      -- once" was never put to the test (and which commands happened to
      -- arrive before the cut is a matter of timing).
      local cut = false
      for _, ev in ipairs(ctx.data.events) do
        if ev.fate == "cut_before" or ev.fate == "cut_after" or ev.fate == "cut_mid" then cut = true; break end
      end
      if cut and #a.conns < 2 then
        t:fail({ es = "tu dispensador no volvió a conectarse tras el primer corte: «exactamente una vez» se pone a prueba al reconectar, y aquí no hubo reconexión",
                 en = "your dispenser never connected again after the first cut: \"exactly once\" is put to the test by reconnecting, and there was no reconnection" })
      end
      local dups, shared = {}, nil
      for _, c in ipairs(a.cmds) do
        if c.deliveries > 1 then dups[#dups + 1] = c end
        local fresh = 0
        for _, ev in ipairs(c.pubs) do if not ev.dup then fresh = fresh + 1 end end
        if fresh > 1 and #a.cmds < ctx.p.count then shared = shared or c end
      end
      if shared then
        t:fail({ es = "varias órdenes distintas comparten el id «%s» (ids distintos en el cable: %d; LAB_COUNT: %d): el kit cuenta las órdenes por su id, así que una orden nueva con el mismo id parece una repetida. Da a cada orden su propio id",
                 en = "several different commands share the id '%s' (different ids on the wire: %d; LAB_COUNT: %d): the kit counts commands by their id, so a new command with the same id looks like a repeat. Give each command an id of its own" },
               shared.id or shared.payload, #a.cmds, ctx.p.count)
      end
      if #dups == 0 then
        t:pass({ es = "cada una de las %d órdenes entregadas llegó una sola vez, a pesar de %d cortes", en = "each of the %d delivered commands arrived exactly once, despite %d cuts" },
               a.delivered, math.max(#a.conns - 1, 0))
        return
      end
      explain_dup(t, ctx, dups[1], a)
      if #dups > 1 then
        local more = {}
        for i = 2, #dups do more[#more + 1] = string.format("%d (×%d)", dups[i].n, dups[i].deliveries) end
        t:say({ es = "también llegaron repetidas las órdenes %s", en = "commands %s arrived more than once too" }, table.concat(more, ", "))
      end
      t:fail()
    end,
  },

  -- Step 4: exit 0 once every command is complete.
  check {
    id = "exit-0", points = 1, after = "connects",
    title = { es = "Termina con código 0 cuando todo está completo", en = "It exits with code 0 once everything is complete" },
    run = function(t, ctx)
      local d = ctx.data
      local prog, a = d.prog, d.a
      local open = {}
      for _, c in ipairs(a.cmds) do
        if not completed(c, d.events) then open[#open + 1] = c end
      end
      if prog:timed_out() then
        local msg = ctx:text({ es = "tu programa seguía en marcha a los %d s y el kit lo paró", en = "your program was still running after %d s, and the kit stopped it" },
                             PROGRAM_TIMEOUT)
        if #open > 0 then
          msg = msg .. ctx:text({ es = ". %s seguía sin completarse; un cliente MQTT 3.1.1 solo reenvía lo pendiente al reconectar. Su último paquete:\n%s",
                                  en = ". %s was still not complete; an MQTT 3.1.1 client re-sends what is pending only when it reconnects. Its last packet:\n%s" },
                                label(ctx, open[1]), wire.block(open[1].pubs[#open[1].pubs]))
        end
        t:fail(msg)
      end
      local code, sig = prog:exit_code()
      if code ~= 0 then
        t:fail({ es = "%s (se esperaba 0). Su salida de error:\n%s", en = "%s (expected 0). Its stderr:\n%s" },
               ctx:how_ended(prog), ctx:stderr_tail(prog, 600))
      end
      for _, c in ipairs(open) do
        local q = c.pubs[1].qos
        t:expect(false, { es = "salió antes de completar %s: no le llegó su %s", en = "it exited before %s was complete: its %s never reached it" },
                 label(ctx, c), q == 1 and "PUBACK" or "PUBCOMP")
      end
      t:pass({ es = "salió con código 0 tras completar las %d órdenes (%.1f s)", en = "it exited with code 0 after completing all %d commands (%.1f s)" },
             #a.cmds, prog:runtime())
    end,
  },
}

-- Guided mode (mqlab start 04): a subscriber at QoS 2, one command and
-- its four packets, then a PUBCOMP the kit loses on Enter: a client that
-- kept its session finishes with the PUBREL, and the command arrives once.
local guide = {
  step {
    id = "watch",
    title = { es = "Un suscriptor con QoS 2", en = "A subscriber at QoS 2" },
    text = {
      es = "En otra terminal, el que ejecuta las dosis: un suscriptor con QoS 2 y un client id propio (déjalo abierto):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i watch-{{hex}} -t '{{topic}}' -q 2 -v",
      en = "In another terminal, the one that carries out the doses: a subscriber at QoS 2 with a client id of its own (leave it running):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i watch-{{hex}} -t '{{topic}}' -q 2 -v",
    },
    on = function(ev, ctx) return H.guide_watch(ev, ctx) end,
  },
  step {
    id = "handshake",
    title = { es = "Una orden con QoS 2: cuatro paquetes", en = "One command at QoS 2: four packets" },
    text = {
      es = "En una tercera terminal, una orden de dosis con el client id del dispensador y QoS 2:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 2 -m '{\"id\": \"dosis-1\", \"v\": 5}'\n\nEl broker no la entrega al recibir el PUBLISH, sino al recibir el PUBREL.",
      en = "In a third terminal, one dose command with the dispenser's client id and QoS 2:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 2 -m '{\"id\": \"dosis-1\", \"v\": 5}'\n\nThe broker does not deliver it when the PUBLISH comes, but when the PUBREL does.",
    },
    on = function(ev, ctx) return H.guide_handshake(ev, ctx) end,
  },
  step {
    id = "lost-pubcomp",
    title = { es = "Un PUBCOMP perdido: se repite el PUBREL, no la orden", en = "A lost PUBCOMP: the PUBREL is repeated, not the command" },
    text = {
      es = "Ahora pierdo el próximo PUBCOMP que el broker envíe a {{client_id}} y corto su enlace: el broker ya entregó esa orden (en el PUBREL), pero el dispensador no lo sabe. Tras pulsar Enter, lanza el dispensador de referencia (o el tuyo), que guarda su sesión (clean session 0):\n\n    MQTT_HOST={{host}} MQTT_PORT={{port}} MQTT_CLIENT_ID={{client_id}} MQTT_TOPIC='{{topic}}' LAB_COUNT=3 python3 solutions/04-qos-dup/dispenser.py\n\nMira qué reenvía al reconectarse, y cuántas veces imprime cada orden tu suscriptor.",
      en = "Now I lose the next PUBCOMP the broker sends to {{client_id}} and cut its link: the broker has already delivered that command (at the PUBREL), but the dispenser does not know it. After pressing Enter, run the reference dispenser (or yours), which keeps its session (clean session 0):\n\n    MQTT_HOST={{host}} MQTT_PORT={{port}} MQTT_CLIENT_ID={{client_id}} MQTT_TOPIC='{{topic}}' LAB_COUNT=3 python3 solutions/04-qos-dup/dispenser.py\n\nWatch what it sends again after reconnecting, and how many times your subscriber prints each command.",
    },
    prompt = { es = "Pulsa Enter y pierdo el próximo PUBCOMP.", en = "Press Enter and I lose the next PUBCOMP." },
    act = function(ctx)
      H.guide_arm_pubcomp(ctx)
      return { es = "Preparado: el próximo PUBCOMP para tu dispensador no llegará, y su enlace se cae con él.",
               en = "Ready: the next PUBCOMP for your dispenser will not arrive, and its link goes down with it." }
    end,
    on = function(ev, ctx) return H.guide_lost_pubcomp(ev, ctx) end,
  },
}

local hints = {
  { es = "Para qos.txt, parte siempre de QoS 1. Baja a 0 solo si el dato llega tan a menudo que perder uno no importa. Sube a 2 solo si repetir el mensaje hace daño y el receptor no puede reconocer la repetición: una orden que se ejecuta cada vez que llega.",
    en = "For qos.txt, always start from QoS 1. Go down to 0 only if the data comes so often that losing one does not matter. Go up to 2 only if a repeat does harm and the receiver cannot recognise it: a command that is carried out every time it arrives." },
  { es = "QoS 2 solo es «exactamente una vez» mientras la sesión sobrevive al corte: mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False). Con clean_session=True, tras un corte paho reenvía el PUBLISH entero y el broker, que ha olvidado el intercambio, lo entrega otra vez.",
    en = "QoS 2 is only \"exactly once\" while the session survives the cut: mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False). With clean_session=True, after a cut paho re-sends the whole PUBLISH and the broker, which has forgotten the exchange, delivers it again." },
  { es = "No reenvíes tú las órdenes: cada publish() es un mensaje nuevo. Usa loop_start() (paho reconecta solo y reenvía lo pendiente) y cuenta las órdenes completas en on_publish, que en QoS 2 llega con el PUBCOMP. Sal cuando hayan vuelto todos los mid.",
    en = "Do not re-send the commands yourself: every publish() is a new message. Use loop_start() (paho reconnects by itself and re-sends what is pending) and count the completed commands in on_publish, which at QoS 2 comes with the PUBCOMP. Exit once every mid has come back." },
  { es = "on_publish puede llegar antes de que publish() devuelva su mid: guarda los mid y los completados bajo un mismo threading.Lock (o un Condition) y compara los dos conjuntos. wait_for_publish() lanza RuntimeError si llamaste a publish() durante un corte, aunque paho guardó el mensaje para reenviarlo.",
    en = "on_publish may come before publish() has returned its mid: keep the mids and the completed ones under one threading.Lock (or a Condition) and compare the two sets. wait_for_publish() raises RuntimeError if publish() was called during a cut, even though paho kept the message to re-send it." },
  { es = "Míralo en el cable: mqlab trace --cut-before down:pubcomp:1 --client {{client_id}}, y lanza tu dispensador con MQTT_PORT=1884. Tras la reconexión, un cliente con sesión persistente envía PUBREL; uno con clean session reenvía el PUBLISH con DUP=1.",
    en = "Watch it on the wire: mqlab trace --cut-before down:pubcomp:1 --client {{client_id}}, then run your dispenser with MQTT_PORT=1884. After the reconnection, a client with a persistent session sends PUBREL; one with a clean session re-sends the PUBLISH with DUP=1." },
}

---------------------------------------------------------------- guided mode

local function both(es, en) return { es = es, en = en } end

-- Step 1: a SUBSCRIBE to the topic at QoS 2, from a client that is not
-- the dispenser (the dispenser would take its id over later).
function H.guide_watch(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind ~= "packet" or ev.dir ~= "up" then return nil end
  if ev.type == "CONNECT" and ev.client_id == p.client_id then
    d.watch_is_dispenser = true
    return false, both(string.format("ese CONNECT usa el client id del dispensador (%s): cuando el dispensador se conecte, el broker cerrará este suscriptor. Usa otro (-i watch-%s)", p.client_id, p.hex),
                       string.format("that CONNECT uses the dispenser's client id (%s): when the dispenser connects, the broker will close this subscriber. Use another one (-i watch-%s)", p.client_id, p.hex))
  end
  if ev.type ~= "SUBSCRIBE" or ev.client == p.client_id then return nil end
  for _, f in ipairs(ev.filters or {}) do
    if f.filter ~= p.topic then
      return false, both(string.format("te suscribiste a %s; las órdenes van a %s", f.filter, p.topic),
                         string.format("you subscribed to %s; the commands go to %s", f.filter, p.topic))
    end
    if (f.qos or 0) ~= 2 then
      return false, both(string.format("tu SUBSCRIBE pidió QoS %d: el broker entrega con el menor de los dos QoS, así que una orden con QoS 2 te llegaría con QoS %d, y una repetición sería una dosis doble. Este paso pide -q 2", f.qos or 0, f.qos or 0),
                         string.format("your SUBSCRIBE asked for QoS %d: the broker delivers at the lower of the two QoS, so a QoS 2 command would reach you at QoS %d, and a repeat would be a double dose. This step needs -q 2", f.qos or 0, f.qos or 0))
    end
    return true, both(string.format("SUBSCRIBE a %s con QoS 2 de «%s»", p.topic, ev.client or "?"),
                      string.format("SUBSCRIBE to %s at QoS 2 from '%s'", p.topic, ev.client or "?"))
  end
end

-- Step 2: PUBLISH at QoS 2 from the dispenser's id, PUBREC, PUBREL, and
-- the PUBCOMP that closes the exchange.
function H.guide_handshake(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind ~= "packet" or ev.client ~= p.client_id then return nil end
  d.hs = d.hs or {}
  local key = ev.conn .. ":" .. tostring(ev.id)
  if ev.type == "CONNECT" and ev.dir == "up" then
    d.hs_conn = ev.conn
  elseif ev.type == "PUBLISH" and ev.dir == "up" then
    if ev.topic ~= p.topic then
      return false, both(string.format("publicaste en %s; las órdenes van a %s", ev.topic or "", p.topic),
                         string.format("you published on %s; the commands go to %s", ev.topic or "", p.topic))
    end
    if (ev.qos or 0) == 1 then
      return false, both("tu PUBLISH iba con QoS 1: el broker lo entrega en cuanto llega y responde PUBACK; si ese PUBACK se pierde, el cliente lo reenvía y la dosis se da dos veces. Una orden que no debe repetirse va con -q 2",
                         "your PUBLISH went at QoS 1: the broker delivers it as soon as it comes and answers PUBACK; if that PUBACK is lost the client sends it again, and the dose is given twice. A command that must not be repeated goes with -q 2")
    end
    if (ev.qos or 0) == 0 then
      return false, both("tu PUBLISH iba con QoS 0: nadie lo confirma, y si se pierde la dosis no se da nunca. Este paso pide -q 2",
                         "your PUBLISH went at QoS 0: nobody acknowledges it, and if it is lost the dose is never given. This step needs -q 2")
    end
    d.hs[key] = "publish"
  elseif ev.type == "PUBREC" and ev.dir == "down" and d.hs[key] then
    d.hs[key] = "pubrec"
  elseif ev.type == "PUBREL" and ev.dir == "up" and d.hs[key] then
    d.hs[key] = "pubrel"
  elseif ev.type == "PUBCOMP" and ev.dir == "down" and d.hs[key] == "pubrel" then
    return true, both(string.format("PUBLISH, PUBREC, PUBREL y PUBCOMP con el id de paquete %d: el broker entregó la orden al llegar el PUBREL, y el PUBCOMP le dice al dispensador que ya puede olvidarla", ev.id or 0),
                      string.format("PUBLISH, PUBREC, PUBREL and PUBCOMP with packet id %d: the broker delivered the command when the PUBREL came, and the PUBCOMP tells the dispenser it may forget it", ev.id or 0))
  end
end

-- Step 3, on Enter (and again after a wrong attempt): lose the next
-- PUBCOMP for the dispenser and cut its link.
function H.guide_arm_pubcomp(ctx)
  ctx.proxy:rule { action = "cut_before", type = "PUBCOMP", dir = "down", client = ctx.p.client_id, nth = 1 }
  ctx.data.cut = nil
end

-- Step 3: after the lost PUBCOMP the dispenser comes back with its
-- session and sends the PUBREL again (right), or sends the command again
-- as a PUBLISH, which the broker delivers a second time (wrong).
function H.guide_lost_pubcomp(ev, ctx)
  local p, d = ctx.p, ctx.data
  d.pubs = d.pubs or {}          -- conn:id -> payload, the dispenser's PUBLISH packets
  d.deliveries = d.deliveries or {}
  if ev.kind == "close" and d.wrong_conn == ev.conn then
    d.wrong_conn = nil
    H.guide_arm_pubcomp(ctx)
    return false, both("vuelvo a perder el próximo PUBCOMP: prueba otra vez con un cliente que guarde su sesión (el dispensador de referencia)",
                       "I lose the next PUBCOMP again: try once more with a client that keeps its session (the reference dispenser)")
  end
  if ev.kind ~= "packet" then return nil end
  local key = ev.conn .. ":" .. tostring(ev.id)
  -- Deliveries to the subscriber: every PUBLISH going down to another client.
  if ev.type == "PUBLISH" and ev.dir == "down" and ev.client ~= p.client_id then
    local k = command_key(ev.payload)
    d.deliveries[k] = (d.deliveries[k] or 0) + 1
    if d.deliveries[k] >= 2 and not ev.dup then
      return false, both(string.format("tu suscriptor recibió %s %d veces: dos dosis para una sola orden", short(ev.payload, 60), d.deliveries[k]),
                         string.format("your subscriber received %s %d times: two doses for one command", short(ev.payload, 60), d.deliveries[k]))
    end
    return nil
  end
  if ev.client ~= p.client_id then return nil end
  if ev.type == "PUBLISH" and ev.dir == "up" then
    d.pubs[key] = ev.payload
    if (ev.qos or 0) < 2 then
      return false, both(string.format("ese PUBLISH iba con QoS %d: sin PUBREL ni PUBCOMP no hay nada que perder aquí. Este paso pide QoS 2", ev.qos or 0),
                         string.format("that PUBLISH went at QoS %d: with no PUBREL nor PUBCOMP there is nothing to lose here. This step needs QoS 2", ev.qos or 0))
    end
    if d.cut and command_key(ev.payload) == d.cut.key then
      d.wrong_conn, d.cut = ev.conn, nil
      return false, both(string.format("tras el corte tu cliente volvió a enviar la orden como PUBLISH (DUP=%d, id de paquete %d) en lugar del PUBREL: el broker ya la había entregado en el PUBREL y la entrega otra vez. Hace falta una sesión persistente (clean session 0) y un cliente que recuerde el intercambio a medias: mosquitto_pub se rinde al perder la conexión, y otra ejecución es una orden nueva",
                                       ev.dup and 1 or 0, ev.id or 0),
                         string.format("after the cut your client sent the command again as a PUBLISH (DUP=%d, packet id %d) instead of the PUBREL: the broker had already delivered it at the PUBREL, and delivers it again. It takes a persistent session (clean session 0) and a client that remembers the half-done exchange: mosquitto_pub gives up when its connection is lost, and another run is a new command",
                                       ev.dup and 1 or 0, ev.id or 0))
    end
    return nil
  end
  if ev.type == "PUBCOMP" and ev.dir == "down" and (ev.fate == "cut_before" or ev.fate == "dropped") then
    local payload = d.pubs[key]
    d.cut = { conn = ev.conn, id = ev.id, key = payload and command_key(payload) or "?", payload = payload }
    return false, both(string.format("el PUBCOMP del id de paquete %d se perdió y el enlace se cortó: el broker ya entregó %s; tu cliente no lo sabe", ev.id or 0, short(payload or "?", 60)),
                       string.format("the PUBCOMP for packet id %d was lost and the link cut: the broker has already delivered %s; your client does not know it", ev.id or 0, short(payload or "?", 60)))
  end
  if not d.cut then return nil end
  if ev.type == "CONNECT" and ev.dir == "up" and ev.conn ~= d.cut.conn then
    d.back = { conn = ev.conn, clean = ev.clean }
    if ev.clean then
      d.wrong_conn = ev.conn      -- when it leaves, the fault is armed again
      return false, both("tu cliente se reconectó con clean session 1: el broker ha tirado la sesión, y con ella el intercambio a medias. Usa clean session 0 (clean_session=False) con el mismo client id",
                         "your client reconnected with clean session 1: the broker has thrown the session away, and the half-done exchange with it. Use clean session 0 (clean_session=False) with the same client id")
    end
    return false, both("tu cliente se reconectó con clean session 0: el broker aún recuerda el intercambio a medias",
                       "your client reconnected with clean session 0: the broker still remembers the half-done exchange")
  end
  -- The PUBREL that resumes the cut exchange: on a later connection, with
  -- no PUBLISH of that packet id on it (else it is a new exchange's).
  if ev.type == "PUBREL" and ev.dir == "up" and ev.id == d.cut.id and ev.conn ~= d.cut.conn and not d.pubs[key] then
    d.pubrel_conn = ev.conn
    return nil
  end
  if ev.type == "PUBCOMP" and ev.dir == "down" and ev.fate == "sent" and ev.id == d.cut.id and ev.conn == d.pubrel_conn then
    local n = d.deliveries[d.cut.key] or 0
    local seen = n == 1 and both(" y tu suscriptor la recibió una sola vez", " and your subscriber got it exactly once") or both("", "")
    return true, both(string.format("tras reconectarse con su sesión reenvió el PUBREL (id de paquete %d), no el PUBLISH: el broker respondió PUBCOMP sin entregar nada de nuevo%s. Eso es QoS 2: exactamente una vez, mientras la sesión sobrevive al corte", ev.id or 0, seen.es),
                      string.format("after reconnecting with its session it sent the PUBREL again (packet id %d), not the PUBLISH: the broker answered PUBCOMP without delivering anything again%s. That is QoS 2: exactly once, while the session survives the cut", ev.id or 0, seen.en))
  end
end

---------------------------------------------------------------- scenarios


-- The pool of situations; each student gets five, with at least one of
-- each QoS. `name` is the short label used in feedback.
SCENARIOS = {
  { qos = 0,
    name = { es = "vibración de la bomba", en = "pump vibration" },
    es = "Un acelerómetro en el motor de la bomba principal envía su vibración 50 veces por segundo a una gráfica en vivo de la sala de control. Si falta un punto, la gráfica sigue con el siguiente.",
    en = "An accelerometer on the main pump's motor sends its vibration 50 times a second to a live chart in the control room. If a point is missing, the chart simply goes on with the next one." },
  { qos = 0,
    name = { es = "posición de las carretillas", en = "forklift positions" },
    es = "Cada carretilla elevadora envía su posición cada 200 ms para dibujarla en el plano de la nave.",
    en = "Every forklift sends its position every 200 ms so that the floor plan can show where it is." },
  { qos = 0,
    name = { es = "ruido de la zona de prensas", en = "press area noise" },
    es = "Un sonómetro de la zona de prensas publica el nivel de ruido 10 veces por segundo para un indicador en directo; las medias por minuto del histórico las calcula y guarda el propio equipo.",
    en = "A sound meter in the press area publishes the noise level 10 times a second for a live gauge; the device itself computes and stores the per-minute averages for the history." },
  { qos = 1,
    name = { es = "temperatura de la cámara de vacunas", en = "vaccine fridge temperature" },
    es = "La temperatura de la cámara de vacunas: una lectura por minuto, con su id, que el histórico guarda para las auditorías. El consumidor descarta las lecturas repetidas.",
    en = "The vaccine fridge temperature: one reading a minute, with its id, kept in the history for audits. The consumer discards repeated readings." },
  { qos = 1,
    name = { es = "alarma de puerta abierta", en = "door-open alarm" },
    es = "La alarma «puerta de la cámara frigorífica abierta». El SCADA tiene que verla sin falta; si le llega dos veces, sigue mostrando una sola alarma.",
    en = "The alarm \"cold room door open\". The SCADA must see it without fail; if it arrives twice, it still shows a single alarm." },
  { qos = 1,
    name = { es = "estado de la pasarela", en = "gateway state" },
    es = "El estado online/offline de la pasarela de la planta, publicado como mensaje retenido cada vez que cambia.",
    en = "The online/offline state of the plant's gateway, published as a retained message whenever it changes." },
  { qos = 1,
    name = { es = "piezas por hora", en = "parts per hour" },
    es = "El recuento de piezas producidas en cada hora, que el ERP guarda con la hora como clave: si llega repetido, sobrescribe el mismo registro.",
    en = "The count of parts produced each hour, which the ERP stores keyed by the hour: a repeat overwrites the same record." },
  { qos = 2,
    name = { es = "dosis del robot de farmacia", en = "pharmacy robot dose" },
    es = "La orden al robot de la farmacia del hospital de dispensar una dosis para un paciente. El robot ejecuta cada orden que recibe y no puede distinguir una repetida.",
    en = "The order to the hospital pharmacy robot to dispense one dose for a patient. The robot carries out every order it receives and cannot tell a repeated one." },
  { qos = 2,
    name = { es = "reactivo al tanque", en = "reagent into the tank" },
    es = "La orden a la dosificadora de añadir 50 litros de reactivo al tanque 3. La dosificadora no puede distinguir una orden repetida, y añadirlo dos veces estropea el lote.",
    en = "The order to the dosing unit to add 50 litres of reagent to tank 3. The unit cannot tell a repeated order, and adding it twice ruins the batch." },
  { qos = 2,
    name = { es = "salida de un palé", en = "pallet out" },
    es = "La orden al almacén automático de sacar un palé de materia prima y descontarlo del inventario. Si la orden se repite, sale otro palé y el stock deja de cuadrar.",
    en = "The order to the automated warehouse to take out one pallet of raw material and book it out of the inventory. If the order is repeated, another pallet comes out and the stock no longer adds up." },
}

-- Why the right answer is right, for the answer the student gave
-- instead: WHY[right][given].
WHY = {
  [0] = {
    [1] = { es = "son datos muy frecuentes y prescindibles: si se pierde uno, el siguiente lo sustituye enseguida. QoS 1 añadiría un PUBACK por mensaje y, tras un corte, reenviaría datos ya viejos",
            en = "this is high-rate, expendable data: if one is lost, the next replaces it at once. QoS 1 would add a PUBACK per message and, after a cut, re-send data that is already stale" },
    [2] = { es = "son datos muy frecuentes y prescindibles: QoS 2 cuesta cuatro paquetes por mensaje para proteger datos que nadie echará de menos",
            en = "this is high-rate, expendable data: QoS 2 costs four packets per message to protect data nobody will miss" },
  },
  [1] = {
    [0] = { es = "este mensaje tiene que llegar: con QoS 0, un corte lo pierde sin que nadie se entere. QoS 1 es el valor por defecto",
            en = "this message has to arrive: at QoS 0 a cut loses it and nobody notices. QoS 1 is the default" },
    [2] = { es = "aquí un duplicado no hace daño (el receptor lo reconoce o da igual), así que QoS 2 pagaría cuatro paquetes por mensaje a cambio de nada: QoS 1 es el valor por defecto",
            en = "a duplicate does no harm here (the receiver recognises it, or it does not matter), so QoS 2 would pay four packets per message for nothing: QoS 1 is the default" },
  },
  [2] = {
    [0] = { es = "es una orden transaccional: con QoS 0 puede perderse, y con ella la operación",
            en = "this is a transactional command: at QoS 0 it can be lost, and the operation with it" },
    [1] = { es = "es una orden transaccional que el receptor ejecuta cada vez que le llega: con QoS 1, un PUBACK perdido hace que se reenvíe y se ejecute dos veces. Solo aquí compensa QoS 2 (con sesión persistente)",
            en = "this is a transactional command that the receiver carries out every time it arrives: at QoS 1 a lost PUBACK makes it be re-sent and carried out twice. Only here is QoS 2 worth it (with a persistent session)" },
  },
}

---------------------------------------------------------------- qos.txt

-- Forgiving: "3 2", "3: 2", "3=2", "3 -> QoS 2", "S3 2", "escenario 3: qos2",
-- with "#" comments. A number with nothing after it is an unanswered
-- scenario; anything else that cannot be read is reported by line.
function parse_qos(text)
  local res = { answers = {}, problems = {}, repeated = {} }
  if not text then return res end
  text = text:gsub("^\xEF\xBB\xBF", "")   -- a BOM from some Windows editors
  local ln = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    ln = ln + 1
    local raw = line:gsub("\r$", "")
    local s = raw:gsub("#.*$", ""):gsub("^%s+", ""):gsub("%s+$", "")
    if s ~= "" then
      local n, rest = s:lower():match("^%a*%s*(%d+)(.*)$")
      if n then rest = rest:gsub("qos", ""):gsub("[%s:=%-%.%)>]", "") end
      n = tonumber(n)
      if not n then
        res.problems[#res.problems + 1] = { line = ln, text = raw, why = "format" }
      elseif n < 1 or n > NSCEN then
        res.problems[#res.problems + 1] = { line = ln, text = raw, why = "scenario" }
      elseif rest == "" then
        -- "3" alone: not answered yet.
      elseif not rest:match("^%d+$") or tonumber(rest) > 2 then
        res.problems[#res.problems + 1] = { line = ln, text = raw, why = rest:match("^%d+$") and "qos" or "format" }
      else
        if res.answers[n] and res.answers[n] ~= tonumber(rest) then res.repeated[n] = true end
        res.answers[n] = tonumber(rest)
      end
    end
  end
  return res
end

---------------------------------------------------------------- the wire

-- The command a payload stands for: its id when it is a reading, else
-- the payload itself (so that a malformed command is still counted).
function command_key(payload)
  local r = wire.reading(payload or "")
  if r then return r.id, r end
  return "\0" .. (payload or ""), nil
end

-- Everything the checks ask of the trace and of the kit's subscriber.
function analyse(d, p)
  local a = { connects = {}, pubs = {}, other_topics = {}, cmds = {}, by_key = {}, strays = 0 }
  for _, ev in ipairs(d.events) do
    if ev.kind == "packet" and ev.dir == "up" then
      if ev.type == "CONNECT" then
        a.connects[#a.connects + 1] = ev
      elseif ev.type == "PUBLISH" then
        if ev.topic == p.topic then
          a.pubs[#a.pubs + 1] = ev
          local key, r = command_key(ev.payload)
          local c = a.by_key[key]
          if not c then
            local _, why = wire.reading(ev.payload or "")
            c = { key = key, n = #a.cmds + 1, id = r and r.id, why = not r and why or nil,
                  payload = ev.payload, pubs = {}, deliveries = 0 }
            a.by_key[key] = c
            a.cmds[#a.cmds + 1] = c
          end
          c.pubs[#c.pubs + 1] = ev
        elseif ev.topic then
          a.other_topics[ev.topic] = true
        end
      end
    end
  end
  a.conns = {}
  for _, c in ipairs(wire.connections(d.events)) do
    if c.connect then a.conns[#a.conns + 1] = c end
  end
  for _, m in ipairs(d.msgs) do
    local c = a.by_key[(command_key(m.payload))]
    if c then c.deliveries = c.deliveries + 1 else a.strays = a.strays + 1 end
  end
  a.delivered = 0
  for _, c in ipairs(a.cmds) do
    if c.deliveries > 0 then a.delivered = a.delivered + 1 end
  end
  return a
end

-- "la orden 3 (5f2a...)" / "command 3 (5f2a...)".
function label(ctx, c)
  local id = c.id or (c.payload or ""):sub(1, 40)
  return ctx:text({ es = "la orden %d (%s)", en = "command %d (%s)" }, c.n, id)
end

-- The first event after index `after` that matches.
function find(events, after, m)
  for i = (after or 0) + 1, #events do
    if wire.match(events[i], m) then return events[i] end
  end
end

-- The packet ids a command travelled under.
function ids_of(c)
  local set = {}
  for _, ev in ipairs(c.pubs) do if ev.id then set[ev.id] = true end end
  return set
end

-- Whether the exchange of command c was finished on the wire: its
-- PUBACK (QoS 1) or PUBCOMP (QoS 2) reached the client.
function completed(c, events)
  local first = c.pubs[1]
  if (first.qos or 0) == 0 then return true end
  local want = first.qos == 1 and "PUBACK" or "PUBCOMP"
  local ids = ids_of(c)
  for i = first.i + 1, #events do
    local ev = events[i]
    if ev.kind == "packet" and ev.dir == "down" and ev.type == want and ev.fate == "sent" and ids[ev.id] then
      return true, ev
    end
  end
  return false
end

-- The CONNECT that opened connection n.
function connect_of(a, n)
  for _, c in ipairs(a.conns) do if c.conn == n then return c.connect end end
end


-- The packets behind a repeated delivery of command c: the exchange the
-- broker had already delivered (`sent`), the acknowledgement that was
-- lost or the cut that came instead (`lost`), and the copy the client
-- sent afterwards (`resend`).
--   QoS 1: the broker delivers at the PUBLISH, so `sent` is the first
--          PUBLISH that got through and `resend` any later one.
--   QoS 2: the broker delivers at the PUBREL, so `sent` is the first
--          PUBREL that got through and `resend` the next PUBLISH.
function dup_story(c, events)
  local ids, first = ids_of(c), c.pubs[1]
  local sent
  if first.qos == 2 then
    sent = find(events, first.i, function(ev)
      return ev.kind == "packet" and ev.dir == "up" and ev.type == "PUBREL" and ev.fate == "sent" and ids[ev.id]
    end)
  else
    for _, ev in ipairs(c.pubs) do
      if ev.fate ~= "dropped" and ev.fate ~= "cut_before" then sent = ev break end
    end
  end
  if not sent then return nil end
  local resend
  for _, ev in ipairs(c.pubs) do
    if ev.i > sent.i then resend = ev break end
  end
  if not resend then return nil end
  local ack = first.qos == 2 and "PUBCOMP" or "PUBACK"
  local lost
  for i = sent.i + 1, resend.i - 1 do
    local ev = events[i]
    if ev.kind == "packet" and ev.dir == "down" and ev.type == ack and ids[ev.id] and ev.fate ~= "sent" then
      lost = ev break
    end
    if ev.kind == "close" and ev.conn == sent.conn then lost = lost or ev break end
  end
  -- The PUBLISH that the PUBREL released: the last one before it.
  local pub = first
  for _, ev in ipairs(c.pubs) do if ev.i < sent.i then pub = ev end end
  return { pub = pub, sent = sent, lost = lost, resend = resend }
end

-- Why command c reached the subscriber more than once, told with the
-- packets that made it happen.
function explain_dup(t, ctx, c, a)
  local evs = ctx.data.events
  local first = c.pubs[1]
  local fresh = 0
  local lines = {}
  for _, ev in ipairs(c.pubs) do
    if not ev.dup then fresh = fresh + 1 end
    if #lines < 6 then lines[#lines + 1] = wire.block(ev) end
  end
  if #c.pubs > #lines then lines[#lines + 1] = "    …" end

  if fresh > 1 then
    t:say({ es = "%s llegó %s: tu programa la publicó %d veces como mensajes nuevos (DUP=0). Cada publish() es un mensaje distinto, y el broker entrega cada uno; deja los reenvíos a la librería:\n%s",
            en = "%s arrived %s: your program published it %d times as new messages (DUP=0). Every publish() is a different message, and the broker delivers each; leave re-sending to the library:\n%s" },
          label(ctx, c), ctx:times(c.deliveries), fresh, table.concat(lines, "\n"))
    return
  end
  local st = dup_story(c, evs)
  if st and first.qos == 1 then
    t:say({ es = "%s llegó %s: su PUBACK se perdió y el enlace se cortó; tu cliente la reenvió con DUP=1 y, con QoS 1, el broker entrega cada copia (al menos una vez):\n%s\n%s\n%s",
            en = "%s arrived %s: its PUBACK was lost and the link cut; your client re-sent it with DUP=1 and, at QoS 1, the broker delivers every copy (at least once):\n%s\n%s\n%s" },
          label(ctx, c), ctx:times(c.deliveries), wire.block(st.sent), st.lost and wire.block(st.lost) or "    …", wire.block(st.resend))
    return
  end
  if st and first.qos == 2 then
    local conn = connect_of(a, st.resend.conn)
    local shown = { wire.block(st.pub), wire.block(st.sent) }
    if st.lost then shown[#shown + 1] = wire.block(st.lost) end
    if conn and conn.conn ~= st.sent.conn then shown[#shown + 1] = wire.block(conn) end
    shown[#shown + 1] = wire.block(st.resend)
    if conn and conn.clean then
      t:say({ es = "%s llegó %s: el broker la entregó al recibir el PUBREL, su PUBCOMP se perdió y el enlace se cortó; tu cliente se reconectó con clean session 1, así que el broker había olvidado el intercambio, y tu cliente reenvió el PUBLISH (DUP=1) en lugar del PUBREL:\n%s",
              en = "%s arrived %s: the broker delivered it when the PUBREL came, its PUBCOMP was lost and the link cut; your client reconnected with clean session 1, so the broker had forgotten the exchange, and your client re-sent the PUBLISH (DUP=1) instead of the PUBREL:\n%s" },
            label(ctx, c), ctx:times(c.deliveries), table.concat(shown, "\n"))
    else
      t:say({ es = "%s llegó %s: el broker ya la había entregado al recibir el PUBREL, y tu cliente volvió a enviar el PUBLISH en lugar de repetir el PUBREL:\n%s",
              en = "%s arrived %s: the broker had already delivered it at the PUBREL, and your client sent the PUBLISH again instead of repeating the PUBREL:\n%s" },
            label(ctx, c), ctx:times(c.deliveries), table.concat(shown, "\n"))
    end
    return
  end
  t:say({ es = "%s llegó %s. Sus PUBLISH en el cable:\n%s", en = "%s arrived %s. Its PUBLISH packets on the wire:\n%s" },
        label(ctx, c), ctx:times(c.deliveries), table.concat(lines, "\n"))
end

-- The event that ended connection n because the link was cut: a packet
-- the proxy cut on, or the kit's own cut after a silence. nil when the
-- connection ended otherwise (the program's DISCONNECT or exit).
function cut_conn(d, n)
  for _, k in ipairs(d.kicks or {}) do
    if k.conn == n then return k.ev end
  end
  for _, ev in ipairs(d.events) do
    if ev.conn == n and ev.kind == "packet" and (ev.fate == "cut_before" or ev.fate == "cut_after" or ev.fate == "cut_mid") then
      return ev
    end
  end
end

---------------------------------------------------------------- the run

-- Wait for the program, and rescue a link that a lost QoS 1/2 PUBLISH
-- left silent: cut it, as a broken link would end. Returns the cuts the
-- kit made this way.
function watch(prog, px)
  local kicks, seen, last = {}, 0, kit.now()
  local stuck = {}   -- conn -> the dropped PUBLISH still waiting on it
  while prog:running() do
    prog:wait(0.1)
    local n = px:count()
    if n > seen then
      for _, ev in ipairs(px:events(seen + 1, n)) do
        if not (ev.kind == "packet" and (ev.type == "PINGREQ" or ev.type == "PINGRESP")) then last = kit.now() end
        if ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "up" and ev.fate == "dropped" and (ev.qos or 0) > 0 then
          stuck[ev.conn] = ev
        elseif ev.kind == "close" then
          stuck[ev.conn] = nil
        end
      end
      seen = n
    end
    if next(stuck) and kit.now() - last >= QUIET_CUT then
      for conn, ev in pairs(stuck) do kicks[#kicks + 1] = { conn = conn, ev = ev } end
      stuck = {}
      px:cut_all()
      last = kit.now()
    end
  end
  return kicks
end

-- The fault plan first, then the kit's subscriber, then one run of the
-- program; everything the checks judge is kept in ctx.data.
local function setup(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  d.qos = parse_qos(ctx:file("qos.txt"))
  d.qos_missing = ctx:file("qos.txt") == nil

  d.rules = {
    publish = px:rule { action = "drop", type = "publish", dir = "up", nth = 1 },
    puback = px:rule { action = "cut_before", type = "puback", dir = "down", nth = 2 },
    pubrec = px:rule { action = "cut_before", type = "pubrec", dir = "down", nth = 2 },
    pubcomp = px:rule { action = "cut_before", type = "pubcomp", dir = "down", nth = 3 },
  }

  local sub = assert(ctx:client { id = "mqlab-sub", clean = true })
  assert(sub:subscribe(p.topic, 2))
  -- A marker the subscriber sends itself once the program is done: it
  -- comes back after every delivery the broker queued before it.
  local marker = "mqlab/sync/" .. p.hex
  assert(sub:subscribe(marker, 2))

  d.prog, d.prog_err = ctx:program("dispenser", { timeout = PROGRAM_TIMEOUT })
  ctx:status({ es = "el proxy tira tu primer PUBLISH y corta el enlace antes del 2.º PUBACK, del 2.º PUBREC y del 3.er PUBCOMP…", en = "the proxy drops your first PUBLISH and cuts the link before the 2nd PUBACK, the 2nd PUBREC and the 3rd PUBCOMP…" })
  d.kicks = d.prog and watch(d.prog, px) or {}

  ctx:status({ es = "esperando las entregas que el broker tenía en cola…", en = "waiting for the deliveries the broker had queued…" })
  assert(sub:publish(marker, "end", { qos = 2 }))
  sub:wait(5, marker)
  d.msgs = {}
  for _, m in ipairs(sub:drain()) do
    if m.topic == p.topic then d.msgs[#d.msgs + 1] = m end
  end
  d.events = px:events()
  d.fired = {}
  for k, idx in pairs(d.rules) do d.fired[k] = px:fired(idx) end
  d.a = analyse(d, p)
end

return lab {
  id = "04-qos-dup",
  title = { es = "QoS 2 y el duplicado: una sola vez", en = "QoS 2 and the duplicate: exactly once" },
  submission = { programs = { "dispenser" }, files = { "qos.txt" } },
  broker = "plain",
  proxy = true,
  setup_timeout = PROGRAM_TIMEOUT + 20,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,
  hints = hints,
}
