-- Lab 01: hello, MQTT.
--
-- The student's first client: connect with the id the kit gives, subscribe
-- to a topic, once the SUBACK is in publish "hola" there at QoS 1, receive
-- it back and print it, leave cleanly. Then four wildcard filters, graded
-- by subscribing with them on a real broker.
--
-- Evidence comes from the packets the kit's proxy decoded between the
-- program and the broker, never from the broker's log. The broker listens
-- only where the proxy reaches it, so every connection on the proxy is
-- the program's. The one that stands for it is the first whose CONNECT
-- carried MQTT_CLIENT_ID, else the first CONNECT at all; the steps are
-- judged on that connection only, and what happened on the others is
-- named in the feedback (a made-up client id, a second connection whose
-- CONNECT with the same id made the broker drop the first). A kit
-- subscriber on the student's topic, connected straight to the broker,
-- shows what was delivered; the program's output and exit code complete
-- the picture. The filters are graded by the kit's own clients on the
-- broker, with no program involved.

local probe = require "mqlab.probe"
local wire = require "mqlab.wire"
local text = require "mqlab.text"

-- Helpers, defined below the plan; the checks call them at grading time.
local H = {}

local FILTER_KEYS = { "F1", "F2", "F3", "F4" }

---------------------------------------------------------------- parameters

