-- Lab 10: load, $SYS monitoring, and when not to use MQTT.
--
-- Three parts.
--
-- monitor: a program that subscribes to the broker's $SYS topics and
--   prints a line starting with `ALERT clients` when the connected
--   clients fall sharply, and one starting with `ALERT backlog` when the
--   messages the broker holds keep growing. It runs through the kit's
--   proxy (so the trace shows its SUBSCRIBE and every $SYS value it got)
--   on the `sys` broker (broker-config/sys.conf: $SYS every second, a
--   deep queue). The kit drives three situations with its load generator
--   (mqlab.bench), one after the other, never two runs at once:
--     1. calm: `fleet` clients connected, a steady light load with a
--        live subscriber; nothing to alert about for CALM_S seconds;
--     2. the drop: the generator stops, and with it every one of those
--        clients at once (the connected count falls to 2: the monitor and
--        the kit's watcher); an `ALERT clients` must follow within
--        DROP_WINDOW seconds;
--     3. the backlog: a kit "historian" with a persistent session
--        subscribed at QoS 1 and left before the lab began; now the
--        generator publishes to its topics, so the broker queues every
--        message for it and $SYS/broker/store/messages/count climbs by
--        backlog_rate per second for as long as the kit lets it; an
--        `ALERT backlog` must follow within BACKLOG_WINDOW seconds.
--   An alert of a kind before its situation began is a false alarm.
--   Mosquitto 2.0.11 publishes $SYS when `now - sys_interval > last`, so
--   with sys_interval 1 a report comes every 2 s, and only for values
--   that changed. The kit's own watcher (a kit client on the broker)
--   records what it saw with the kit's clock; feedback quotes it.
--
-- report.txt: the student's figures from three `mqlab bench` runs with
--   their own parameters (key: value unit lines). The kit runs a short
--   burst and a short steady run of its own on a broker of the `bench`
--   profile (the one `mqlab bench` starts) and accepts figures within a
--   generous factor of what it measured, since the student may have
--   measured on another machine or on a busier minute. A grading machine
--   busy with other gradings (grade --jobs) gives that broker a part of a
--   CPU: the kit reads how long the broker waited for one during each run
--   (kit.cpu) and compares with what it would have measured on a machine
--   of its own.
--
-- quiz.txt: six situations from a pool, one for each case of "do not use
--   MQTT" (request/response, large payloads, point to point, strict
--   global order) and two where MQTT fits; one check per question.

local wire = require "mqlab.wire"
local kit = require "mqlab.kit"
local bench = require "mqlab.bench"
local brokermod = require "mqlab.broker"
local topics = require "mqlab.topics"
local short = require("mqlab.text").short

local T_CLIENTS = "$SYS/broker/clients/connected"
local T_STORE = "$SYS/broker/store/messages/count"
local T_STORED = "$SYS/broker/messages/stored"    -- the same figure under an older name

local MONITOR_TIMEOUT = 60   -- a ceiling; the kit stops the monitor long before
local SUBSCRIBE_S = 10       -- seconds to wait for the monitor's SUBACK
local FLEET_UP_S = 8         -- seconds for the broker to report the fleet connected
local CALM_S = 4             -- seconds of calm with the fleet connected (two $SYS reports)
local DROP_WINDOW = 6        -- seconds after the drop within which ALERT clients must come
local BACKLOG_WINDOW = 12    -- seconds after the backlog starts within which ALERT backlog must come
local BACKLOG_CLIENTS = 5    -- publishers that feed the backlog
local RUN_MAX_S = 60         -- a ceiling for the generator's runs; the kit stops them itself
local KIT_STEADY_S = 2       -- seconds of the kit's own steady run for report.txt
local BURST_CLIENTS = 10     -- publishers of a burst, as `mqlab bench` uses by default
local RAMP_FROM = 1000       -- msg/s at the start of the student's ramp
local STEADY_S = 10          -- seconds of the student's steady run
local RAMP_S = 20            -- seconds of the student's ramp

---------------------------------------------------------------- the quiz pool

-- The alternatives a student may name, and the words that stand for
-- each (the answer is lower-cased and split into words first).
local ALT_WORDS = {
  rest = "rest", http = "http", https = "http", grpc = "grpc", kafka = "kafka",
  s3 = "s3", minio = "s3", tcp = "tcp", socket = "tcp", sockets = "tcp",
  websocket = "tcp", websockets = "tcp",
}
local ALT_NAMES = { rest = "REST", http = "HTTP", grpc = "gRPC", kafka = "Kafka", s3 = "S3", tcp = "TCP" }

-- The kinds of case. `ok` lists the alternatives that fit (nil: MQTT fits).
local KINDS = {
  reqresp = {
    ok = { rest = true, grpc = true, http = true },
    name = { es = "petición/respuesta", en = "request/response" },
    why = { es = "quien pregunta necesita la respuesta a esa petición concreta, y saber ya si salió bien: eso es petición/respuesta. MQTT no trae respuesta (habría que montarla con dos topics y un id de correlación); REST o gRPC la traen de serie",
            en = "the caller needs the answer to that very request, and to know right away whether it went through: that is request/response. MQTT has no reply built in (you would build one from two topics and a correlation id); REST or gRPC have it out of the box" },
  },
  large = {
    ok = { s3 = true, http = true, kafka = true },
    name = { es = "mensajes grandes", en = "large payloads" },
    why = { es = "MQTT está pensado para mensajes pequeños: uno de varios MB ocupa la conexión, retrasa todo lo que va detrás y el broker lo guarda en memoria por cada cola. Por encima de unos 256 KB, guarda el fichero en un almacén de objetos (S3) o súbelo por HTTP, y si hace falta publica por MQTT solo un aviso pequeño con su dirección",
            en = "MQTT is meant for small messages: one of several MB holds the connection, delays everything behind it, and the broker keeps it in memory for every queue. Above about 256 KB, keep the file in an object store (S3) or upload it over HTTP, and if needed publish only a small notice with its address over MQTT" },
  },
  p2p = {
    ok = { http = true, rest = true, grpc = true, tcp = true },
    name = { es = "punto a punto", en = "point to point" },
    why = { es = "con un solo emisor y un solo receptor, un broker en medio es una pieza más que operar y proteger a cambio de nada: basta una conexión directa (HTTP/REST, gRPC o un socket TCP)",
            en = "with one sender and one receiver, a broker in between is one more piece to run and secure for nothing: a direct connection does it (HTTP/REST, gRPC or a TCP socket)" },
  },
  ordering = {
    ok = { kafka = true },
    name = { es = "orden global estricto", en = "strict global order" },
    why = { es = "MQTT solo garantiza el orden de los mensajes de un mismo cliente en un mismo topic, nunca entre emisores distintos. Un orden global estricto pide un único registro ordenado: Kafka con una sola partición",
            en = "MQTT only keeps the order of the messages of one client on one topic, never across different senders. A strict global order needs one single ordered log: Kafka with one partition" },
  },
  fleet = {
    name = { es = "muchos emisores pequeños", en = "many small senders" },
    why = { es = "muchos emisores pequeños y pocos receptores es la forma típica del IoT industrial: cada sensor mantiene una conexión larga y suelta mensajes cortos, y el broker los reparte",
            en = "many small senders and few receivers is the typical shape of industrial IoT: each sensor keeps one long connection and drops short messages, and the broker hands them out" },
  },
  flaky = {
    name = { es = "red poco fiable", en = "unreliable network" },
    why = { es = "con una red que se corta y poco ancho de banda, MQTT gasta pocos bytes por mensaje, y con QoS 1, sesión persistente y reconexión no se pierde nada en los cortes",
            en = "over a network that drops and has little bandwidth, MQTT spends few bytes per message, and with QoS 1, a persistent session and reconnection nothing is lost in the gaps" },
  },
  battery = {
    name = { es = "dispositivos con batería", en = "battery devices" },
    why = { es = "un dispositivo con batería y poca CPU gana con un protocolo de cabeceras mínimas, keepalive configurable y sesión persistente que le guarda lo que llegue mientras duerme",
            en = "a battery device with little CPU gains from a protocol with tiny headers, a configurable keepalive and a persistent session that keeps what arrives while it sleeps" },
  },
  decouple = {
    name = { es = "desacoplar emisor y receptor", en = "decoupling sender and receiver" },
    why = { es = "el emisor publica sin saber quién escucha: un consumidor puede caer, reiniciarse o añadirse sin tocar a los sensores. Ese desacoplamiento es justo lo que da un broker pub/sub",
            en = "the sender publishes without knowing who listens: a consumer may fail, restart or be added without touching the sensors. That decoupling is exactly what a pub/sub broker gives" },
  },
}

