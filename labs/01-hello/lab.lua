-- Lab 01: hello, MQTT.
--
-- The student's first client: connect with the id the kit gives, subscribe
-- to a topic, publish "hola" there and receive it back. Then four wildcard
-- filters, graded by subscribing with them on a real broker.
--
-- Evidence comes from the packets the kit's proxy decoded between the
-- program and the broker, never from the broker's log: a program can
-- shape log text (a client id like "x (p2, c0, k5)" is printed inside a
-- log line), not the packets it sends. It is attributed per connection:
-- the program's is the first whose CONNECT carried MQTT_CLIENT_ID, else
-- the first CONNECT at all, and only that connection's packets count (a
-- "hola" published by a second client is not the program receiving its
-- own message; feedback points at it). A kit subscriber on the
-- student's topic, connected straight to the broker, shows what was
-- delivered; the program's output and exit code complete the picture.
-- The filters are graded by the kit's own clients on the broker, with
-- no program involved.

local probe = require "mqlab.probe"
local wire = require "mqlab.wire"
local text = require "mqlab.text"
local tail, short = text.tail, text.short

local FILTER_KEYS = { "F1", "F2", "F3", "F4" }

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

---------------------------------------------------------------- evidence

local function quote(ev) return "    " .. wire.quote(ev) end

-- Read the trace once the program has ended. Only the program goes
-- through the proxy (the kit's observer and filter probes connect to
-- the broker directly), so every connection on it is the program's;
-- d.conn is the one that stands for it, and the checks look at that
-- connection's packets only.
local function read_trace(d, p)
  d.conns = wire.connections(d.events)
  d.conn = wire.program_connection(d.conns, p.client_id)
  d.client = d.conn and (d.conn.client or "")
end

