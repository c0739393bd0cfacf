-- Lab 10: load, $SYS monitoring, and when not to use MQTT.
--
-- Three parts.
--
-- monitor: a program that subscribes to the broker's $SYS topics and
--   prints a line starting with `ALERT clients` when the connected
--   clients fall sharply (to half or less of the highest count of the
--   last 10 s, and by at least 10), and one starting with `ALERT backlog`
--   when the messages the broker holds keep growing (up in 3 reports in a
--   row, by at least 100 in all). It runs through the kit's proxy (so the
--   trace shows its CONNECT, its SUBSCRIBE and every $SYS value it got) on
--   the `sys` broker (broker-config/sys.conf: $SYS every second, a deep
--   queue). Mosquitto 2.0.11 publishes $SYS when `now - sys_interval >
--   last`, so with sys_interval 1 a report comes every 2 s, and only for
--   values that changed. The kit's watcher (a kit client) follows
--   $SYS/broker/uptime, which changes at every report, to act right
--   after a report: each staged change then shows in the next report,
--   whatever the machine's load. The kit drives three situations, one
--   after the other:
--     1. calm, with the churn of a real fleet, from the student's seed:
--        a small group comes and goes before the fleet (to half or less,
--        but by fewer than 10: not a sharp fall), then `fleet` clients
--        with a steady load, and a pool of extra clients that join and
--        leave every report (small falls, and one fall of 10 or more that
--        is far from half). Meanwhile the store count moves as a real one
--        does: three small rises in a row (under 100 in all), the
--        historian coming back for a moment and taking its queue (a fall),
--        one jump of 100 or more in a single report, and another fall.
--        None of it is an alert;
--     2. the drop: the fleet and the pool leave at once (the connected
--        count falls to 2: the monitor and the watcher); an `ALERT
--        clients` must follow within DROP_WINDOW seconds;
--     3. the backlog: the kit's historian (persistent session, QoS 1) is
--        away and the generator publishes to its topics, so
--        store/messages/count climbs by backlog_rate per second; an
--        `ALERT backlog` must follow within BACKLOG_WINDOW seconds.
--   An alert of a kind before its situation began is a false alarm. An
--   alert line that reaches the kit only when the monitor ends was never
--   flushed; feedback says so.
--
-- report.txt: the student's figures from three `mqlab bench` runs with
--   their own parameters (key: value unit lines). The kit runs a short
--   burst and a short steady run of its own on a broker of the `bench`
--   profile (the one `mqlab bench` starts) and accepts figures within a
--   generous factor of what it measured. A grading machine busy with
--   other gradings gives that broker a part of a CPU: the kit reads how
--   long the broker waited for one during each run (kit.cpu, through the
--   broker's pid_file) and compares with what it would have measured on a
--   machine of its own.
--
-- quiz.txt: six situations from a pool, one for each case of "do not use
--   MQTT" (request/response, large payloads, point to point, strict
--   global order) and two where MQTT fits; one check per question.
--
-- Layout: the plan first (parameters, then the checks in the order a
-- student meets them), the helpers (H) and the quiz pool below it, setup
-- and the lab table at the end.

local wire = require "mqlab.wire"
local kit = require "mqlab.kit"
local bench = require "mqlab.bench"
local brokermod = require "mqlab.broker"
local topics = require "mqlab.topics"
local short = require("mqlab.text").short

local T_CLIENTS = "$SYS/broker/clients/connected"
local T_STORE = "$SYS/broker/store/messages/count"
local T_STORED = "$SYS/broker/messages/stored"    -- the same figure under an older name
local T_UPTIME = "$SYS/broker/uptime"             -- changes at every report: the kit's tick

local MONITOR_TIMEOUT = 90   -- a ceiling; the kit stops the monitor long before
local SUBSCRIBE_S = 10       -- seconds to wait for the monitor's SUBACK
local FLEET_UP_S = 8         -- seconds for the broker to report the fleet connected
local TICK_S = 4             -- longest wait for the next $SYS report (one comes every 2 s)
local DROP_WINDOW = 6        -- seconds after the drop within which ALERT clients must come
local BACKLOG_WINDOW = 12    -- seconds after the backlog starts within which ALERT backlog must come
local BACKLOG_CLIENTS = 5    -- publishers that feed the backlog
local RUN_MAX_S = 90         -- a ceiling for the generator's runs; the kit stops them itself
local KIT_STEADY_S = 2       -- seconds of the kit's own steady run for report.txt
local BURST_CLIENTS = 10     -- publishers of a burst, as `mqlab bench` uses by default
local RAMP_FROM = 1000       -- msg/s at the start of the student's ramp
local STEADY_S = 10          -- seconds of the student's steady run
local RAMP_S = 20            -- seconds of the student's ramp
local NQUIZ = 6