local NOT_KINDS = { "reqresp", "large", "p2p", "ordering" }
local YES_KINDS = { "fleet", "flaky", "battery", "decouple" }

local CASES = {
  reqresp = {
    { es = "La tablet del jefe de turno pide al MES que valide una orden de fabricación, y no puede seguir hasta recibir «aceptada» o «rechazada» con el motivo.",
      en = "The shift lead's tablet asks the MES to validate a production order, and cannot go on until it gets back \"accepted\" or \"rejected\" with the reason." },
    { es = "El ERP pregunta al sistema del almacén cuántas unidades quedan de una pieza, y espera la cifra para decidir si lanza una compra.",
      en = "The ERP asks the warehouse system how many units of a part are left, and waits for the figure to decide whether to place an order." },
    { es = "Una aplicación de mantenimiento cambia la consigna de un horno y tiene que saber en ese momento si el cambio se aplicó, para deshacer la operación entera si falló.",
      en = "A maintenance app changes a furnace's setpoint and must know at that moment whether the change was applied, so it can undo the whole operation if it failed." },
  },
  large = {
    { es = "Cada cámara de inspección de la línea 2 saca una foto de 6 MB de cada pieza defectuosa para que calidad la revise.",
      en = "Each inspection camera on line 2 takes a 6 MB photo of every faulty part for the quality team to review." },
    { es = "Cada noche, el controlador de cada prensa sube su fichero de registro del día, de unos 40 MB, al servidor central.",
      en = "Every night each press controller uploads its log file of the day, about 40 MB, to the central server." },
    { es = "Las pasarelas de campo reciben de vez en cuando una imagen de firmware nueva de 12 MB.",
      en = "The field gateways receive a new 12 MB firmware image every now and then." },
  },
  p2p = {
    { es = "Un lector de códigos de barras envía cada código a la única impresora de etiquetas que tiene al lado; ningún otro sistema los necesita ni los necesitará.",
      en = "A barcode scanner sends each code to the one label printer next to it; no other system needs them, now or later." },
    { es = "El PC de la báscula de camiones envía cada pesada al servidor de facturación, y solo a él.",
      en = "The truck scale's PC sends each weighing to the billing server, and only to it." },
    { es = "Un analizador del laboratorio entrega cada resultado a un único servidor LIMS; nadie más los lee.",
      en = "A lab analyser hands each result to a single LIMS server; nobody else reads them." },
  },
  ordering = {
    { es = "Contabilidad debe aplicar los movimientos de stock de los cinco almacenes (entradas, salidas, traspasos) exactamente en el orden global en que ocurrieron; si dos llegan cambiados, los saldos salen mal.",
      en = "Accounting must apply the stock movements of all five warehouses (in, out, transfers) in exactly the global order in which they happened; if two arrive swapped, the balances come out wrong." },
    { es = "Una auditoría de trazabilidad tiene que reproducir los eventos de todas las líneas de la planta en un único orden global estricto, idéntico cada vez.",
      en = "A traceability audit must replay the events of every line in the plant in one strict global order, the same every time." },
    { es = "El saldo de créditos de energía de la planta se reconstruye aplicando cada operación de todas las subestaciones en un orden único y estricto; una operación fuera de su sitio cambia el resultado.",
      en = "The plant's energy credit balance is rebuilt by applying every operation from all substations in one strict order; an operation out of place changes the result." },
  },
  fleet = {
    { es = "3.000 sensores de temperatura repartidos en cuatro plantas envían una lectura pequeña cada 10 s a un histórico y a un panel.",
      en = "3,000 temperature sensors spread over four plants send a small reading every 10 s to a historian and a dashboard." },
    { es = "800 contadores de energía publican su consumo cada minuto; lo leen el sistema de facturación y un panel.",
      en = "800 energy meters publish their consumption every minute; the billing system and a dashboard read it." },
  },
  flaky = {
    { es = "Las bombas de pozos remotos, conectadas por 2G/LTE con cobertura irregular, envían su nivel cada 30 s.",
      en = "Pumps at remote wells, linked over 2G/LTE with patchy coverage, send their level every 30 s." },
    { es = "Los camiones cisterna envían su posición y la temperatura de la carga por la red móvil, que se corta en cada túnel.",
      en = "Tanker trucks send their position and the load's temperature over the mobile network, which drops in every tunnel." },
  },
  battery = {
    { es = "Sensores de vibración a pilas que se despiertan, envían una lectura y vuelven a dormir; las pilas tienen que durar años.",
      en = "Battery-powered vibration sensors wake up, send a reading and go back to sleep; the batteries must last for years." },
    { es = "Etiquetas de temperatura con un microcontrolador pequeño y una pila de botón, pegadas a los palés de la cámara frigorífica.",
      en = "Temperature tags with a small microcontroller and a coin cell, stuck on the pallets in the cold room." },
  },
  decouple = {
    { es = "Los sensores de la línea deben seguir enviando aunque el servicio de analítica se reinicie o se actualice, y mañana se añadirá un panel nuevo sin tocar los sensores.",
      en = "The line's sensors must keep sending while the analytics service restarts or is upgraded, and tomorrow a new dashboard will be added without touching the sensors." },
    { es = "El equipo de datos quiere enchufar y quitar consumidores nuevos (un modelo predictivo, un panel) sin que los PLC de la planta se enteren.",
      en = "The data team wants to plug in and remove new consumers (a predictive model, a dashboard) without the plant's PLCs noticing." },
  },
}

local NQUIZ = 6

---------------------------------------------------------------- parameters

