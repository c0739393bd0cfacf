-- Lab 09: an idempotent consumer with SQLite.
--
-- The student's `consumer` subscribes at QoS 1 to MQTT_TOPIC (a filter,
-- acme/v1/+/+/temp) through the kit's proxy and stores every reading once
-- in the SQLite database at LAB_DB, table readings(id, topic, ts, value).
-- A kit publisher on the broker sends the readings; the world is made as
-- unkind as QoS 1 allows:
--
--   phase 1   fresh readings from several sensors, with
--             - the same reading published twice by its producer (a new
--               MQTT message with the same JSON), twice;
--             - one PUBLISH the proxy forwards twice (same packet id);
--             - one PUBLISH the proxy holds back until two later ones have
--               overtaken it (its ts is then older than the last one seen);
--             - one malformed payload (not JSON, or a field missing).
--   kill      once the consumer has acknowledged (PUBACK, seen in the
--             trace) everything of phase 1, the kit SIGKILLs it, then
--             starts it again and waits for its new subscription (or for a
--             CONNACK that says its session was kept).
--   phase 2   the last readings of phase 1 again, same ids (a producer
--             that re-sends what it was not sure about), then the rest,
--             one of them duplicated by the proxy.
--   end       SIGTERM, and the database is opened read-only.
--
-- The kit publishes only while the consumer is subscribed, so a clean
-- session loses nothing: the lab asks for QoS 1, not for a persistent
-- session. Faults are placed by packet count (the nth PUBLISH going down),
-- and the kill waits for acknowledgements, never for time, so every run
-- puts them on the same readings.
--
-- The duplicated readings of phase 1 and the replayed ones are distinct
-- ids, so a consumer that does not deduplicate at all loses both
-- `no-duplicates-live` and `survives-restart`, while one that
-- deduplicates in memory only loses `survives-restart` alone.
--
-- A QoS 0 subscription gives no PUBACK to wait for, so the moment of the
-- kill would be a race: the database checks then fail with that reason
-- instead of giving a verdict that changes from run to run.
--
-- The database is read only once the consumer has stopped: a reader
-- holding a lock while the student writes could make a correct consumer
-- fail with "database is locked".

local wire = require "mqlab.wire"
local sqlite = require "mqlab.sqlite"
local short = require("mqlab.text").short

local PROG_TIMEOUT = 40   -- seconds each run of the consumer may last
local START_S = 8         -- seconds to wait for the first SUBACK
local RESTART_S = 6       -- seconds to wait for the subscription after the restart
local ACK_S = 3           -- seconds to wait for the consumer to acknowledge a phase
local TERM_S = 3          -- seconds the consumer gets to leave after SIGTERM
local REPLAY = 3          -- readings of phase 1 sent again after the restart
local REORDER_BEHIND = 2  -- later PUBLISH packets that overtake the held one

local COLUMNS = { "id", "topic", "ts", "value" }

---------------------------------------------------------------- parameters