local H = {}                 -- helpers, defined below the plan
local ALT_WORDS, ALT_NAMES, KINDS, NOT_KINDS, YES_KINDS, CASES   -- the quiz pool, below

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
  local p = {
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
    drop_window = DROP_WINDOW, backlog_window = BACKLOG_WINDOW,
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

  -- The calm's churn, drawn after everything above so that those values
  -- stay what they were. One step per $SYS report; `pool` is the number
  -- of the kit's extra clients connected after the step, `store` what
  -- happens to the stored messages: +n queued for the absent historian,
  -- or "drain" (it comes back for a moment and takes its queue).
  -- The store's steps are ordered so that no wait of the kit's can
  -- stretch them into an alert: the small rises come first (under 100
  -- even with the broker's own first reports and the fleet's messages in
  -- flight, however long the fleet takes to connect), the historian takes
  -- them once the fleet is up, and the single jump has a fall right before
  -- and right after it.
  local group = rng:int(6, 9)                 -- comes and goes: half or less, but fewer than 10
  local pool = rng:int(13, 16)
  local a = rng:int(2, 4)                     -- a small fall
  local b = rng:int(1, a)                     -- a rise
  local l5 = pool - a + b                     -- 10 or more
  local big = rng:int(10, l5)                 -- a fall of 10 or more, far from half of the fleet
  local c = rng:int(3, 6)
  p.churn = {
    { group = group, store = rng:int(10, 20) },                        -- small rises in a row...
    { group = 0, store = rng:int(10, 20) },
    { fleet = true, pool = pool, store = rng:int(10, 20) },            -- ...under 100 in all
    { pool = pool - a, store = "drain" },
    { pool = l5, store = rng:int(120, 180) },                          -- one jump of 100 or more
    { pool = l5 - big, store = "drain" },
    { pool = l5 - big + c },
  }
  p.group, p.pool = group, pool
  return p
end

---------------------------------------------------------------- the checks

-- The six quiz checks differ only in their case number.
local function quiz_check(n)
  return check {
    id = "quiz-" .. n, points = 1,
    title = { es = "quiz.txt: caso " .. n, en = "quiz.txt: case " .. n },
    run = function(t, ctx) H.quiz_run(t, ctx, n) end,
  }
end

local checks = {
  check {
    id = "subscribes-sys", points = 1,
    title = { es = "El monitor se suscribe a $SYS", en = "The monitor subscribes to $SYS" },
    run = function(t, ctx)
      local m, p = ctx.data.mon, ctx.p
      H.monitor_absent(t, ctx)
      local c_filter, c_ev = H.covering(m, T_CLIENTS)
      local s_filter, s_ev = H.covering(m, T_STORE)
      if not s_filter then s_filter, s_ev = H.covering(m, T_STORED) end
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
        t:fail({ es = "tu monitor se suscribió a %s, que no cubre %s. MQTT_TOPIC es %s:\n%s",
                 en = "your monitor subscribed to %s, which does not cover %s. MQTT_TOPIC is %s:\n%s" },
               table.concat(all, ", "), table.concat(missing, ctx:text({ es = " ni ", en = " nor " })), p.topic,
               first and wire.block(first) or "    -")
      end
      for _, ack in ipairs(m.subacks) do
        for _, code in ipairs(ack.codes or {}) do
          if code == 128 then
            t:fail({ es = "el broker rechazó una suscripción de tu monitor:\n%s", en = "the broker refused a subscription of your monitor:\n%s" }, wire.block(ack))
          end
        end
      end
      t:pass({ es = "SUBSCRIBE a %s (cubre %s y %s); el proxy le entregó %d mensajes $SYS:\n%s",
               en = "SUBSCRIBE to %s (covers %s and %s); the proxy delivered %d $SYS messages to it:\n%s" },
             table.concat(all, ", "), T_CLIENTS, T_STORE, #m.sys_pubs, wire.block(c_ev or s_ev))
    end,
  },

  check {
    id = "client-id", points = 1,
    title = { es = "El monitor se conecta con MQTT_CLIENT_ID", en = "The monitor connects with MQTT_CLIENT_ID" },
    run = function(t, ctx)
      local m, p = ctx.data.mon, ctx.p
      if not m.prog or #(m.connects or {}) == 0 then ctx:why_absent(t, { prog = m.prog, err = m.err, name = { es = "monitor", en = "monitor" } }) end
      local wrong = {}
      for _, ev in ipairs(m.connects) do
        if ev.client_id ~= p.client_id then wrong[#wrong + 1] = ev end
      end
      if #wrong > 0 then
        t:fail({ es = "tu monitor se conectó con el client id «%s», pero MQTT_CLIENT_ID es «%s». Un client id fijo en el código choca con el de otro monitor (el broker echa al que ya estaba): léelo de MQTT_CLIENT_ID:\n%s",
                 en = "your monitor connected with client id '%s', but MQTT_CLIENT_ID is '%s'. A client id fixed in the code clashes with another monitor's (the broker throws out the one already there): read it from MQTT_CLIENT_ID:\n%s" },
               tostring(wrong[1].client_id), p.client_id, wire.block(wrong[1]))
      end
      t:pass({ es = "CONNECT con el client id de MQTT_CLIENT_ID:\n%s", en = "CONNECT with the client id from MQTT_CLIENT_ID:\n%s" },
             wire.block(m.connects[1]))
    end,
  },

  check {
    id = "calm", points = 2, after = "subscribes-sys",
    title = { es = "Sin falsas alarmas con el movimiento normal de una flota", en = "No false alarms with a fleet's normal churn" },
    run = function(t, ctx)
      local m, p = ctx.data.mon, ctx.p
      H.ended_before(t, ctx, m.alive_calm)
      local during = H.alerts_between(m, 0, m.drop_t)
      local story = H.calm_story(ctx, m)
      if m.full == nil then
        t:fail({ es = "el kit lanzó %d clientes pero el broker no los contó conectados en %d s (%s): la carga del kit falló, no tu monitor",
                 en = "the kit started %d clients but the broker did not count them connected within %d s (%s): the kit's load failed, not your monitor" },
               p.fleet, FLEET_UP_S, H.sys_story(ctx, m, T_CLIENTS, 0, m.drop_t))
      end
      if #m.alerts == 0 then
        t:fail({ es = "%s\nTu monitor no escribió ninguna línea ALERT, ni aquí ni después, cuando sí había motivo: sin alarmas no hay falsas alarmas, pero tampoco vigilancia. Mira «clients-drop» y «backlog»",
                 en = "%s\nYour monitor printed no ALERT line, neither here nor later, when there was cause: with no alarms there are no false alarms, but no watching either. See 'clients-drop' and 'backlog'" },
               story)
      end
      if #during > 0 then
        t:fail({ es = "%s\nNada cayó de golpe ni se acumuló sin parar, y aun así tu monitor escribió %s:\n%s\nUna flota real siempre tiene clientes que entran y salen, y una cola que sube y baja: alerta solo cuando los conectados caen a la mitad o menos del máximo de los últimos 10 s y en 10 o más, o cuando los mensajes guardados suben en 3 informes seguidos y en 100 o más en total",
                 en = "%s\nNothing fell sharply and nothing kept piling up, and still your monitor printed %s:\n%s\nA real fleet always has clients coming and going, and a queue that rises and falls: alert only when the connected clients fall to half or less of the highest count of the last 10 s and by 10 or more, or when the stored messages go up in 3 reports in a row and by 100 or more in all" },
               story, ctx:text(#during == 1 and { es = "una línea ALERT", en = "an ALERT line" } or { es = "%d líneas ALERT", en = "%d ALERT lines" }, #during),
               H.quote_alerts(ctx, m, during))
      end
      t:pass({ es = "%s\nTu monitor no escribió ninguna línea ALERT", en = "%s\nYour monitor printed no ALERT line" }, story)
    end,
  },

  check {
    id = "clients-drop", points = 2, after = "subscribes-sys",
    title = { es = "ALERT clients cuando los clientes caen de golpe", en = "ALERT clients when the clients fall sharply" },
    run = function(t, ctx)
      local m, p = ctx.data.mon, ctx.p
      H.ended_before(t, ctx, m.alive_drop)
      local early = H.alerts_between(m, 0, m.drop_t, "clients")
      local a = H.first_alert(m, "clients", m.drop_t, m.drop_t + DROP_WINDOW)
      local story = ctx:text({ es = "a %+.1f s el kit desconectó de golpe sus %d clientes de carga y los %d de más que tenía; el kit vio clients/connected = %s",
                               en = "at %+.1f s the kit disconnected all at once its %d load clients and the %d extra ones it had; the kit saw clients/connected = %s" },
                             m.drop_t, p.fleet, m.pool_left or 0, H.sys_story(ctx, m, T_CLIENTS, m.drop_t - 4, m.drop_end))
      if #early > 0 then
        t:fail({ es = "%s. Pero tu monitor ya había escrito ALERT clients antes de la caída, sin ninguna caída fuerte:\n%s\nAsí la alarma no distingue una caída del ir y venir normal",
                 en = "%s. But your monitor had printed ALERT clients before the drop already, with no sharp fall:\n%s\nThat way the alarm cannot tell a drop from the normal coming and going" },
               story, H.quote_alerts(ctx, m, early))
      end
      if not a then
        local got = H.delivered(m, T_CLIENTS, m.drop_i, m.drop_end + 0.5)
        local late = H.first_alert(m, "clients", m.drop_t, nil, true)
        H.fail_unflushed(t, ctx, m, late, story)
        if late then
          t:fail({ es = "%s. Tu monitor escribió ALERT clients %.1f s después de la caída, tarde (el límite es %d s):\n%s",
                   en = "%s. Your monitor printed ALERT clients %.1f s after the drop, too late (the limit is %d s):\n%s" },
                 story, late.t - m.drop_t, DROP_WINDOW, H.quote_alerts(ctx, m, { late }))
        end
        if #got > 0 then
          t:fail({ es = "%s. El proxy entregó a tu monitor clients/connected = %s, y en %d s no escribió ninguna línea «ALERT clients». Compara cada valor con el máximo reciente: caer a la mitad o menos, y en 10 o más, es una caída fuerte",
                   en = "%s. The proxy delivered clients/connected = %s to your monitor, and within %d s it printed no \"ALERT clients\" line. Compare each value with the recent highest: falling to half or less, and by 10 or more, is a sharp fall" },
                 story, table.concat(got, ", "), DROP_WINDOW)
        end
        t:fail({ es = "%s, y en %d s tu monitor no escribió ninguna línea «ALERT clients». ¿Recibe %s? (el proxy no le entregó ningún valor nuevo de ese topic tras la caída)",
                 en = "%s, and within %d s your monitor printed no \"ALERT clients\" line. Does it get %s? (the proxy delivered no new value of that topic to it after the drop)" },
               story, DROP_WINDOW, T_CLIENTS)
      end
      t:pass({ es = "%s. Tu monitor avisó %.1f s después:\n%s", en = "%s. Your monitor raised it %.1f s later:\n%s" },
             story, a.t - m.drop_t, H.quote_alerts(ctx, m, { a }))
    end,
  },

  check {
    id = "backlog", points = 2, after = "subscribes-sys",
    title = { es = "ALERT backlog cuando la cola crece sin parar", en = "ALERT backlog when the queue keeps growing" },
    run = function(t, ctx)
      local m, p = ctx.data.mon, ctx.p
      H.ended_before(t, ctx, m.alive_backlog)
      local early = H.alerts_between(m, 0, m.backlog_t, "backlog")
      local a = H.first_alert(m, "backlog", m.backlog_t, m.backlog_t + BACKLOG_WINDOW)
      local story = ctx:text({ es = "a %+.1f s el kit empezó a publicar %d msg/s a %s, el histórico ausente; store/messages/count estaba en %s y el kit vio luego %s",
                               en = "at %+.1f s the kit began publishing %d msg/s to %s, the absent historian; store/messages/count stood at %s, and the kit then saw %s" },
                             m.backlog_t, p.backlog_rate, p.historian_filter, tostring(m.store0 or "?"),
                             H.sys_story(ctx, m, T_STORE, m.backlog_t, m.stopped_t))
      if #early > 0 then
        t:fail({ es = "%s. Pero tu monitor ya había escrito ALERT backlog antes, sin una cola que creciera sin parar:\n%s\nUna subida suelta, aunque sea grande, o unas pocas subidas pequeñas no son una cola que crece: espera a 3 informes seguidos al alza que sumen 100 o más",
                 en = "%s. But your monitor had printed ALERT backlog before, with no queue that kept growing:\n%s\nOne rise on its own, even a large one, or a few small rises are not a growing queue: wait for 3 reports in a row going up by 100 or more in all" },
               story, H.quote_alerts(ctx, m, early))
      end
      if not a then
        local got = H.delivered(m, T_STORE, m.backlog_i, m.stopped_t, 5)
        if #got == 0 then got = H.delivered(m, T_STORED, m.backlog_i, m.stopped_t, 5) end
        H.fail_unflushed(t, ctx, m, H.first_alert(m, "backlog", m.backlog_t, nil, true), story)
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
             story, a.t - m.backlog_t, H.quote_alerts(ctx, m, { a }))
    end,
  },

  check {
    id = "report-figures", points = 1,
    title = { es = "report.txt: todas las cifras, con unidades y coherentes", en = "report.txt: every figure, with units, coherent" },
    run = function(t, ctx) H.report_figures(t, ctx) end,
  },

  check {
    id = "report-plausible", points = 2, after = "report-figures",
    title = { es = "report.txt: cifras plausibles frente a la medida del kit", en = "report.txt: figures plausible against the kit's own run" },
    run = function(t, ctx) H.report_plausible(t, ctx) end,
  },

  quiz_check(1), quiz_check(2), quiz_check(3), quiz_check(4), quiz_check(5), quiz_check(6),
}

-- Guided mode (mqlab start 10): the student watches the connected count
-- in $SYS, then the kit brings a fleet in and takes it away.
local SYS_CONNECTED = "$SYS/broker/clients/connected"

local guide = {
  step {
    id = "sys-connected",
    title = { es = "Suscríbete a $SYS/broker/clients/connected", en = "Subscribe to $SYS/broker/clients/connected" },
    text = {
      es = "El broker cuenta sus clientes y lo publica en $SYS. En otra terminal (déjalo abierto; comillas simples, o el shell se come «$SYS»):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -t '$SYS/broker/clients/connected' -v",
      en = "The broker counts its clients and publishes the count under $SYS. In another terminal (leave it running; single quotes, or the shell eats '$SYS'):\n\n    mosquitto_sub -h {{host}} -p {{port}} -i {{client_id}} -t '$SYS/broker/clients/connected' -v",
    },
    on = function(ev, ctx) return H.guide_sys(ev, ctx) end,
  },
  step {
    id = "fleet",
    title = { es = "Llega una flota y se va: la cuenta sube y cae", en = "A fleet comes and goes: the count rises and falls" },
    text = {
      es = "Ahora conecto {{fleet}} clientes a la vez y, cuando veas la cuenta arriba, los desconecto todos de golpe: la caída brusca que tu monitor debe avisar con ALERT clients. Mira tu suscriptor.",
      en = "Now I connect {{fleet}} clients at once and, once you see the count up, I disconnect them all together: the sharp fall your monitor has to report with ALERT clients. Watch your subscriber.",
    },
    prompt = { es = "Pulsa Enter y conecto la flota.", en = "Press Enter and I connect the fleet." },
    act = function(ctx) return H.guide_fleet(ctx) end,
    on = function(ev, ctx) return H.guide_rise_fall(ev, ctx) end,
  },
}

---------------------------------------------------------------- the monitor

local function now(m) return kit.now() - m.t0 end

-- New complete lines of the monitor's output (its alerts) and new $SYS
-- values from the kit's watcher, both stamped in seconds since the
-- monitor started, on the kit's clock. at_exit marks the lines that only
-- came once the kit had told the monitor to stop: never flushed before.
function H.scan(m, at_exit)
  local out = m.prog:stdout() or ""
  while true do
    local nl = out:find("\n", m.off + 1, true)
    if not nl then break end
    local line = out:sub(m.off + 1, nl - 1):gsub("\r$", "")
    m.off = nl
    if line:match("^ALERT") then
      local kind = (line:match("^ALERT%s+(%a+)") or "?"):lower()
      m.alerts[#m.alerts + 1] = { t = now(m), kind = kind, line = line, at_exit = at_exit }
    end
  end
  for _, msg in ipairs(m.watch:drain()) do
    local s = { t = msg.t - m.t0, topic = msg.topic, v = tonumber(msg.payload), retain = msg.retain }
    if msg.topic == T_UPTIME then
      if not msg.retain then m.ticks[#m.ticks + 1] = s.t end
    else
      m.sys[#m.sys + 1] = s
    end
  end
end

-- The first alert of that kind in [t0, t1] (seconds), or nil; lines that
-- came only at exit count only when at_exit is asked for.
function H.first_alert(m, kind, t0, t1, at_exit)
  for _, a in ipairs(m.alerts) do
    if a.kind == kind and a.t >= (t0 or -1) and a.t <= (t1 or math.huge) and (at_exit or not a.at_exit) then return a end
  end
end

function H.alerts_between(m, t0, t1, kind)
  local out = {}
  for _, a in ipairs(m.alerts) do
    if a.t >= t0 and a.t < t1 and (kind == nil or a.kind == kind) then out[#out + 1] = a end
  end
  return out
end

-- The latest value of a $SYS topic the watcher saw before t (or ever).
function H.last_value(m, topic, t)
  local v
  for _, s in ipairs(m.sys) do
    if s.topic == topic and (t == nil or s.t <= t) then v = s.v end
  end
  return v
end

-- "35 (+0.1 s, retained), 52 (+3.1 s), 2 (+9.2 s)": what the watcher
-- saw of a topic in [t0, t1].
function H.sys_story(ctx, m, topic, t0, t1, max)
  local out = {}
  local retained = ctx:text({ es = "retenido", en = "retained" })
  for _, s in ipairs(m.sys) do
    if s.topic == topic and s.t >= t0 and s.t <= (t1 or math.huge) then
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

-- The two values of a topic the watcher saw last up to t: "58 -> 46".
function H.change_before(m, topic, t)
  local prev, last
  for _, s in ipairs(m.sys) do
    if s.topic == topic and s.t <= t + 0.3 and not s.retain then prev, last = last, s.v end
  end
  if prev and last then return string.format("%s -> %s", tostring(prev), tostring(last)) end
end

-- The alert lines, each with the change the kit had just seen of the
-- figure it is about.
function H.quote_alerts(ctx, m, list, max)
  local out = {}
  max = max or 3
  for i = 1, math.min(#list, max) do
    local a = list[i]
    local topic = a.kind == "clients" and T_CLIENTS or a.kind == "backlog" and T_STORE
    local seen = topic and not a.at_exit and H.change_before(m, topic, a.t)
    local note = seen and ctx:text({ es = "   (el kit acababa de ver %s: %s)", en = "   (the kit had just seen %s: %s)" },
                                   a.kind == "clients" and "clients/connected" or "store/messages/count", seen) or ""
    out[#out + 1] = string.format("    %+.1f s  %s%s", a.t, short(a.line, 100), note)
  end
  if #list > max then out[#out + 1] = string.format("    … (%d)", #list) end
  return table.concat(out, "\n")
end

-- An alert that reached the kit only when the monitor was told to stop:
-- the line sat in the monitor's output buffer the whole time.
function H.fail_unflushed(t, ctx, m, a, story)
  if a and a.at_exit then
    t:fail({ es = "%s. Tu monitor sí escribió la alerta, pero la línea solo llegó al kit cuando el kit lo paró (%+.1f s):\n%s\nLa salida estándar hacia una tubería va a un búfer: vacíalo tras cada línea (fflush(stdout) en C, io.stdout:flush() en Lua, flush=True en Python)",
             en = "%s. Your monitor did write the alert, but the line reached the kit only when the kit stopped it (%+.1f s):\n%s\nStandard output into a pipe is buffered: flush it after every line (fflush(stdout) in C, io.stdout:flush() in Lua, flush=True in Python)" },
           story, a.t, H.quote_alerts(ctx, m, { a }))
  end
end

-- What the kit staged during the calm, for feedback.
function H.calm_story(ctx, m)
  local p = ctx.p
  local lines = {
    ctx:text({ es = "Durante la calma (hasta %+.1f s), con %d clientes de carga publicando %d msg/s desde %+.1f s, el kit hizo lo que hace una flota real, un cambio por informe $SYS:",
               en = "During the calm (until %+.1f s), with %d load clients publishing %d msg/s from %+.1f s on, the kit did what a real fleet does, one change per $SYS report:" },
             m.drop_t or 0, p.fleet, p.fleet_rate, m.fleet_t or 0),
  }
  for _, st in ipairs(m.staged) do
    local parts = {}
    if st.clients then
      local n = math.abs(st.clients)
      local who = ctx:text(n == 1 and { es = "cliente", en = "client" } or { es = "clientes", en = "clients" })
      parts[#parts + 1] = st.clients > 0 and ctx:text({ es = "%d %s más", en = "%d more %s" }, n, who)
                                          or ctx:text({ es = "%d %s menos", en = "%d fewer %s" }, n, who)
    end
    if st.fleet then parts[#parts + 1] = ctx:text({ es = "llega la carga (%d clientes)", en = "the load arrives (%d clients)" }, p.fleet) end
    if st.queued then
      parts[#parts + 1] = ctx:text({ es = "%d mensajes más en cola para el histórico", en = "%d more messages queued for the historian" }, st.queued)
    elseif st.drained then
      parts[#parts + 1] = ctx:text({ es = "el histórico vuelve un momento y se lleva su cola (%d)", en = "the historian comes back for a moment and takes its queue (%d)" }, st.drained)
    end
    lines[#lines + 1] = string.format("    %+.1f s  %s", st.t, table.concat(parts, "; "))
  end
  lines[#lines + 1] = ctx:text({ es = "El kit vio clients/connected = %s\ny store/messages/count = %s",
                                 en = "The kit saw clients/connected = %s\nand store/messages/count = %s" },
                               H.sys_story(ctx, m, T_CLIENTS, -5, m.drop_t, 14), H.sys_story(ctx, m, T_STORE, -5, m.drop_t, 14))
  return table.concat(lines, "\n")
end

-- Wait for fn() while scanning; "gone" when the monitor has ended.
function H.watch_until(ctx, m, fn, s)
  return ctx:wait_for(function()
    H.scan(m)
    local v = fn()
    if v then return v end
    if not m.prog:running() then return "gone" end
  end, s)
end

-- Wait for the next $SYS report (a new uptime value) after now: what the
-- kit changes right after it shows in the report after that.
-- A report that came in just now and was not acted on yet (the one that
-- showed the fleet connected) counts as the next one.
function H.next_tick(ctx, m)
  H.scan(m)
  local n = #m.ticks
  if n > (m.acted or 0) and now(m) - m.ticks[n] < 0.3 then
    m.acted = n
    return true
  end
  local r = H.watch_until(ctx, m, function() return #m.ticks > n end, TICK_S)
  m.acted = #m.ticks
  return r
end

-- Queue n messages for the absent historian (QoS 1: the broker keeps
-- each one for its session).
function H.queue(ctx, m, n)
  for i = 1, n do
    assert(m.feeder:publish(m.feed_topic, string.format('{"seq": %d}', m.fed + i), { qos = 1 }))
  end
  m.fed, m.queued = m.fed + n, m.queued + n
end

-- The historian comes back for a moment, takes its queue and leaves
-- again (its session and subscription stay).
function H.drain(ctx, m)
  local p = ctx.p
  local hist = assert(ctx:client { id = p.historian_id, clean = false })
  local got = 0
  ctx:wait_for(function()
    H.scan(m)
    got = got + #hist:drain()
    return got >= m.queued
  end, 3)
  hist:disconnect()
  hist:close()
  local n = m.queued
  m.queued = 0
  return n
end

-- The kit's extra clients: connect or disconnect until `level` are on.
function H.set_pool(ctx, m, level)
  local p = ctx.p
  local before = #m.pool
  while #m.pool < level do
    local c = assert(ctx:client { id = string.format("mqlab-churn-%s-%d", p.hex, m.pool_n), clean = true })
    m.pool_n = m.pool_n + 1
    m.pool[#m.pool + 1] = c
  end
  while #m.pool > level do
    local c = table.remove(m.pool)
    c:disconnect()
    c:close()
  end
  return level - before
end

-- Run the monitor through calm, drop and backlog; keep the evidence in d.mon.
function H.run_monitor(ctx)
  local p, px = ctx.p, ctx.proxy
  local m = { alerts = {}, sys = {}, ticks = {}, off = 0, staged = {}, pool = {}, pool_n = 1, fed = 0, queued = 0 }
  ctx.data.mon = m

  -- The historian: a persistent session with a QoS 1 subscription, gone
  -- before the lab begins. Whatever is published to its filter from now
  -- on waits for it in the broker.
  local hist = assert(ctx:client { id = p.historian_id, clean = false })
  assert(hist:subscribe(p.historian_filter, 1))
  hist:disconnect()
  hist:close()

  -- The kit's own view of $SYS (for its timing and for feedback), and
  -- the client that queues the calm's messages for the historian.
  m.watch = assert(ctx:client { id = "mqlab-watch-" .. p.hex, clean = true })
  assert(m.watch:subscribe(T_CLIENTS, 0))
  assert(m.watch:subscribe(T_STORE, 0))
  assert(m.watch:subscribe(T_UPTIME, 0))
  m.feeder = assert(ctx:client { id = "mqlab-feed-" .. p.hex, clean = true })
  m.feed_topic = p.backlog_topic:gsub("{i}", "0")

  m.from = px:count() + 1
  m.t0 = kit.now()
  m.prog, m.err = ctx:program("monitor", {
    timeout = MONITOR_TIMEOUT,
    env = { MQTT_CLIENT_ID = p.client_id, MQTT_TOPIC = p.topic, LAB_COUNT = false, LAB_INTERVAL_MS = false },
  })
  if not m.prog then return end

  ctx:status({ es = "esperando el SUBSCRIBE de tu monitor a $SYS…", en = "waiting for your monitor's SUBSCRIBE to $SYS…" })
  m.suback = ctx:wait_running(m.prog, { kind = "packet", type = "SUBACK", dir = "down" }, SUBSCRIBE_S, m.from)
  if m.suback then
    -- Proxy times (ms since the proxy started) to seconds since t0.
    m.offset = now(m) - m.suback.t / 1000
  end

  -- 1. Calm, with churn: one staged change right after each report.
  local fleet
  if m.suback and m.prog:running() then
    ctx:status({ es = "calma: clientes que van y vienen (una alerta aquí es falsa)…", en = "calm: clients come and go (an alert here is a false one)…" })
    for _, step in ipairs(p.churn) do
      if H.next_tick(ctx, m) == "gone" then break end
      local st = { t = now(m) }
      if step.group then st.clients = H.set_pool(ctx, m, step.group) end
      if step.pool then st.clients = H.set_pool(ctx, m, step.pool) end
      if step.store == "drain" then
        st.drained = H.drain(ctx, m)
      elseif step.store then
        H.queue(ctx, m, step.store)
        st.queued = step.store
      end
      if step.fleet then
        st.fleet = true
        m.fleet_t = st.t
        local err
        fleet, err = bench.start { mode = "steady", port = ctx.broker:port(), clients = p.fleet,
                                   rate = p.fleet_rate, duration = RUN_MAX_S, topic = p.fleet_topic }
        if not fleet then m.kit_err = err end
      end
      m.staged[#m.staged + 1] = st
      if step.fleet then
        if not fleet then break end
        ctx:own(fleet)
        m.full = H.watch_until(ctx, m, function()
          local v = H.last_value(m, T_CLIENTS)
          return v and v >= p.fleet and v
        end, FLEET_UP_S)
        if m.full == nil or m.full == "gone" then break end
      end
    end
    -- The last change's report, and a moment for the monitor to read it;
    -- then the drop, well before the next report.
    H.next_tick(ctx, m)
    H.watch_until(ctx, m, function() return false end, 1)

    -- 2. The drop: the fleet and the extra clients go at once.
    m.alive_calm = m.prog:running()
    m.drop_t = now(m)
    m.drop_i = px:count()
    ctx:status({ es = "la flota se cae de golpe: esperando tu alerta…", en = "the fleet drops at once: waiting for your alert…" })
    m.pool_left = #m.pool
    if fleet then fleet:stop() end
    H.set_pool(ctx, m, 0)
    m.feeder:disconnect()
    m.feeder:close()
    if fleet then
      m.fleet_res, m.fleet_err = fleet:wait(10)
      fleet:close()
    end
    if fleet and m.prog:running() then
      H.watch_until(ctx, m, function()
        local v = H.last_value(m, T_CLIENTS)
        return H.first_alert(m, "clients", m.drop_t) and v and v < p.fleet / 2
      end, DROP_WINDOW)
    end
    m.drop_end = now(m)
    m.alive_drop = fleet ~= nil and m.prog:running()
  end

  -- 3. The backlog: the generator publishes to the historian's topics.
  if m.drop_end and m.prog:running() then
    m.store0 = H.last_value(m, T_STORE)
    m.backlog_t = now(m)
    m.backlog_i = px:count()
    ctx:status({ es = "acumulando mensajes para el historiador: esperando tu alerta…", en = "a backlog builds up for the historian: waiting for your alert…" })
    local flood, err = bench.start { mode = "steady", port = ctx.broker:port(), clients = BACKLOG_CLIENTS,
                                     rate = p.backlog_rate, duration = RUN_MAX_S, topic = p.backlog_topic,
                                     subscriber = false }
    if not flood then
      m.kit_err = err
    else
      ctx:own(flood)
      H.watch_until(ctx, m, function() return H.first_alert(m, "backlog", m.backlog_t) end, BACKLOG_WINDOW)
      m.backlog_end = now(m)
      m.alive_backlog = m.prog:running()
      H.scan(m)
      m.prog:stop()
      H.scan(m, true)
      flood:stop()
      m.flood_res, m.flood_err = flood:wait(10)
      flood:close()
    end
  end
  H.scan(m)
  if m.prog:running() then m.prog:stop() end
  m.stopped_t = now(m)
  H.scan(m, true)
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
function H.covering(m, topic)
  for _, ev in ipairs(m.subscribes or {}) do
    for _, f in ipairs(ev.filters or {}) do
      if topics.matches(f.filter, topic) then return f.filter, ev end
    end
  end
end

-- The $SYS values of a topic the proxy delivered to the monitor after
-- event index `from` and up to t1 (seconds since t0): "1 (+9.2 s)".
function H.delivered(m, topic, from, t1, max)
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
function H.monitor_absent(t, ctx)
  local m = ctx.data.mon
  if not m.prog or #(m.connects or {}) == 0 then
    ctx:why_absent(t, { prog = m.prog, err = m.err, name = { es = "monitor", en = "monitor" } })
  end
  if not m.suback then
    t:fail({ es = "tu monitor se conectó pero no se suscribió a nada en %d s (%s). Suscríbete a MQTT_TOPIC (%s) nada más conectar",
             en = "your monitor connected but subscribed to nothing within %d s (%s). Subscribe to MQTT_TOPIC (%s) as soon as you connect" },
           SUBSCRIBE_S, ctx:how_ended(m.prog), ctx.p.topic)
  end
end

-- A monitor that was not running through a whole phase (alive is the
-- flag taken when the phase ended; nil when it never began).
function H.ended_before(t, ctx, alive)
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

-- A rate in messages a second, as the instructions write it; "k msg/s"
-- or "24 323 msg/s" would be read as another number.
local RATE_UNITS = { ["msg/s"] = true, ["msgs/s"] = true, ["messages/s"] = true, ["mensajes/s"] = true }

local TIME_UNITS = { ms = 1, s = 1000, us = 0.001, ["µs"] = 0.001, ["μs"] = 0.001 }

-- "key: value unit" lines, "#" comments. Values are kept in ms and msg/s.
function H.parse_report(text)
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
        if val:match("^[%d%.]+,%d") or val:match("^%d+%s+%d") then
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
          if not RATE_UNITS[unit] then
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
  rate_unit = { es = "una tasa va en msg/s, sin múltiplos (24323 msg/s, no 24.3 k msg/s)", en = "a rate goes in msg/s, with no multiples (24323 msg/s, not 24.3 k msg/s)" },
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
function H.slowdown(pid, before, t0, busy)
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
function H.run_kit_bench(ctx)
  local p = ctx.p
  local k = {}
  ctx.data.kb = k
  ctx:status({ es = "midiendo como mqlab bench para comparar con tu report.txt…", en = "measuring as mqlab bench does, to compare with your report.txt…" })
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
  k.burst_slow = H.slowdown(pid, before, t0, true)
  if not k.burst then return end
  local steady
  before, t0 = pid and kit.cpu(pid), kit.now()
  steady, err = bench.start { mode = "steady", port = b:port(), clients = p.steady_clients, rate = p.steady_rate,
                              duration = KIT_STEADY_S, qos = 1, size = 64 }
  if not steady then k.err = err return end
  ctx:own(steady)
  k.steady, k.err = steady:wait(30)
  steady:close()
  k.steady_slow = H.slowdown(pid, before, t0, false)
  b:close()
  kit.rmdir(dir)
end

-- PUBACKs per second over a run: acked over the load's length.
function H.puback_rate(res)
  if not res or (res.sent or 0) == 0 or (res.rate_sent or 0) <= 0 then return 0 end
  return res.acked * res.rate_sent / res.sent
end


-- report-figures: every key, readable, with its unit; p50 <= p99.
function H.report_figures(t, ctx)
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
end

-- report-plausible: the figures against the kit's own short runs.
function H.report_plausible(t, ctx)
  local r, k, p = ctx.data.report.v, ctx.data.kb, ctx.p
  if not k or not k.burst or not k.steady then
    t:fail({ es = "el kit no pudo hacer su propia medida: %s", en = "the kit could not make its own measurement: %s" }, tostring(k and k.err or "?"))
  end
  -- The runs as they would have gone on a machine of their own: a
  -- grading machine busy with other gradings gives the broker a
  -- part of a CPU, and that is not a slower broker.
  local bs, ss = k.burst_slow or { factor = 1 }, k.steady_slow or { factor = 1 }
  local kb = { p50 = k.burst.latency_ms.p50 / bs.factor, p99 = k.burst.latency_ms.p99 / bs.factor,
               rate = H.puback_rate(k.burst) * bs.factor }
  local ks = { p50 = k.steady.latency_ms.p50 / ss.factor, p99 = k.steady.latency_ms.p99 / ss.factor,
               rate = H.puback_rate(k.steady) }
  t:say({ es = "el kit midió aquí: ráfaga de %d mensajes: p50 %.2f ms, p99 %.2f ms, %.0f PUBACK/s; sostenida %d msg/s con %d clientes durante %d s: p50 %.3f ms, p99 %.3f ms, %.0f PUBACK/s",
          en = "the kit measured here: burst of %d messages: p50 %.2f ms, p99 %.2f ms, %.0f PUBACK/s; steady %d msg/s over %d clients for %d s: p50 %.3f ms, p99 %.3f ms, %.0f PUBACK/s" },
        p.burst_n, k.burst.latency_ms.p50, k.burst.latency_ms.p99, H.puback_rate(k.burst),
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
end

---------------------------------------------------------------- quiz.txt

-- "3 no kafka", "3: no, REST o gRPC", "3 mqtt", "caso 3 = sí"; "#" comments.
function H.parse_quiz(text)
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

function H.alt_list(set)
  local out = {}
  for _, k in ipairs({ "rest", "grpc", "http", "tcp", "s3", "kafka" }) do
    if set[k] then out[#out + 1] = ALT_NAMES[k] end
  end
  return table.concat(out, " / ")
end

-- quiz-N: the answer to case n against the kind of case it is.
function H.quiz_run(t, ctx, n)
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
           n, name, H.alt_list(kind.ok), ctx:text(kind.why))
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
           n, name, H.alt_list(wrong), H.alt_list(kind.ok), ctx:text(kind.why))
  end
  local note = ""
  if case.kind == "ordering" then
    note = ctx:text({ es = " (con una sola partición: varias particiones solo ordenan dentro de cada una)",
                      en = " (with a single partition: several partitions only keep order within each)" })
  end
  t:pass({ es = "caso %d (%s): MQTT no, y %s en su lugar%s.\n    Por qué: %s", en = "case %d (%s): not MQTT, and %s instead%s.\n    Why: %s" },
         n, name, H.alt_list(a.alts), note, ctx:text(kind.why))
end

---------------------------------------------------------------- the quiz pool


-- The alternatives a student may name, and the words that stand for
-- each (the answer is lower-cased and split into words first).
ALT_WORDS = {
  rest = "rest", http = "http", https = "http", grpc = "grpc", kafka = "kafka",
  s3 = "s3", minio = "s3", tcp = "tcp", socket = "tcp", sockets = "tcp",
  websocket = "tcp", websockets = "tcp",
}
ALT_NAMES = { rest = "REST", http = "HTTP", grpc = "gRPC", kafka = "Kafka", s3 = "S3", tcp = "TCP" }

-- The kinds of case. `ok` lists the alternatives that fit (nil: MQTT fits).
KINDS = {
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

NOT_KINDS = { "reqresp", "large", "p2p", "ordering" }
YES_KINDS = { "fleet", "flaky", "battery", "decouple" }

CASES = {
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

---------------------------------------------------------------- guided mode

-- Step 1: a SUBSCRIBE whose filter takes $SYS/broker/clients/connected,
-- then the broker's report of it on that connection.
function H.guide_sys(ev, ctx)
  local d = ctx.data
  if ev.kind ~= "packet" then return nil end
  if ev.dir == "up" and ev.type == "SUBSCRIBE" then
    for _, f in ipairs(ev.filters or {}) do
      local filter = f.filter or ""
      if filter == "#" or filter:match("^[+]/") or filter == "+" then
        return false, { es = string.format("te suscribiste a «%s»: un comodín en el primer nivel nunca recoge los topics que empiezan por $; pide $SYS/... por su nombre", filter),
                        en = string.format("you subscribed to '%s': a wildcard in the first level never takes topics that start with $; ask for $SYS/... by name", filter) }
      end
      if filter:sub(1, 1) == "/" and topics.matches("$SYS" .. filter, SYS_CONNECTED) then
        return false, { es = string.format("tu filtro llegó como «%s»: el shell cambió «$SYS» por nada (comillas dobles o ninguna). Usa comillas simples: -t '%s'", filter, SYS_CONNECTED),
                        en = string.format("your filter arrived as '%s': the shell replaced '$SYS' with nothing (double quotes or none). Use single quotes: -t '%s'", filter, SYS_CONNECTED) }
      end
      if topics.valid_filter(filter) and topics.matches(filter, SYS_CONNECTED) then
        d.sys_conn = ev.conn
        return nil
      end
      return false, { es = string.format("«%s» no selecciona %s", filter, SYS_CONNECTED),
                      en = string.format("'%s' does not select %s", filter, SYS_CONNECTED) }
    end
    return nil
  end
  if ev.dir == "down" and ev.type == "PUBLISH" and ev.topic == SYS_CONNECTED and ev.conn == d.sys_conn then
    d.base = tonumber(ev.payload)
    return true, { es = string.format("el broker te dice cuántos clientes hay conectados: %s (el tuyo entre ellos); lo vuelve a publicar cuando cambia", ev.payload or "?"),
                   en = string.format("the broker tells you how many clients are connected: %s (yours among them); it publishes again whenever it changes", ev.payload or "?") }
  end
end

-- Step 2: p.fleet kit clients connect; once the student's subscriber
-- shows the count up by that many, they all go at once, and the step is
-- met when it shows the fall.
function H.guide_fleet(ctx)
  local d, p = ctx.data, ctx.p
  d.fleet = {}
  for i = 1, p.fleet do
    local c = ctx:client { id = string.format("mqlab-fleet-%03d", i), clean = true, keepalive = 60 }
    if c then d.fleet[#d.fleet + 1] = c end
  end
  return { es = string.format("Conectados %d clientes.", #d.fleet), en = string.format("%d clients connected.", #d.fleet) }
end

function H.guide_drop_fleet(d)
  for _, c in ipairs(d.fleet or {}) do pcall(function() c:disconnect() end) end
  d.fleet = {}
end

function H.guide_rise_fall(ev, ctx)
  local d, p = ctx.data, ctx.p
  if ev.kind == "close" and ev.conn == d.sys_conn then
    return false, { es = "tu suscriptor de $SYS se cerró: ábrelo otra vez (mosquitto_sub ... -t '$SYS/broker/clients/connected')",
                    en = "your $SYS subscriber closed: open it again (mosquitto_sub ... -t '$SYS/broker/clients/connected')" }
  end
  if ev.kind ~= "packet" then return nil end
  if ev.dir == "up" and ev.type == "SUBSCRIBE" then
    for _, f in ipairs(ev.filters or {}) do
      if topics.valid_filter(f.filter or "") and topics.matches(f.filter, SYS_CONNECTED) then d.sys_conn = ev.conn end
    end
    return nil
  end
  if ev.dir ~= "down" or ev.type ~= "PUBLISH" or ev.topic ~= SYS_CONNECTED or ev.conn ~= d.sys_conn then return nil end
  local v = tonumber(ev.payload)
  if not v then return nil end
  local base = d.base or 1
  if not d.peak then
    if v >= base + p.fleet - 1 then
      d.peak = v
      H.guide_drop_fleet(d)
      return false, { es = string.format("la cuenta subió de %d a %d; ahora los desconecto todos a la vez", base, v),
                      en = string.format("the count rose from %d to %d; now I disconnect them all at once", base, v) }
    end
    return false, { es = string.format("la cuenta va por %d", v), en = string.format("the count is at %d", v) }
  end
  if v <= d.peak - p.fleet + 1 then
    return true, { es = string.format("subió a %d y cayó a %d: una caída a la mitad o menos y de 10 o más, justo lo que tu monitor debe avisar", d.peak, v),
                   en = string.format("it rose to %d and fell to %d: a fall to half or less and by 10 or more, just what your monitor has to report", d.peak, v) }
  end
end

---------------------------------------------------------------- the lab

local function setup(ctx)
  local d = ctx.data
  H.run_monitor(ctx)
  local rtext = ctx:file("report.txt")
  d.report_missing = rtext == nil
  d.report = H.parse_report(rtext)
  local qtext = ctx:file("quiz.txt")
  d.quiz_missing = qtext == nil
  d.quiz = H.parse_quiz(qtext)
  -- The kit's own runs cost a few seconds: only when there is something to compare.
  if next(d.report.v) then H.run_kit_bench(ctx) end
end

return lab {
  id = "10-load",
  title = { es = "Carga, monitorización con $SYS y cuándo no usar MQTT",
            en = "Load, $SYS monitoring, and when not to use MQTT" },
  submission = { programs = { "monitor" }, files = { "report.txt", "quiz.txt" } },
  broker = "sys",
  proxy = true,
  tcp_broker = true,
  setup_timeout = 120,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,

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