local function params(rng)
  local plant = rng:pick({ "planta-1", "planta-2", "planta-3", "planta-4" })
  local zones = rng:sample({ "norte", "sur", "este", "oeste" }, 2)
  local hex = rng:hex(4)
  local fleet = rng:int(4, 6) * 10

  -- One case of each "not MQTT" kind, two where MQTT fits, shuffled.
  local kinds = {}
  for _, k in ipairs(NOT_KINDS) do kinds[#kinds + 1] = k end
  for _, k in ipairs(rng:sample(YES_KINDS, NQUIZ - #NOT_KINDS)) do kinds[#kinds + 1] = k end
  kinds = rng:shuffle(kinds)
  local quiz, lines_es, lines_en = {}, {}, {}
  for n, k in ipairs(kinds) do
    local c = rng:pick(CASES[k])
    quiz[n] = { n = n, kind = k }
    lines_es[n] = string.format("%d. %s", n, c.es)
    lines_en[n] = string.format("%d. %s", n, c.en)
  end

  local root = "acme/v1/" .. plant
  return {
    plant = plant, hex = hex,
    client_id = "monitor-" .. plant .. "-" .. hex,
    topic = "$SYS/broker/#",
    fleet = fleet,
    fleet_rate = fleet,                                  -- one message a second per client
    fleet_topic = root .. "/" .. zones[1] .. "/{i}/temp",
    historian_id = "historian-" .. plant .. "-" .. hex,
    historian_filter = root .. "/" .. zones[2] .. "/+/vibracion",
    backlog_topic = root .. "/" .. zones[2] .. "/{i}/vibracion",
    backlog_rate = rng:int(6, 10) * 20,
    calm_s = CALM_S, drop_window = DROP_WINDOW, backlog_window = BACKLOG_WINDOW,
    burst_n = rng:pick({ 5000, 8000, 10000 }),
    steady_clients = rng:pick({ 10, 20 }),
    steady_rate = rng:pick({ 1000, 1500, 2000, 2500 }),
    steady_s = STEADY_S,
    ramp_from = RAMP_FROM,
    ramp_to = rng:pick({ 60000, 80000 }),
    ramp_s = RAMP_S,
    quiz = quiz,
    quiz_es = table.concat(lines_es, "\n"),
    quiz_en = table.concat(lines_en, "\n"),
  }
end

---------------------------------------------------------------- the monitor

-- New complete lines of the monitor's output (its alerts) and new $SYS
-- values from the kit's watcher, both stamped in seconds since the
-- monitor started, on the kit's clock.
local function scan(m)
  local out = m.prog:stdout() or ""
  while true do
    local nl = out:find("\n", m.off + 1, true)
    if not nl then break end
    local line = out:sub(m.off + 1, nl - 1):gsub("\r$", "")
    m.off = nl
    if line:match("^ALERT") then
      local kind = (line:match("^ALERT%s+(%a+)") or "?"):lower()
      m.alerts[#m.alerts + 1] = { t = kit.now() - m.t0, kind = kind, line = line }
    end
  end
  for _, msg in ipairs(m.watch:drain()) do
    m.sys[#m.sys + 1] = { t = msg.t - m.t0, topic = msg.topic, v = tonumber(msg.payload), retain = msg.retain }
  end
end

-- The first alert of that kind from t0 on (seconds), or nil.
local function first_alert(m, kind, t0, t1)
  for _, a in ipairs(m.alerts) do
    if a.kind == kind and a.t >= (t0 or -1) and a.t <= (t1 or math.huge) then return a end
  end
end

local function alerts_between(m, t0, t1, kind)
  local out = {}
  for _, a in ipairs(m.alerts) do
    if a.t >= t0 and a.t < t1 and (kind == nil or a.kind == kind) then out[#out + 1] = a end
  end
  return out
end

-- The latest value of a $SYS topic the watcher saw before t (or ever).
local function last_value(m, topic, t)
  local v
  for _, s in ipairs(m.sys) do
    if s.topic == topic and (t == nil or s.t <= t) then v = s.v end
  end
  return v
end

-- "35 (+0.1 s, retained), 52 (+3.1 s), 2 (+9.2 s)": what the watcher
-- saw of a topic in [t0, t1].
local function sys_story(ctx, m, topic, t0, t1, max)
  local out = {}
  local retained = ctx:text({ es = "retenido", en = "retained" })
  for _, s in ipairs(m.sys) do
    if s.topic == topic and s.t >= t0 and s.t <= t1 then
      out[#out + 1] = s.retain and string.format("%s (%+.1f s, %s)", tostring(s.v), s.t, retained)
                                or string.format("%s (%+.1f s)", tostring(s.v), s.t)
    end
  end
  max = max or 6
  if #out > max then
    local keep = {}
    for i = 1, max - 1 do keep[i] = out[i] end
    keep[max] = "… " .. out[#out]
    out = keep
  end
  return #out > 0 and table.concat(out, ", ") or "-"
end

local function quote_alerts(list, max)
  local out = {}
  for i = 1, math.min(#list, max or 3) do
    out[#out + 1] = string.format("    %+.1f s  %s", list[i].t, short(list[i].line, 100))
  end
  if #list > (max or 3) then out[#out + 1] = string.format("    … (%d)", #list) end
  return table.concat(out, "\n")
end

-- The first event from index `from` on that matches, waiting up to s
-- seconds but no longer than the program runs.
local function wait_running(prog, px, match, s, from)
  local t_end = kit.now() + s
  repeat
    local ev = px:wait(match, 0.1, from)
    if ev then return ev end
  until not prog:running() or kit.now() >= t_end
  return px:wait(match, 0, from)
end

-- Wait for fn() while scanning; "gone" when the monitor has ended.
local function watch_until(ctx, m, fn, s)
  return ctx:wait_for(function()
    scan(m)
    local v = fn()
    if v then return v end
    if not m.prog:running() then return "gone" end
  end, s)
end

local function now(m) return kit.now() - m.t0 end

-- Run the monitor through calm, drop and backlog; keep the evidence in d.mon.
local function run_monitor(ctx)
  local p, px = ctx.p, ctx.proxy
  local m = { alerts = {}, sys = {}, off = 0 }
  ctx.data.mon = m

  -- The historian: a persistent session with a QoS 1 subscription, gone
  -- before the lab begins. Whatever is published to its filter from now
  -- on waits for it in the broker.
  local hist = assert(ctx:client { id = p.historian_id, clean = false })
  assert(hist:subscribe(p.historian_filter, 1))
  hist:disconnect()
  hist:close()

  -- The kit's own view of $SYS, for feedback.
  m.watch = assert(ctx:client { id = "mqlab-watch-" .. p.hex, clean = true })
  assert(m.watch:subscribe(T_CLIENTS, 0))
  assert(m.watch:subscribe(T_STORE, 0))

  m.from = px:count() + 1
  m.t0 = kit.now()
  m.prog, m.err = ctx:program("monitor", {
    timeout = MONITOR_TIMEOUT,
    env = { MQTT_CLIENT_ID = p.client_id, MQTT_TOPIC = p.topic, LAB_COUNT = false, LAB_INTERVAL_MS = false },
  })
  if not m.prog then return end

  m.suback = wait_running(m.prog, px, { kind = "packet", type = "SUBACK", dir = "down" }, SUBSCRIBE_S, m.from)
  if m.suback then
    -- Proxy times (ms since the proxy started) to seconds since t0.
    m.offset = now(m) - m.suback.t / 1000
  end

  -- 1. Calm: the fleet connects and publishes steadily to a live subscriber.
  if m.suback and m.prog:running() then
    m.fleet_t = now(m)
    local fleet, err = bench.start { mode = "steady", port = ctx.broker:port(), clients = p.fleet,
                                     rate = p.fleet_rate, duration = RUN_MAX_S, topic = p.fleet_topic }
    if not fleet then
      m.kit_err = err
    else
      ctx:own(fleet)
      m.full = watch_until(ctx, m, function()
        local v = last_value(m, T_CLIENTS)
        return v and v >= p.fleet and v
      end, FLEET_UP_S)
      if m.full ~= "gone" then
        watch_until(ctx, m, function() return false end, CALM_S)   -- the calm itself: the exposure, not a wait for a result
      end

      -- 2. The drop: every client of the fleet goes at once.
      m.alive_calm = m.prog:running()
      m.drop_t = now(m)
      m.drop_i = px:count()
      fleet:stop()
      m.fleet_res, m.fleet_err = fleet:wait(10)
      fleet:close()
      if m.prog:running() then
        watch_until(ctx, m, function()
          local v = last_value(m, T_CLIENTS)
          return first_alert(m, "clients", m.drop_t) and v and v < p.fleet / 2
        end, DROP_WINDOW)
      end
      m.drop_end = now(m)
      m.alive_drop = m.prog:running()
    end
  end

  -- 3. The backlog: the generator publishes to the historian's topics.
  if m.drop_end and m.prog:running() then
    m.store0 = last_value(m, T_STORE)
    m.backlog_t = now(m)
    m.backlog_i = px:count()
    local flood, err = bench.start { mode = "steady", port = ctx.broker:port(), clients = BACKLOG_CLIENTS,
                                     rate = p.backlog_rate, duration = RUN_MAX_S, topic = p.backlog_topic,
                                     subscriber = false }
    if not flood then
      m.kit_err = err
    else
      ctx:own(flood)
      watch_until(ctx, m, function() return first_alert(m, "backlog", m.backlog_t) end, BACKLOG_WINDOW)
      m.backlog_end = now(m)
      m.alive_backlog = m.prog:running()
      m.prog:stop()
      scan(m)
      flood:stop()
      m.flood_res, m.flood_err = flood:wait(10)
      flood:close()
    end
  end
  if m.prog:running() then m.prog:stop() end
  m.stopped_t = now(m)
  scan(m)
  m.watch:close()

  m.events = px:events(m.from, px:count())
  m.subscribes = wire.select(m.events, { kind = "packet", type = "SUBSCRIBE", dir = "up" })
  m.subacks = wire.select(m.events, { kind = "packet", type = "SUBACK", dir = "down" })
  m.connects = wire.select(m.events, { kind = "packet", type = "CONNECT", dir = "up" })
  m.sys_pubs = wire.select(m.events, function(ev)
    return ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "down" and (ev.topic or ""):sub(1, 5) == "$SYS/"
  end)
end

-- Which of the monitor's filters cover a topic, and the SUBSCRIBE event.
local function covering(m, topic)
  for _, ev in ipairs(m.subscribes or {}) do
    for _, f in ipairs(ev.filters or {}) do
      if topics.matches(f.filter, topic) then return f.filter, ev end
    end
  end
end

-- The $SYS values of a topic the proxy delivered to the monitor after
-- event index `from` and up to t1 (seconds since t0): "1 (+9.2 s)".
local function delivered(m, topic, from, t1, max)
  local out = {}
  for _, ev in ipairs(m.sys_pubs or {}) do
    local t = ev.t / 1000 + (m.offset or 0)
    if ev.topic == topic and ev.i > (from or 0) and t <= (t1 or math.huge) then
      out[#out + 1] = string.format("%s (%+.1f s)", short(ev.payload or "", 20), t)
      if #out >= (max or 4) then break end
    end
  end
  return out
end

-- Why the monitor never got as far as the load, in the student's words.
local function monitor_absent(t, ctx)
  local m = ctx.data.mon
  if not m.prog then t:fail(m.err) end
  if #(m.connects or {}) == 0 then
    t:fail({ es = "el proxy no vio ningún CONNECT de tu monitor (%s). ¿Usa MQTT_HOST y MQTT_PORT? Su salida de error:\n%s",
             en = "the proxy saw no CONNECT from your monitor (%s). Does it use MQTT_HOST and MQTT_PORT? Its stderr:\n%s" },
           ctx:how_ended(m.prog), ctx:stderr_tail(m.prog))
  end
  if not m.suback then
    t:fail({ es = "tu monitor se conectó pero no se suscribió a nada en %d s (%s). Suscríbete a MQTT_TOPIC (%s) nada más conectar",
             en = "your monitor connected but subscribed to nothing within %d s (%s). Subscribe to MQTT_TOPIC (%s) as soon as you connect" },
           SUBSCRIBE_S, ctx:how_ended(m.prog), ctx.p.topic)
  end
end

-- A monitor that was not running through a whole phase (alive is the
-- flag taken when the phase ended; nil when it never began).
local function ended_before(t, ctx, alive)
  local m = ctx.data.mon
  if m.kit_err then
    t:fail({ es = "el generador de carga del kit no pudo arrancar: %s", en = "the kit's load generator could not start: %s" }, m.kit_err)
  end
  if not alive then
    t:fail({ es = "tu monitor terminó antes de que acabara esta parte (%s). Tiene que seguir en marcha hasta recibir SIGTERM. Su salida de error:\n%s",
             en = "your monitor ended before this part was over (%s). It must keep running until it gets SIGTERM. Its stderr:\n%s" },
           ctx:how_ended(m.prog), ctx:stderr_tail(m.prog))
  end
end

---------------------------------------------------------------- report.txt

local REPORT_KEYS = {
  { key = "burst_p50", unit = "ms" }, { key = "burst_p99", unit = "ms" }, { key = "burst_puback_rate", unit = "rate" },
  { key = "steady_p50", unit = "ms" }, { key = "steady_p99", unit = "ms" }, { key = "steady_puback_rate", unit = "rate" },
  { key = "ramp_p50", unit = "ms" }, { key = "ramp_p99", unit = "ms" }, { key = "ramp_puback_rate", unit = "rate" },
  { key = "knee_rate", unit = "rate" },
}
local KEY_UNIT = {}
for _, k in ipairs(REPORT_KEYS) do KEY_UNIT[k.key] = k.unit end

local TIME_UNITS = { ms = 1, s = 1000, us = 0.001, ["µs"] = 0.001, ["μs"] = 0.001 }

-- "key: value unit" lines, "#" comments. Values are kept in ms and msg/s.
local function parse_report(text)
  local r = { v = {}, line = {}, problems = {}, unknown = {}, repeated = {} }
  if not text then return r end
  text = text:gsub("^\xEF\xBB\xBF", "")
  local ln = 0
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    ln = ln + 1
    raw = raw:gsub("\r$", "")
    local s = raw:gsub("#.*$", ""):gsub("^%s+", ""):gsub("%s+$", "")
    if s ~= "" then
      local key, val = s:match("^([%w_%-]+)%s*[:=]%s*(.-)$")
      key = key and key:lower():gsub("%-", "_")
      if not key then
        r.problems[#r.problems + 1] = { line = ln, text = raw, why = "format" }
      elseif not KEY_UNIT[key] then
        r.unknown[#r.unknown + 1] = { line = ln, text = raw }
      elseif val == "" then
        -- not filled in yet
      else
        local num, unit = val:match("^([%d%.]+)%s*(.-)$")
        unit = unit and unit:lower():gsub("%s+", "")
        local x = num and tonumber(num)
        if val:match("^[%d%.]+,%d") then
          r.problems[#r.problems + 1] = { line = ln, text = raw, why = "comma" }
        elseif not x then
          r.problems[#r.problems + 1] = { line = ln, text = raw, why = "number" }
        elseif KEY_UNIT[key] == "ms" then
          if not TIME_UNITS[unit] then
            r.problems[#r.problems + 1] = { line = ln, text = raw, why = "time_unit" }
          else
            if r.v[key] then r.repeated[key] = true end
            r.v[key], r.line[key] = x * TIME_UNITS[unit], raw
          end
        else
          if not unit:match("/s$") then
            r.problems[#r.problems + 1] = { line = ln, text = raw, why = "rate_unit" }
          else
            if r.v[key] then r.repeated[key] = true end
            r.v[key], r.line[key] = x, raw
          end
        end
      end
    end
  end
  return r
end

local REPORT_WHY = {
  format = { es = "escribe «clave: valor unidad», por ejemplo «steady_p99: 0.45 ms»", en = "write \"key: value unit\", for example \"steady_p99: 0.45 ms\"" },
  comma = { es = "usa el punto para los decimales y ningún separador de miles (0.45, 24323)", en = "use a point for decimals and no thousands separator (0.45, 24323)" },
  number = { es = "el valor tiene que ser un número seguido de su unidad", en = "the value must be a number followed by its unit" },
  time_unit = { es = "una latencia va en ms (o s, us)", en = "a latency goes in ms (or s, us)" },
  rate_unit = { es = "una tasa va en msg/s", en = "a rate goes in msg/s" },
}

-- How much a busy machine slowed the broker during a run of the kit's,
-- from its CPU readings (kit.cpu) before the run and now. For every
-- second the broker ran, it waited waited/ran seconds ready to run but
-- without a CPU (the kernel's schedstat): time the rest of the machine
-- (other gradings, other programs) took from it. On a machine of its own
-- it would have done the same work without those waits, so its
-- latencies would have been `factor` times shorter and a burst `factor`
-- times faster. Where the kernel keeps no schedstat, a burst (it keeps
-- the broker busy from the first message to the last: busy = true)
-- counts the time the broker did not run as waited; a steady run cannot
-- tell waiting from idling then, and keeps factor 1.
local function slowdown(pid, before, t0, busy)
  local s = { factor = 1 }
  local after = pid and before and kit.cpu(pid)
  if not after then return s end
  if after.run and before.run then
    s.ran, s.waited = after.run - before.run, after.wait - before.wait
  elseif busy then
    s.ran = after.cpu - before.cpu
    s.waited = math.max(0, kit.now() - t0 - s.ran)
  else
    return s
  end
  if s.ran > 0 then s.factor = (s.ran + s.waited) / s.ran end
  return s
end

-- The kit's own short runs, on a broker like the one `mqlab bench` starts.
-- The broker writes its pid into a folder of the lab's, so that kit.cpu
-- can tell how much of the machine it got during each run.
local function run_kit_bench(ctx)
  local p = ctx.p
  local k = {}
  ctx.data.kb = k
  local dir = kit.tmpdir("bench")
  local b, msg = brokermod.start { profile = "bench", extra = "pid_file " .. dir .. "/broker.pid" }
  if not b then k.err = msg kit.rmdir(dir) return end
  ctx:own(b)
  local pid = tonumber(kit.read_file(dir .. "/broker.pid") or "")
  local before, t0 = pid and kit.cpu(pid), kit.now()
  local burst, err = bench.start { mode = "burst", port = b:port(), clients = BURST_CLIENTS, messages = p.burst_n, qos = 1, size = 64 }
  if not burst then k.err = err return end
  ctx:own(burst)
  k.burst, k.err = burst:wait(30)
  burst:close()
  k.burst_slow = slowdown(pid, before, t0, true)
  if not k.burst then return end
  local steady
  before, t0 = pid and kit.cpu(pid), kit.now()
  steady, err = bench.start { mode = "steady", port = b:port(), clients = p.steady_clients, rate = p.steady_rate,
                              duration = KIT_STEADY_S, qos = 1, size = 64 }
  if not steady then k.err = err return end
  ctx:own(steady)
  k.steady, k.err = steady:wait(30)
  steady:close()
  k.steady_slow = slowdown(pid, before, t0, false)
  b:close()
  kit.rmdir(dir)
end

-- PUBACKs per second over a run: acked over the load's length.
local function puback_rate(res)
  if not res or (res.sent or 0) == 0 or (res.rate_sent or 0) <= 0 then return 0 end
  return res.acked * res.rate_sent / res.sent
end

---------------------------------------------------------------- quiz.txt

-- "3 no kafka", "3: no, REST o gRPC", "3 mqtt", "caso 3 = sí"; "#" comments.
local function parse_quiz(text)
  local res = { answers = {}, problems = {}, repeated = {} }
  if not text then return res end
  text = text:gsub("^\xEF\xBB\xBF", "")
  local ln = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    ln = ln + 1
    local raw = line:gsub("\r$", "")
    local s = raw:gsub("#.*$", ""):gsub("^%s+", ""):gsub("%s+$", "")
    if s ~= "" then
      local n, rest = s:lower():match("^%a*%s*(%d+)%s*[:=%.%)%-]?%s*(.*)$")
      n = tonumber(n)
      if not n then
        res.problems[#res.problems + 1] = { line = ln, text = raw, why = "format" }
      elseif n < 1 or n > NQUIZ then
        res.problems[#res.problems + 1] = { line = ln, text = raw, why = "case" }
      elseif rest ~= "" then
        local words = {}
        for w in rest:gsub("[^%w\128-\255]+", " "):gmatch("%S+") do words[#words + 1] = w end
        local a = { raw = raw, answer = rest, alts = {} }
        local first = words[1]
        if first == "mqtt" or first == "si" or first == "sí" or first == "yes" then
          a.mqtt = true
        else
          a.mqtt = false
          local start = first == "no" and 2 or 1
          for i = start, #words do
            local alt = ALT_WORDS[words[i]]
            if alt then a.alts[alt] = true end
          end
          local txt = " " .. rest .. " "
          if txt:find("object storage", 1, true) or txt:find("almacenamiento de objetos", 1, true) then a.alts.s3 = true end
          a.text = table.concat(words, " ", start)
        end
        if res.answers[n] then res.repeated[n] = true end
        res.answers[n] = a
      end
    end
  end
  return res
end

local function alt_list(set)
  local out = {}
  for _, k in ipairs({ "rest", "grpc", "http", "tcp", "s3", "kafka" }) do
    if set[k] then out[#out + 1] = ALT_NAMES[k] end
  end
  return table.concat(out, " / ")
end

local function quiz_check(n)
  return check {
    id = "quiz-" .. n, points = 1,
    title = { es = "quiz.txt: caso " .. n, en = "quiz.txt: case " .. n },
    run = function(t, ctx)
      local q, p = ctx.data.quiz, ctx.p
      if ctx.data.quiz_missing then
        t:fail({ es = "no encuentro quiz.txt: escribe una línea por caso, «N mqtt» o «N no ALTERNATIVA»",
                 en = "quiz.txt not found: write one line per case, \"N mqtt\" or \"N no ALTERNATIVE\"" })
      end
      local case = p.quiz[n]
      local kind = KINDS[case.kind]
      local name = ctx:text(kind.name)
      local a = q.answers[n]
      if not a then
        for _, pr in ipairs(q.problems) do
          t:say({ es = "línea %d, «%s», no se entiende: %s", en = "line %d, \"%s\", cannot be read: %s" }, pr.line, pr.text,
                ctx:text(pr.why == "case" and { es = "no hay caso con ese número (son del 1 al %d)", en = "there is no case with that number (they go from 1 to %d)" }
                           or { es = "escribe «N mqtt» o «N no ALTERNATIVA», por ejemplo «%d no rest»", en = "write \"N mqtt\" or \"N no ALTERNATIVE\", for example \"%d no rest\"" }, NQUIZ))
        end
        t:fail({ es = "el caso %d no tiene respuesta", en = "case %d has no answer" }, n)
      end
      if q.repeated[n] then
        t:fail({ es = "el caso %d tiene más de una línea; deja una", en = "case %d has more than one line; keep one" }, n)
      end
      if not kind.ok then
        if a.mqtt then
          t:pass({ es = "caso %d (%s): MQTT, sí.\n    Por qué: %s", en = "case %d (%s): MQTT, yes.\n    Why: %s" }, n, name, ctx:text(kind.why))
          return
        end
        t:fail({ es = "caso %d (%s): contestaste «%s», pero aquí MQTT es la herramienta.\n    Por qué: %s",
                 en = "case %d (%s): you answered \"%s\", but MQTT is the tool here.\n    Why: %s" }, n, name, short(a.answer or "", 60), ctx:text(kind.why))
      end
      if a.mqtt then
        t:fail({ es = "caso %d (%s): contestaste MQTT, pero este es un caso para no usarlo; aquí encaja %s.\n    Por qué: %s",
                 en = "case %d (%s): you answered MQTT, but this is a case for not using it; what fits here: %s.\n    Why: %s" },
               n, name, alt_list(kind.ok), ctx:text(kind.why))
      end
      if next(a.alts) == nil then
        t:fail({ es = "caso %d (%s): bien, MQTT no, pero di qué usarías en su lugar (una de: rest, grpc, http, tcp, s3, kafka); «%s» no nombra ninguna",
                 en = "case %d (%s): right, not MQTT, but say what you would use instead (one of: rest, grpc, http, tcp, s3, kafka); \"%s\" names none" },
               n, name, short(a.text or "", 60))
      end
      local wrong = {}
      for alt in pairs(a.alts) do
        if not kind.ok[alt] then wrong[alt] = true end
      end
      if next(wrong) then
        t:fail({ es = "caso %d (%s): MQTT no, bien; pero %s no encaja aquí. Lo que encaja: %s.\n    Por qué: %s",
                 en = "case %d (%s): not MQTT, right; but %s does not fit here. What fits: %s.\n    Why: %s" },
               n, name, alt_list(wrong), alt_list(kind.ok), ctx:text(kind.why))
      end
      local note = ""
      if case.kind == "ordering" then
        note = ctx:text({ es = " (con una sola partición: varias particiones solo ordenan dentro de cada una)",
                          en = " (with a single partition: several partitions only keep order within each)" })
      end
      t:pass({ es = "caso %d (%s): MQTT no, y %s en su lugar%s.\n    Por qué: %s", en = "case %d (%s): not MQTT, and %s instead%s.\n    Why: %s" },
             n, name, alt_list(a.alts), note, ctx:text(kind.why))
    end,
  }
end

---------------------------------------------------------------- the lab

return lab {
  id = "10-load",
  title = { es = "Carga, monitorización con $SYS y cuándo no usar MQTT",
            en = "Load, $SYS monitoring, and when not to use MQTT" },
  submission = { programs = { "monitor" }, files = { "report.txt", "quiz.txt" } },
  broker = "sys",
  proxy = true,
  tcp_broker = true,
  setup_timeout = 90,
  params = params,


  setup = function(ctx)
    local d = ctx.data
    run_monitor(ctx)
    local rtext = ctx:file("report.txt")
    d.report_missing = rtext == nil
    d.report = parse_report(rtext)
    local qtext = ctx:file("quiz.txt")
    d.quiz_missing = qtext == nil
    d.quiz = parse_quiz(qtext)
    -- The kit's own runs cost a few seconds: only when there is something to compare.
    if next(d.report.v) then run_kit_bench(ctx) end
  end,

  checks = {
    check {
      id = "subscribes-sys", points = 1,
      title = { es = "El monitor se suscribe a $SYS", en = "The monitor subscribes to $SYS" },
      run = function(t, ctx)
        local m, p = ctx.data.mon, ctx.p
        monitor_absent(t, ctx)
        local c_filter, c_ev = covering(m, T_CLIENTS)
        local s_filter, s_ev = covering(m, T_STORE)
        if not s_filter then s_filter, s_ev = covering(m, T_STORED) end
        local all = {}
        for _, ev in ipairs(m.subscribes) do
          for _, f in ipairs(ev.filters or {}) do all[#all + 1] = f.filter end
        end
        local first = m.subscribes[1]
        if not c_filter or not s_filter then
          local missing = {}
          if not c_filter then missing[#missing + 1] = T_CLIENTS end
          if not s_filter then missing[#missing + 1] = T_STORE end
          for _, f in ipairs(all) do
            if f:sub(1, 1) == "#" or f:sub(1, 1) == "+" then
              t:say({ es = "«%s» no recibe los topics que empiezan por $: suscríbete a «$SYS/#» o a cada topic $SYS de forma explícita",
                      en = "'%s' does not get the topics that start with $: subscribe to '$SYS/#' or to each $SYS topic explicitly" }, f)
            end
          end
          t:fail({ es = "tu monitor se suscribió a %s, que no cubre %s. MQTT_TOPIC es %s:\n    %s",
                   en = "your monitor subscribed to %s, which does not cover %s. MQTT_TOPIC is %s:\n    %s" },
                 table.concat(all, ", "), table.concat(missing, ctx:text({ es = " ni ", en = " nor " })), p.topic,
                 first and wire.quote(first) or "-")
        end
        for _, ack in ipairs(m.subacks) do
          for _, code in ipairs(ack.codes or {}) do
            if code == 128 then
              t:fail({ es = "el broker rechazó una suscripción de tu monitor:\n    %s", en = "the broker refused a subscription of your monitor:\n    %s" }, wire.quote(ack))
            end
          end
        end
        t:pass({ es = "SUBSCRIBE a %s (cubre %s y %s); el proxy le entregó %d mensajes $SYS:\n    %s",
                 en = "SUBSCRIBE to %s (covers %s and %s); the proxy delivered %d $SYS messages to it:\n    %s" },
               table.concat(all, ", "), T_CLIENTS, T_STORE, #m.sys_pubs, wire.quote(c_ev or s_ev))
      end,
    },

    check {
      id = "calm", points = 2, after = "subscribes-sys",
      title = { es = "Sin falsas alarmas con la carga estable", en = "No false alarms under a steady load" },
      run = function(t, ctx)
        local m, p = ctx.data.mon, ctx.p
        ended_before(t, ctx, m.alive_calm)
        local during = alerts_between(m, 0, m.drop_t)
        local story = ctx:text({ es = "%d clientes conectados y %d msg/s desde %+.1f s hasta %+.1f s; el kit vio clients/connected = %s y store/messages/count = %s",
                                 en = "%d clients connected and %d msg/s from %+.1f s to %+.1f s; the kit saw clients/connected = %s and store/messages/count = %s" },
                               p.fleet, p.fleet_rate, m.fleet_t, m.drop_t,
                               sys_story(ctx, m, T_CLIENTS, -5, m.drop_t), sys_story(ctx, m, T_STORE, -5, m.drop_t))
        if m.full == nil then
          t:fail({ es = "el kit lanzó %d clientes pero el broker no los contó conectados en %d s (%s): la carga del kit falló, no tu monitor",
                   en = "the kit started %d clients but the broker did not count them connected within %d s (%s): the kit's load failed, not your monitor" },
                 p.fleet, FLEET_UP_S, sys_story(ctx, m, T_CLIENTS, 0, m.drop_t))
        end
        if #m.alerts == 0 then
          t:fail({ es = "%s. Tu monitor no escribió ninguna línea ALERT, ni aquí ni después, cuando sí había motivo: sin alarmas no hay falsas alarmas, pero tampoco vigilancia. Mira «clients-drop» y «backlog»",
                   en = "%s. Your monitor printed no ALERT line, neither here nor later, when there was cause: with no alarms there are no false alarms, but no watching either. See 'clients-drop' and 'backlog'" },
                 story)
        end
        if #during > 0 then
          t:fail({ es = "%s. Nada cayó ni se acumuló, y aun así tu monitor escribió %d líneas ALERT:\n%s\nUna alarma que salta sin motivo acaba ignorada: alerta solo ante una caída fuerte o una cola que crece sin parar, y no tomes los valores retenidos que llegan al suscribirte por cambios",
                   en = "%s. Nothing fell and nothing piled up, and still your monitor printed %d ALERT lines:\n%s\nAn alarm that fires for no reason ends up ignored: alert only on a sharp fall or on a queue that keeps growing, and do not take the retained values that come when you subscribe for changes" },
                 story, #during, quote_alerts(during))
        end
        t:pass({ es = "%s. Tu monitor no escribió ninguna línea ALERT", en = "%s. Your monitor printed no ALERT line" }, story)
      end,
    },

    check {
      id = "clients-drop", points = 2, after = "subscribes-sys",
      title = { es = "ALERT clients cuando los clientes caen de golpe", en = "ALERT clients when the clients fall sharply" },
      run = function(t, ctx)
        local m, p = ctx.data.mon, ctx.p
        ended_before(t, ctx, m.alive_drop)
        local early = alerts_between(m, 0, m.drop_t, "clients")
        local a = first_alert(m, "clients", m.drop_t, m.drop_t + DROP_WINDOW)
        local story = ctx:text({ es = "a %+.1f s el kit desconectó de golpe sus %d clientes; el kit vio clients/connected = %s",
                                 en = "at %+.1f s the kit disconnected all its %d clients at once; the kit saw clients/connected = %s" },
                               m.drop_t, p.fleet, sys_story(ctx, m, T_CLIENTS, m.fleet_t, m.drop_end))
        if #early > 0 then
          t:fail({ es = "%s. Pero tu monitor ya había escrito ALERT clients antes de la caída, con los clientes estables:\n%s\nAsí la alarma no distingue una caída de la calma",
                   en = "%s. But your monitor had printed ALERT clients before the drop already, with the clients steady:\n%s\nThat way the alarm cannot tell a drop from the calm" },
                 story, quote_alerts(early))
        end
        if not a then
          local got = delivered(m, T_CLIENTS, m.drop_i, m.drop_end + 0.5)
          local late = first_alert(m, "clients", m.drop_t)
          if late then
            t:fail({ es = "%s. Tu monitor escribió ALERT clients %.1f s después de la caída, tarde (el límite es %d s):\n%s",
                     en = "%s. Your monitor printed ALERT clients %.1f s after the drop, too late (the limit is %d s):\n%s" },
                   story, late.t - m.drop_t, DROP_WINDOW, quote_alerts({ late }))
          end
          if #got > 0 then
            t:fail({ es = "%s. El proxy entregó a tu monitor clients/connected = %s, y en %d s no escribió ninguna línea «ALERT clients». Compara cada valor con el máximo reciente: caer a la mitad o menos es una caída fuerte",
                     en = "%s. The proxy delivered clients/connected = %s to your monitor, and within %d s it printed no \"ALERT clients\" line. Compare each value with the recent highest: falling to half or less is a sharp fall" },
                   story, table.concat(got, ", "), DROP_WINDOW)
          end
          t:fail({ es = "%s, y en %d s tu monitor no escribió ninguna línea «ALERT clients». ¿Recibe %s? (el proxy no le entregó ningún valor nuevo de ese topic tras la caída)",
                   en = "%s, and within %d s your monitor printed no \"ALERT clients\" line. Does it get %s? (the proxy delivered no new value of that topic to it after the drop)" },
                 story, DROP_WINDOW, T_CLIENTS)
        end
        t:pass({ es = "%s. Tu monitor avisó %.1f s después:\n%s", en = "%s. Your monitor raised it %.1f s later:\n%s" },
               story, a.t - m.drop_t, quote_alerts({ a }))
      end,
    },

    check {
      id = "backlog", points = 2, after = "subscribes-sys",
      title = { es = "ALERT backlog cuando la cola crece sin parar", en = "ALERT backlog when the queue keeps growing" },
      run = function(t, ctx)
        local m, p = ctx.data.mon, ctx.p
        ended_before(t, ctx, m.alive_backlog)
        local early = alerts_between(m, 0, m.backlog_t, "backlog")
        local a = first_alert(m, "backlog", m.backlog_t, m.backlog_t + BACKLOG_WINDOW)
        local story = ctx:text({ es = "a %+.1f s el kit empezó a publicar %d msg/s a %s, el histórico ausente; store/messages/count estaba en %s y el kit vio luego %s",
                                 en = "at %+.1f s the kit began publishing %d msg/s to %s, the absent historian; store/messages/count stood at %s, and the kit then saw %s" },
                               m.backlog_t, p.backlog_rate, p.historian_filter, tostring(m.store0 or "?"),
                               sys_story(ctx, m, T_STORE, m.backlog_t, m.stopped_t))
        if #early > 0 then
          t:fail({ es = "%s. Pero tu monitor ya había escrito ALERT backlog antes, sin nada acumulándose:\n%s\nUna subida suelta no es una cola que crece: espera a varios informes seguidos al alza",
                   en = "%s. But your monitor had printed ALERT backlog before, with nothing piling up:\n%s\nOne rise on its own is not a growing queue: wait for several reports in a row going up" },
                 story, quote_alerts(early))
        end
        if not a then
          local got = delivered(m, T_STORE, m.backlog_i, m.stopped_t, 5)
          if #got == 0 then got = delivered(m, T_STORED, m.backlog_i, m.stopped_t, 5) end
          if #got > 0 then
            t:fail({ es = "%s. El proxy entregó a tu monitor %s, y en %d s no escribió ninguna línea «ALERT backlog». Cuenta los informes seguidos en que el número sube",
                     en = "%s. The proxy delivered %s to your monitor, and within %d s it printed no \"ALERT backlog\" line. Count the reports in a row in which the number goes up" },
                   story, table.concat(got, ", "), BACKLOG_WINDOW)
          end
          t:fail({ es = "%s, y en %d s tu monitor no escribió ninguna línea «ALERT backlog». Vigila %s (el proxy no le entregó ningún valor suyo durante el atasco)",
                   en = "%s, and within %d s your monitor printed no \"ALERT backlog\" line. Watch %s (the proxy delivered no value of it during the backlog)" },
                 story, BACKLOG_WINDOW, T_STORE)
        end
        t:pass({ es = "%s. Tu monitor avisó %.1f s después de empezar:\n%s", en = "%s. Your monitor raised it %.1f s after it began:\n%s" },
               story, a.t - m.backlog_t, quote_alerts({ a }))
      end,
    },

    check {
      id = "report-figures", points = 1,
      title = { es = "report.txt: todas las cifras, con unidades y coherentes", en = "report.txt: every figure, with units, coherent" },
      run = function(t, ctx)
        local r = ctx.data.report
        if ctx.data.report_missing then
          t:fail({ es = "no encuentro report.txt: ejecuta las tres pruebas de `mqlab show 10` y escribe una línea «clave: valor unidad» por cifra",
                   en = "report.txt not found: run the three tests in `mqlab show 10` and write one line \"key: value unit\" per figure" })
        end
        for _, pr in ipairs(r.problems) do
          t:expect(false, { es = "línea %d, «%s»: %s", en = "line %d, \"%s\": %s" }, pr.line, pr.text, ctx:text(REPORT_WHY[pr.why]))
        end
        for _, u in ipairs(r.unknown) do
          t:say({ es = "(línea %d, «%s»: clave desconocida, no se tiene en cuenta)", en = "(line %d, \"%s\": unknown key, ignored)" }, u.line, u.text)
        end
        local missing = {}
        for _, k in ipairs(REPORT_KEYS) do
          if not r.v[k.key] then missing[#missing + 1] = k.key end
          if r.repeated[k.key] then
            t:expect(false, { es = "%s aparece más de una vez; deja una", en = "%s appears more than once; keep one" }, k.key)
          end
        end
        if #missing > 0 then
          t:expect(false, { es = "faltan cifras, o no se pudieron leer: %s", en = "figures missing, or unreadable: %s" }, table.concat(missing, ", "))
        end
        for _, mode in ipairs({ "burst", "steady", "ramp" }) do
          local p50, p99 = r.v[mode .. "_p50"], r.v[mode .. "_p99"]
          if p50 and p99 and p50 > p99 then
            t:expect(false, { es = "%s: p50 = %g ms es mayor que p99 = %g ms. p50 es la mediana y p99 el valor que solo supera el 1%% más lento: p50 ≤ p99 siempre",
                              en = "%s: p50 = %g ms is above p99 = %g ms. p50 is the median and p99 the value only the slowest 1%% exceed: p50 ≤ p99 always" },
                     mode, p50, p99)
          end
        end
        for _, k in ipairs(REPORT_KEYS) do
          local v = r.v[k.key]
          if v and v <= 0 then
            t:expect(false, { es = "%s es %g: una medida de una prueba real no es cero", en = "%s is %g: a measurement from a real run is not zero" }, k.key, v)
          end
        end
        if not t.failed then
          t:pass({ es = "las %d cifras, con sus unidades; p50 ≤ p99 en las tres pruebas", en = "all %d figures, with their units; p50 ≤ p99 in all three tests" }, #REPORT_KEYS)
        else
          t:fail()
        end
      end,
    },

    check {
      id = "report-plausible", points = 2, after = "report-figures",
      title = { es = "report.txt: cifras plausibles frente a la medida del kit", en = "report.txt: figures plausible against the kit's own run" },
      run = function(t, ctx)
        local r, k, p = ctx.data.report.v, ctx.data.kb, ctx.p
        if not k or not k.burst or not k.steady then
          t:fail({ es = "el kit no pudo hacer su propia medida: %s", en = "the kit could not make its own measurement: %s" }, tostring(k and k.err or "?"))
        end
        -- The runs as they would have gone on a machine of their own: a
        -- grading machine busy with other gradings gives the broker a
        -- part of a CPU, and that is not a slower broker.
        local bs, ss = k.burst_slow or { factor = 1 }, k.steady_slow or { factor = 1 }
        local kb = { p50 = k.burst.latency_ms.p50 / bs.factor, p99 = k.burst.latency_ms.p99 / bs.factor,
                     rate = puback_rate(k.burst) * bs.factor }
        local ks = { p50 = k.steady.latency_ms.p50 / ss.factor, p99 = k.steady.latency_ms.p99 / ss.factor,
                     rate = puback_rate(k.steady) }
        t:say({ es = "el kit midió aquí: ráfaga de %d mensajes: p50 %.2f ms, p99 %.2f ms, %.0f PUBACK/s; sostenida %d msg/s con %d clientes durante %d s: p50 %.3f ms, p99 %.3f ms, %.0f PUBACK/s",
                en = "the kit measured here: burst of %d messages: p50 %.2f ms, p99 %.2f ms, %.0f PUBACK/s; steady %d msg/s over %d clients for %d s: p50 %.3f ms, p99 %.3f ms, %.0f PUBACK/s" },
              p.burst_n, k.burst.latency_ms.p50, k.burst.latency_ms.p99, puback_rate(k.burst),
              p.steady_rate, p.steady_clients, KIT_STEADY_S, k.steady.latency_ms.p50, k.steady.latency_ms.p99, ks.rate)
        if bs.waited and bs.waited > 0 or ss.waited and ss.waited > 0 then
          t:say({ es = "mientras, el broker del kit esperó a que le tocara una CPU (el resto de lo que hace esta máquina, como otras correcciones): %.2f s por cada segundo que trabajó en la ráfaga, %.2f s en la sostenida. Sin esas esperas: ráfaga p50 %.2f ms, p99 %.2f ms, %.0f PUBACK/s; sostenida p50 %.3f ms, p99 %.3f ms. Con estas cifras se comparan las tuyas",
                  en = "meanwhile the kit's broker waited for a CPU (the rest of this machine's work, such as other gradings): %.2f s for every second it worked in the burst, %.2f s in the steady run. Without those waits: burst p50 %.2f ms, p99 %.2f ms, %.0f PUBACK/s; steady p50 %.3f ms, p99 %.3f ms. Your figures are compared with these" },
                bs.factor - 1, ss.factor - 1, kb.p50, kb.p99, kb.rate, ks.p50, ks.p99)
        end
        -- Generous bounds: another machine, another minute. A factor of
        -- ten or twenty still tells a real run from an invented figure.
        -- A grading machine slower than the student's measures a burst
        -- slower too; the lower bound of a burst latency never rises
        -- above a floor no real run beats (a burst keeps 100 messages in
        -- flight per client: a p50 of 0.5 ms would take 2 million PUBACKs
        -- a second).
        -- The same for a latency at a steady rate: a busy machine makes
        -- the kit's own generator late as well as its broker, which no
        -- reading of the broker corrects, so the lower bound stops at
        -- 10 µs, below any real round trip on a loopback.
        local steady_lo = math.min(ks.p50 / 20, 0.01)
        local rules = {
          { "burst_p50", math.min(kb.p50 / 20, 0.5), kb.p50 * 20 + 5, "ms" },
          { "burst_p99", math.min(kb.p99 / 20, 1), kb.p99 * 20 + 5, "ms" },
          { "burst_puback_rate", kb.rate / 10, kb.rate * 10, "msg/s" },
          { "steady_p50", steady_lo, ks.p50 * 20 + 2, "ms" },
          { "steady_p99", steady_lo, ks.p99 * 20 + 20, "ms" },
          { "steady_puback_rate", p.steady_rate * 0.3, p.steady_rate * 1.1, "msg/s" },
          { "ramp_p50", steady_lo, 60000, "ms" },
          { "ramp_p99", steady_lo, 60000, "ms" },
          { "ramp_puback_rate", p.ramp_from * 0.5, kb.rate * 10, "msg/s" },
          { "knee_rate", p.ramp_from, kb.rate * 10, "msg/s" },
        }
        local bad = 0
        for _, rule in ipairs(rules) do
          local key, lo, hi, unit = rule[1], rule[2], rule[3], rule[4]
          local v = r[key]
          if v < lo or v > hi then
            bad = bad + 1
            t:say({ es = "%s = %g %s está fuera de lo plausible aquí (%.3g–%.3g %s)", en = "%s = %g %s is outside what is plausible here (%.3g–%.3g %s)" },
                  key, v, unit, lo, hi, unit)
          end
        end
        if bad > 0 then
          if r.steady_puback_rate > p.steady_rate * 1.1 then
            t:say({ es = "en la prueba sostenida el kit ofrece %d msg/s: no puede volver más de %d PUBACK por segundo", en = "the steady test offers %d msg/s: it cannot get back more than %d PUBACKs a second" },
                  p.steady_rate, p.steady_rate)
          end
          t:fail({ es = "%d de tus cifras no casan con lo que mide el kit ni con un margen amplio. Copia las cifras de tus propias ejecuciones de `mqlab bench`, con los parámetros de `mqlab show 10`",
                   en = "%d of your figures do not match what the kit measures, even with a wide margin. Copy the figures from your own `mqlab bench` runs, with the parameters in `mqlab show 10`" }, bad)
        end
        t:pass({ es = "tus cifras son del mismo orden: ráfaga p99 %g ms, %g PUBACK/s; sostenida p99 %g ms, %g PUBACK/s; codo de la rampa a %g msg/s",
                 en = "your figures are of the same order: burst p99 %g ms, %g PUBACK/s; steady p99 %g ms, %g PUBACK/s; ramp knee at %g msg/s" },
               r.burst_p99, r.burst_puback_rate, r.steady_p99, r.steady_puback_rate, r.knee_rate)
      end,
    },

    quiz_check(1), quiz_check(2), quiz_check(3), quiz_check(4), quiz_check(5), quiz_check(6),
  },

  hints = {
    { es = "Suscríbete con client.subscribe(os.environ['MQTT_TOPIC']) en on_connect, y en on_message mira msg.topic: $SYS/broker/clients/connected y $SYS/broker/store/messages/count traen un número como texto (int(msg.payload)). Ignora los mensajes con msg.retain, que son el último valor guardado y pueden ser viejos.",
      en = "Subscribe with client.subscribe(os.environ['MQTT_TOPIC']) in on_connect, and in on_message look at msg.topic: $SYS/broker/clients/connected and $SYS/broker/store/messages/count carry a number as text (int(msg.payload)). Ignore messages with msg.retain: they are the last stored value and may be old." },
    { es = "Para la caída, guarda los valores de clientes de los últimos 10 s con su hora (time.monotonic()) y compara el nuevo con el máximo: si es la mitad o menos y faltan al menos 10, print('ALERT clients ...', flush=True). Avisa una vez por caída, no en cada informe.",
      en = "For the drop, keep the client counts of the last 10 s with their time (time.monotonic()) and compare the new one with the highest: if it is half or less and at least 10 are gone, print('ALERT clients ...', flush=True). Alert once per drop, not at every report." },
    { es = "Para la cola, cuenta cuántos informes seguidos sube store/messages/count y cuánto ha subido en total; vuelve a cero en cuanto baje o se quede igual. Con 3 subidas seguidas y al menos 100 mensajes más, print('ALERT backlog ...', flush=True).",
      en = "For the queue, count how many reports in a row store/messages/count goes up and by how much in all; reset as soon as it goes down or stays put. With 3 rises in a row and at least 100 more messages, print('ALERT backlog ...', flush=True)." },
    { es = "report.txt: ejecuta los tres `mqlab bench ... --format json` de `mqlab show 10` y copia latency_ms.p50 y latency_ms.p99 (en ms), la tasa de PUBACK (acked × rate_sent ÷ sent, en msg/s) y knee.rate. Una línea por cifra: «burst_p99: 37.0 ms».",
      en = "report.txt: run the three `mqlab bench ... --format json` from `mqlab show 10` and copy latency_ms.p50 and latency_ms.p99 (in ms), the PUBACK rate (acked × rate_sent ÷ sent, in msg/s) and knee.rate. One line per figure: \"burst_p99: 37.0 ms\"." },
    { es = "quiz.txt: MQTT brilla con muchos emisores pequeños, redes malas, baterías y cuando emisor y receptor no deben conocerse. No lo uses para petición/respuesta (rest, grpc), ficheros grandes (s3, http), un único emisor y un único receptor (una conexión directa: http, grpc, tcp) ni un orden global estricto (kafka con una partición).",
      en = "quiz.txt: MQTT shines with many small senders, poor networks, batteries, and when sender and receiver must not know each other. Do not use it for request/response (rest, grpc), large files (s3, http), one sender and one receiver (a direct connection: http, grpc, tcp) or a strict global order (kafka with one partition)." },
  },
}