-- Everything is drawn here, so that the same student always gets the
-- same readings, in the same order, with the same faults on them.
local function params(rng)
  local plants = rng:sample({ "planta-1", "planta-2", "planta-3", "planta-4" }, 2)
  local zones = rng:sample({ "norte", "sur", "este", "oeste" }, 3)
  local topics = {
    "acme/v1/" .. plants[1] .. "/" .. zones[1] .. "/temp",
    "acme/v1/" .. plants[1] .. "/" .. zones[2] .. "/temp",
    "acme/v1/" .. plants[2] .. "/" .. zones[1] .. "/temp",
    "acme/v1/" .. plants[2] .. "/" .. zones[3] .. "/temp",
  }
  local hex = rng:hex(4)
  local n1, n2 = rng:int(10, 12), rng:int(5, 6)
  local ts0 = 1767225600000 + rng:int(0, 30 * 86400) * 1000
  local readings = {}
  for n = 1, n1 + n2 do
    local v = string.format("%.1f", 18 + rng:int(0, 90) / 10)
    local r = { n = n, id = hex .. "-" .. rng:hex(8), topic = topics[(n - 1) % #topics + 1],
                ts = ts0 + n * 5000, v = tonumber(v) }
    r.payload = string.format('{"id": "%s", "ts": %d, "v": %s}', r.id, r.ts, v)
    readings[n] = r
  end

  -- The malformed message comes right after reading mal_after, on the
  -- next sensor's topic, looking like what a broken device would send.
  local mal_after = rng:int(4, 5)
  local kind = rng:pick({ "notjson", "truncated", "noid", "nov" })
  local base = readings[mal_after]
  local mal = { kind = kind, topic = topics[mal_after % #topics + 1], id = hex .. "-" .. rng:hex(8) }
  local mts, mv = base.ts + 2500, string.format("%.1f", base.v + 0.3)
  if kind == "notjson" then
    mal.payload = string.format("temp=%s;ts=%d", mv, mts)
    mal.id = nil
  elseif kind == "truncated" then
    mal.payload = string.format('{"id": "%s", "ts": %d, "v": ', mal.id, mts)
  elseif kind == "noid" then
    mal.payload = string.format('{"ts": %d, "v": %s}', mts, mv)
    mal.id = nil
  else
    mal.payload = string.format('{"id": "%s", "ts": %d, "value": %s}', mal.id, mts, mv)
  end

  -- Phase 1: what the kit publishes, in order. A republish is the same
  -- JSON again, as a new MQTT message.
  local rep_a, rep_b = 2, mal_after + 1
  local seq1 = {}
  for n = 1, n1 do
    seq1[#seq1 + 1] = { n = n }
    if n == mal_after then seq1[#seq1 + 1] = { malformed = true } end
    if n == 6 then seq1[#seq1 + 1] = { n = rep_a, again = true } end
    if n == 9 then seq1[#seq1 + 1] = { n = rep_b, again = true } end
  end
  local function pos(n)
    for i, s in ipairs(seq1) do
      if s.n == n and not s.again then return i end
    end
  end
  -- Phase 2: the last readings of phase 1 again, then the rest.
  local seq2 = {}
  for n = n1 - REPLAY + 1, n1 do seq2[#seq2 + 1] = { n = n, replay = true } end
  for n = n1 + 1, n1 + n2 do seq2[#seq2 + 1] = { n = n } end

  return {
    client_id = "consumer-" .. plants[1] .. "-" .. hex,
    topic = "acme/v1/+/+/temp",
    topics = topics,
    topic_list = table.concat(topics, ", "),
    hex = hex,
    readings = readings,
    n1 = n1, n2 = n2, total = n1 + n2,
    malformed = mal,
    seq1 = seq1, seq2 = seq2,
    republished = { rep_a, rep_b },
    dup1 = 3, dup1_nth = pos(3),               -- the proxy forwards it twice
    reordered = 7, reorder_nth = pos(7),       -- the proxy holds it back
    dup2 = n1 + 2, dup2_nth = REPLAY + 2,      -- counted from the restart
    replay_from = n1 - REPLAY + 1,
    db = "readings.db",
    timeout_s = PROG_TIMEOUT,
  }
end

---------------------------------------------------------------- the run

local function publishes_down(events, from)
  return wire.select(events, function(ev)
    return ev.i > (from or 0) and ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "down"
  end)
end

-- The PUBACK the consumer sent for a PUBLISH it was given, if any.
local function ack_of(events, pub)
  for i = pub.i + 1, #events do
    local ev = events[i]
    if ev.kind == "packet" and ev.type == "PUBACK" and ev.dir == "up" and ev.conn == pub.conn and ev.id == pub.id then
      return ev
    end
    if ev.kind == "close" and ev.conn == pub.conn then return nil end
  end
end

-- Wait until the consumer has been given `want` PUBLISH packets since
-- event `from` and has acknowledged every QoS 1 one, or has stopped, or
-- `s` seconds have passed. Returns true when everything was acknowledged.
local function settle(ctx, from, want, s)
  local px, prog = ctx.proxy, ctx.data.prog
  return ctx:wait_for(function()
    local evs = px:events()
    local pubs = publishes_down(evs, from)
    if #pubs >= want then
      local all = true
      for _, ev in ipairs(pubs) do
        if (ev.qos or 0) > 0 and not ack_of(evs, ev) then all = false break end
      end
      if all then return true end
    end
    if not prog:running() then return "stopped" end
  end, s) == true
end

local function publish_all(pub, p, seq)
  for _, s in ipairs(seq) do
    local topic, payload
    if s.malformed then
      topic, payload = p.malformed.topic, p.malformed.payload
    else
      local r = p.readings[s.n]
      topic, payload = r.topic, r.payload
    end
    assert(pub:publish(topic, payload, { qos = 1 }))
  end
end

-- Everything the checks need from the database, read once the consumer
-- has stopped.
local function read_db(d, p)
  local db, msg, code = sqlite.open(d.db_path)
  if not db then
    d.db_err, d.db_code = msg, code
    return
  end
  d.cols = db:columns("readings")
  if d.cols then
    local have = {}
    for _, c in ipairs(d.cols) do have[c:lower()] = true end
    d.missing_cols = {}
    for _, c in ipairs(COLUMNS) do
      if not have[c] then d.missing_cols[#d.missing_cols + 1] = c end
    end
    if #d.missing_cols == 0 then
      d.rows, d.rows_err = db:rows("SELECT id, topic, ts, value FROM readings")
    end
    -- Whether id is declared unique (PRIMARY KEY or UNIQUE), for feedback.
    for _, ix in ipairs(db:rows("PRAGMA index_list(readings)") or {}) do
      if ix.unique == 1 then
        local info = db:rows("PRAGMA index_info(" .. string.format("%q", ix.name) .. ")") or {}
        if #info == 1 and tostring(info[1].name):lower() == "id" then d.id_unique = true end
      end
    end
    for _, c in ipairs(db:rows("PRAGMA table_info(readings)") or {}) do
      if tostring(c.name):lower() == "id" and c.pk == 1 then d.id_pk = true end
    end
  else
    local names = {}
    for _, t in ipairs(db:rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") or {}) do
      names[#names + 1] = t.name
    end
    d.tables = names
  end
  db:close()
end

-- What the trace and the rows say, per reading.
local function analyse(d, p)
  local a = { by_id = {}, count = {}, row = {}, strays = {}, mal_rows = 0 }
  for _, r in ipairs(p.readings) do a.by_id[r.id] = r end
  for _, row in ipairs(d.rows or {}) do
    local id = row.id ~= nil and tostring(row.id) or nil
    if id and a.by_id[id] then
      a.count[id] = (a.count[id] or 0) + 1
      a.row[id] = a.row[id] or row
    elseif id == nil or id == "" or id == p.malformed.id then
      a.mal_rows = a.mal_rows + 1
    else
      a.strays[#a.strays + 1] = row
    end
  end
  -- Deliveries to the consumer, by reading id, and the malformed one.
  a.delivered, a.acked = {}, {}
  for _, ev in ipairs(publishes_down(d.events)) do
    if ev.payload == p.malformed.payload then
      a.mal_ev = a.mal_ev or ev
      a.mal_acked = a.mal_acked or ack_of(d.events, ev) ~= nil
    else
      local r = wire.reading(ev.payload or "")
      if r and a.by_id[r.id] then
        local list = a.delivered[r.id] or {}
        list[#list + 1] = ev
        a.delivered[r.id] = list
        if ack_of(d.events, ev) then a.acked[r.id] = (a.acked[r.id] or 0) + 1 end
      end
    end
  end
  a.missing = {}
  for _, r in ipairs(p.readings) do
    if not a.count[r.id] then a.missing[#a.missing + 1] = r end
  end
  return a
end

---------------------------------------------------------------- feedback helpers

local function label(ctx, r)
  return ctx:text({ es = "la lectura %d (id %s)", en = "reading %d (id %s)" }, r.n, r.id)
end

local function ids_text(list, n)
  local out = {}
  for i = 1, math.min(#list, n or 4) do out[i] = list[i].id end
  if #list > (n or 4) then out[#out + 1] = "…" end
  return table.concat(out, ", ")
end

local function quote(ev) return "    " .. wire.quote(ev) end

-- The first PUBLISH of reading r that went down after event index from.
local function delivery(a, r, from)
  for _, ev in ipairs(a.delivered[r.id] or {}) do
    if ev.i > (from or 0) then return ev end
  end
end

-- Without PUBACKs the kit cannot know what the consumer had processed
-- when it was killed, so what follows would be a race: not graded.
local function need_qos1(t, ctx)
  if ctx.data.qos0 then
    t:fail({ es = "no se puede evaluar: el broker te entregó las lecturas con QoS 0, sin PUBACK, así que el kit no puede saber qué habías procesado al llegar el SIGKILL. Suscríbete con qos=1 (mira «Se suscribe a MQTT_TOPIC con QoS 1»)",
             en = "cannot be graded: the broker handed you the readings at QoS 0, with no PUBACK, so the kit cannot know what you had processed when the SIGKILL came. Subscribe with qos=1 (see \"It subscribes to MQTT_TOPIC at QoS 1\")" })
  end
end

-- Why there is no connection at all, in the student's words.
local function why_absent(t, ctx)
  local d = ctx.data
  if not d.prog then t:fail(d.prog_err) end
  t:fail({ es = "el proxy no vio ningún CONNECT de tu consumidor (%s). ¿Usa MQTT_HOST y MQTT_PORT? Su salida de error:\n%s",
           en = "the proxy saw no CONNECT from your consumer (%s). Does it use MQTT_HOST and MQTT_PORT? Its stderr:\n%s" },
         d.first_end or ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
end

---------------------------------------------------------------- the lab

return lab {
  id = "09-idempotent",
  title = { es = "Un consumidor idempotente", en = "An idempotent consumer" },
  submission = { programs = { "consumer" } },
  broker = "plain",
  proxy = true,
  setup_timeout = 2 * PROG_TIMEOUT,
  params = params,


  setup = function(ctx)
    local d, p, px = ctx.data, ctx.p, ctx.proxy
    -- In the grading's scratch folder: the consumer may write it (also
    -- after a restart), and the kit reads it afterwards.
    d.db_path = ctx.scratch .. "/" .. p.db
    local pub = assert(ctx:client { id = "mqlab-pub-" .. p.hex, clean = true })
    px:rule { action = "duplicate", type = "publish", dir = "down", nth = p.dup1_nth }
    px:rule { action = "reorder", type = "publish", dir = "down", nth = p.reorder_nth, behind = REORDER_BEHIND }

    d.prog, d.prog_err = ctx:program("consumer", { timeout = PROG_TIMEOUT, env = { LAB_DB = d.db_path },
                                                   link_sqlite = true })
    if not d.prog then
      d.events = px:events()
      return
    end
    local prog = d.prog

    -- Phase 1, once the consumer is subscribed.
    d.subscribed = ctx:wait_for(function()
      if #wire.select(px:events(), { kind = "packet", type = "SUBACK", dir = "down" }) > 0 then return true end
      if not prog:running() then return "stopped" end
    end, START_S) == true
    if d.subscribed then
      d.p1_from = px:count()
      publish_all(pub, p, p.seq1)
      d.p1_settled = settle(ctx, d.p1_from, #p.seq1, ACK_S)
    end

    -- The kill, and the restart.
    d.alive_at_kill = prog:running()
    if d.alive_at_kill then
      prog:signal("KILL")
      prog:wait(3)
    else
      d.first_end = ctx:how_ended(prog)
    end
    d.kill_i = px:count()
    local ok, err = prog:restart()
    if not ok then
      d.restart_err = err
    else
      -- Back when the broker has its subscription again: a new SUBACK, or
      -- a CONNACK saying that the session (and its subscription) was kept.
      d.back = ctx:wait_for(function()
        for _, ev in ipairs(px:events(d.kill_i + 1)) do
          if ev.kind == "packet" and ev.dir == "down" then
            if ev.type == "SUBACK" then return "suback" end
            if ev.type == "CONNACK" and ev.session_present and d.subscribed then return "session" end
          end
        end
        if not prog:running() then return "stopped" end
      end, RESTART_S)
    end

    -- Phase 2: the replay, then the rest.
    if d.back == "suback" or d.back == "session" then
      px:rule { action = "duplicate", type = "publish", dir = "down", nth = p.dup2_nth }
      d.p2_from = px:count()
      publish_all(pub, p, p.seq2)
      d.p2_settled = settle(ctx, d.p2_from, #p.seq2, ACK_S)
    end

    -- The end: SIGTERM, then the database.
    d.alive_at_end = prog:running()
    if d.alive_at_end then
      prog:signal("TERM")
      d.left_on_term = prog:wait(TERM_S) == true
      if not d.left_on_term then prog:stop() end
    end
    d.end_how = ctx:how_ended(prog)
    pub:disconnect()
    d.events = px:events()
    for _, ev in ipairs(publishes_down(d.events)) do
      if (ev.qos or 0) == 0 then d.qos0 = true end
    end
    read_db(d, p)
    d.a = analyse(d, p)
  end,

  checks = {
    check {
      id = "subscribes", points = 1,
      title = { es = "Se suscribe a MQTT_TOPIC con QoS 1", en = "It subscribes to MQTT_TOPIC at QoS 1" },
      run = function(t, ctx)
        local d, p = ctx.data, ctx.p
        local connects = wire.select(d.events, { kind = "packet", type = "CONNECT", dir = "up" })
        if #connects == 0 then why_absent(t, ctx) end
        if connects[1].client_id ~= p.client_id then
          t:fail({ es = "tu consumidor se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno\n%s",
                   en = "your consumer connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment\n%s" },
                 tostring(connects[1].client_id), p.client_id, quote(connects[1]))
        end
        local subs = wire.select(d.events, { kind = "packet", type = "SUBSCRIBE", dir = "up" })
        if #subs == 0 then
          t:fail({ es = "tu consumidor se conectó pero no envió ningún SUBSCRIBE (%s): suscríbete a MQTT_TOPIC en on_connect. Su salida de error:\n%s",
                   en = "your consumer connected but sent no SUBSCRIBE (%s): subscribe to MQTT_TOPIC in on_connect. Its stderr:\n%s" },
                 d.first_end or ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
        end
        local found, others = nil, {}
        for _, ev in ipairs(subs) do
          for _, f in ipairs(ev.filters or {}) do
            if f.filter == p.topic then found = found or { ev = ev, qos = f.qos }
            else others[#others + 1] = f.filter end
          end
        end
        if not found then
          t:fail({ es = "tu consumidor se suscribió a %s, pero MQTT_TOPIC es %s: usa el filtro del entorno\n%s",
                   en = "your consumer subscribed to %s, but MQTT_TOPIC is %s: use the filter from the environment\n%s" },
                 table.concat(others, ", "), p.topic, quote(subs[1]))
        end
        if found.qos == 0 then
          t:fail({ es = "se suscribió con QoS 0: el broker te entrega cada lectura sin esperar tu PUBACK, así que lo que tenías en vuelo cuando murió el proceso se pierde, y el broker no guarda nada para ti. Suscríbete con qos=1:\n%s",
                   en = "it subscribed at QoS 0: the broker hands you each reading without waiting for your PUBACK, so whatever was in flight when the process died is lost, and the broker keeps nothing for you. Subscribe with qos=1:\n%s" },
                 quote(found.ev))
        end
        if found.qos == 2 then
          t:fail({ es = "se suscribió con QoS 2; el laboratorio pide QoS 1, el valor por defecto del curso: la idempotencia la pone tu consumidor, no el QoS, y QoS 2 cuesta cuatro paquetes por mensaje allí donde el productor también lo usa:\n%s",
                   en = "it subscribed at QoS 2; the lab asks for QoS 1, the course's default: idempotence comes from your consumer, not from the QoS, and QoS 2 costs four packets per message wherever the producer uses it too:\n%s" },
                 quote(found.ev))
        end
        t:pass({ es = "SUBSCRIBE a %s con QoS 1:\n%s", en = "SUBSCRIBE to %s at QoS 1:\n%s" }, p.topic, quote(found.ev))
      end,
    },

    check {
      id = "table", points = 1,
      title = { es = "LAB_DB tiene la tabla readings(id, topic, ts, value)",
                en = "LAB_DB has the table readings(id, topic, ts, value)" },
      run = function(t, ctx)
        local d = ctx.data
        if not d.prog then t:fail(d.prog_err) end
        if d.db_code == "notfound" then
          t:fail({ es = "no hay ninguna base de datos en LAB_DB (%s) al terminar: ábrela con la ruta de la variable LAB_DB, sqlite3.connect(os.environ[\"LAB_DB\"]). Tu consumidor: %s. Su salida de error:\n%s",
                   en = "there is no database at LAB_DB (%s) at the end: open it with the path in the LAB_DB variable, sqlite3.connect(os.environ[\"LAB_DB\"]). Your consumer: %s. Its stderr:\n%s" },
                 d.db_path, d.end_how, ctx:stderr_tail(d.prog))
        end
        if d.db_err then
          t:fail({ es = "el fichero de LAB_DB no se puede leer como SQLite: %s", en = "the file at LAB_DB cannot be read as SQLite: %s" }, d.db_err)
        end
        if not d.cols then
          local tables = #d.tables > 0 and table.concat(d.tables, ", ") or ctx:text({ es = "ninguna", en = "none" })
          t:fail({ es = "la base de datos no tiene una tabla readings (tablas: %s). Créala al arrancar: CREATE TABLE IF NOT EXISTS readings (id TEXT PRIMARY KEY, topic TEXT, ts INTEGER, value REAL)",
                   en = "the database has no table readings (tables: %s). Create it at start-up: CREATE TABLE IF NOT EXISTS readings (id TEXT PRIMARY KEY, topic TEXT, ts INTEGER, value REAL)" },
                 tables)
        end
        if #d.missing_cols > 0 then
          t:fail({ es = "a la tabla readings le faltan las columnas %s (tiene: %s)", en = "the table readings lacks the columns %s (it has: %s)" },
                 table.concat(d.missing_cols, ", "), table.concat(d.cols, ", "))
        end
        if not d.rows then
          t:fail({ es = "no se pudo leer la tabla readings: %s", en = "the table readings could not be read: %s" }, tostring(d.rows_err))
        end
        t:pass({ es = "readings(%s), con %d filas al terminar", en = "readings(%s), with %d rows at the end" },
               table.concat(d.cols, ", "), #d.rows)
      end,
    },

    check {
      id = "skips-malformed", points = 2, after = "table",
      title = { es = "Se salta el mensaje mal formado y sigue", en = "It skips the malformed message and goes on" },
      run = function(t, ctx)
        need_qos1(t, ctx)
        local d, p = ctx.data, ctx.p
        local a, mal = d.a, p.malformed
        local why = ({
          notjson = { es = "no es JSON", en = "it is not JSON" },
          truncated = { es = "es JSON cortado a medias", en = "it is JSON cut short" },
          noid = { es = "le falta «id»", en = "it lacks \"id\"" },
          nov = { es = "le falta «v» (trae «value»)", en = "it lacks \"v\" (it has \"value\")" },
        })[mal.kind]
        local shown = a.mal_ev and quote(a.mal_ev) or ("    " .. short(mal.payload, 100))
        if not a.mal_ev then
          t:fail({ es = "el mensaje mal formado no llegó a tu consumidor (%s)", en = "the malformed message never reached your consumer (%s)" },
                 d.first_end or ctx:how_ended(d.prog))
        end
        -- The readings of phase 1 that came after it.
        local after, stored = {}, 0
        local seen_mal = false
        for _, s in ipairs(p.seq1) do
          if s.malformed then seen_mal = true
          elseif seen_mal and not s.again then
            after[#after + 1] = p.readings[s.n]
            if a.count[p.readings[s.n].id] then stored = stored + 1 end
          end
        end
        if not d.alive_at_kill then
          t:fail({ es = "tu consumidor no sobrevivió al mensaje mal formado (%s): %s\n%s\nSu salida de error:\n%s\nCapturar el error de json.loads() o del campo que falta, anotarlo y seguir. Y con una sesión persistente, un mensaje que te tumba vuelve a llegar en cada arranque",
                   en = "your consumer did not survive the malformed message (%s): %s\n%s\nIts stderr:\n%s\nCatch the error from json.loads() or from the missing field, log it and go on. And with a persistent session, a message that knocks you down comes back at every start" },
                 d.first_end, ctx:text(why), shown, ctx:stderr_tail(d.prog))
        end
        if stored == 0 and not a.mal_acked then
          t:fail({ es = "tras el mensaje mal formado (%s) tu consumidor siguió vivo pero dejó de trabajar: no lo confirmó, y no guardó ninguna de las %d lecturas que vinieron después:\n%s\nSu salida de error:\n%s\nCon loop_start(), una excepción en on_message mata el hilo de red de paho sin terminar el proceso. Captura el error, anótalo y sigue",
                   en = "after the malformed message (%s) your consumer stayed alive but stopped working: it never acknowledged it, and stored none of the %d readings that came after:\n%s\nIts stderr:\n%s\nWith loop_start(), an exception in on_message kills paho's network thread without ending the process. Catch the error, log it and go on" },
                 ctx:text(why), #after, shown, ctx:stderr_tail(d.prog))
        end
        if a.mal_rows > 0 then
          t:fail({ es = "tu consumidor guardó el mensaje mal formado (%s) como %s en readings:\n%s\nNo es una lectura: descártalo",
                   en = "your consumer stored the malformed message (%s) as %s in readings:\n%s\nIt is not a reading: discard it" },
                 ctx:text(why), a.mal_rows == 1 and ctx:text({ es = "una fila", en = "a row" })
                   or ctx:text({ es = "%d filas", en = "%d rows" }, a.mal_rows), shown)
        end
        if #d.rows == 0 then
          t:fail({ es = "la tabla está vacía al terminar: no hay nada que muestre que siguió tras el mensaje mal formado (mira «Todas las lecturas están en la tabla»)",
                   en = "the table is empty at the end: nothing shows that it went on after the malformed message (see \"Every reading is in the table\")" })
        end
        if stored == 0 then
          t:fail({ es = "tras el mensaje mal formado (%s) no se guardó ninguna de las %d lecturas que vinieron después:\n%s",
                   en = "after the malformed message (%s) none of the %d readings that came after was stored:\n%s" },
                 ctx:text(why), #after, shown)
        end
        t:pass({ es = "el mensaje mal formado (%s) no se guardó, y tu consumidor siguió: guardó %d de las %d lecturas que llegaron después, antes del SIGKILL:\n%s",
                 en = "the malformed message (%s) was not stored, and your consumer went on: it stored %d of the %d readings that came after it, before the SIGKILL:\n%s" },
               ctx:text(why), stored, #after, shown)
      end,
    },

    check {
      id = "every-id", points = 3, after = "table",
      title = { es = "Todas las lecturas están en la tabla", en = "Every reading is in the table" },
      run = function(t, ctx)
        need_qos1(t, ctx)
        local d, p = ctx.data, ctx.p
        local a = d.a
        if #a.missing == 0 then
          t:pass({ es = "las %d lecturas enviadas están en readings, incluida %s, que el proxy retuvo y te llegó después de otras más nuevas",
                   en = "all %d readings sent are in readings, including %s, which the proxy held back and which reached you after newer ones" },
                 p.total, label(ctx, p.readings[p.reordered]))
          return
        end
        if #a.missing == 1 then
          t:say({ es = "falta 1 de las %d lecturas: %s", en = "1 of the %d readings is missing: %s" },
                p.total, ids_text(a.missing, 5))
        else
          t:say({ es = "faltan %d de las %d lecturas: %s", en = "%d of the %d readings are missing: %s" },
                #a.missing, p.total, ids_text(a.missing, 5))
        end
        if #d.rows == 0 then
          t:fail({ es = "la tabla readings está vacía al terminar. ¿Haces commit() después de cada INSERT? Sin commit, lo escrito se pierde al morir el proceso. Tu consumidor: %s. Su salida de error:\n%s",
                   en = "the table readings is empty at the end. Do you commit() after each INSERT? Without a commit, what was written is lost when the process dies. Your consumer: %s. Its stderr:\n%s" },
                 d.end_how, ctx:stderr_tail(d.prog))
        end
        local said = false
        local miss = {}
        for _, r in ipairs(a.missing) do miss[r.n] = r end
        -- The reading that came late: a consumer that drops "older" readings.
        local late = miss[p.reordered]
        if late and a.acked[late.id] then
          local ev = delivery(a, late)
          t:say({ es = "%s llegó tarde (el proxy la retuvo hasta que pasaron otras %d, con ts más nuevo), tu consumidor la confirmó y no la guardó:\n%s\nEl orden de llegada no está garantizado: no descartes una lectura por ser más antigua que la última vista. Decide solo el id",
                  en = "%s came late (the proxy held it until %d others, with a newer ts, had gone by), your consumer acknowledged it and did not store it:\n%s\nThe order of arrival is not guaranteed: do not discard a reading because it is older than the last one seen. Only the id decides" },
                label(ctx, late), REORDER_BEHIND, ev and quote(ev) or "")
          said = true
        end
        -- Acknowledged but not in the table.
        local acked = {}
        for _, r in ipairs(a.missing) do
          if a.acked[r.id] and r.n ~= p.reordered then acked[#acked + 1] = r end
        end
        if #acked > 0 then
          local ev = delivery(a, acked[1])
          t:say({ es = "tu consumidor confirmó (PUBACK) %d de las que faltan, por ejemplo %s, pero no están en la tabla:\n%s\nEl PUBACK le dice al broker «hecho»: guarda y haz commit antes de que on_message termine",
                  en = "your consumer acknowledged (PUBACK) %d of the missing ones, for example %s, but they are not in the table:\n%s\nThe PUBACK tells the broker \"done\": store and commit before on_message returns" },
                #acked, label(ctx, acked[1]), ev and quote(ev) or "")
          said = true
        end
        -- Never delivered, or delivered to a consumer that had stopped.
        local lost = {}
        for _, r in ipairs(a.missing) do
          if not a.acked[r.id] then lost[#lost + 1] = r end
        end
        if #lost > 0 then
          if not d.alive_at_kill then
            t:say({ es = "tu consumidor había terminado antes del SIGKILL (%s), así que %d lecturas no llegaron a guardarse. Su salida de error:\n%s",
                    en = "your consumer had ended before the SIGKILL (%s), so %d readings were never stored. Its stderr:\n%s" },
                  d.first_end, #lost, ctx:stderr_tail(d.prog))
          elseif a.mal_ev and not a.mal_acked then
            t:say({ es = "tu consumidor dejó de consumir en el mensaje mal formado (mira «Se salta el mensaje mal formado y sigue»): %d lecturas no las confirmó nunca",
                    en = "your consumer stopped consuming at the malformed message (see \"It skips the malformed message and goes on\"): it never acknowledged %d readings" },
                  #lost)
          elseif d.back ~= "suback" and d.back ~= "session" then
            t:say({ es = "tras el reinicio tu consumidor no volvió a suscribirse en %d s (%s): suscríbete en on_connect, que se ejecuta en cada conexión",
                    en = "after the restart your consumer did not subscribe again within %d s (%s): subscribe in on_connect, which runs on every connection" },
                  RESTART_S, d.restart_err or ctx:how_ended(d.prog))
          else
            t:say({ es = "%d de ellas no las confirmó nunca tu consumidor (%s). Su salida de error:\n%s",
                    en = "your consumer never acknowledged %d of them (%s). Its stderr:\n%s" },
                  #lost, d.end_how, ctx:stderr_tail(d.prog))
          end
          said = true
        end
        if not said then
          t:say({ es = "tu consumidor: %s", en = "your consumer: %s" }, d.end_how)
        end
        t:fail()
      end,
    },

    check {
      id = "no-duplicates-live", points = 2, after = "table",
      title = { es = "Sin duplicados mientras corre", en = "No duplicates while it runs" },
      run = function(t, ctx)
        need_qos1(t, ctx)
        local d, p = ctx.data, ctx.p
        local a = d.a
        local replayed = {}
        for _, s in ipairs(p.seq2) do if s.replay then replayed[s.n] = true end end
        local dups = {}
        for _, r in ipairs(p.readings) do
          if not replayed[r.n] and (a.count[r.id] or 0) > 1 then dups[#dups + 1] = r end
        end
        -- What the kit did to make copies, for the pass message and the story.
        local rp1, rp2 = p.readings[p.republished[1]], p.readings[p.republished[2]]
        local pdup = p.readings[p.dup1]
        if #dups == 0 then
          local again = {}
          for _, r in ipairs({ rp1, rp2 }) do
            if a.count[r.id] == 1 then again[#again + 1] = label(ctx, r) end
          end
          local shown = {}
          if #again > 0 then
            shown[#shown + 1] = ctx:text(#again == 1 and { es = "%s se publicó dos veces", en = "%s was published twice" }
                                           or { es = "%s se publicaron dos veces", en = "%s were published twice" },
                                         table.concat(again, ctx:text({ es = " y ", en = " and " })))
          end
          if a.count[pdup.id] == 1 then
            shown[#shown + 1] = ctx:text({ es = "el proxy te entregó dos veces %s", en = "the proxy handed you %s twice" }, label(ctx, pdup))
          end
          if #shown == 0 then
            t:fail({ es = "ninguna de las lecturas que llegaron repetidas está en la tabla: no hay nada que contar",
                     en = "none of the readings that arrived twice is in the table: there is nothing to count" })
          end
          t:pass({ es = "cada id está una sola vez en la tabla, aunque %s", en = "each id is in the table once, although %s" },
                 table.concat(shown, ctx:text({ es = ", y ", en = ", and " })))
          return
        end
        local r = dups[1]
        local lines = {}
        for i, ev in ipairs(a.delivered[r.id] or {}) do
          if i <= 4 then lines[#lines + 1] = quote(ev) end
        end
        local how
        if r.n == p.dup1 or r.n == p.dup2 then
          how = { es = "El proxy te entregó el mismo PUBLISH dos veces (el mismo packet id), como hace un broker que reenvía tras perder tu PUBACK",
                  en = "The proxy handed you the same PUBLISH twice (the same packet id), as a broker does when it re-sends after losing your PUBACK" }
        else
          how = { es = "Su productor la publicó dos veces, como hace uno que no vio su PUBACK: dos mensajes MQTT distintos con el mismo JSON",
                  en = "Its producer published it twice, as one that did not see its PUBACK does: two different MQTT messages with the same JSON" }
        end
        t:fail({ es = "%d ids están más de una vez en la tabla; por ejemplo %s está %s. %s:\n%s\nTu consumidor no deduplica: usa el id como clave (id TEXT PRIMARY KEY) e INSERT OR IGNORE, y una copia no cambia nada",
                 en = "%d ids are in the table more than once; for example %s is there %s. %s:\n%s\nYour consumer does not deduplicate: make the id the key (id TEXT PRIMARY KEY) and use INSERT OR IGNORE, and a copy changes nothing" },
               #dups, label(ctx, r), ctx:times(a.count[r.id]), ctx:text(how), table.concat(lines, "\n"))
      end,
    },

    check {
      id = "survives-restart", points = 3, after = "table",
      title = { es = "Sin duplicados tras el SIGKILL y el reinicio", en = "No duplicates after the SIGKILL and the restart" },
      run = function(t, ctx)
        need_qos1(t, ctx)
        local d, p = ctx.data, ctx.p
        local a = d.a
        if not d.alive_at_kill then
          t:fail({ es = "tu consumidor ya había terminado antes del SIGKILL (%s): no hubo reinicio que probar. Su salida de error:\n%s",
                   en = "your consumer had already ended before the SIGKILL (%s): there was no restart to test. Its stderr:\n%s" },
                 d.first_end, ctx:stderr_tail(d.prog))
        end
        if d.back ~= "suback" and d.back ~= "session" then
          t:fail({ es = "tras el SIGKILL el kit lo volvió a arrancar, pero no se suscribió de nuevo en %d s (%s): suscríbete en on_connect",
                   en = "after the SIGKILL the kit started it again, but it did not subscribe again within %d s (%s): subscribe in on_connect" },
                 RESTART_S, d.restart_err or ctx:how_ended(d.prog))
        end
        local replays, unacked, dups = {}, {}, {}
        for _, s in ipairs(p.seq2) do
          if s.replay then
            local r = p.readings[s.n]
            replays[#replays + 1] = r
            local ev = delivery(a, r, d.kill_i)
            if not ev or not ack_of(d.events, ev) then unacked[#unacked + 1] = { r = r, ev = ev } end
            if (a.count[r.id] or 0) > 1 then dups[#dups + 1] = r end
          end
        end
        if #dups > 0 then
          local r = dups[1]
          local evs = a.delivered[r.id] or {}
          local before, after = evs[1], delivery(a, r, d.kill_i)
          local lines = {}
          if before then lines[#lines + 1] = quote(before) end
          lines[#lines + 1] = "    ~~~ SIGKILL ~~~"
          if after then lines[#lines + 1] = quote(after) end
          local live_dups = false
          for _, rr in ipairs(p.readings) do
            if (a.count[rr.id] or 0) > 1 and not (rr.n >= p.replay_from and rr.n < p.replay_from + REPLAY) then live_dups = true end
          end
          t:say({ es = "%d de las %d lecturas que el kit reenvió tras el reinicio están dos veces en la tabla; por ejemplo %s, que ya estaba guardada antes del SIGKILL:\n%s",
                  en = "%d of the %d readings the kit sent again after the restart are in the table twice; for example %s, which was already stored before the SIGKILL:\n%s" },
                #dups, #replays, label(ctx, r), table.concat(lines, "\n"))
          if live_dups then
            t:say({ es = "tu consumidor no deduplica en absoluto (también hay duplicados de antes del SIGKILL): cada copia que llega es una fila más",
                    en = "your consumer does not deduplicate at all (there are duplicates from before the SIGKILL too): every copy that arrives is one more row" })
          else
            t:say({ es = "mientras corría no dejó pasar ningún duplicado, así que deduplica en memoria: ese conjunto de ids vistos murió con el proceso, y al arrancar de nuevo no recordaba nada",
                    en = "while it ran it let no duplicate through, so it deduplicates in memory: that set of seen ids died with the process, and when it started again it remembered nothing" })
          end
          t:fail({ es = "guarda la prueba en la base de datos, que sobrevive al proceso: id TEXT PRIMARY KEY (o UNIQUE) e INSERT OR IGNORE%s",
                   en = "keep the proof in the database, which outlives the process: id TEXT PRIMARY KEY (or UNIQUE) and INSERT OR IGNORE%s" },
                 (d.id_unique or d.id_pk) and "" or ctx:text({ es = " (ahora id no es clave ni UNIQUE en tu tabla)", en = " (right now id is neither a key nor UNIQUE in your table)" }))
        end
        local absent = {}
        for _, r in ipairs(replays) do
          if not a.count[r.id] then absent[#absent + 1] = r end
        end
        if #unacked == 0 and #absent > 0 then
          t:fail({ es = "tu consumidor confirmó %s antes del SIGKILL y otra vez tras el reinicio, pero no está en la tabla: lo confirmado tiene que quedar guardado (commit) antes del PUBACK",
                   en = "your consumer acknowledged %s before the SIGKILL and again after the restart, but it is not in the table: what is acknowledged must be stored (commit) before the PUBACK" },
                 label(ctx, absent[1]))
        end
        if #unacked > 0 then
          local u = unacked[1]
          if not u.ev then
            t:fail({ es = "%s, reenviada tras el reinicio, no llegó a tu consumidor (%s). Su salida de error:\n%s",
                     en = "%s, sent again after the restart, never reached your consumer (%s). Its stderr:\n%s" },
                   label(ctx, u.r), d.end_how, ctx:stderr_tail(d.prog))
          end
          t:fail({ es = "tras el reinicio tu consumidor no confirmó (PUBACK) %d de las %d lecturas reenviadas, por ejemplo:\n%s\nNo estaba consumiendo (%s). Su salida de error:\n%s",
                   en = "after the restart your consumer did not acknowledge (PUBACK) %d of the %d readings sent again, for example:\n%s\nIt was not consuming (%s). Its stderr:\n%s" },
                 #unacked, #replays, quote(u.ev), d.end_how, ctx:stderr_tail(d.prog))
        end
        t:pass({ es = "el kit mató tu consumidor con SIGKILL, lo arrancó de nuevo y reenvió %d lecturas ya guardadas (%s): las confirmó y siguen una sola vez en la tabla",
                 en = "the kit killed your consumer with SIGKILL, started it again and sent %d readings it had already stored (%s): it acknowledged them and they are still in the table once" },
               #replays, ids_text(replays, REPLAY))
      end,
    },

    check {
      id = "values-intact", points = 2, after = "table",
      title = { es = "Topic, ts y valor intactos", en = "Topic, ts and value intact" },
      run = function(t, ctx)
        need_qos1(t, ctx)
        local d, p = ctx.data, ctx.p
        local a = d.a
        local n, bad = 0, {}
        for _, r in ipairs(p.readings) do
          local row = a.row[r.id]
          if row then
            n = n + 1
            local problems = {}
            if row.topic ~= r.topic then
              problems[#problems + 1] = ctx:text({ es = "topic «%s» (se envió en %s)", en = "topic '%s' (it was sent on %s)" }, tostring(row.topic), r.topic)
            end
            local ts = tonumber(row.ts)
            if not ts or math.abs(ts - r.ts) > 0.5 then
              problems[#problems + 1] = ctx:text({ es = "ts %s (se envió %d)", en = "ts %s (%d was sent)" }, tostring(row.ts), r.ts)
            end
            local v = tonumber(row.value)
            if not v or math.abs(v - r.v) > 1e-6 then
              problems[#problems + 1] = ctx:text({ es = "value %s (se envió %s)", en = "value %s (%s was sent)" }, tostring(row.value), tostring(r.v))
            end
            if #problems > 0 then bad[#bad + 1] = { r = r, text = table.concat(problems, ", ") } end
          end
        end
        if n == 0 then
          t:fail({ es = "ninguna de las lecturas enviadas está en la tabla: no hay valores que comparar",
                   en = "none of the readings sent is in the table: there are no values to compare" })
        end
        for i = 1, math.min(#bad, 3) do
          t:say({ es = "%s: %s", en = "%s: %s" }, label(ctx, bad[i].r), bad[i].text)
        end
        if #bad > 0 then
          t:fail({ es = "%d de las %d filas no guardan lo que llegó. El topic es el del mensaje (msg.topic), ts el de la lectura en ms (no la hora de llegada) y value su «v»: %s",
                   en = "%d of the %d rows do not hold what arrived. The topic is the message's (msg.topic), ts the reading's own in ms (not the time it arrived), and value its \"v\": %s" },
                 #bad, n, short(bad[1].r.payload, 100))
        end
        if #a.strays > 0 then
          local row = a.strays[1]
          t:fail({ es = "la tabla tiene %d filas con un id que el kit no envió, por ejemplo id=%s topic=%s: guarda el id del payload tal cual",
                   en = "the table has %d rows with an id the kit never sent, for example id=%s topic=%s: store the payload's id as it is" },
                 #a.strays, tostring(row.id), tostring(row.topic))
        end
        t:pass({ es = "las %d lecturas guardadas conservan el topic, el ts y el valor que se enviaron, por ejemplo %s en %s",
                 en = "all %d readings stored hold the topic, ts and value that were sent, for example %s on %s" },
               n, short(p.readings[1].payload, 100), p.readings[1].topic)
      end,
    },
  },

  hints = {
    { es = "La clave del laboratorio: CREATE TABLE IF NOT EXISTS readings (id TEXT PRIMARY KEY, topic TEXT, ts INTEGER, value REAL), y escribe con INSERT OR IGNORE. Una copia de un id que ya está no cambia nada, y la base de datos lo recuerda aunque el proceso muera.",
      en = "The key to the lab: CREATE TABLE IF NOT EXISTS readings (id TEXT PRIMARY KEY, topic TEXT, ts INTEGER, value REAL), and write with INSERT OR IGNORE. A copy of an id that is already there changes nothing, and the database remembers it even when the process dies." },
    { es = "Un set() de ids vistos en memoria funciona hasta el primer SIGKILL: al arrancar de nuevo está vacío, y las lecturas que el productor reenvía se guardan otra vez. La única memoria que sobrevive es la base de datos.",
      en = "A set() of seen ids in memory works until the first SIGKILL: when the process starts again it is empty, and the readings the producer sends again are stored twice. The only memory that survives is the database." },
    { es = "Haz commit() dentro de on_message, antes de que termine: paho envía el PUBACK cuando on_message vuelve, y el PUBACK le dice al broker que ya no hace falta reenviar ese mensaje.",
      en = "commit() inside on_message, before it returns: paho sends the PUBACK when on_message returns, and the PUBACK tells the broker it need not send that message again." },
    { es = "Un payload que no es una lectura (json.loads falla, falta «id», «ts» o «v») se anota en stderr y se descarta. Si la excepción escapa de on_message, paho la relanza: con loop_forever() el programa muere, y con loop_start() muere solo el hilo de red y el proceso sigue vivo sin hacer nada.",
      en = "A payload that is not a reading (json.loads fails, \"id\", \"ts\" or \"v\" is missing) is logged on stderr and discarded. If the exception escapes on_message, paho raises it again: with loop_forever() the program dies, and with loop_start() only the network thread dies, and the process lives on doing nothing." },
    { es = "No descartes una lectura porque su ts sea más antiguo que el último que viste: con reconexiones y reenvíos, el orden de llegada no está garantizado. El id decide si ya la tienes, no el tiempo.",
      en = "Do not discard a reading because its ts is older than the last one you saw: with reconnections and re-sends, the order of arrival is not guaranteed. The id decides whether you already have it, not the time." },
    { es = "Suscríbete en on_connect (se ejecuta en cada conexión) con qos=1, y usa mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False). Si usas loop_start(), abre la base de datos con sqlite3.connect(path, check_same_thread=False) y úsala solo desde los callbacks.",
      en = "Subscribe in on_connect (it runs on every connection) with qos=1, and use mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False). With loop_start(), open the database with sqlite3.connect(path, check_same_thread=False) and use it only from the callbacks." },
  },
}