-- Packets of the program's connection that match m (a table of
-- field = value, as wire.select takes).
local function mine(d, m)
  local out = {}
  for _, ev in ipairs(d.conn and d.conn.events or {}) do
    if ev.kind == "packet" and wire.match(ev, m) then out[#out + 1] = ev end
  end
  return out
end

-- The first packet matching m on another connection of the program:
-- the right packet sent from the wrong connection deserves a word.
local function elsewhere(d, m)
  for _, c in ipairs(d.conns) do
    if c ~= d.conn then
      for _, ev in ipairs(c.events) do
        if ev.kind == "packet" and wire.match(ev, m) then return ev, c end
      end
    end
  end
end

-- A line for failure feedback when a packet matching m came on another
-- connection of the program (which one, as what, the packet), or "".
local function other_conn_note(ctx, d, m)
  local ev, c = elsewhere(d, m)
  if not ev then return "" end
  return ctx:text({ es = "\nLlegó por otra conexión, la n.º %d (client id «%s»): hazlo todo por una sola conexión, la del client id de MQTT_CLIENT_ID\n%s",
                    en = "\nIt came on another connection, #%d (client id '%s'): do it all over one connection, the one with the client id in MQTT_CLIENT_ID\n%s" },
                  c.conn, c.client or "", quote(ev))
end

local function is_hola(ev, p)
  return ev.topic == p.topic and ev.payload == "hola" and ev.payload_len == 4
end

-- Why the program never reached the broker, in the student's words.
local function why_absent(t, ctx)
  local d = ctx.data
  if not d.prog then t:fail(d.prog_err) end
  if d.prog:timed_out() then
    t:fail({ es = "ningún CONNECT de tu programa llegó al proxy y el kit lo paró a los 10 s",
             en = "no CONNECT from your program reached the proxy, and the kit stopped it after 10 s" })
  end
  t:fail({ es = "el proxy no vio ningún CONNECT de tu programa (%s). Su salida de error:\n%s",
           en = "the proxy saw no CONNECT from your program (%s). Its stderr:\n%s" },
         ctx:how_ended(d.prog), ctx:stderr_tail(d.prog, 600))
end

local function filter_check(key, n)
  return check {
    id = "filter-" .. n, points = 1,
    title = { es = "Filtro " .. key .. " de filters.txt", en = "Filter " .. key .. " in filters.txt" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
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
        t:pass({ es = "suscrito con %s, el broker entregó exactamente los %d topics pedidos",
                 en = "subscribed with %s, the broker delivered exactly the %d topics asked for" }, f, nwant)
      else
        if #missing > 0 then
          t:expect(false, { es = "suscrito con %s, el broker NO entregó: %s", en = "subscribed with %s, the broker did NOT deliver: %s" },
                   f, table.concat(missing, ", "))
        end
        if #extra > 0 then
          t:expect(false, { es = "suscrito con %s, el broker entregó también (sobran): %s",
                            en = "subscribed with %s, the broker also delivered (not asked for): %s" }, f, table.concat(extra, ", "))
        end
      end
    end,
  }
end

return lab {
  id = "01-hello",
  title = { es = "Hola MQTT: conectar, suscribir, publicar", en = "Hello MQTT: connect, subscribe, publish" },
  submission = { programs = { "hello" }, files = { "filters.txt" } },
  broker = "plain",
  proxy = true,
  params = params,


  -- Run the program once through the proxy; keep its trace and what
  -- the kit's observer (on the broker itself) received.
  setup = function(ctx)
    local d, p, px = ctx.data, ctx.p, ctx.proxy
    local obs = assert(ctx:client { id = "mqlab-observer", clean = true })
    assert(obs:subscribe(p.topic, 1))
    d.prog, d.prog_err = ctx:program("hello", { timeout = 10 })
    if d.prog then d.prog:wait(11) end
    -- The observer's copy was sent before the program could read its
    -- own; wait for it only if it has not arrived yet.
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
    read_trace(d, p)
    d.stdout = d.prog and d.prog:stdout() or ""

    local text = ctx:file("filters.txt")
    d.filters_missing = text == nil
    d.answers = probe.parse_answers(text, FILTER_KEYS)
    local asked = {}
    for _, k in ipairs(FILTER_KEYS) do
      local f = d.answers[k]
      if f and #f == 1 then asked[k] = f end
    end
    d.probe = probe.run(ctx, asked, p.topic_list)
    for _, k in ipairs(FILTER_KEYS) do d.probe[k] = d.probe[k] or { got = {} } end
  end,

  checks = {
    check {
      id = "connects", points = 1,
      title = { es = "El programa se conecta al broker", en = "The program connects to the broker" },
      run = function(t, ctx)
        local d = ctx.data
        local c = d.conn
        if not c then why_absent(t, ctx) end
        local e, ack = c.connect, c.connack
        if not ack then
          t:fail({ es = "el proxy vio CONNECT de «%s», pero el broker no respondió con CONNACK (la conexión terminó: %s)\n%s",
                   en = "the proxy saw CONNECT from '%s', but the broker sent no CONNACK (the connection ended: %s)\n%s" },
                 d.client, c.closed_by or "?", quote(e))
        end
        local rc = ack.rc or ack.reason
        if rc ~= 0 then
          t:fail({ es = "el broker rechazó la conexión de «%s»: CONNACK con código %s\n%s\n%s",
                   en = "the broker refused the connection of '%s': CONNACK with code %s\n%s\n%s" },
                 d.client, tostring(rc), quote(e), quote(ack))
        end
        t:pass({ es = "el proxy vio CONNECT de «%s» (MQTT nivel %d, clean session %s, keepalive %d s) y el broker lo aceptó (CONNACK 0)",
                 en = "the proxy saw CONNECT from '%s' (MQTT level %d, clean session %s, keepalive %d s), and the broker accepted it (CONNACK 0)" },
               d.client, e.level or 0, tostring(e.clean), e.keepalive or 0)
      end,
    },

    check {
      id = "client-id", points = 2, after = "connects",
      title = { es = "Usa el client id que le da el kit", en = "It uses the client id the kit gives" },
      run = function(t, ctx)
        local d, p = ctx.data, ctx.p
        if d.client == p.client_id then
          t:pass({ es = "client id «%s», el de MQTT_CLIENT_ID", en = "client id '%s', the one in MQTT_CLIENT_ID" }, p.client_id)
        else
          t:fail({ es = "tu programa se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno\n%s",
                   en = "your program connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment\n%s" },
                 d.client, p.client_id, quote(d.conn.connect))
        end
      end,
    },

    check {
      id = "subscribes", points = 1, after = "connects",
      title = { es = "Se suscribe a su topic", en = "It subscribes to its topic" },
      run = function(t, ctx)
        local d, p = ctx.data, ctx.p
        local seen = {}
        for _, s in ipairs(mine(d, { type = "SUBSCRIBE", dir = "up" })) do
          for _, f in ipairs(s.filters or {}) do
            if f.filter == p.topic then
              t:pass({ es = "SUBSCRIBE a %s con QoS %d", en = "SUBSCRIBE to %s at QoS %d" }, f.filter, f.qos or 0)
              return
            end
            seen[#seen + 1] = f.filter
          end
        end
        local function subscribed_here(ev)
          if ev.type ~= "SUBSCRIBE" or ev.dir ~= "up" then return false end
          for _, f in ipairs(ev.filters or {}) do
            if f.filter == p.topic then return true end
          end
          return false
        end
        if #seen == 0 then
          t:fail({ es = "el proxy no vio ningún SUBSCRIBE de «%s»%s", en = "the proxy saw no SUBSCRIBE from '%s'%s" },
                 d.client, other_conn_note(ctx, d, subscribed_here))
        end
        t:fail({ es = "«%s» se suscribió a %s, pero su topic es %s%s", en = "'%s' subscribed to %s, but its topic is %s%s" },
               d.client, table.concat(seen, ", "), p.topic, other_conn_note(ctx, d, subscribed_here))
      end,
    },

    check {
      id = "publishes", points = 2, after = "connects",
      title = { es = "Publica «hola» en su topic", en = "It publishes \"hola\" on its topic" },
      run = function(t, ctx)
        local d, p = ctx.data, ctx.p
        local pubs = mine(d, { type = "PUBLISH", dir = "up" })
        local function hola_up(ev) return ev.type == "PUBLISH" and ev.dir == "up" and is_hola(ev, p) end
        if #pubs == 0 then
          t:fail({ es = "el proxy no vio ningún PUBLISH de «%s»%s", en = "the proxy saw no PUBLISH from '%s'%s" },
                 d.client, other_conn_note(ctx, d, hola_up))
        end
        local ev
        for _, e in ipairs(pubs) do
          if is_hola(e, p) then ev = e; break end
        end
        if not ev then
          local seen = {}
          for _, e in ipairs(pubs) do
            seen[#seen + 1] = string.format("%s «%s» (%d B, QoS %d)", e.topic or "?", short(e.payload, 40),
                                            e.payload_len or 0, e.qos or 0)
          end
          t:fail({ es = "el proxy vio PUBLISH en %s, pero se esperaba «hola» (4 B) en %s%s",
                   en = "the proxy saw PUBLISH on %s, but expected \"hola\" (4 B) on %s%s" },
                 table.concat(seen, ", "), p.topic, other_conn_note(ctx, d, hola_up))
        end
        -- Step 3 asks for QoS 1: the broker then acknowledges the message
        -- (PUBACK). At QoS 0 it arrives here too, so only the wire tells.
        if ev.qos ~= 1 then
          t:fail({ es = "el PUBLISH «hola» de «%s» iba con QoS %d; el paso 3 pide QoS 1, para que el broker confirme que lo tiene (PUBACK). En paho: publish(topic, \"hola\", qos=1)",
                   en = "the PUBLISH \"hola\" from '%s' went at QoS %d; step 3 asks for QoS 1, so that the broker confirms it has it (PUBACK). In paho: publish(topic, \"hola\", qos=1)" },
                 d.client, ev.qos or 0)
        end
        -- The wire shows it was sent; the observer shows the broker took
        -- it and delivered it.
        for _, m in ipairs(d.seen) do
          if m.payload == "hola" then
            t:pass({ es = "PUBLISH «hola» de «%s» en %s con QoS %d, y el suscriptor del kit lo recibió",
                     en = "PUBLISH \"hola\" from '%s' on %s at QoS %d, and the kit's subscriber received it" },
                   d.client, p.topic, ev.qos or 0)
            return
          end
        end
        t:fail({ es = "el proxy pasó al broker el PUBLISH «hola» de «%s», pero el suscriptor del kit no lo recibió\n%s",
                 en = "the proxy passed the PUBLISH \"hola\" from '%s' on to the broker, but the kit's subscriber did not receive it\n%s" },
               d.client, quote(ev))
      end,
    },

    check {
      id = "receives-own", points = 2, after = { "subscribes", "publishes" },
      title = { es = "Recibe su propio mensaje y lo imprime", en = "It receives its own message and prints it" },
      run = function(t, ctx)
        local d, p = ctx.data, ctx.p
        local sent = false
        for _, ev in ipairs(mine(d, { type = "PUBLISH", dir = "down" })) do
          if is_hola(ev, p) then sent = true end
        end
        if not sent then
          t:fail({ es = "el broker nunca envió el mensaje a «%s» (el proxy no vio ningún PUBLISH «hola» hacia tu programa): ¿se desconectó antes de que llegara?",
                   en = "the broker never sent the message to '%s' (the proxy saw no PUBLISH \"hola\" going down to your program): did it disconnect before it arrived?" },
                 d.client)
        end
        local want = p.topic .. " hola"
        for line in (d.stdout .. "\n"):gmatch("([^\n]*)\n") do
          if line:gsub("%s+$", "") == want then
            t:pass({ es = "el broker envió el PUBLISH a «%s» y el programa imprimió «%s»",
                     en = "the broker sent the PUBLISH to '%s' and the program printed '%s'" }, d.client, want)
            return
          end
        end
        t:fail({ es = "el broker envió el mensaje a «%s», pero el programa no imprimió la línea «%s». Imprimió:\n%s",
                 en = "the broker sent the message to '%s', but the program did not print the line '%s'. It printed:\n%s" },
               d.client, want, tail(d.stdout, 400) ~= "" and tail(d.stdout, 400)
                 or ctx:text({ es = "(nada)", en = "(nothing)" }))
      end,
    },

    check {
      id = "clean-exit", points = 1, after = "connects",
      title = { es = "Se desconecta limpiamente y sale con 0", en = "It disconnects cleanly and exits with 0" },
      run = function(t, ctx)
        local d = ctx.data
        local prog = d.prog
        if prog:timed_out() then
          t:fail({ es = "tu programa seguía en marcha a los 10 s y el kit lo paró", en = "your program was still running after 10 s and the kit stopped it" })
        end
        local code, sig = prog:exit_code()
        t:expect(code == 0, { es = "salió con código %s (se esperaba 0)", en = "it exited with code %s (expected 0)" },
                 tostring(code or sig))
        local c = d.conn
        if not c.disconnect then
          t:expect(false, { es = "el proxy no vio DISCONNECT de «%s»: cerraste el socket sin despedirte (%s)",
                            en = "the proxy saw no DISCONNECT from '%s': the socket was closed without one (%s)" },
                   d.client, c.closed_by or ctx:text({ es = "la conexión seguía abierta", en = "the connection was still open" }))
        end
        t:pass({ es = "DISCONNECT de «%s» antes de cerrar la conexión, y código de salida 0",
                 en = "DISCONNECT from '%s' before the connection closed, and exit code 0" }, d.client)
      end,
    },

    filter_check("F1", 1),
    filter_check("F2", 2),
    filter_check("F3", 3),
    filter_check("F4", 4),
  },

  hints = {
    { es = "Lee las variables con os.environ['MQTT_CLIENT_ID'] (Python) o getenv (C). El puerto cambia en cada ejecución: nunca lo escribas a mano.",
      en = "Read the variables with os.environ['MQTT_CLIENT_ID'] (Python) or getenv (C). The port changes on every run: never hard-code it." },
    { es = "Publica dentro de on_subscribe (cuando llega el SUBACK), no justo después de connect(): si publicas antes de estar suscrito, tu propio mensaje no te llega.",
      en = "Publish inside on_subscribe (when the SUBACK arrives), not right after connect(): if you publish before you are subscribed, your own message will not reach you." },
    { es = "En on_message imprime f\"{msg.topic} {msg.payload.decode()}\" con flush=True y luego llama a client.disconnect(); loop_forever() termina tras el DISCONNECT. En C con libmosquitto, desconecta cuando hayan llegado las dos cosas, tu mensaje (on_message) y su PUBACK (on_publish): si el PUBACK llega después de mosquitto_disconnect(), la librería puede cerrar sin enviar el DISCONNECT.",
      en = "In on_message print f\"{msg.topic} {msg.payload.decode()}\" with flush=True, then call client.disconnect(); loop_forever() returns after the DISCONNECT. In C with libmosquitto, disconnect once both have arrived, your message (on_message) and its PUBACK (on_publish): if the PUBACK comes after mosquitto_disconnect(), the library may close without sending the DISCONNECT." },
    { es = "Filtros: cada nivel del topic es un tramo entre barras. «+» sustituye a un tramo entero; «#» a todo lo que queda. acme/v1/+/norte/temp selecciona la temperatura del norte de todas las plantas.",
      en = "Filters: each level is the part between slashes. '+' replaces one whole level; '#' everything that is left. acme/v1/+/norte/temp selects the north temperature of every plant." },
  },
}
