-- Lab 09: an idempotent consumer with SQLite.
--
-- The student's `consumer` subscribes at QoS 1 to MQTT_TOPIC (the filter
-- acme/v1/+/+/temp) through the kit's proxy and stores every reading once
-- in LAB_DB, table readings(id, topic, ts, value). A kit publisher sends
-- the readings and makes the world as unkind as QoS 1 allows: the same
-- reading published twice, a PUBLISH the proxy forwards twice, one held
-- back until newer ones (one of them from the same sensor) overtake it,
-- two malformed payloads (one not JSON, one with a field missing), a
-- SIGKILL once everything is acknowledged, a restart and a replay of the
-- last readings, then SIGTERM. Faults are placed by packet count and the
-- kill waits for acknowledgements, never for luck, so every run puts them
-- on the same readings. The plan below is what a student meets, in order;
-- the helpers (H) and the run itself (setup) come after it.

local wire = require "mqlab.wire"
local sqlite = require "mqlab.sqlite"
local short = require("mqlab.text").short
local kit = require "mqlab.kit"

local H = {}              -- helpers, defined below the checks

local PROG_TIMEOUT = 40   -- seconds each run of the consumer may last
local START_S = 8         -- seconds to wait for the first SUBACK
local RESTART_S = 6       -- seconds to wait for the subscription after the restart
local ACK_S = 3           -- seconds to wait for the consumer to acknowledge a phase
local QUIET_S = 0.5       -- seconds between the last PUBACK and the SIGKILL
local TERM_S = 5          -- seconds the consumer gets to leave after SIGTERM
local REPLAY = 3          -- readings of phase 1 sent again after the restart
local REORDER_BEHIND = 2  -- later PUBLISH packets that overtake the held one
local REORDERED = 7       -- the reading the proxy holds back

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
  -- Sensors take turns, except that the reading right after the held-back
  -- one comes from the same sensor: a consumer that keeps the newest ts
  -- per sensor, and drops what is older, meets its case.
  local off = rng:int(0, #topics - 1)
  local readings = {}
  for n = 1, n1 + n2 do
    local k = n <= REORDERED and n - 1 or n - 2
    local v = string.format("%.1f", 18 + rng:int(0, 90) / 10)
    local r = { n = n, id = hex .. "-" .. rng:hex(8), topic = topics[(k + off) % #topics + 1],
                ts = ts0 + n * 5000, v = tonumber(v) }
    r.payload = string.format('{"id": "%s", "ts": %d, "v": %s}', r.id, r.ts, v)
    readings[n] = r
  end

  -- Two malformed messages, looking like what a broken device sends: one
  -- that is not JSON at all, one that is JSON but lacks a field. Which
  -- comes first is drawn too; each follows reading `after`, on the next
  -- reading's topic.
  local function malformed(kind, after)
    local base = readings[after]
    local m = { kind = kind, after = after, topic = readings[after + 1].topic, id = hex .. "-" .. rng:hex(8) }
    local mts, mv = base.ts + 2500, string.format("%.1f", base.v + 0.3)
    if kind == "notjson" then
      m.payload, m.id = string.format("temp=%s;ts=%d", mv, mts), nil
    elseif kind == "truncated" then
      m.payload = string.format('{"id": "%s", "ts": %d, "v": ', m.id, mts)
    elseif kind == "noid" then
      m.payload, m.id = string.format('{"ts": %d, "v": %s}', mts, mv), nil
    else
      m.payload = string.format('{"id": "%s", "ts": %d, "value": %s}', m.id, mts, mv)
    end
    return m
  end
  local kinds = { rng:pick({ "notjson", "truncated" }), rng:pick({ "noid", "nov" }) }
  if rng:int(0, 1) == 1 then kinds = { kinds[2], kinds[1] } end
  local mals = { malformed(kinds[1], rng:int(4, 5)), malformed(kinds[2], rng:int(8, 9)) }

  -- Phase 1: what the kit publishes, in order. A republish is the same
  -- JSON again, as a new MQTT message.
  local rep_a, rep_b = 2, mals[1].after + 1
  local seq1 = {}
  for n = 1, n1 do
    seq1[#seq1 + 1] = { n = n }
    for i, m in ipairs(mals) do
      if n == m.after then seq1[#seq1 + 1] = { malformed = i } end
    end
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
    malformed = mals,
    seq1 = seq1, seq2 = seq2,
    republished = { rep_a, rep_b },
    dup1 = 3, dup1_nth = pos(3),                      -- the proxy forwards it twice
    reordered = REORDERED, reorder_nth = pos(REORDERED), -- the proxy holds it back
    dup2 = n1 + 2, dup2_nth = REPLAY + 2,             -- counted from the restart
    replay_from = n1 - REPLAY + 1,
    db = "readings.db",
    timeout_s = PROG_TIMEOUT,
    term_s = TERM_S,
  }
end

---------------------------------------------------------------- the checks

local checks = {
  check {
    id = "subscribes", points = 1,
    title = { es = "Se suscribe a MQTT_TOPIC con QoS 1", en = "It subscribes to MQTT_TOPIC at QoS 1" },
    run = function(t, ctx) H.subscribes(t, ctx) end,
  },
  check {
    id = "table", points = 1,
    title = { es = "LAB_DB tiene la tabla readings(id, topic, ts, value)",
              en = "LAB_DB has the table readings(id, topic, ts, value)" },
    run = function(t, ctx) H.table(t, ctx) end,
  },
  check {
    id = "no-duplicates-live", points = 2, after = "table",
    title = { es = "Sin duplicados mientras corre", en = "No duplicates while it runs" },
    run = function(t, ctx) H.no_duplicates_live(t, ctx) end,
  },
  check {
    id = "skips-malformed", points = 2, after = "table",
    title = { es = "Se salta los mensajes mal formados y sigue", en = "It skips the malformed messages and goes on" },
    run = function(t, ctx) H.skips_malformed(t, ctx) end,
  },
  check {
    id = "ack-after-commit", points = 3, after = "table",
    title = { es = "Confirma (PUBACK) solo lo que ya guardó", en = "It acknowledges (PUBACK) only what it has committed" },
    run = function(t, ctx) H.ack_after_commit(t, ctx) end,
  },
  check {
    id = "survives-restart", points = 3, after = "table",
    title = { es = "Sin duplicados tras el SIGKILL y el reinicio", en = "No duplicates after the SIGKILL and the restart" },
    run = function(t, ctx) H.survives_restart(t, ctx) end,
  },
  check {
    id = "every-id", points = 3, after = "table",
    title = { es = "Todas las lecturas están en la tabla", en = "Every reading is in the table" },
    run = function(t, ctx) H.every_id(t, ctx) end,
  },
  check {
    id = "values-intact", points = 2, after = "table",
    title = { es = "Topic, ts y valor intactos", en = "Topic, ts and value intact" },
    run = function(t, ctx) H.values_intact(t, ctx) end,
  },
  check {
    id = "runs-until-term", points = 1,
    title = { es = "Sigue en marcha hasta el SIGTERM, y entonces termina",
              en = "It runs until SIGTERM, and then ends" },
    run = function(t, ctx) H.runs_until_term(t, ctx) end,
  },
}

-- Guided mode (mqlab start 09): a consumer subscribed at QoS 1; on Enter
-- the kit sends the same reading twice, a late one, a malformed one (and
-- the proxy hands one PUBLISH over twice); then a restart of the consumer
-- and a replay of readings it already has.
local guide = {
  step {
    id = "subscribe",
    title = { es = "Un consumidor suscrito con QoS 1", en = "A consumer subscribed at QoS 1" },
    text = {
      es = "En otra terminal, tu consumidor (o el de referencia, solutions/09-idempotent/consumer.py) contra este broker:\n\n    MQTT_HOST={{host}} MQTT_PORT={{port}} MQTT_CLIENT_ID={{client_id}} MQTT_TOPIC='{{topic}}' LAB_DB=/tmp/lab09.db python3 consumer.py\n\no, para ver los mensajes tal cual llegan:\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 1 -v",
      en = "In another terminal, your consumer (or the reference one, solutions/09-idempotent/consumer.py) against this broker:\n\n    MQTT_HOST={{host}} MQTT_PORT={{port}} MQTT_CLIENT_ID={{client_id}} MQTT_TOPIC='{{topic}}' LAB_DB=/tmp/lab09.db python3 consumer.py\n\nor, to see the messages just as they arrive:\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 1 -v",
    },
    on = function(ev, ctx) return H.guide_subscribe(ev, ctx) end,
  },
  step {
    id = "duplicates",
    title = { es = "Duplicados, desorden y un mensaje roto", en = "Duplicates, disorder and a broken message" },
    text = {
      es = "Ahora publico unas lecturas como lo haría una planta real: una dos veces con el mismo id (un productor que no vio su PUBACK), una que llega después de otra más nueva de su mismo sensor, y un mensaje que no es una lectura. Además, el proxy te entrega un PUBLISH dos veces, con el mismo id de paquete. Tu consumidor debe confirmarlos todos, guardar cada id una vez y seguir funcionando.",
      en = "Now I publish some readings the way a real plant would: one twice with the same id (a producer that did not see its PUBACK), one that arrives after a newer one from its own sensor, and a message that is not a reading. On top of that, the proxy hands you one PUBLISH twice, with the same packet id. Your consumer must acknowledge them all, store each id once and keep working.",
    },
    prompt = { es = "Pulsa Enter y publico.", en = "Press Enter and I publish." },
    act = function(ctx) return H.guide_send_first(ctx) end,
    on = function(ev, ctx) return H.guide_duplicates(ev, ctx) end,
  },
  step {
    id = "replay",
    title = { es = "Reinicia el consumidor: vuelven lecturas que ya tiene", en = "Restart the consumer: readings it already has come back" },
    text = {
      es = "Para tu consumidor (Ctrl-C, o kill -9 para simular una caída) y arráncalo otra vez con la misma orden. En cuanto se suscriba, reenvío dos lecturas que ya tiene, con los mismos ids (un productor que se reinicia y repite las últimas), y una nueva. Después mira tu tabla:\n\n    sqlite3 /tmp/lab09.db 'SELECT id, COUNT(*) FROM readings GROUP BY id'\n\nCada id, una vez: lo recuerda la base de datos, no la memoria del proceso.",
      en = "Stop your consumer (Ctrl-C, or kill -9 to play a crash) and start it again with the same command. As soon as it subscribes, I send again two readings it already has, with the same ids (a producer that restarts and repeats its last ones), and a new one. Then look at your table:\n\n    sqlite3 /tmp/lab09.db 'SELECT id, COUNT(*) FROM readings GROUP BY id'\n\nEach id once: the database remembers it, not the process's memory.",
    },
    on = function(ev, ctx) return H.guide_replay(ev, ctx) end,
  },
}

---------------------------------------------------------------- helpers: the wire

function H.publishes_down(events, from)
  return wire.select(events, function(ev)
    return ev.i > (from or 0) and ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "down"
  end)
end

-- The PUBACK the consumer sent for a PUBLISH it was given, if any.
function H.ack_of(events, pub)
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
function H.settle(ctx, from, want, s)
  local px, prog = ctx.proxy, ctx.data.prog
  return ctx:wait_for(function()
    local evs = px:events()
    local pubs = H.publishes_down(evs, from)
    if #pubs >= want then
      local all = true
      for _, ev in ipairs(pubs) do
        if (ev.qos or 0) > 0 and not H.ack_of(evs, ev) then all = false break end
      end
      if all then return true end
    end
    if not prog:running() then return "stopped" end
  end, s) == true
end

function H.publish_all(pub, p, seq)
  for _, s in ipairs(seq) do
    local topic, payload
    if s.malformed then
      topic, payload = p.malformed[s.malformed].topic, p.malformed[s.malformed].payload
    else
      local r = p.readings[s.n]
      topic, payload = r.topic, r.payload
    end
    assert(pub:publish(topic, payload, { qos = 1 }))
  end
end

---------------------------------------------------------------- helpers: the database

-- The ids in LAB_DB right after the SIGKILL, while nothing runs: what the
-- consumer had committed when it died. Nothing holds a lock then, and a
-- read-only connection sees the last commit (an open transaction's
-- journal is not replayed into it).
function H.snapshot(d)
  local db, msg, code = sqlite.open(d.db_path)
  if not db then
    if code == "notfound" then return { ids = {}, absent = true } end
    return nil, msg
  end
  local rows, err = db:rows("SELECT id FROM readings")
  db:close()
  if not rows then
    if tostring(err):find("no such table", 1, true) then return { ids = {}, no_table = true } end
    return nil, err
  end
  local ids = {}
  for _, row in ipairs(rows) do
    if row.id ~= nil then ids[tostring(row.id)] = true end
  end
  return { ids = ids }
end

-- Everything the checks need from the database, read once the consumer
-- has stopped for good.
function H.read_db(d)
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
function H.analyse(d, p)
  local a = { by_id = {}, count = {}, row = {}, strays = {}, mal_rows = 0 }
  for _, r in ipairs(p.readings) do a.by_id[r.id] = r end
  local mal_ids = {}
  for _, m in ipairs(p.malformed) do if m.id then mal_ids[m.id] = true end end
  for _, row in ipairs(d.rows or {}) do
    local id = row.id ~= nil and tostring(row.id) or nil
    if id and a.by_id[id] then
      a.count[id] = (a.count[id] or 0) + 1
      a.row[id] = a.row[id] or row
    elseif id == nil or id == "" or mal_ids[id] then
      a.mal_rows = a.mal_rows + 1
    else
      a.strays[#a.strays + 1] = row
    end
  end
  -- Deliveries to the consumer, by reading id, and the malformed ones.
  a.delivered, a.acked, a.mal_ev = {}, {}, {}
  a.ack_before_kill = {}   -- reading id -> its first PUBACK before the SIGKILL
  for _, ev in ipairs(H.publishes_down(d.events)) do
    local mal
    for i, m in ipairs(p.malformed) do
      if ev.payload == m.payload then mal = i end
    end
    if mal then
      a.mal_ev[mal] = a.mal_ev[mal] or ev
    else
      local r = wire.reading(ev.payload or "")
      if r and a.by_id[r.id] then
        local list = a.delivered[r.id] or {}
        list[#list + 1] = ev
        a.delivered[r.id] = list
        local ack = H.ack_of(d.events, ev)
        if ack then
          a.acked[r.id] = (a.acked[r.id] or 0) + 1
          if ack.i <= d.kill_i and not a.ack_before_kill[r.id] then a.ack_before_kill[r.id] = ack end
        end
      end
    end
  end
  a.missing = {}
  for _, r in ipairs(p.readings) do
    if not a.count[r.id] then a.missing[#a.missing + 1] = r end
  end
  -- The readings acknowledged before the SIGKILL but not committed by
  -- then. A commit keeps everything written before it, so those acknowledged
  -- after the newest committed one were waiting for a commit that never
  -- came (lost); one missing from before it was never written (a gap).
  a.lost, a.gaps = {}, {}
  local snap = d.snap
  if snap then
    local newest = 0
    for id, ack in pairs(a.ack_before_kill) do
      if snap.ids[id] and ack.i > newest then newest = ack.i end
    end
    local lost_set = {}
    for _, r in ipairs(p.readings) do
      local ack = a.ack_before_kill[r.id]
      if ack and not snap.ids[r.id] then
        if ack.i > newest then
          a.lost[#a.lost + 1] = r
          lost_set[r.id] = true
        else
          a.gaps[#a.gaps + 1] = r
        end
      end
    end
    table.sort(a.lost, function(x, y) return a.ack_before_kill[x.id].i < a.ack_before_kill[y.id].i end)
    a.lost_set = lost_set
  end
  a.lost_set = a.lost_set or {}
  return a
end

---------------------------------------------------------------- helpers: feedback

function H.label(ctx, r)
  return ctx:text({ es = "la lectura %d (id %s)", en = "reading %d (id %s)" }, r.n, r.id)
end

function H.ids_text(list, n)
  local out = {}
  for i = 1, math.min(#list, n or 4) do out[i] = list[i].id end
  if #list > (n or 4) then out[#out + 1] = "…" end
  return table.concat(out, ", ")
end

-- The first PUBLISH of reading r that went down after event index from.
function H.delivery(a, r, from)
  for _, ev in ipairs(a.delivered[r.id] or {}) do
    if ev.i > (from or 0) then return ev end
  end
end

H.MAL_WHY = {
  notjson = { es = "no es JSON", en = "it is not JSON" },
  truncated = { es = "es JSON cortado a medias", en = "it is JSON cut short" },
  noid = { es = "le falta «id»", en = "it lacks \"id\"" },
  nov = { es = "le falta «v» (trae «value»)", en = "it lacks \"v\" (it has \"value\")" },
}

-- Without PUBACKs the kit cannot know what the consumer had processed
-- when it was killed, so what follows would be a race: not graded.
function H.need_qos1(t, ctx)
  if ctx.data.qos0 then
    t:fail({ es = "no se puede evaluar: el broker te entregó las lecturas con QoS 0, sin PUBACK, así que el kit no puede saber qué habías procesado al llegar el SIGKILL. Suscríbete con qos=1 (mira «Se suscribe a MQTT_TOPIC con QoS 1»)",
             en = "cannot be graded: the broker handed you the readings at QoS 0, with no PUBACK, so the kit cannot know what you had processed when the SIGKILL came. Subscribe with qos=1 (see \"It subscribes to MQTT_TOPIC at QoS 1\")" })
  end
end

---------------------------------------------------------------- helpers: the checks' verdicts

function H.subscribes(t, ctx)
  local d, p = ctx.data, ctx.p
  local connects = wire.select(d.events, { kind = "packet", type = "CONNECT", dir = "up" })
  if #connects == 0 then
    ctx:why_absent(t, { prog = d.prog, err = d.prog_err, name = { es = "consumidor", en = "consumer" } })
  end
  -- Every CONNECT, the restart's too, must carry MQTT_CLIENT_ID.
  for _, ev in ipairs(connects) do
    if ev.client_id ~= p.client_id then
      t:fail({ es = "tu consumidor se conectó como «%s», pero MQTT_CLIENT_ID es «%s»: léelo del entorno, también al volver a arrancar\n%s",
               en = "your consumer connected as '%s', but MQTT_CLIENT_ID is '%s': read it from the environment, on every start\n%s" },
             tostring(ev.client_id), p.client_id, wire.block(ev))
    end
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
      if f.filter == p.topic then
        -- The first one, unless a later one (after the restart) asks
        -- for another QoS: that one is what the broker then used.
        if not found or (found.qos == 1 and f.qos ~= 1) then found = { ev = ev, qos = f.qos } end
      else
        others[#others + 1] = f.filter
      end
    end
  end
  if not found then
    t:fail({ es = "tu consumidor se suscribió a %s, pero MQTT_TOPIC es %s: usa el filtro del entorno\n%s",
             en = "your consumer subscribed to %s, but MQTT_TOPIC is %s: use the filter from the environment\n%s" },
           table.concat(others, ", "), p.topic, wire.block(subs[1]))
  end
  if found.qos == 0 then
    t:fail({ es = "se suscribió con QoS 0: el broker te entrega cada lectura sin esperar tu PUBACK, así que lo que tenías en vuelo cuando murió el proceso se pierde, y el broker no guarda nada para ti. Suscríbete con qos=1:\n%s",
             en = "it subscribed at QoS 0: the broker hands you each reading without waiting for your PUBACK, so whatever was in flight when the process died is lost, and the broker keeps nothing for you. Subscribe with qos=1:\n%s" },
           wire.block(found.ev))
  end
  if found.qos == 2 then
    t:fail({ es = "se suscribió con QoS 2; el laboratorio pide QoS 1, el valor por defecto del curso: la idempotencia la pone tu consumidor, no el QoS, y QoS 2 cuesta cuatro paquetes por mensaje allí donde el productor también lo usa:\n%s",
             en = "it subscribed at QoS 2; the lab asks for QoS 1, the course's default: idempotence comes from your consumer, not from the QoS, and QoS 2 costs four packets per message wherever the producer uses it too:\n%s" },
           wire.block(found.ev))
  end
  t:pass({ es = "SUBSCRIBE a %s con QoS 1:\n%s", en = "SUBSCRIBE to %s at QoS 1:\n%s" }, p.topic, wire.block(found.ev))
end

function H.table(t, ctx)
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
end

function H.no_duplicates_live(t, ctx)
  H.need_qos1(t, ctx)
  local d, p = ctx.data, ctx.p
  local a = d.a
  local replayed = {}
  for _, s in ipairs(p.seq2) do if s.replay then replayed[s.n] = true end end
  local dups = {}
  for _, r in ipairs(p.readings) do
    if not replayed[r.n] and (a.count[r.id] or 0) > 1 then dups[#dups + 1] = r end
  end
  -- What the kit did to make copies, for the pass message.
  local rp1, rp2 = p.readings[p.republished[1]], p.readings[p.republished[2]]
  local pdup1, pdup2 = p.readings[p.dup1], p.readings[p.dup2]
  if #dups == 0 then
    local again = {}
    for _, r in ipairs({ rp1, rp2 }) do
      if a.count[r.id] == 1 then again[#again + 1] = H.label(ctx, r) end
    end
    local shown = {}
    if #again > 0 then
      shown[#shown + 1] = ctx:text(#again == 1 and { es = "%s se publicó dos veces", en = "%s was published twice" }
                                     or { es = "%s se publicaron dos veces", en = "%s were published twice" },
                                   table.concat(again, ctx:text({ es = " y ", en = " and " })))
    end
    for _, r in ipairs({ pdup1, pdup2 }) do
      local twice = false
      for _, ev in ipairs(a.delivered[r.id] or {}) do
        if ev.fate == "duplicated" then twice = true end
      end
      if a.count[r.id] == 1 and twice then
        shown[#shown + 1] = ctx:text({ es = "el proxy te entregó dos veces %s", en = "the proxy handed you %s twice" }, H.label(ctx, r))
      end
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
    if i <= 4 then lines[#lines + 1] = wire.block(ev) end
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
         #dups, H.label(ctx, r), ctx:times(a.count[r.id]), ctx:text(how), table.concat(lines, "\n"))
end

function H.skips_malformed(t, ctx)
  H.need_qos1(t, ctx)
  local d, p = ctx.data, ctx.p
  local a = d.a
  local function shown(i)
    return a.mal_ev[i] and wire.block(a.mal_ev[i]) or ("    " .. short(p.malformed[i].payload, 100))
  end
  for i, m in ipairs(p.malformed) do
    if not a.mal_ev[i] then
      t:fail({ es = "el mensaje mal formado (%s) no llegó a tu consumidor (%s):\n%s",
               en = "the malformed message (%s) never reached your consumer (%s):\n%s" },
             ctx:text(H.MAL_WHY[m.kind]), d.first_end or ctx:how_ended(d.prog), shown(i))
    end
  end
  -- Went on after malformed message i: a reading delivered after it was
  -- acknowledged before the SIGKILL.
  local went_on, acked_after = {}, {}
  for i in ipairs(p.malformed) do
    local n = 0
    for _, r in ipairs(p.readings) do
      for _, ev in ipairs(a.delivered[r.id] or {}) do
        if ev.i > a.mal_ev[i].i and ev.i < d.kill_i then
          local ack = H.ack_of(d.events, ev)
          if ack and ack.i <= d.kill_i then n = n + 1 break end
        end
      end
    end
    went_on[i], acked_after[i] = n > 0, n
  end
  for i, m in ipairs(p.malformed) do
    if not went_on[i] then
      if not d.alive_at_kill then
        t:fail({ es = "tu consumidor no sobrevivió al mensaje mal formado (%s): %s\n%s\nSu salida de error:\n%s\nCaptura el error (del JSON o del campo que falta), anótalo y sigue. Y con una sesión persistente, un mensaje que te tumba vuelve a llegar en cada arranque",
                 en = "your consumer did not survive the malformed message (%s): %s\n%s\nIts stderr:\n%s\nCatch the error (from the JSON or from the missing field), log it and go on. And with a persistent session, a message that knocks you down comes back at every start" },
               ctx:text(H.MAL_WHY[m.kind]), d.first_end, shown(i), ctx:stderr_tail(d.prog))
      end
      t:fail({ es = "tras el mensaje mal formado (%s) tu consumidor siguió vivo pero dejó de trabajar: no confirmó (PUBACK) ninguna de las lecturas que vinieron después:\n%s\nSu salida de error:\n%s\nCon loop_start(), una excepción en on_message mata el hilo de red de paho sin terminar el proceso. Captura el error (del JSON o del campo que falta), anótalo y sigue",
               en = "after the malformed message (%s) your consumer stayed alive but stopped working: it acknowledged (PUBACK) none of the readings that came after it:\n%s\nIts stderr:\n%s\nWith loop_start(), an exception in on_message kills paho's network thread without ending the process. Catch the error (from the JSON or from the missing field), log it and go on" },
             ctx:text(H.MAL_WHY[m.kind]), shown(i), ctx:stderr_tail(d.prog))
    end
  end
  if a.mal_rows > 0 then
    t:fail({ es = "tu consumidor guardó en readings %s que no son lecturas (sin id, o con el id de un mensaje mal formado):\n%s\n%s\nNo son lecturas: descártalas",
             en = "your consumer stored %s in readings that are not readings (no id, or the id of a malformed message):\n%s\n%s\nThey are not readings: discard them" },
           a.mal_rows == 1 and ctx:text({ es = "una fila", en = "a row" }) or ctx:text({ es = "%d filas", en = "%d rows" }, a.mal_rows),
           shown(1), shown(2))
  end
  local m1, m2 = p.malformed[1], p.malformed[2]
  t:pass({ es = "no guardó ninguno de los dos mensajes mal formados (%s; %s) y siguió: confirmó %d lecturas que llegaron después del primero, antes del SIGKILL:\n%s\n%s",
           en = "it stored neither malformed message (%s; %s) and went on: it acknowledged %d readings that came after the first one, before the SIGKILL:\n%s\n%s" },
         ctx:text(H.MAL_WHY[m1.kind]), ctx:text(H.MAL_WHY[m2.kind]), acked_after[1], shown(1), shown(2))
end

function H.ack_after_commit(t, ctx)
  H.need_qos1(t, ctx)
  local d, p = ctx.data, ctx.p
  local a = d.a
  if not d.snap then
    t:fail({ es = "el kit no pudo leer LAB_DB justo después del SIGKILL: %s", en = "the kit could not read LAB_DB right after the SIGKILL: %s" },
           tostring(d.snap_err))
  end
  local acked = {}
  for _, r in ipairs(p.readings) do
    if a.ack_before_kill[r.id] then acked[#acked + 1] = r end
  end
  if #acked == 0 then
    t:fail({ es = "tu consumidor no confirmó (PUBACK) ninguna lectura antes del SIGKILL (%s): no hay nada que comprobar. Su salida de error:\n%s",
             en = "your consumer acknowledged (PUBACK) no reading before the SIGKILL (%s): there is nothing to check. Its stderr:\n%s" },
           d.first_end or ctx:how_ended(d.prog), ctx:stderr_tail(d.prog))
  end
  if #a.lost > 0 then
    local first = a.lost[1]
    local still = 0
    for _, r in ipairs(a.lost) do
      if not a.count[r.id] then still = still + 1 end
    end
    t:say({ es = "tu consumidor envió el PUBACK de %d lecturas que no estaban guardadas (commit) en LAB_DB cuando llegó el SIGKILL (%s); por ejemplo, %s:\n%s",
            en = "your consumer sent the PUBACK of %d readings that were not committed in LAB_DB when the SIGKILL came (%s); for example, %s:\n%s" },
          #a.lost, H.ids_text(a.lost, 6), H.label(ctx, first),
          wire.block(a.ack_before_kill[first.id]))
    if d.snap.absent or d.snap.no_table or next(d.snap.ids) == nil then
      t:say({ es = "en ese momento LAB_DB no tenía ninguna fila guardada: ¿haces commit solo cada cierto número de lecturas, o al terminar el programa?",
              en = "at that moment LAB_DB held no committed row at all: do you commit only every so many readings, or when the program ends?" })
    else
      t:say({ es = "las lecturas confirmadas antes que ellas sí estaban guardadas: las últimas esperaban un commit que nunca llegó",
              en = "the readings acknowledged before them were stored: the last ones were waiting for a commit that never came" })
    end
    if still > 0 then
      t:say({ es = "el PUBACK le dice al broker «hecho», y no volverá a enviarlas: %d de ellas faltan al final de la prueba",
              en = "the PUBACK tells the broker \"done\", and it will not send them again: %d of them are missing at the end of the run" },
            still)
    else
      t:say({ es = "el PUBACK le dice al broker «hecho»: si están en la tabla al final es solo porque el kit reenvió justo esas tras el reinicio; cualquier otra se habría perdido",
              en = "the PUBACK tells the broker \"done\": they are in the table at the end only because the kit happened to send exactly those again after the restart; any other would have been lost" })
    end
    t:fail({ es = "guarda y haz commit de cada lectura antes de confirmarla: en paho, dentro de on_message (el PUBACK sale cuando vuelve); en C con mosquitto_loop_start(), también dentro de on_message; en Lua, client:ack(msg) después del INSERT",
             en = "store and commit each reading before you acknowledge it: in paho, inside on_message (the PUBACK leaves when it returns); in C with mosquitto_loop_start(), inside on_message too; in Lua, client:ack(msg) after the INSERT" })
  end
  t:pass({ es = "el kit mató tu consumidor con SIGKILL cuando ya había confirmado (PUBACK) %d lecturas, y las %d estaban guardadas en LAB_DB",
           en = "the kit killed your consumer with SIGKILL once it had acknowledged (PUBACK) %d readings, and all %d were committed in LAB_DB" },
         #acked, #acked)
end

function H.survives_restart(t, ctx)
  H.need_qos1(t, ctx)
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
  local replays, kept, unacked, dups = {}, {}, {}, {}
  for _, s in ipairs(p.seq2) do
    if s.replay then
      local r = p.readings[s.n]
      replays[#replays + 1] = r
      if d.snap and d.snap.ids[r.id] then kept[#kept + 1] = r end
      local ev = H.delivery(a, r, d.kill_i)
      if not ev or not H.ack_of(d.events, ev) then unacked[#unacked + 1] = { r = r, ev = ev } end
      if (a.count[r.id] or 0) > 1 then dups[#dups + 1] = r end
    end
  end
  if #dups > 0 then
    local r = dups[1]
    local before, after = (a.delivered[r.id] or {})[1], H.delivery(a, r, d.kill_i)
    local lines = {}
    if before then lines[#lines + 1] = wire.block(before) end
    lines[#lines + 1] = "    ~~~ SIGKILL ~~~"
    if after then lines[#lines + 1] = wire.block(after) end
    local live_dups = false
    for _, rr in ipairs(p.readings) do
      if (a.count[rr.id] or 0) > 1 and not (rr.n >= p.replay_from and rr.n < p.replay_from + REPLAY) then live_dups = true end
    end
    t:say({ es = "%d de las %d lecturas que el kit reenvió tras el reinicio están dos veces en la tabla; por ejemplo %s, que ya se había recibido antes del SIGKILL:\n%s",
            en = "%d of the %d readings the kit sent again after the restart are in the table twice; for example %s, which had already arrived before the SIGKILL:\n%s" },
          #dups, #replays, H.label(ctx, r), table.concat(lines, "\n"))
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
  if #unacked > 0 then
    local u = unacked[1]
    if not u.ev then
      t:fail({ es = "%s, reenviada tras el reinicio, no llegó a tu consumidor (%s). Su salida de error:\n%s",
               en = "%s, sent again after the restart, never reached your consumer (%s). Its stderr:\n%s" },
             H.label(ctx, u.r), d.end_how, ctx:stderr_tail(d.prog))
    end
    t:fail({ es = "tras el reinicio tu consumidor no confirmó (PUBACK) %d de las %d lecturas reenviadas, por ejemplo:\n%s\nNo estaba consumiendo (%s). Su salida de error:\n%s",
             en = "after the restart your consumer did not acknowledge (PUBACK) %d of the %d readings sent again, for example:\n%s\nIt was not consuming (%s). Its stderr:\n%s" },
           #unacked, #replays, wire.block(u.ev), d.end_how, ctx:stderr_tail(d.prog))
  end
  if #kept == 0 then
    t:fail({ es = "no se pudo probar: ninguna de las %d lecturas reenviadas tras el reinicio (%s) estaba guardada en LAB_DB al llegar el SIGKILL (mira «Confirma (PUBACK) solo lo que ya guardó»), así que no había nada guardado contra lo que deduplicar",
             en = "could not be tested: none of the %d readings sent again after the restart (%s) was committed in LAB_DB when the SIGKILL came (see \"It acknowledges (PUBACK) only what it has committed\"), so there was nothing stored to deduplicate against" },
           #replays, H.ids_text(replays, REPLAY))
  end
  t:pass({ es = "el kit mató tu consumidor con SIGKILL, lo arrancó de nuevo y reenvió %d lecturas que ya tenía guardadas (%s): las confirmó y siguen una sola vez en la tabla",
           en = "the kit killed your consumer with SIGKILL, started it again and sent %d readings it had already committed (%s): it acknowledged them and they are still in the table once" },
         #kept, H.ids_text(kept, REPLAY))
end

function H.every_id(t, ctx)
  H.need_qos1(t, ctx)
  local d, p = ctx.data, ctx.p
  local a = d.a
  if #a.missing == 0 then
    t:pass({ es = "las %d lecturas enviadas están en readings, incluida %s, que el proxy retuvo y te llegó después de otras más nuevas, una de ellas del mismo sensor",
             en = "all %d readings sent are in readings, including %s, which the proxy held back and which reached you after newer ones, one of them from the same sensor" },
           p.total, H.label(ctx, p.readings[p.reordered]))
    return
  end
  if #a.missing == 1 then
    t:say({ es = "falta 1 de las %d lecturas: %s", en = "1 of the %d readings is missing: %s" },
          p.total, H.ids_text(a.missing, 5))
  else
    t:say({ es = "faltan %d de las %d lecturas: %s", en = "%d of the %d readings are missing: %s" },
          #a.missing, p.total, H.ids_text(a.missing, 5))
  end
  if #d.rows == 0 then
    t:fail({ es = "la tabla readings está vacía al terminar. ¿Haces commit() después de cada INSERT? Sin commit, lo escrito se pierde al morir el proceso. Tu consumidor: %s. Su salida de error:\n%s",
             en = "the table readings is empty at the end. Do you commit() after each INSERT? Without a commit, what was written is lost when the process dies. Your consumer: %s. Its stderr:\n%s" },
           d.end_how, ctx:stderr_tail(d.prog))
  end
  local said = false
  -- Lost in the SIGKILL: acknowledged, not yet committed.
  local lost = {}
  for _, r in ipairs(a.missing) do
    if a.lost_set[r.id] then lost[#lost + 1] = r end
  end
  if #lost > 0 then
    t:say({ es = "%d de ellas las confirmaste (PUBACK) antes del SIGKILL pero aún no estaban guardadas (commit): murieron con el proceso, y el broker no las vuelve a enviar (mira «Confirma (PUBACK) solo lo que ya guardó»)",
            en = "you acknowledged (PUBACK) %d of them before the SIGKILL, but they were not committed yet: they died with the process, and the broker does not send them again (see \"It acknowledges (PUBACK) only what it has committed\")" },
          #lost)
    said = true
  end
  -- The reading that came late: a consumer that drops "older" readings.
  local late
  for _, r in ipairs(a.missing) do
    if r.n == p.reordered and a.acked[r.id] and not a.lost_set[r.id] then late = r end
  end
  if late then
    local ev = H.delivery(a, late)
    t:say({ es = "%s llegó tarde (el proxy la retuvo hasta que pasaron otras %d con ts más nuevo, una del mismo sensor), tu consumidor la confirmó y no la guardó:\n%s\nEl orden de llegada no está garantizado: no descartes una lectura por ser más antigua que la última vista, ni siquiera la última de su sensor. Decide solo el id",
            en = "%s came late (the proxy held it until %d others with a newer ts, one from the same sensor, had gone by), your consumer acknowledged it and did not store it:\n%s\nThe order of arrival is not guaranteed: do not discard a reading because it is older than the last one seen, not even the last one from its sensor. Only the id decides" },
          H.label(ctx, late), REORDER_BEHIND, ev and wire.block(ev) or "")
    said = true
  end
  -- Acknowledged but not in the table, for another reason.
  local acked = {}
  for _, r in ipairs(a.missing) do
    if a.acked[r.id] and r ~= late and not a.lost_set[r.id] then acked[#acked + 1] = r end
  end
  if #acked > 0 then
    local ev = H.delivery(a, acked[1])
    t:say({ es = "tu consumidor confirmó (PUBACK) %d de las que faltan, por ejemplo %s, pero no están en la tabla:\n%s\nEl PUBACK le dice al broker «hecho»: guarda y haz commit antes de confirmar",
            en = "your consumer acknowledged (PUBACK) %d of the missing ones, for example %s, but they are not in the table:\n%s\nThe PUBACK tells the broker \"done\": store and commit before you acknowledge" },
          #acked, H.label(ctx, acked[1]), ev and wire.block(ev) or "")
    said = true
  end
  -- Never acknowledged: never delivered, or delivered to a consumer that had stopped.
  local never = {}
  for _, r in ipairs(a.missing) do
    if not a.acked[r.id] then never[#never + 1] = r end
  end
  if #never > 0 then
    local stuck
    for i, m in ipairs(p.malformed) do
      if not stuck and a.mal_ev[i] and not H.ack_of(d.events, a.mal_ev[i]) then stuck = m end
    end
    if not d.alive_at_kill then
      t:say({ es = "tu consumidor había terminado antes del SIGKILL (%s), así que %d lecturas no llegaron a guardarse. Su salida de error:\n%s",
              en = "your consumer had ended before the SIGKILL (%s), so %d readings were never stored. Its stderr:\n%s" },
            d.first_end, #never, ctx:stderr_tail(d.prog))
    elseif stuck then
      t:say({ es = "tu consumidor dejó de consumir en un mensaje mal formado (%s; mira «Se salta los mensajes mal formados y sigue»): %d lecturas no las confirmó nunca",
              en = "your consumer stopped consuming at a malformed message (%s; see \"It skips the malformed messages and goes on\"): it never acknowledged %d readings" },
            ctx:text(H.MAL_WHY[stuck.kind]), #never)
    elseif d.back ~= "suback" and d.back ~= "session" then
      t:say({ es = "tras el reinicio tu consumidor no volvió a suscribirse en %d s (%s): suscríbete en on_connect, que se ejecuta en cada conexión",
              en = "after the restart your consumer did not subscribe again within %d s (%s): subscribe in on_connect, which runs on every connection" },
            RESTART_S, d.restart_err or ctx:how_ended(d.prog))
    else
      t:say({ es = "%d de ellas no las confirmó nunca tu consumidor (%s). Su salida de error:\n%s",
              en = "your consumer never acknowledged %d of them (%s). Its stderr:\n%s" },
            #never, d.end_how, ctx:stderr_tail(d.prog))
    end
    said = true
  end
  if not said then
    t:say({ es = "tu consumidor: %s", en = "your consumer: %s" }, d.end_how)
  end
  t:fail()
end

function H.values_intact(t, ctx)
  H.need_qos1(t, ctx)
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
    t:say({ es = "%s: %s", en = "%s: %s" }, H.label(ctx, bad[i].r), bad[i].text)
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
  local example
  for _, r in ipairs(p.readings) do
    if not example and a.row[r.id] then example = r end
  end
  t:pass({ es = "las %d lecturas guardadas conservan el topic, el ts y el valor que se enviaron, por ejemplo %s en %s",
           en = "all %d readings stored hold the topic, ts and value that were sent, for example %s on %s" },
         n, short(example.payload, 100), example.topic)
end

function H.runs_until_term(t, ctx)
  local d = ctx.data
  if not d.prog then t:fail(d.prog_err) end
  if not d.alive_at_end then
    t:fail({ es = "tu consumidor ya había terminado cuando el kit fue a enviarle SIGTERM (%s): tiene que seguir en marcha, consumiendo, hasta entonces. Su salida de error:\n%s",
             en = "your consumer had already ended when the kit went to send it SIGTERM (%s): it must keep running, consuming, until then. Its stderr:\n%s" },
           d.end_how, ctx:stderr_tail(d.prog))
  end
  if not d.left_on_term then
    t:fail({ es = "el kit le envió SIGTERM y %d s después seguía en marcha, así que lo mató: al recibir SIGTERM, deja de consumir y termina (en Python, signal.signal(signal.SIGTERM, ...) que pare el bucle principal)",
             en = "the kit sent it SIGTERM and it was still running %d s later, so the kit killed it: when SIGTERM arrives, stop consuming and end (in Python, signal.signal(signal.SIGTERM, ...) that stops the main loop)" },
           TERM_S)
  end
  t:pass({ es = "siguió en marcha hasta el SIGTERM y terminó %.1f s después (%s)", en = "it ran until SIGTERM and ended %.1f s later (%s)" },
         d.term_took, d.end_how)
end

---------------------------------------------------------------- guided mode

local function both(es, en) return { es = es, en = en } end

-- What the kit sends in the guide: readings of this student's plan.
-- First: B, then C (newer, from A's sensor), then A, A again (the same
-- id, a new message), the malformed one, and D. The proxy doubles the
-- 2nd PUBLISH (C). Then, after the restart: C and D again, and E.
function H.guide_plan(p)
  local rs = p.readings
  local a, c = rs[1], nil
  for n = 2, #rs do
    if rs[n].topic == a.topic then c = rs[n] break end
  end
  local b, d, e = rs[2], rs[3], rs[4]
  if c == b or c == d or c == e then e = rs[#rs] end
  local m = { topic = p.malformed[1].topic, payload = p.malformed[1].payload }
  return {
    first = { b, c, a, a, m, d },
    again = { c, d, e },
    a = a, c = c, d = d, m = m,
  }
end

-- Publish seq from a kit client straight to the broker, then wait for
-- the consumer to be given it and to acknowledge it. Remembers where the
-- consumer stopped acknowledging, if it did, for the steps to say.
function H.guide_send(ctx, seq, dup_nth)
  local p, d, px = ctx.p, ctx.data, ctx.proxy
  local from = px:count() + 1
  if dup_nth then
    px:rule { action = "duplicate", type = "PUBLISH", dir = "down", client = p.client_id, nth = dup_nth }
  end
  local pub, err = ctx:client { id = "mqlab-guide-" .. p.hex, clean = true }
  if not pub then return both("no pude publicar: " .. tostring(err), "I could not publish: " .. tostring(err)) end
  for _, r in ipairs(seq) do pub:publish(r.topic, r.payload, { qos = 1 }) end
  pub:disconnect()
  local function given(ev)
    return ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "down" and ev.client == p.client_id and not ev.dup
  end
  px:wait_count(given, #seq, 3, from)
  local pubs = {}
  for _, ev in ipairs(px:events(from, px:count())) do
    if given(ev) and (ev.qos or 0) > 0 then pubs[#pubs + 1] = ev end
  end
  local function acked(ev)
    return ev.kind == "packet" and ev.type == "PUBACK" and ev.dir == "up" and ev.client == p.client_id
  end
  px:wait_count(acked, #pubs + (dup_nth and 1 or 0), 3, from)
  local evs = px:events()
  d.stall, d.stall_malformed = nil, false
  for _, ev in ipairs(pubs) do
    if not H.ack_of(evs, ev) then
      d.stall = d.stall or ev.i
      if ev.payload == d.plan.m.payload then d.stall_malformed = true end
    end
  end
  d.sent_from = from
  d.want = {}
  for _, r in ipairs(seq) do d.want[r.payload] = (d.want[r.payload] or 0) + 1 end
  d.got = {}
end

-- The consumer's subscription that is open now: its connection, or nil.
function H.guide_live(ctx)
  local p = ctx.p
  local subs, closed = {}, {}
  for _, ev in ipairs(ctx.proxy:events()) do
    if ev.kind == "close" then closed[ev.conn] = true end
    if ev.kind == "packet" and ev.type == "SUBACK" and ev.dir == "down" and ev.client == p.client_id then
      subs[#subs + 1] = ev.conn
    end
  end
  for i = #subs, 1, -1 do
    if not closed[subs[i]] then return subs[i] end
  end
end

-- Step 1: a SUBSCRIBE to the filter at QoS 1 from the consumer's id.
function H.guide_subscribe(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "up" then return nil end
  if ev.type == "CONNECT" and ev.client_id ~= p.client_id then
    return false, both(string.format("ese CONNECT usa el client id «%s»; el consumidor es %s (MQTT_CLIENT_ID, o -i)", ev.client_id or "", p.client_id),
                       string.format("that CONNECT uses client id '%s'; the consumer is %s (MQTT_CLIENT_ID, or -i)", ev.client_id or "", p.client_id))
  end
  if ev.type ~= "SUBSCRIBE" or ev.client ~= p.client_id then return nil end
  for _, f in ipairs(ev.filters or {}) do
    if f.filter ~= p.topic then
      return false, both(string.format("te suscribiste a %s; el consumidor escucha todos los sensores: %s", f.filter, p.topic),
                         string.format("you subscribed to %s; the consumer listens to every sensor: %s", f.filter, p.topic))
    end
    if (f.qos or 0) == 0 then
      return false, both("tu SUBSCRIBE pidió QoS 0: como mucho una vez, sin PUBACK; una lectura perdida en un corte no vuelve. Este consumidor pide QoS 1 (-q 1)",
                         "your SUBSCRIBE asked for QoS 0: at most once, with no PUBACK; a reading lost in a cut never comes back. This consumer needs QoS 1 (-q 1)")
    end
    if f.qos == 2 then
      return false, both("tu SUBSCRIBE pidió QoS 2: cuatro paquetes por lectura para evitar duplicados que tu consumidor ya reconoce por su id. Pide QoS 1",
                         "your SUBSCRIBE asked for QoS 2: four packets per reading to avoid duplicates your consumer already recognises by their id. Ask for QoS 1")
    end
    return true, both(string.format("SUBSCRIBE a %s con QoS 1 de «%s»: al menos una vez, así que los duplicados te llegarán", p.topic, p.client_id),
                      string.format("SUBSCRIBE to %s at QoS 1 from '%s': at least once, so duplicates will reach you", p.topic, p.client_id))
  end
end

-- Step 2, on Enter: send at once if the consumer is subscribed, else
-- when it subscribes.
function H.guide_send_first(ctx)
  local d = ctx.data
  d.plan = H.guide_plan(ctx.p)
  d.target = H.guide_live(ctx)
  if not d.target then
    d.pending = "first"
    return both("Tu consumidor no está suscrito ahora mismo: arráncalo (la orden del paso 1) y publico en cuanto se suscriba.",
                "Your consumer is not subscribed right now: start it (the command from step 1) and I publish as soon as it subscribes.")
  end
  H.guide_send(ctx, d.plan.first, 2)
  return both("Publicado.", "Published.")
end

-- What the consumer was given since the last send, judged as it comes:
-- the consumer stopping (no PUBACK, or its connection closing) before
-- the end, or everything given and acknowledged (true).
function H.guide_given(ev, ctx, what)
  local p, d = ctx.p, ctx.data
  if ev.kind == "packet" and ev.type == "SUBACK" and ev.dir == "down" and ev.client == p.client_id and d.pending then
    d.target = ev.conn
    H.guide_send(ctx, what == "first" and d.plan.first or d.plan.again, what == "first" and 2 or nil)
    d.pending = nil
    return false, both("tu consumidor se suscribió: publicado", "your consumer subscribed: published")
  end
  if d.pending or not d.want then return nil end
  if ev.kind == "close" and ev.conn == d.target then
    d.pending, d.want = what, nil
    return false, both("la conexión de tu consumidor se cerró antes de recibirlo todo: ¿murió con un mensaje? Arráncalo otra vez y vuelvo a publicar en cuanto se suscriba",
                       "your consumer's connection closed before it got everything: did a message kill it? Start it again and I publish again as soon as it subscribes")
  end
  if ev.kind ~= "packet" or ev.type ~= "PUBLISH" or ev.dir ~= "down" or ev.conn ~= d.target or ev.dup then return nil end
  if (ev.qos or 0) == 0 then
    return false, both("tu consumidor lo recibe con QoS 0: sin PUBACK, el broker no sabe si lo guardaste. Suscríbete con QoS 1",
                       "your consumer gets it at QoS 0: with no PUBACK the broker cannot know whether you stored it. Subscribe at QoS 1")
  end
  if d.stall and ev.i == d.stall then
    d.pending, d.want = what, nil
    local bad = d.stall_malformed
    return false, both(string.format("tu consumidor dejó de confirmar en %s: ningún PUBACK para ese mensaje ni para los siguientes%s. Arráncalo otra vez y vuelvo a publicar en cuanto se suscriba",
                                     short(ev.payload, 60), bad and ", entre ellos el que no es una lectura. ¿Se atascó con él? Anótalo, descártalo y sigue" or ""),
                       string.format("your consumer stopped acknowledging at %s: no PUBACK for that message nor for those after it%s. Start it again and I publish again as soon as it subscribes",
                                     short(ev.payload, 60), bad and ", the one that is not a reading among them. Did it choke on it? Log it, drop it and go on" or ""))
  end
  local n = ev.fate == "duplicated" and 2 or 1
  d.got[ev.payload or ""] = (d.got[ev.payload or ""] or 0) + n
  if ev.fate == "duplicated" then d.doubled = ev end
  for payload, k in pairs(d.want) do
    if (d.got[payload] or 0) < k then return nil end
  end
  if d.stall then return nil end
  d.want = nil
  return true
end

function H.guide_duplicates(ev, ctx)
  local d, p = ctx.data, ctx.p
  local ok, m = H.guide_given(ev, ctx, "first")
  if ok ~= true then return ok, m end
  local a, c = wire.reading(d.plan.a.payload), wire.reading(d.plan.c.payload)
  return true, both(string.format("tu consumidor recibió y confirmó todo: la lectura %s dos veces como mensajes distintos, %s dos veces con el mismo id de paquete (el proxy), %s después de %s, una lectura más nueva de su mismo sensor, y el mensaje roto. Solo el id del payload dice si una lectura ya está: guarda cada id una vez",
                                   a.id, c.id, a.id, c.id),
                    string.format("your consumer got and acknowledged everything: reading %s twice as two different messages, %s twice with the same packet id (the proxy), %s after %s, a newer reading from the same sensor, and the broken message. Only the id in the payload tells whether a reading is already there: store each id once",
                                   a.id, c.id, a.id, c.id))
end

-- Step 3: a new subscription from the consumer's id, on a connection
-- after the one of step 2, gets the replay.
function H.guide_replay(ev, ctx)
  local d, p = ctx.data, ctx.p
  if not d.replay_armed then
    d.replay_armed, d.pending, d.want, d.plan = true, "again", nil, d.plan or H.guide_plan(p)
  end
  if ev.kind == "packet" and ev.type == "SUBSCRIBE" and ev.dir == "up" and ev.client ~= p.client_id then
    for _, f in ipairs(ev.filters or {}) do
      if f.filter == p.topic then
        return false, both(string.format("ese consumidor se conectó como «%s»: con otro client id es otro consumidor para el broker. Usa %s", ev.client or "", p.client_id),
                           string.format("that consumer connected as '%s': with another client id it is another consumer to the broker. Use %s", ev.client or "", p.client_id))
      end
    end
  end
  local ok, m = H.guide_given(ev, ctx, "again")
  if ok ~= true then return ok, m end
  local c, dd = wire.reading(d.plan.c.payload), wire.reading(d.plan.d.payload)
  return true, both(string.format("tras el reinicio tu consumidor recibió y confirmó otra vez %s y %s, que ya tenía, y una nueva. Si tu tabla tiene cada id una vez, tu consumidor es idempotente",
                                   c.id, dd.id),
                    string.format("after the restart your consumer got and acknowledged %s and %s again, which it already had, and a new one. If your table has each id once, your consumer is idempotent",
                                   c.id, dd.id))
end

---------------------------------------------------------------- the run

local function setup(ctx)
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
  ctx:status({ es = "esperando el SUBSCRIBE de tu consumidor…", en = "waiting for your consumer's SUBSCRIBE…" })
  d.subscribed = ctx:wait_for(function()
    if #wire.select(px:events(), { kind = "packet", type = "SUBACK", dir = "down" }) > 0 then return true end
    if not prog:running() then return "stopped" end
  end, START_S) == true
  if d.subscribed then
    d.p1_from = px:count()
    ctx:status({ es = "publicando %d lecturas; el proxy duplica una y reordena otra…", en = "publishing %d readings; the proxy duplicates one and reorders another…" }, #p.seq1)
    H.publish_all(pub, p, p.seq1)
    d.p1_settled = H.settle(ctx, d.p1_from, #p.seq1, ACK_S)
    -- A moment more, so that a consumer that writes the PUBACK just
    -- before its commit (libmosquitto's own loop does) has finished it:
    -- only a commit that waits for something else is caught.
    if d.p1_settled then ctx:wait_for(function() return not prog:running() end, QUIET_S) end
  end

  -- The kill, what was committed by then, and the restart.
  d.alive_at_kill = prog:running()
  if d.alive_at_kill then
    ctx:status({ es = "matando tu consumidor (SIGKILL) y reiniciándolo…", en = "killing your consumer (SIGKILL) and restarting it…" })
    prog:signal("KILL")
    prog:wait(3)
  else
    d.first_end = ctx:how_ended(prog)
  end
  d.kill_i = px:count()
  d.snap, d.snap_err = H.snapshot(d)
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
    ctx:status({ es = "publicando el resto, con una repetición y otro duplicado…", en = "publishing the rest, with a replay and another duplicate…" })
    H.publish_all(pub, p, p.seq2)
    d.p2_settled = H.settle(ctx, d.p2_from, #p.seq2, ACK_S)
  end

  -- The end: SIGTERM, then the database.
  d.alive_at_end = prog:running()
  if d.alive_at_end then
    local t0 = kit.now()
    ctx:status({ es = "enviando SIGTERM y leyendo tu base de datos…", en = "sending SIGTERM and reading your database…" })
    prog:signal("TERM")
    d.left_on_term = prog:wait(TERM_S) == true
    d.term_took = kit.now() - t0
    if not d.left_on_term then prog:stop() end
  end
  d.end_how = ctx:how_ended(prog)
  pub:disconnect()
  d.events = px:events()
  for _, ev in ipairs(H.publishes_down(d.events)) do
    if (ev.qos or 0) == 0 then d.qos0 = true end
  end
  H.read_db(d)
  d.a = H.analyse(d, p)
end

return lab {
  id = "09-idempotent",
  title = { es = "Un consumidor idempotente", en = "An idempotent consumer" },
  submission = { programs = { "consumer" } },
  broker = "plain",
  proxy = true,
  setup_timeout = 2 * PROG_TIMEOUT,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,

  hints = {
    { es = "La clave del laboratorio: CREATE TABLE IF NOT EXISTS readings (id TEXT PRIMARY KEY, topic TEXT, ts INTEGER, value REAL), y escribe con INSERT OR IGNORE. Una copia de un id que ya está no cambia nada, y la base de datos lo recuerda aunque el proceso muera.",
      en = "The key to the lab: CREATE TABLE IF NOT EXISTS readings (id TEXT PRIMARY KEY, topic TEXT, ts INTEGER, value REAL), and write with INSERT OR IGNORE. A copy of an id that is already there changes nothing, and the database remembers it even when the process dies." },
    { es = "Un set() de ids vistos en memoria funciona hasta el primer SIGKILL: al arrancar de nuevo está vacío, y las lecturas que el productor reenvía se guardan otra vez. La única memoria que sobrevive es la base de datos.",
      en = "A set() of seen ids in memory works until the first SIGKILL: when the process starts again it is empty, and the readings the producer sends again are stored twice. The only memory that survives is the database." },
    { es = "Haz commit() dentro de on_message, antes de que termine: paho envía el PUBACK cuando on_message vuelve, y el PUBACK le dice al broker que ya no hace falta reenviar ese mensaje. Un commit cada N lecturas, o al salir, pierde en un SIGKILL lecturas ya confirmadas. En C, libmosquitto con mosquitto_loop_start() también envía el PUBACK al volver on_message; en Lua, conecta con manual_ack = true y llama a client:ack(msg) tras el INSERT.",
      en = "commit() inside on_message, before it returns: paho sends the PUBACK when on_message returns, and the PUBACK tells the broker it need not send that message again. A commit every N readings, or at exit, loses readings already acknowledged when a SIGKILL comes. In C, libmosquitto with mosquitto_loop_start() also sends the PUBACK when on_message returns; in Lua, connect with manual_ack = true and call client:ack(msg) after the INSERT." },
    { es = "Un payload que no es una lectura (json.loads falla, o falta «id», «ts» o «v») se anota en stderr y se descarta. El kit envía de los dos tipos. Si la excepción escapa de on_message, paho la relanza: con loop_forever() el programa muere, y con loop_start() muere solo el hilo de red y el proceso sigue vivo sin hacer nada.",
      en = "A payload that is not a reading (json.loads fails, or \"id\", \"ts\" or \"v\" is missing) is logged on stderr and discarded. The kit sends both kinds. If the exception escapes on_message, paho raises it again: with loop_forever() the program dies, and with loop_start() only the network thread dies, and the process lives on doing nothing." },
    { es = "No descartes una lectura porque su ts sea más antiguo que el último que viste, ni que el último de su sensor: con reconexiones y reenvíos, el orden de llegada no está garantizado. El id decide si ya la tienes, no el tiempo.",
      en = "Do not discard a reading because its ts is older than the last one you saw, nor than the last one from its sensor: with reconnections and re-sends, the order of arrival is not guaranteed. The id decides whether you already have it, not the time." },
    { es = "Suscríbete en on_connect (se ejecuta en cada conexión) con qos=1, y usa mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False). Si usas loop_start(), abre la base de datos con sqlite3.connect(path, check_same_thread=False) y úsala solo desde los callbacks. Al recibir SIGTERM, para el bucle principal y termina.",
      en = "Subscribe in on_connect (it runs on every connection) with qos=1, and use mqtt.Client(client_id=os.environ['MQTT_CLIENT_ID'], clean_session=False). With loop_start(), open the database with sqlite3.connect(path, check_same_thread=False) and use it only from the callbacks. When SIGTERM arrives, stop the main loop and end." },
  },
}