local function params(rng)
  local plants = { "planta-1", "planta-2", "planta-3" }
  local zones = rng:sample({ "norte", "sur", "este", "oeste" }, 2)
  local measures = rng:sample({ "temp", "humedad", "presion", "ruido-db" }, 2)
  local list = {}
  for _, pl in ipairs(plants) do
    for _, z in ipairs(zones) do
      for _, m in ipairs(measures) do list[#list + 1] = "acme/v1/" .. pl .. "/" .. z .. "/" .. m end
    end
  end
  local my_plant = rng:pick(plants)
  local my_zone = rng:pick(zones)
  local hex = rng:hex(4)
  local p = {
    client_id = "gw-" .. my_plant .. "-" .. hex,
    topic = "acme/v1/" .. my_plant .. "/" .. my_zone .. "/saludo-" .. hex,
    topic_list = list,
    -- The question parameters.
    f1_zone = zones[1], f1_measure = measures[1],
    f2_plant = rng:pick(plants),
    f3_plant = rng:pick(plants), f3_zone = zones[2],
    f4_measure = measures[2],
  }
  -- The reference answers: what each question must select.
  p.reference = {
    F1 = "acme/v1/+/" .. p.f1_zone .. "/" .. p.f1_measure,
    F2 = "acme/v1/" .. p.f2_plant .. "/#",
    F3 = "acme/v1/" .. p.f3_plant .. "/" .. p.f3_zone .. "/+",
    F4 = "acme/v1/+/+/" .. p.f4_measure,
  }
  p.wildcard = { F1 = "+", F2 = "#", F3 = "+", F4 = "+" }
  local lines = {}
  for _, t in ipairs(list) do lines[#lines + 1] = "    " .. t end
  p.topic_lines = table.concat(lines, "\n")
  return p
end

---------------------------------------------------------------- the checks, in the student's order

local checks = {
  -- Step 1: connect.
  check {
    id = "connects", points = 1,
    title = { es = "El programa se conecta al broker", en = "The program connects to the broker" },
    run = function(t, ctx)
      local d = ctx.data
      local c = d.conn
      if not c then ctx:why_absent(t) end
      local e, ack = c.connect, c.connack
      if not ack then
        t:fail({ es = "el proxy vio CONNECT de «%s», pero el broker no respondió con CONNACK (la conexión terminó: %s)\n%s",
                 en = "the proxy saw CONNECT from '%s', but the broker sent no CONNACK (the connection ended: %s)\n%s" },
               d.client, c.closed_by or "?", wire.block(e))
      end
      local rc = ack.rc or ack.reason
      if rc ~= 0 then
        t:fail({ es = "el broker rechazó la conexión de «%s»: CONNACK con código %s\n%s\n%s",
                 en = "the broker refused the connection of '%s': CONNACK with code %s\n%s\n%s" },
               d.client, tostring(rc), wire.block(e), wire.block(ack))
      end
      t:pass({ es = "el proxy vio CONNECT de «%s» (%s, clean session %s, keepalive %d s) y el broker lo aceptó (CONNACK 0)",
               en = "the proxy saw CONNECT from '%s' (%s, clean session %s, keepalive %d s), and the broker accepted it (CONNACK 0)" },
             d.client, wire.version(e.level), tostring(e.clean), e.keepalive or 0)
    end,
  },

  -- Step 1: "with the client id MQTT_CLIENT_ID (do not make up another)".
  -- Every connection the program opened counts, not only the one that
  -- stands for it: a second client with a made-up id is made up too.
  check {
    id = "client-id", points = 2, after = "connects",
    title = { es = "Usa el client id que le da el kit", en = "It uses the client id the kit gives" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if d.client ~= p.client_id then
        t:fail({ es = "tu programa se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno\n%s",
                 en = "your program connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment\n%s" },
               d.client, p.client_id, wire.block(d.conn.connect))
      end
      local others, n = {}, 0
      for _, c in ipairs(d.conns) do
        if c.connect then
          n = n + 1
          if c.client ~= p.client_id then others[#others + 1] = c end
        end
      end
      if #others > 0 then
        local lines = {}
        for i, c in ipairs(others) do
          if i > 3 then break end
          lines[#lines + 1] = wire.block(c.connect)
          local pub = H.first(c, function(ev) return ev.type == "PUBLISH" and ev.dir == "up" end)
          if pub then lines[#lines + 1] = wire.block(pub) end
        end
        local more = #others > 1 and ctx:text({ es = " (y %d más)", en = " (and %d more)" }, #others - 1) or ""
        t:fail({ es = "tu programa usó «%s», pero abrió también la conexión n.º %d con un client id inventado, «%s»%s: no inventes otro, usa solo el de MQTT_CLIENT_ID. Lo que hizo esa conexión no se atribuye a «%s»\n%s",
                 en = "your program used '%s', but it also opened connection #%d with a made-up client id, '%s'%s: do not make up another, use only the one in MQTT_CLIENT_ID. What that connection did is not credited to '%s'\n%s" },
               p.client_id, others[1].conn, others[1].client or "", more, p.client_id, table.concat(lines, "\n"))
      end
      t:pass({ es = "client id «%s», el de MQTT_CLIENT_ID, en %s", en = "client id '%s', the one in MQTT_CLIENT_ID, on %s" },
             p.client_id, ctx:text(n == 1 and { es = "su conexión", en = "its connection" }
                                   or { es = "sus %d conexiones", en = "all %d of its connections" }, n))
    end,
  },

  -- Step 2: subscribe to MQTT_TOPIC.
  check {
    id = "subscribes", points = 1, after = "connects",
    title = { es = "Se suscribe a su topic", en = "It subscribes to its topic" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local seen = {}
      for _, s in ipairs(H.mine(d, { type = "SUBSCRIBE", dir = "up" })) do
        for _, f in ipairs(s.filters or {}) do
          if f.filter == p.topic then
            return t:pass({ es = "SUBSCRIBE a %s con QoS %d", en = "SUBSCRIBE to %s at QoS %d" }, f.filter, f.qos or 0)
          end
          seen[#seen + 1] = f.filter
        end
      end
      local function subscribed_here(ev)
        return ev.type == "SUBSCRIBE" and ev.dir == "up" and H.has_filter(ev, p.topic)
      end
      local why = H.other_conn_note(ctx, d, subscribed_here) .. H.takeover_note(ctx, d)
      if #seen == 0 then
        t:fail({ es = "el proxy no vio ningún SUBSCRIBE de «%s»%s", en = "the proxy saw no SUBSCRIBE from '%s'%s" }, d.client, why)
      end
      t:fail({ es = "«%s» se suscribió a %s, pero su topic es %s%s", en = "'%s' subscribed to %s, but its topic is %s%s" },
             d.client, table.concat(seen, ", "), p.topic, why)
    end,
  },

  -- Step 3: once the SUBACK arrives, publish "hola" on MQTT_TOPIC (QoS 1).
  -- The order is read from the proxy's trace: the client can only react
  -- to a SUBACK the proxy has already passed on, so a PUBLISH that
  -- waited for it always comes later in the trace. One sent before the
  -- SUBSCRIBE is judged only when there is a SUBSCRIBE to the topic to
  -- compare with (without one, "subscribes" already says what is wrong).
  check {
    id = "publishes", points = 2, after = "connects",
    title = { es = "Publica «hola» en su topic", en = "It publishes \"hola\" on its topic" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local pubs = H.mine(d, { type = "PUBLISH", dir = "up" })
      local function hola_up(ev) return ev.type == "PUBLISH" and ev.dir == "up" and H.is_hola(ev, p) end
      local why = H.other_conn_note(ctx, d, hola_up) .. H.takeover_note(ctx, d)
      if #pubs == 0 then
        t:fail({ es = "el proxy no vio ningún PUBLISH de «%s»%s", en = "the proxy saw no PUBLISH from '%s'%s" }, d.client, why)
      end
      local ev = H.hola_up(d, p)
      if not ev then
        local seen = {}
        for _, e in ipairs(pubs) do
          seen[#seen + 1] = string.format("%s «%s» (%d B, QoS %d)", e.topic or "?", text.short(e.payload, 40),
                                          e.payload_len or 0, e.qos or 0)
        end
        t:fail({ es = "el proxy vio PUBLISH en %s, pero se esperaba «hola» (4 B) en %s%s",
                 en = "the proxy saw PUBLISH on %s, but expected \"hola\" (4 B) on %s%s" },
               table.concat(seen, ", "), p.topic, why)
      end
      -- QoS 1: the broker then acknowledges the message (PUBACK). At
      -- QoS 0 it arrives here too, so only the wire tells.
      if ev.qos ~= 1 then
        t:fail({ es = "el PUBLISH «hola» de «%s» iba con QoS %d; el paso 3 pide QoS 1, para que el broker confirme que lo tiene (PUBACK). En paho: publish(topic, \"hola\", qos=1)",
                 en = "the PUBLISH \"hola\" from '%s' went at QoS %d; step 3 asks for QoS 1, so that the broker confirms it has it (PUBACK). In paho: publish(topic, \"hola\", qos=1)" },
               d.client, ev.qos or 0)
      end
      local sub, ack = H.subscription(d, p)
      if sub and ev.i < sub.i and ev.retain then
        t:fail({ es = "«%s» publicó «hola» retenido (retain=1) antes incluso de enviar su SUBSCRIBE: lo que le llegó tras el SUBACK es la copia que el broker guardó, no su mensaje llegando en vivo a un suscriptor. El paso 3 pide publicar cuando llegue el SUBACK (en paho, dentro de on_subscribe)\n%s\n%s",
                 en = "'%s' published \"hola\" retained (retain=1) before it even sent its SUBSCRIBE: what reached it after the SUBACK is the copy the broker stored, not its message arriving live to a subscriber. Step 3 asks to publish once the SUBACK arrives (in paho, inside on_subscribe)\n%s\n%s" },
               d.client, wire.block(ev), wire.block(sub))
      end
      if sub and ev.i < sub.i then
        t:fail({ es = "«%s» publicó «hola» antes incluso de enviar su SUBSCRIBE: el broker aún no tenía su suscripción, así que no podía devolverle el mensaje. El paso 3 pide publicar cuando llegue el SUBACK (en paho, dentro de on_subscribe)\n%s\n%s",
                 en = "'%s' published \"hola\" before it even sent its SUBSCRIBE: the broker had no subscription of it yet, so it could not send the message back. Step 3 asks to publish once the SUBACK arrives (in paho, inside on_subscribe)\n%s\n%s" },
               d.client, wire.block(ev), wire.block(sub))
      end
      if sub and not (ack and ack.i < ev.i) then
        t:fail({ es = "«%s» publicó «hola» sin esperar al SUBACK: el broker aún no había confirmado la suscripción. El paso 3 pide publicar cuando llegue el SUBACK (en paho, dentro de on_subscribe)\n%s\n%s%s",
                 en = "'%s' published \"hola\" without waiting for the SUBACK: the broker had not yet confirmed the subscription. Step 3 asks to publish once the SUBACK arrives (in paho, inside on_subscribe)\n%s\n%s%s" },
               d.client, wire.block(sub), wire.block(ev), ack and ("\n" .. wire.block(ack)) or "")
      end
      -- The wire shows it was sent; the observer shows the broker took it
      -- and delivered it. Another connection's "hola" could stand in for
      -- it, so the observer must hold more live copies than those.
      local others = H.other_holas(d, p)
      local live = 0
      for _, m in ipairs(d.seen) do
        if m.payload == "hola" and not m.retain then live = live + 1 end
      end
      if live > #others then
        return t:pass({ es = "PUBLISH «hola» de «%s» en %s con QoS %d tras el SUBACK, y el suscriptor del kit lo recibió",
                 en = "PUBLISH \"hola\" from '%s' on %s at QoS %d after the SUBACK, and the kit's subscriber received it" },
               d.client, p.topic, ev.qos or 0)
      end
      t:fail({ es = "el proxy pasó al broker el PUBLISH «hola» de «%s», pero el suscriptor del kit no recibió %s\n%s",
               en = "the proxy passed the PUBLISH \"hola\" from '%s' on to the broker, but the kit's subscriber did not receive %s\n%s" },
             d.client, ctx:text(#others == 0 and { es = "ningún «hola»", en = "any \"hola\"" }
                                or { es = "más «hola» que los que publicaron tus otras conexiones", en = "more \"hola\" than your other connections published" }),
             wire.block(ev))
    end,
  },

  -- Step 4: receive its own message (a live copy of the PUBLISH it sent,
  -- not a retained one) and print "TOPIC PAYLOAD".
  check {
    id = "receives-own", points = 2, after = { "subscribes", "publishes" },
    title = { es = "Recibe su propio mensaje y lo imprime", en = "It receives its own message and prints it" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local up = H.hola_up(d, p)
      local sub = H.subscription(d, p)
      -- A "hola" another connection published after this one subscribed
      -- may be the copy that came down; only a surplus is its own.
      local others = 0
      for _, ev in ipairs(H.other_holas(d, p)) do
        if ev.i > sub.i then others = others + 1 end
      end
      local live, retained = 0, nil
      for _, ev in ipairs(H.mine(d, { type = "PUBLISH", dir = "down" })) do
        if H.is_hola(ev, p) then
          if ev.retain then retained = retained or ev
          elseif ev.i > up.i then live = live + 1 end
        end
      end
      if live <= others then
        H.why_not_received(t, ctx, up, retained, live)
      end
      local want = p.topic .. " hola"
      for line in (d.stdout .. "\n"):gmatch("([^\n]*)\n") do
        if line:gsub("%s+$", "") == want then
          return t:pass({ es = "el broker envió el PUBLISH a «%s» y el programa imprimió «%s»",
                   en = "the broker sent the PUBLISH to '%s' and the program printed '%s'" }, d.client, want)
        end
      end
      t:fail({ es = "el broker envió el mensaje a «%s», pero el programa no imprimió la línea «%s». Imprimió:\n%s",
               en = "the broker sent the message to '%s', but the program did not print the line '%s'. It printed:\n%s" },
             d.client, want, text.tail(d.stdout, 400) ~= "" and text.tail(d.stdout, 400)
               or ctx:text({ es = "(nada)", en = "(nothing)" }))
    end,
  },

  -- Step 5: DISCONNECT, exit code 0, within 10 s.
  check {
    id = "clean-exit", points = 1, after = "connects",
    title = { es = "Se desconecta limpiamente y sale con 0", en = "It disconnects cleanly and exits with 0" },
    run = function(t, ctx)
      local d = ctx.data
      local prog = d.prog
      if prog:timed_out() then
        t:fail({ es = "tu programa seguía en marcha a los 10 s y el kit lo paró%s",
                 en = "your program was still running after 10 s and the kit stopped it%s" }, H.takeover_note(ctx, d))
      end
      local code, sig = prog:exit_code()
      t:expect(code == 0, { es = "salió con código %s (se esperaba 0)", en = "it exited with code %s (expected 0)" },
               tostring(code or sig))
      local c = d.conn
      if not c.disconnect then
        local by = H.takeover(d, c)
        if by then
          t:expect(false, { es = "«%s» no llegó a enviar DISCONNECT: el broker cerró su conexión antes%s",
                            en = "'%s' never sent DISCONNECT: the broker closed its connection first%s" },
                   d.client, H.takeover_note(ctx, d))
        else
          t:expect(false, { es = "el proxy no vio DISCONNECT de «%s»: cerraste el socket sin despedirte (%s)",
                            en = "the proxy saw no DISCONNECT from '%s': the socket was closed without one (%s)" },
                   d.client, c.closed_by or ctx:text({ es = "la conexión seguía abierta", en = "the connection was still open" }))
        end
      end
      t:pass({ es = "DISCONNECT de «%s» antes de cerrar la conexión, y código de salida 0",
               en = "DISCONNECT from '%s' before the connection closed, and exit code 0" }, d.client)
    end,
  },

  -- filters.txt: each filter selects exactly the topics asked for.
  check {
    id = "filter-1", points = 1,
    title = { es = "Filtro F1 de filters.txt", en = "Filter F1 in filters.txt" },
    run = function(t, ctx) H.filter(t, ctx, "F1") end,
  },
  check {
    id = "filter-2", points = 1,
    title = { es = "Filtro F2 de filters.txt", en = "Filter F2 in filters.txt" },
    run = function(t, ctx) H.filter(t, ctx, "F2") end,
  },
  check {
    id = "filter-3", points = 1,
    title = { es = "Filtro F3 de filters.txt", en = "Filter F3 in filters.txt" },
    run = function(t, ctx) H.filter(t, ctx, "F3") end,
  },
  check {
    id = "filter-4", points = 1,
    title = { es = "Filtro F4 de filters.txt", en = "Filter F4 in filters.txt" },
    run = function(t, ctx) H.filter(t, ctx, "F4") end,
  },
}

-- Guided mode (mqlab start 01): the same steps, done by hand with
-- mosquitto_sub and mosquitto_pub against the live broker, each judged
-- from the proxy's events as they come.
local guide = {
  step {
    id = "subscribe",
    title = { es = "Suscríbete a tu topic con QoS 1", en = "Subscribe to your topic at QoS 1" },
    text = {
      es = "En otra terminal, un suscriptor con tu client id (déjalo abierto):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 1 -v",
      en = "In another terminal, a subscriber with your client id (leave it running):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 1 -v",
    },
    on = function(ev, ctx) return H.guide_subscribe(ev, ctx) end,
  },
  step {
    id = "publish",
    title = { es = "Publica «hola» con QoS 1 desde otro cliente", en = "Publish \"hola\" at QoS 1 from another client" },
    text = {
      es = "En una tercera terminal, un publicador con OTRO client id (el tuyo ya lo usa el suscriptor):\n\n    mosquitto_pub -h {{host}} -p {{port}} -i pub-{{client_id}} -t '{{topic}}' -q 1 -m hola\n\nMira cómo lo imprime tu suscriptor.",
      en = "In a third terminal, a publisher with ANOTHER client id (the subscriber already uses yours):\n\n    mosquitto_pub -h {{host}} -p {{port}} -i pub-{{client_id}} -t '{{topic}}' -q 1 -m hola\n\nWatch your subscriber print it.",
    },
    on = function(ev, ctx) return H.guide_publish(ev, ctx) end,
  },
}

local hints = {
  { es = "Lee las variables con os.environ['MQTT_CLIENT_ID'] (Python), getenv (C) u os.getenv (Lua). El puerto cambia en cada ejecución: nunca lo escribas a mano.",
    en = "Read the variables with os.environ['MQTT_CLIENT_ID'] (Python), getenv (C) or os.getenv (Lua). The port changes on every run: never hard-code it." },
  { es = "Publica dentro de on_subscribe (cuando llega el SUBACK), no justo después de connect() ni de subscribe(): si publicas antes de estar suscrito, tu propio mensaje no te llega. En Lua, c:subscribe() ya vuelve con el SUBACK.",
    en = "Publish inside on_subscribe (when the SUBACK arrives), not right after connect() or subscribe(): if you publish before you are subscribed, your own message will not reach you. In Lua, c:subscribe() returns with the SUBACK already in." },
  { es = "En on_message imprime f\"{msg.topic} {msg.payload.decode()}\" con flush=True y luego llama a client.disconnect(); loop_forever() termina tras el DISCONNECT. En C con libmosquitto, desconecta cuando hayan llegado las dos cosas, tu mensaje (on_message) y su PUBACK (on_publish): si el PUBACK llega después de mosquitto_disconnect(), la librería puede cerrar sin enviar el DISCONNECT.",
    en = "In on_message print f\"{msg.topic} {msg.payload.decode()}\" with flush=True, then call client.disconnect(); loop_forever() returns after the DISCONNECT. In C with libmosquitto, disconnect once both have arrived, your message (on_message) and its PUBACK (on_publish): if the PUBACK comes after mosquitto_disconnect(), the library may close without sending the DISCONNECT." },
  { es = "Filtros: cada nivel del topic es un tramo entre barras. «+» sustituye a un tramo entero; «#» a todo lo que queda. acme/v1/+/norte/temp selecciona la temperatura del norte de todas las plantas.",
    en = "Filters: each level is the part between slashes. '+' replaces one whole level; '#' everything that is left. acme/v1/+/norte/temp selects the north temperature of every plant." },
}

---------------------------------------------------------------- guided mode

-- Step 1: a SUBSCRIBE to the topic at QoS 1, from a client with the
-- student's id. Anything else on the way gets a word.
function H.guide_subscribe(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind ~= "packet" or ev.dir ~= "up" then return nil end
  if ev.type == "CONNECT" and ev.client_id ~= p.client_id then
    return false, { es = string.format("tu CONNECT usa el client id «%s»; este paso pide %s (-i)", ev.client_id or "", p.client_id),
                    en = string.format("your CONNECT uses client id '%s'; this step needs %s (-i)", ev.client_id or "", p.client_id) }
  end
  if ev.type ~= "SUBSCRIBE" then return nil end
  for _, f in ipairs(ev.filters or {}) do
    if f.filter ~= p.topic then
      return false, { es = string.format("te suscribiste a %s; tu topic es %s", f.filter, p.topic),
                      en = string.format("you subscribed to %s; your topic is %s", f.filter, p.topic) }
    end
    if (f.qos or 0) ~= 1 then
      return false, { es = string.format("tu SUBSCRIBE pidió QoS %d; este paso pide 1 (-q 1)", f.qos or 0),
                      en = string.format("your SUBSCRIBE asked for QoS %d; this step needs 1 (-q 1)", f.qos or 0) }
    end
    d.sub_conn = ev.conn
    return true, { es = string.format("SUBSCRIBE a %s con QoS 1 de «%s»", p.topic, ev.client or p.client_id),
                   en = string.format("SUBSCRIBE to %s at QoS 1 from '%s'", p.topic, ev.client or p.client_id) }
  end
end

-- Step 2: a PUBLISH "hola" at QoS 1 from another client, and the broker
-- delivering it to a connection with the student's client id (the
-- subscriber of step 1, or the same after it reconnected). A publisher
-- that took that id made the broker close the subscriber: say so.
function H.guide_publish(ev, ctx)
  local p, d = ctx.p, ctx.data
  if ev.kind ~= "packet" or ev.type ~= "PUBLISH" or ev.topic ~= p.topic then return nil end
  if ev.dir == "up" then
    if ev.client == p.client_id then
      return false, { es = "ese PUBLISH viene de un cliente con el client id de tu suscriptor: al conectarse, el broker cerró la conexión del suscriptor. Usa otro id (-i pub-...)",
                      en = "that PUBLISH comes from a client with your subscriber's client id: when it connected, the broker closed the subscriber's connection. Use another id (-i pub-...)" }
    end
    if ev.payload ~= "hola" then
      return false, { es = string.format("publicaste «%s»; este paso pide «hola» (-m hola)", ev.payload or ""),
                      en = string.format("you published '%s'; this step needs \"hola\" (-m hola)", ev.payload or "") }
    end
    if (ev.qos or 0) ~= 1 then
      return false, { es = string.format("tu PUBLISH iba con QoS %d; este paso pide 1 (-q 1)", ev.qos or 0),
                      en = string.format("your PUBLISH went at QoS %d; this step needs 1 (-q 1)", ev.qos or 0) }
    end
    d.pub_seen = true
    return nil
  end
  if d.pub_seen and ev.payload == "hola" then
    if ev.client == p.client_id then
      return true, { es = "el broker entregó «hola» a tu suscriptor: publicador y suscriptor se encuentran en el topic",
                     en = "the broker delivered \"hola\" to your subscriber: publisher and subscriber meet on the topic" }
    end
    return false, { es = string.format("el broker lo entregó a «%s», no a tu suscriptor: ¿sigue abierto el del paso 1?", ev.client or "?"),
                    en = string.format("the broker delivered it to '%s', not to your subscriber: is the one from step 1 still running?", ev.client or "?") }
  end
end

---------------------------------------------------------------- helpers

-- Read the trace once the program has ended. d.conn is the connection
-- that stands for the program; the checks look at its packets only.
function H.read_trace(d, p)
  d.conns = wire.connections(d.events)
  d.conn = wire.program_connection(d.conns, p.client_id)
  d.client = d.conn and (d.conn.client or "")
end

-- The first event of connection c for which fn is true.
function H.first(c, fn)
  for _, ev in ipairs(c.events) do
    if ev.kind == "packet" and fn(ev) then return ev end
  end
end

-- Packets of the program's connection that match m (a table of
-- field = value, as wire.select takes).
function H.mine(d, m)
  local out = {}
  for _, ev in ipairs(d.conn and d.conn.events or {}) do
    if ev.kind == "packet" and wire.match(ev, m) then out[#out + 1] = ev end
  end
  return out
end

function H.is_hola(ev, p)
  return ev.topic == p.topic and ev.payload == "hola" and ev.payload_len == 4
end

function H.has_filter(ev, filter)
  for _, f in ipairs(ev.filters or {}) do
    if f.filter == filter then return true end
  end
  return false
end

-- The first "hola" PUBLISH the program's connection sent up.
function H.hola_up(d, p)
  return d.conn and H.first(d.conn, function(ev) return ev.type == "PUBLISH" and ev.dir == "up" and H.is_hola(ev, p) end)
end

-- The program connection's first SUBSCRIBE to its topic, and the SUBACK
-- that answered it (same packet id, later in the trace), or nil.
function H.subscription(d, p)
  local sub = d.conn and H.first(d.conn, function(ev)
    return ev.type == "SUBSCRIBE" and ev.dir == "up" and H.has_filter(ev, p.topic)
  end)
  if not sub then return nil end
  local ack = H.first(d.conn, function(ev)
    return ev.type == "SUBACK" and ev.dir == "down" and ev.id == sub.id and ev.i > sub.i
  end)
  return sub, ack
end

-- Every "hola" PUBLISH on the topic that the program sent up on its
-- other connections.
function H.other_holas(d, p)
  local out = {}
  for _, c in ipairs(d.conns) do
    if c ~= d.conn then
      for _, ev in ipairs(c.events) do
        if ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "up" and H.is_hola(ev, p) then out[#out + 1] = ev end
      end
    end
  end
  return out
end

-- A line for failure feedback when a packet matching m came on another
-- connection of the program (which one, as what, the packet), or "".
function H.other_conn_note(ctx, d, m)
  for _, c in ipairs(d.conns) do
    if c ~= d.conn then
      for _, ev in ipairs(c.events) do
        if ev.kind == "packet" and wire.match(ev, m) then
          if c.client == d.client then
            return ctx:text({ es = "\nLlegó por otra conexión, la n.º %d, abierta con el mismo client id: hazlo todo por una sola conexión\n%s",
                              en = "\nIt came on another connection, #%d, opened with the same client id: do it all over one connection\n%s" },
                            c.conn, wire.block(ev))
          end
          return ctx:text({ es = "\nLlegó por otra conexión, la n.º %d (client id «%s»): hazlo todo por una sola conexión, la del client id de MQTT_CLIENT_ID\n%s",
                            en = "\nIt came on another connection, #%d (client id '%s'): do it all over one connection, the one with the client id in MQTT_CLIENT_ID\n%s" },
                          c.conn, c.client or "", wire.block(ev))
        end
      end
    end
  end
  return ""
end

-- Was connection c taken over: did the broker end it because a later
-- connection sent a CONNECT with the same client id? A client id belongs
-- to one connection at a time; the broker drops the older one (MQTT 5
-- first sends it a DISCONNECT, reason 0x8E). The new CONNECT reaches the
-- broker before it drops the old connection, so the trace order proves
-- it. Returns the connection that took over and the event that ended c.
function H.takeover(d, c)
  if not (c and c.connect) then return nil end
  local ended
  for _, ev in ipairs(c.events) do
    if ev.kind == "packet" and ev.type == "DISCONNECT" and ev.dir == "down" then ended = ev; break end
    if ev.kind == "close" then
      if (ev.text or ""):find("^broker") then ended = ev end
      break
    end
  end
  if not ended then return nil end
  for _, o in ipairs(d.conns) do
    if o ~= c and o.connect and o.client == c.client and o.connect.i > c.connect.i and o.connect.i < ended.i then
      return o, ended
    end
  end
end

-- A paragraph for failure feedback when the program's connection was
-- taken over, or "".
function H.takeover_note(ctx, d)
  local by, ended = H.takeover(d, d.conn)
  if not by then return "" end
  return ctx:text({ es = "\nEl broker cerró la conexión n.º %d («%s») porque la conexión n.º %d envió un CONNECT con el mismo client id: un client id solo puede tener una conexión a la vez, y la nueva desplaza a la antigua. Tu programa abrió más de una conexión con MQTT_CLIENT_ID (mosquitto_sub y mosquitto_pub, por ejemplo, abren cada uno la suya): hazlo todo por una sola\n%s\n%s",
                    en = "\nThe broker closed connection #%d ('%s') because connection #%d sent a CONNECT with the same client id: a client id can have only one connection at a time, and the new one takes over from the old. Your program opened more than one connection with MQTT_CLIENT_ID (mosquitto_sub and mosquitto_pub, for example, each open their own): do it all over one\n%s\n%s" },
                  d.conn.conn, d.client, by.conn, wire.block(by.connect), wire.block(ended))
end

-- Fail receives-own, saying what the wire shows about why the program's
-- own "hola" never came back to it live (up: its hola PUBLISH).
function H.why_not_received(t, ctx, up, retained, live)
  local d = ctx.data
  if H.takeover(d, d.conn) then
    t:fail({ es = "el broker nunca envió tu mensaje a «%s»%s", en = "the broker never sent your message to '%s'%s" },
           d.client, H.takeover_note(ctx, d))
  end
  if live > 0 then
    t:fail({ es = "los «hola» que llegaron a «%s» pueden ser los que publicaron tus otras conexiones, no el suyo: hazlo todo por una sola conexión",
             en = "the \"hola\" that reached '%s' may be the ones your other connections published, not its own: do it all over one connection" },
           d.client)
  end
  if retained then
    t:fail({ es = "a «%s» solo le llegó «hola» como mensaje retenido (retain=1): es una copia que el broker guardaba de antes, no el mensaje que acabas de publicar. Publica sin retain y tras el SUBACK\n%s",
             en = "'%s' got \"hola\" only as a retained message (retain=1): a copy the broker kept from before, not the message you just published. Publish without retain, after the SUBACK\n%s" },
           d.client, wire.block(retained))
  end
  local bye = d.conn.disconnect
  if bye and bye.i > up.i then
    t:fail({ es = "«%s» envió DISCONNECT antes de que el broker le devolviera su mensaje: espera a recibirlo (on_message) antes de desconectarte\n%s\n%s",
             en = "'%s' sent DISCONNECT before the broker sent its message back: wait until it arrives (on_message) before disconnecting\n%s\n%s" },
           d.client, wire.block(up), wire.block(bye))
  end
  t:fail({ es = "el broker nunca envió el mensaje a «%s» (el proxy no vio ningún PUBLISH «hola» hacia tu programa; la conexión terminó: %s)",
           en = "the broker never sent the message to '%s' (the proxy saw no PUBLISH \"hola\" going down to your program; the connection ended: %s)" },
         d.client, d.conn.closed_by or ctx:text({ es = "seguía abierta", en = "it was still open" }))
end

-- Grade one filters.txt answer by subscribing with it on the broker.
function H.filter(t, ctx, key)
  local d, p = ctx.data, ctx.p
  -- No filters.txt at all: said once, on F1; the others are not run.
  if d.no_filters then
    if key == FILTER_KEYS[1] then
      t:fail({ es = "no hay filters.txt en tu carpeta: créalo con una línea por pregunta, de F1 a F4 (por ejemplo «F1 acme/v1/...»)",
               en = "there is no filters.txt in your folder: create it with one line per question, F1 to F4 (for example \"F1 acme/v1/...\")" })
    end
    t:skip({ es = "no se evalúa: no hay filters.txt (mira F1)", en = "not run: there is no filters.txt (see F1)" })
  end
  local filters = d.answers[key]
  if not filters or #filters == 0 then
    t:fail({ es = "filters.txt no tiene respuesta para %s (escribe una línea «%s filtro»)",
             en = "filters.txt has no answer for %s (write a line \"%s filter\")" }, key, key)
  end
  if #filters > 1 then
    t:fail({ es = "%s pide un solo filtro y escribiste %d", en = "%s asks for one filter and you wrote %d" }, key, #filters)
  end
  local f = filters[1]
  local r = d.probe[key]
  if r.error then
    t:fail({ es = "el filtro %s no es válido: %s", en = "the filter %s is not valid: %s" }, f, r.error)
  end
  local w = p.wildcard[key]
  t:expect(f:find(w, 1, true), { es = "la pregunta pide usar «%s» y tu filtro %s no lo usa",
                                 en = "the question asks you to use '%s' and your filter %s does not" }, w, f)
  local want = probe.expected(p.reference[key], p.topic_list)
  local missing, extra = probe.diff(want, r.got, p.topic_list)
  if #missing == 0 and #extra == 0 then
    local nwant = 0
    for _ in pairs(want) do nwant = nwant + 1 end
    return t:pass({ es = "suscrito con %s, el broker entregó exactamente los %d topics pedidos",
             en = "subscribed with %s, the broker delivered exactly the %d topics asked for" }, f, nwant)
  end
  if #missing > 0 then
    t:expect(false, { es = "suscrito con %s, el broker NO entregó: %s", en = "subscribed with %s, the broker did NOT deliver: %s" },
             f, table.concat(missing, ", "))
  end
  if #extra > 0 then
    t:expect(false, { es = "suscrito con %s, el broker entregó también (sobran): %s",
                      en = "subscribed with %s, the broker also delivered (not asked for): %s" }, f, table.concat(extra, ", "))
  end
end

---------------------------------------------------------------- setup

-- Run the program once through the proxy; keep its trace and what the
-- kit's observer (on the broker itself) received.
local function setup(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  local obs = assert(ctx:client { id = "mqlab-observer", clean = true })
  assert(obs:subscribe(p.topic, 1))
  d.prog, d.prog_err = ctx:program("hello", { timeout = 10 })
  if d.prog then d.prog:wait(11) end
  -- The observer's copy was sent before the program could read its own;
  -- wait for it only if it has not arrived yet.
  d.seen = {}
  local m = obs:wait(d.prog and 1 or 0, p.topic)
  while m do
    d.seen[#d.seen + 1] = m
    m = obs:wait(0, p.topic)
  end
  -- The program has ended, so its sockets are closed, but the proxy's
  -- thread records the last packets (the DISCONNECT) and the close a
  -- moment later. Wait for every connection's close, briefly, so the
  -- checks read a whole trace even on a loaded machine.
  if d.prog then
    ctx:wait_for(function()
      for _, c in ipairs(wire.connections(px:events())) do
        if not c.closed then return false end
      end
      return true
    end, 3)
  end
  d.events = px:events()
  H.read_trace(d, p)
  d.stdout = d.prog and d.prog:stdout() or ""

  local filters_txt = ctx:file("filters.txt")
  d.no_filters = filters_txt == nil
  d.answers = probe.parse_answers(filters_txt, FILTER_KEYS)
  local asked = {}
  for _, k in ipairs(FILTER_KEYS) do
    local f = d.answers[k]
    if f and #f == 1 then asked[k] = f end
  end
  d.probe = probe.run(ctx, asked, p.topic_list)
  for _, k in ipairs(FILTER_KEYS) do d.probe[k] = d.probe[k] or { got = {} } end
end

return lab {
  id = "01-hello",
  title = { es = "Hola MQTT: conectar, suscribir, publicar", en = "Hello MQTT: connect, subscribe, publish" },
  submission = { programs = { "hello" }, files = { "filters.txt" } },
  broker = "plain",
  proxy = true,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,
  hints = hints,
}
