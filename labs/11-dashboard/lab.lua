-- Lab 11: a live MQTT dashboard in the browser, with mqtt.js over WebSockets.
--
-- The student hands in dashboard.html (and any .js beside it). The kit
-- serves a private copy of the folder over HTTP, with its own mqtt.js at
-- /vendor/mqtt.min.js, and opens the page in headless Chromium with the
-- broker's WebSocket URL, the plant's root topic and the client id as
-- query parameters. The page goes through the kit's proxy (its WebSocket
-- port); the kit's simulated sensors talk to the broker directly, so
-- every connection in the trace is the page's.
--
-- One run, in acts, each waiting for what it needs on the wire:
--   1. before the page opens, one sensor has already died: its will put
--      a retained `offline` on its estado, which the page must show from
--      that message alone; the others say `online`, retained; a decoy in
--      another plant says `online` too;
--   2. the page opens: its CONNECT and SUBSCRIBE (watched on the wire);
--   3. two readings per live sensor, the second different, and the
--      decoy's: the DOM must show the latest value of each;
--   4. a sensor's link is cut: the broker publishes its will, and the
--      DOM must mark it offline;
--   5. the broker restarts (persistence on): the page must connect and
--      subscribe again by itself, and show the readings published after.
-- The DOM is read with one br:eval: per data-sensor element, its
-- data-value, data-state and text. The checks only judge what setup
-- recorded in ctx.data.

local wire = require "mqlab.wire"
local kit = require "mqlab.kit"
local topics = require "mqlab.topics"
local short = require("mqlab.text").short

local H = {}               -- helpers and the acts, defined below the plan

local OPEN_WAIT = 20       -- seconds for Chromium to load the page
local CONNECT_WAIT = 10    -- seconds from the page's load to its CONNECT
local SUB_WAIT = 5         -- seconds from the CONNECT to its SUBSCRIBE
local SUB_MORE = 0.5       -- seconds to wait for a further SUBSCRIBE after a SUBACK
local DELIVER_WAIT = 4     -- seconds for a reading to reach the page
local DOM_WAIT = 3         -- seconds for the DOM to show what reached the page
local BACK_WAIT = 15       -- seconds to reconnect after the broker restart (mqtt.js waits 1 s)
local SENSOR_KA = 10       -- the kit sensors' keepalive

---------------------------------------------------------------- the plan

-- A reading's value as the payload carries it and as JS's String(v)
-- prints it: one decimal that is never 0, so both spell it alike.
local function value(rng)
  local t = rng:int(150, 299)
  if t % 10 == 0 then t = t + 1 end
  return string.format("%d.%d", t // 10, t % 10)
end

local function params(rng)
  local n = rng:int(1, 9)
  local other = n % 9 + 1
  local plant = "acme/v1/planta-" .. n
  local zones = rng:sample({ "norte", "sur", "este", "oeste" }, 2)
  local nums = rng:sample({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 }, 6)
  local count = rng:int(3, 5)
  local sensors = {}
  for i = 1, count do
    local zone = i <= 2 and zones[i] or rng:pick(zones)
    local name = string.format("sensor-%02d", nums[i])
    local v1, v2, v3 = value(rng), nil, nil
    repeat v2 = value(rng) until v2 ~= v1
    repeat v3 = value(rng) until v3 ~= v2
    sensors[i] = { zone = zone, name = name, key = zone .. "/" .. name, v1 = v1, v2 = v2, v3 = v3 }
  end
  -- Roles: one dead before the page opens, one that dies while it
  -- watches; the rest live through the broker's restart.
  local order = rng:shuffle({ table.unpack(sensors) })
  order[1].role, order[2].role = "dead", "victim"
  for i = 3, #order do order[i].role = "live" end
  local list = {}
  for _, s in ipairs(sensors) do list[#list + 1] = s.key end
  local hex = rng:hex(4)
  return {
    plant = plant,
    plant_n = n,
    zones = zones,
    sensors = sensors,
    sensor_list = table.concat(list, ", "),
    sensor = sensors[1].key,
    temp_topic = plant .. "/" .. sensors[1].key .. "/temp",
    state_topic = plant .. "/" .. sensors[1].key .. "/estado",
    decoy_plant = "acme/v1/planta-" .. other,
    decoy = { zone = zones[1], name = string.format("sensor-%02d", nums[6]),
              key = zones[1] .. "/" .. string.format("sensor-%02d", nums[6]), v1 = value(rng) },
    hex = hex,
    client_id = "dash-planta-" .. n .. "-" .. hex,
  }
end

-- Guided mode (mqlab start 11): the page, served by the kit, opened in
-- the student's own browser; the wire says what it did.
local guide = {
  step {
    id = "ws-connect",
    title = { es = "Tu página se conecta por WebSockets", en = "Your page connects over WebSockets" },
    text = {
      es = "Abre en tu navegador la página que te sirve el kit (el dashboard.html de {{site}}):\n\n    {{page_url}}\n\nEl kit sirve mqtt.js en /vendor/mqtt.min.js. Tu página debe conectarse a la URL del parámetro url ({{ws_url}}) con el client id del parámetro client_id.",
      en = "Open in your browser the page the kit serves (the dashboard.html in {{site}}):\n\n    {{page_url}}\n\nThe kit serves mqtt.js at /vendor/mqtt.min.js. Your page must connect to the URL in the url parameter ({{ws_url}}) with the client id in the client_id parameter.",
    },
    on = function(ev, ctx) return H.guide_connect(ev, ctx) end,
  },
  step {
    id = "subscribe",
    title = { es = "Se suscribe a tu planta con QoS 1", en = "It subscribes to your plant at QoS 1" },
    text = {
      es = "Tu página se suscribe (QoS 1) a las lecturas y al estado de tu planta, {{plant}}, y a nada fuera de ella: por ejemplo {{plant}}/#. Si ya lo hizo al conectarse, recarga la página.",
      en = "Your page subscribes (QoS 1) to your plant's readings and states, {{plant}}, and to nothing outside it: for example {{plant}}/#. If it already did when it connected, reload the page.",
    },
    on = function(ev, ctx) return H.guide_subscribe(ev, ctx) end,
  },
  step {
    id = "readings",
    title = { es = "Lecturas en vivo", en = "Live readings" },
    text = {
      es = "Cuando pulses Enter, el kit conecta tus sensores ({{sensor_list}}), dice «online» retenido por cada uno y publica una lectura de cada uno. Mira cómo aparecen en tu página sin recargarla: nadie pregunta, el broker empuja.",
      en = "When you press Enter, the kit connects your sensors ({{sensor_list}}), says \"online\" retained for each and publishes a reading from each. Watch them appear on your page with no reload: nobody asks, the broker pushes.",
    },
    prompt = { es = "Pulsa Enter y publico.", en = "Press Enter and I publish." },
    act = function(ctx) return H.guide_readings(ctx) end,
    on = function(ev, ctx) return H.guide_delivered(ev, ctx) end,
  },
  step {
    id = "will",
    title = { es = "Un sensor muere: su testamento llega a la página", en = "A sensor dies: its will reaches the page" },
    text = {
      es = "Cuando pulses Enter, el kit corta el enlace de {{sensor}} sin DISCONNECT. El broker publica su Last Will, «offline» retenido, en {{state_topic}}; tu página debe marcarlo offline (data-state=\"offline\").",
      en = "When you press Enter, the kit cuts {{sensor}}'s link with no DISCONNECT. The broker publishes its Last Will, \"offline\" retained, on {{state_topic}}; your page must mark it offline (data-state=\"offline\").",
    },
    prompt = { es = "Pulsa Enter y corto el enlace.", en = "Press Enter and I cut the link." },
    act = function(ctx) return H.guide_kill(ctx) end,
    on = function(ev, ctx) return H.guide_will(ev, ctx) end,
  },
}

local checks = {
  check {
    id = "loads", points = 2,
    title = { es = "La página carga el mqtt.js del kit y se conecta por WebSockets",
              en = "The page loads the kit's mqtt.js and connects over WebSockets" },
    run = function(t, ctx) return H.check_loads(t, ctx) end,
  },
  check {
    id = "client-id", points = 1, after = "loads",
    title = { es = "Usa el client id del parámetro client_id", en = "It uses the client id in the client_id parameter" },
    run = function(t, ctx) return H.check_client_id(t, ctx) end,
  },
  check {
    id = "subscribe-plant", points = 2, after = "loads",
    title = { es = "Se suscribe a las lecturas y estados de su planta, y a nada más",
              en = "It subscribes to its plant's readings and states, and nothing else" },
    run = function(t, ctx) return H.check_filters(t, ctx) end,
  },
  check {
    id = "qos1", points = 1, after = "loads",
    title = { es = "QoS 1 en cada suscripción", en = "QoS 1 on every subscription" },
    run = function(t, ctx) return H.check_qos(t, ctx) end,
  },
  check {
    id = "latest-value", points = 3, after = "loads",
    title = { es = "Muestra el último valor de cada sensor", en = "It shows each sensor's latest value" },
    run = function(t, ctx) return H.check_latest(t, ctx) end,
  },
  check {
    id = "offline-retained", points = 2, after = "loads",
    title = { es = "Un sensor ya muerto aparece offline por su estado retenido",
              en = "A sensor already dead shows offline from its retained state" },
    run = function(t, ctx) return H.check_retained_offline(t, ctx) end,
  },
  check {
    id = "offline-live", points = 2, after = "loads",
    title = { es = "Cuando un sensor muere, su Last Will lo marca offline",
              en = "When a sensor dies, its Last Will marks it offline" },
    run = function(t, ctx) return H.check_live_offline(t, ctx) end,
  },
  check {
    id = "reconnects", points = 2, after = "loads",
    title = { es = "Se reconecta sola tras reiniciarse el broker", en = "It reconnects by itself after the broker restarts" },
    run = function(t, ctx) return H.check_reconnects(t, ctx) end,
  },
  check {
    id = "after-restart", points = 2, after = { "loads", "reconnects" },
    title = { es = "Tras el reinicio sigue mostrando lecturas nuevas", en = "After the restart it keeps showing new readings" },
    run = function(t, ctx) return H.check_after_restart(t, ctx) end,
  },
  check {
    id = "read-only", points = 1, after = "loads",
    title = { es = "Solo lee: no publica nada", en = "Read-only: it publishes nothing" },
    run = function(t, ctx) return H.check_read_only(t, ctx) end,
  },
  check {
    id = "no-decoy", points = 1, after = "loads",
    title = { es = "No muestra sensores de otra planta", en = "It shows no sensor of another plant" },
    run = function(t, ctx) return H.check_decoy(t, ctx) end,
  },
}

---------------------------------------------------------------- the checks

function H.check_loads(t, ctx)
  local d, p = ctx.data, ctx.p
  if d.connect then
    if not H.request(d, "/vendor/mqtt.min.js") then
      -- A copy of its own beside the page works offline too: said, not failed.
      t:say({ es = "(tu página no pidió /vendor/mqtt.min.js: usa otra copia de mqtt.js; la del kit es la versión del curso)",
              en = "(your page did not ask for /vendor/mqtt.min.js: it uses another copy of mqtt.js; the kit's is the course's version)" })
    end
    t:pass({ es = "el kit sirvió dashboard.html y tu página se conectó por WebSockets:\n%s",
             en = "the kit served dashboard.html and your page connected over WebSockets:\n%s" }, wire.block(d.connect))
    return
  end
  if d.open_err then
    t:fail({ es = "Chromium no pudo abrir tu página: %s", en = "Chromium could not open your page: %s" }, d.open_err)
  end
  local page, js = H.request(d, "/dashboard.html"), H.request(d, "/vendor/mqtt.min.js")
  if not page or page.status ~= 200 then
    t:fail({ es = "el kit no pudo servir dashboard.html (%s): escríbelo en la carpeta del laboratorio, con ese nombre",
             en = "the kit could not serve dashboard.html (%s): write it in the lab's folder, with that name" },
           page and ("HTTP " .. page.status) or ctx:text({ es = "nadie lo pidió", en = "nobody asked for it" }))
  end
  t:say({ es = "en %d s tras cargarse la página, ninguna conexión MQTT llegó al puerto WebSocket del kit.",
          en = "in the %d s after the page loaded, no MQTT connection reached the kit's WebSocket port." }, CONNECT_WAIT)
  if not js then
    t:say({ es = "Tu página nunca pidió /vendor/mqtt.min.js. Cárgalo de ahí con <script src=\"/vendor/mqtt.min.js\"></script>: un CDN (unpkg, jsdelivr) falla sin Internet, y el kit evalúa sin Internet.",
            en = "Your page never asked for /vendor/mqtt.min.js. Load it from there with <script src=\"/vendor/mqtt.min.js\"></script>: a CDN (unpkg, jsdelivr) fails with no Internet, and the kit grades with no Internet." })
  else
    t:say({ es = "Tu página cargó /vendor/mqtt.min.js (HTTP %d), pero no llamó a mqtt.connect(url) con la URL del parámetro url, o falló antes.",
            en = "Your page loaded /vendor/mqtt.min.js (HTTP %d), but it did not call mqtt.connect(url) with the URL in the url parameter, or it failed before." }, js.status)
  end
  local other = {}
  for _, r in ipairs(d.requests or {}) do
    if r.path ~= "/dashboard.html" and r.path ~= "/vendor/mqtt.min.js" and r.path ~= "/favicon.ico" then
      other[#other + 1] = string.format("%s %s -> %d", r.method, r.path, r.status)
    end
  end
  if #other > 0 then
    t:say({ es = "Otras peticiones al kit: %s", en = "Other requests to the kit: %s" }, table.concat(other, "; "))
  end
  local errs = H.console_errors(d)
  if #errs > 0 then
    t:say({ es = "La consola de la página dijo:\n%s", en = "The page's console said:\n%s" }, table.concat(errs, "\n"))
  end
  t:fail()
end

function H.check_client_id(t, ctx)
  local d, p = ctx.data, ctx.p
  for _, c in ipairs(wire.select(d.events, { kind = "packet", type = "CONNECT", dir = "up" })) do
    if c.client_id ~= p.client_id then
      t:fail({ es = "tu página se conectó con el client id «%s», pero el parámetro client_id dice «%s»: léelo de la URL (new URLSearchParams(location.search).get(\"client_id\")) y pásalo como clientId. Sin él, mqtt.js inventa uno al azar en cada carga, y el broker (sus ACL, su registro) no sabe qué panel es\n%s",
               en = "your page connected with the client id '%s', but the client_id parameter says '%s': read it from the URL (new URLSearchParams(location.search).get(\"client_id\")) and pass it as clientId. Without it, mqtt.js makes up a random one on every load, and the broker (its ACLs, its log) cannot tell which dashboard it is\n%s" },
             c.client_id or "", p.client_id, wire.block(c))
    end
  end
  t:pass({ es = "cada CONNECT lleva el client id %s", en = "every CONNECT carries the client id %s" }, p.client_id)
end

-- Every filter the page asked for, on every connection.
function H.filters(d)
  local out = {}
  for _, ev in ipairs(d.events) do
    if ev.kind == "packet" and ev.type == "SUBSCRIBE" and ev.dir == "up" then
      for _, f in ipairs(ev.filters or {}) do out[#out + 1] = { filter = f.filter, qos = f.qos, ev = ev } end
    end
  end
  return out
end

-- Whether a filter can only match topics of the plant: its first levels
-- are the plant's root, spelled out (no + or # among them).
function H.inside(filter, plant)
  local prefix = plant .. "/"
  return filter == plant or filter:sub(1, #prefix) == prefix
end

function H.match(filter, topic)
  local ok, m = pcall(topics.matches, filter, topic)
  return ok and m
end

function H.check_filters(t, ctx)
  local d, p = ctx.data, ctx.p
  local fs = H.filters(d)
  if #fs == 0 then
    t:fail({ es = "tu página se conectó, pero no envió ningún SUBSCRIBE en %d s: suscríbete en el evento «connect» de mqtt.js",
             en = "your page connected, but sent no SUBSCRIBE within %d s: subscribe in mqtt.js's 'connect' event" }, SUB_WAIT)
  end
  for _, f in ipairs(fs) do
    if f.filter == "#" then
      t:fail({ es = "tu página se suscribió a «#»: recibe todo el broker, de todas las plantas (lo que no es tuyo, y su volumen). Suscríbete solo a tu planta: %s/#\n%s",
               en = "your page subscribed to '#': it gets the whole broker, every plant (what is not yours, and its volume). Subscribe to your plant only: %s/#\n%s" },
             p.plant, wire.block(f.ev))
    end
    if not H.inside(f.filter, p.plant) then
      t:fail({ es = "el filtro «%s» llega fuera de tu planta (%s): recibiría, por ejemplo, %s/%s/temp. Empieza cada filtro por %s/\n%s",
               en = "the filter '%s' reaches outside your plant (%s): it would get, for example, %s/%s/temp. Start every filter with %s/\n%s" },
             f.filter, p.plant, p.decoy_plant, p.decoy.key, p.plant, wire.block(f.ev))
    end
  end
  for _, s in ipairs(p.sensors) do
    for _, leaf in ipairs({ "temp", "estado" }) do
      local topic = p.plant .. "/" .. s.key .. "/" .. leaf
      local covered = false
      for _, f in ipairs(fs) do if H.match(f.filter, topic) then covered = true end end
      if not covered then
        local names = {}
        for _, f in ipairs(fs) do names[#names + 1] = f.filter end
        t:fail({ es = "tus filtros (%s) no cubren %s: sin %s, tu página no se entera de %s. Suscríbete también a %s/+/+/%s, o a %s/#",
                 en = "your filters (%s) do not cover %s: without %s your page never learns %s. Subscribe to %s/+/+/%s as well, or to %s/#" },
               table.concat(names, ", "), topic, leaf,
               leaf == "temp" and ctx:text({ es = "las lecturas", en = "the readings" })
                              or ctx:text({ es = "quién está online u offline", en = "who is online or offline" }),
               p.plant, leaf, p.plant)
      end
    end
  end
  local names, seen = {}, {}
  for _, f in ipairs(fs) do
    if not seen[f.filter] then names[#names + 1] = f.filter; seen[f.filter] = true end
  end
  t:pass({ es = "filtros %s: cubren lecturas y estados de %s, y nada fuera de ella",
           en = "filters %s: they cover the readings and states of %s, and nothing outside it" }, table.concat(names, ", "), p.plant)
end

function H.check_qos(t, ctx)
  local fs = H.filters(ctx.data)
  if #fs == 0 then
    t:fail({ es = "tu página no envió ningún SUBSCRIBE", en = "your page sent no SUBSCRIBE" })
  end
  for _, f in ipairs(fs) do
    if f.qos ~= 1 then
      t:fail({ es = "te suscribiste a «%s» con QoS %d. Pide QoS 1, el valor por defecto del curso ({ qos: 1 } en client.subscribe): una lectura o un «offline» no se pierde entre el broker y tu página si la conexión falla a mitad de camino\n%s",
               en = "you subscribed to '%s' at QoS %d. Ask for QoS 1, the course's default ({ qos: 1 } in client.subscribe): a reading or an 'offline' is not lost between the broker and your page when the link fails halfway\n%s" },
             f.filter, f.qos or 0, wire.block(f.ev))
    end
  end
  t:pass({ es = "%d filtros, todos con QoS 1", en = "%d filters, all at QoS 1" }, #fs)
end

-- One sensor's element in a DOM snapshot, as feedback.
function H.shown(el)
  if not el then return "—" end
  return string.format('data-value="%s" data-state="%s" text="%s"', tostring(el.value or ""), tostring(el.state or ""),
                       short(el.text or "", 60))
end

-- What a snapshot lacks for sensor s to show value v, or nil.
function H.value_problem(ctx, dom, s, v, prev)
  local el = dom and dom[s.key]
  if not el then
    return ctx:text({ es = "no hay ningún elemento con data-sensor=\"%s\" (tu página debe crearlo al llegar su primer mensaje)",
                      en = "there is no element with data-sensor=\"%s\" (your page must create it when its first message arrives)" }, s.key)
  end
  if el.value ~= v then
    if prev and el.value == prev then
      return ctx:text({ es = "%s muestra %s, su lectura anterior; la última fue %s: actualiza el elemento con cada mensaje, no solo con el primero (%s)",
                        en = "%s shows %s, its previous reading; the latest was %s: update the element with every message, not only the first (%s)" },
                      s.key, prev, v, H.shown(el))
    end
    return ctx:text({ es = "%s debe tener data-value=\"%s\" (el campo v de su última lectura, como String(v)); tiene %s",
                      en = "%s must have data-value=\"%s\" (the v field of its latest reading, as String(v)); it has %s" },
                    s.key, v, H.shown(el))
  end
  if not (el.text or ""):find(v, 1, true) then
    return ctx:text({ es = "%s tiene data-value=\"%s\", pero su texto no muestra ese valor: «%s»",
                      en = "%s has data-value=\"%s\", but its text does not show that value: '%s'" }, s.key, v, short(el.text or "", 60))
  end
end

function H.check_latest(t, ctx)
  local d, p = ctx.data, ctx.p
  if not d.dom1 then
    t:fail({ es = "no pude leer tu página: %s", en = "I could not read your page: %s" }, d.dom1_err or "?")
  end
  local shown = {}
  for _, s in ipairs(p.sensors) do
    if s.role ~= "dead" then
      local why = H.value_problem(ctx, d.dom1, s, s.v2, s.v1)
      if why then t:fail({ es = "publiqué %s y luego %s en %s/%s/temp, y %s", en = "I published %s then %s on %s/%s/temp, and %s" },
                         s.v1, s.v2, p.plant, s.key, why) end
      shown[#shown + 1] = string.format("%s=%s", s.key, s.v2)
    end
  end
  t:pass({ es = "tras dos lecturas por sensor, tu página muestra la última: %s", en = "after two readings per sensor, your page shows the latest: %s" },
         table.concat(shown, ", "))
end

function H.check_retained_offline(t, ctx)
  local d, p = ctx.data, ctx.p
  if not d.dom1 then
    t:fail({ es = "no pude leer tu página: %s", en = "I could not read your page: %s" }, d.dom1_err or "?")
  end
  local dead = H.role(p, "dead")
  local el = d.dom1[dead.key]
  local topic = p.plant .. "/" .. dead.key .. "/estado"
  if not el then
    t:fail({ es = "%s murió antes de que se abriera tu página: lo único suyo en el broker es «offline», retenido, en %s, y tu página no creó ningún elemento data-sensor=\"%s\". Un sensor puede aparecer por su estado, sin lecturas: créalo también al llegar un mensaje de estado",
             en = "%s died before your page opened: all the broker has of it is 'offline', retained, on %s, and your page created no element data-sensor=\"%s\". A sensor may appear through its state, with no readings: create it also when a state message arrives" },
           dead.key, topic, dead.key)
  end
  if el.state ~= "offline" then
    t:fail({ es = "%s murió antes de que se abriera tu página (su estado retenido en %s es «offline»), pero tu página lo muestra con %s. Pon data-state con el texto que llega en estado",
             en = "%s died before your page opened (its retained state on %s is 'offline'), but your page shows it with %s. Set data-state to the text that arrives on estado" },
           dead.key, topic, H.shown(el))
  end
  for _, s in ipairs(p.sensors) do
    if s.role ~= "dead" then
      local e = d.dom1[s.key]
      if e and e.state ~= "online" then
        t:fail({ es = "%s dijo «online» (retenido) en su estado, pero tu página lo muestra con %s", en = "%s said 'online' (retained) on its state, but your page shows it with %s" },
               s.key, H.shown(e))
      end
    end
  end
  t:pass({ es = "%s aparece offline solo por su «offline» retenido, y los vivos, online", en = "%s shows offline from its retained 'offline' alone, and the live ones online" }, dead.key)
end

function H.check_live_offline(t, ctx)
  local d, p = ctx.data, ctx.p
  local victim = H.role(p, "victim")
  local topic = p.plant .. "/" .. victim.key .. "/estado"
  if not d.dom2 then
    t:fail({ es = "no pude leer tu página tras cortar el enlace de %s: %s", en = "I could not read your page after cutting %s's link: %s" },
           victim.key, d.dom2_err or "?")
  end
  local el = d.dom2[victim.key]
  if el and el.state == "offline" then
    t:pass({ es = "corté el enlace de %s, el broker publicó su Last Will «offline» en %s, y tu página lo marcó: %s",
             en = "I cut %s's link, the broker published its Last Will 'offline' on %s, and your page marked it: %s" },
           victim.key, topic, H.shown(el))
    return
  end
  local got = d.will_down
  t:fail({ es = "corté el enlace de %s; el broker publicó su Last Will «offline» en %s%s, pero tras %d s tu página lo muestra con %s",
           en = "I cut %s's link; the broker published its Last Will 'offline' on %s%s, but after %d s your page shows it with %s" },
         victim.key, topic,
         got and ctx:text({ es = " y llegó a tu página", en = " and it reached your page" })
             or ctx:text({ es = " (no llegó a tu página: ¿te suscribiste a estado?)", en = " (it never reached your page: did you subscribe to estado?)" }),
         DOM_WAIT, H.shown(el))
end

function H.check_reconnects(t, ctx)
  local d = ctx.data
  if d.restart_err then
    t:fail({ es = "no pude reiniciar el broker: %s", en = "I could not restart the broker: %s" }, d.restart_err)
  end
  if not d.connect2 then
    local closed = d.closed_at_restart and ctx:text({ es = "la conexión se cerró al pararse el broker", en = "the connection closed when the broker stopped" }) or ""
    t:fail({ es = "reinicié el broker y tu página no volvió a conectarse en %d s (%s). mqtt.js reconecta solo, cada reconnectPeriod ms (1000 por defecto); reconnectPeriod: 0 lo desactiva",
             en = "I restarted the broker and your page did not connect again within %d s (%s). mqtt.js reconnects by itself, every reconnectPeriod ms (1000 by default); reconnectPeriod: 0 turns that off" },
           BACK_WAIT, closed)
  end
  if not d.sub2 then
    t:fail({ es = "tras el reinicio tu página se conectó otra vez, pero no volvió a suscribirse: sin sesión persistente, el broker olvidó tus suscripciones. Suscríbete en cada evento «connect»\n%s",
             en = "after the restart your page connected again, but did not subscribe again: with no persistent session, the broker forgot your subscriptions. Subscribe on every 'connect' event\n%s" },
           wire.block(d.connect2))
  end
  t:pass({ es = "%.1f s después del reinicio, tu página volvió a conectarse y suscribirse:\n%s\n%s",
           en = "%.1f s after the restart, your page connected and subscribed again:\n%s\n%s" },
         d.back_s or 0, wire.block(d.connect2), wire.block(d.sub2))
end

function H.check_after_restart(t, ctx)
  local d, p = ctx.data, ctx.p
  if not d.dom3 then
    t:fail({ es = "no pude leer tu página tras el reinicio: %s", en = "I could not read your page after the restart: %s" }, d.dom3_err or "?")
  end
  local shown = {}
  for _, s in ipairs(p.sensors) do
    if s.role == "live" then
      local why = H.value_problem(ctx, d.dom3, s, s.v3, s.v2)
      if why then
        t:fail({ es = "tras el reinicio publiqué %s en %s/%s/temp, y %s", en = "after the restart I published %s on %s/%s/temp, and %s" },
               s.v3, p.plant, s.key, why)
      end
      shown[#shown + 1] = string.format("%s=%s", s.key, s.v3)
    end
  end
  t:pass({ es = "las lecturas publicadas tras el reinicio llegan a tu página: %s", en = "the readings published after the restart reach your page: %s" },
         table.concat(shown, ", "))
end

function H.check_read_only(t, ctx)
  local d = ctx.data
  local pubs = wire.select(d.events, { kind = "packet", type = "PUBLISH", dir = "up" })
  if #pubs > 0 then
    t:fail({ es = "tu página publicó %d mensaje(s). Un panel solo mira: que publique algo es un riesgo (en el laboratorio 08 su ACL es de solo lectura) y ensucia los temas de la planta. El primero:\n%s",
             en = "your page published %d message(s). A dashboard only watches: publishing is a risk (in lab 08 its ACL is read-only) and it litters the plant's topics. The first:\n%s" },
           #pubs, wire.block(pubs[1]))
  end
  t:pass({ es = "ningún PUBLISH de tu página en toda la prueba", en = "no PUBLISH from your page in the whole run" })
end

function H.check_decoy(t, ctx)
  local d, p = ctx.data, ctx.p
  local seen
  for _, dom in ipairs({ d.dom1 or {}, d.dom2 or {}, d.dom3 or {} }) do
    seen = seen or dom[p.decoy.key]
  end
  if seen then
    t:fail({ es = "tu página muestra data-sensor=\"%s\" (%s), que es de otra planta: %s/%s. Muestra solo lo que llega bajo %s/",
             en = "your page shows data-sensor=\"%s\" (%s), which belongs to another plant: %s/%s. Show only what comes under %s/" },
           p.decoy.key, H.shown(seen), p.decoy_plant, p.decoy.key, p.plant)
  end
  t:pass({ es = "un sensor de %s publicó a la vez, y tu página no lo muestra", en = "a sensor of %s published meanwhile, and your page does not show it" },
         p.decoy_plant)
end

---------------------------------------------------------------- helpers

function H.role(p, role)
  for _, s in ipairs(p.sensors) do if s.role == role then return s end end
end

-- The last request for path (its query string aside), or nil.
function H.request(d, path)
  local found
  for _, r in ipairs(d.requests or {}) do
    if (r.path or ""):gsub("%?.*", "") == path then found = r end
  end
  return found
end

-- The page's console errors and warnings, a few lines.
function H.console_errors(d)
  local out = {}
  for _, m in ipairs(d.console or {}) do
    if (m.level == "error" or m.level == "warning") and #out < 6 then
      out[#out + 1] = "  " .. short(m.text or "", 200)
    end
  end
  return out
end

-- Every data-sensor element of the page: key -> {value, state, text}.
H.DOM_JS = [[(() => {
  const out = {};
  document.querySelectorAll("[data-sensor]").forEach((el) => {
    out[el.getAttribute("data-sensor")] = {
      value: el.getAttribute("data-value"),
      state: el.getAttribute("data-state"),
      text: (el.textContent || "").trim().slice(0, 200),
    };
  });
  return out;
})()]]

function H.dom(d)
  local v, err = d.br:eval(H.DOM_JS, 5)
  if type(v) ~= "table" then return nil, err or "?" end
  return v
end

-- Read the DOM until ok(dom) or s seconds pass; the last reading.
function H.dom_until(ctx, ok, s)
  local d = ctx.data
  local dom, err
  ctx:wait_for(function()
    dom, err = H.dom(d)
    return dom and ok(dom)
  end, s, 0.1)
  return dom, err
end

function H.json(s, v)
  return string.format('{"id":"%s-%d","ts":%d,"v":%s}', s.name, kit.wall_ms(), kit.wall_ms(), v)
end

-- A simulated sensor, straight to the broker: a will `offline` on its
-- estado (retained, QoS 1), then `online` retained.
function H.sensor(ctx, plant, s)
  local d = ctx.data
  local c = assert(ctx:client {
    id = string.format("mqlab-%s-%s-%s-%d", s.zone, s.name, ctx.p.hex, d.gen), clean = true, keepalive = SENSOR_KA,
    will = { topic = plant .. "/" .. s.key .. "/estado", payload = "offline", qos = 1, retain = true },
  })
  assert(c:publish(plant .. "/" .. s.key .. "/estado", "online", { qos = 1, retain = true }))
  return c
end

-- The page's PUBLISH deliveries on `topic` from trace index `from`.
function H.delivered(ev, topic)
  return ev.kind == "packet" and ev.type == "PUBLISH" and ev.dir == "down" and ev.topic == topic
end

-- Publish one reading per sensor in `list` (value field `vf`), then wait
-- until the proxy has passed each one down to the page (when the page
-- subscribed to it at all).
function H.round(ctx, list, vf)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  local mark = px:count()
  for _, s in ipairs(list) do
    assert(d.clients[s.key]:publish(p.plant .. "/" .. s.key .. "/temp", H.json(s, s[vf]), { qos = 1 }))
  end
  assert(d.decoy:publish(p.decoy_plant .. "/" .. p.decoy.key .. "/temp", H.json(p.decoy, p.decoy.v1), { qos = 1 }))
  for _, s in ipairs(list) do
    local topic = p.plant .. "/" .. s.key .. "/temp"
    if not px:wait(function(ev) return H.delivered(ev, topic) end, DELIVER_WAIT, mark + 1) then break end
  end
end

-- The page's SUBSCRIBEs after trace index `from` (its CONNECT): the
-- first, then any that follows within SUB_MORE s of the last SUBACK.
function H.subscribes(ctx, from)
  local px = ctx.proxy
  local is_sub = { kind = "packet", type = "SUBSCRIBE", dir = "up" }
  local first = px:wait(is_sub, SUB_WAIT, from)
  if not first then return nil end
  local last = first
  while true do
    px:wait({ kind = "packet", type = "SUBACK", dir = "down" }, SUB_WAIT, last.i)
    local more = px:wait(is_sub, SUB_MORE, last.i + 1)
    if not more then break end
    last = more
  end
  return first
end

---------------------------------------------------------------- the run

-- The submission's files, copied into a private folder the kit serves.
function H.copy_site(ctx, from, to, depth)
  assert(kit.mkdir(to))
  for _, name in ipairs(kit.listdir(from) or {}) do
    if name:sub(1, 1) ~= "." then
      local src, dst = from .. "/" .. name, to .. "/" .. name
      if kit.is_dir(src) then
        if depth < 3 then H.copy_site(ctx, src, dst, depth + 1) end
      else
        kit.copy_file(src, dst, 420)
      end
    end
  end
end

-- Act 1: the plant as the page finds it.
function H.act_plant(ctx)
  local d, p = ctx.data, ctx.p
  ctx:status({ es = "preparando los sensores de %s…", en = "setting up the sensors of %s…" }, p.plant)
  d.watch = assert(ctx:client { id = "mqlab-watch-" .. p.hex, clean = true })
  assert(d.watch:subscribe(p.plant .. "/+/+/estado", 1))
  for _, s in ipairs(p.sensors) do d.clients[s.key] = H.sensor(ctx, p.plant, s) end
  d.decoy = H.sensor(ctx, p.decoy_plant, p.decoy)
  -- The dead one: its link drops, the broker publishes its will.
  local dead = H.role(p, "dead")
  d.clients[dead.key]:kill()
  d.clients[dead.key] = nil
  local topic = p.plant .. "/" .. dead.key .. "/estado"
  ctx:wait_for(function()
    for _, m in ipairs(d.watch:drain()) do
      if m.topic == topic and m.payload == "offline" then return true end
    end
  end, 3)
end

-- Act 2: the page opens, connects, subscribes.
function H.act_open(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  ctx:status({ es = "abriendo tu página en Chromium…", en = "opening your page in Chromium…" })
  d.url = H.page_url(d.srv, p, px:ws_port())
  local ok, err = d.br:navigate(d.url, OPEN_WAIT)
  if not ok then d.open_err = err end
  d.connect = px:wait({ kind = "packet", type = "CONNECT", dir = "up" }, CONNECT_WAIT)
  if not d.connect then return end
  ctx:status({ es = "esperando el SUBSCRIBE de tu página…", en = "waiting for your page's SUBSCRIBE…" })
  d.sub1 = H.subscribes(ctx, d.connect.i)
end

function H.page_url(srv, p, ws_port)
  return srv:url(string.format("/dashboard.html?url=ws://127.0.0.1:%d/mqtt&plant=%s&client_id=%s", ws_port, p.plant, p.client_id))
end

-- Act 3: two readings per live sensor.
function H.act_readings(ctx)
  local d, p = ctx.data, ctx.p
  local live = {}
  for _, s in ipairs(p.sensors) do if d.clients[s.key] then live[#live + 1] = s end end
  ctx:status({ es = "publicando dos lecturas por sensor…", en = "publishing two readings per sensor…" })
  H.round(ctx, live, "v1")
  H.round(ctx, live, "v2")
  d.dom1, d.dom1_err = H.dom_until(ctx, function(dom)
    for _, s in ipairs(live) do
      local el = dom[s.key]
      if not el or el.value ~= s.v2 then return false end
    end
    local dead = dom[H.role(p, "dead").key]
    return dead and dead.state == "offline"
  end, DOM_WAIT)
end

-- Act 4: a sensor dies while the page watches.
function H.act_kill(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  local victim = H.role(p, "victim")
  local topic = p.plant .. "/" .. victim.key .. "/estado"
  ctx:status({ es = "cortando el enlace de %s…", en = "cutting %s's link…" }, victim.key)
  local mark = px:count()
  d.clients[victim.key]:kill()
  d.clients[victim.key] = nil
  d.will_down = px:wait(function(ev) return H.delivered(ev, topic) and ev.payload == "offline" end, DELIVER_WAIT, mark + 1)
  d.dom2, d.dom2_err = H.dom_until(ctx, function(dom)
    return dom[victim.key] and dom[victim.key].state == "offline"
  end, DOM_WAIT)
end

-- Act 5: the broker restarts; the page must come back by itself.
function H.act_restart(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  ctx:status({ es = "reiniciando el broker: esperando que tu página vuelva…", en = "restarting the broker: waiting for your page to come back…" })
  -- The sensors leave cleanly (no will), as the broker is going away.
  for key, c in pairs(d.clients) do c:disconnect(); d.clients[key] = nil end
  d.decoy:disconnect()
  d.watch:close()
  local mark = px:count()
  local t0 = kit.now()
  local ok, err = ctx.broker:restart()
  if not ok then d.restart_err = err or "?"; return end
  d.closed_at_restart = px:wait({ kind = "close" }, 2, mark + 1)
  d.connect2 = px:wait({ kind = "packet", type = "CONNECT", dir = "up" }, BACK_WAIT, mark + 1)
  if not d.connect2 then return end
  d.back_s = kit.now() - t0
  d.sub2 = H.subscribes(ctx, d.connect2.i)
  -- The sensors come back: online again, then a new reading each.
  d.gen = d.gen + 1
  local live = {}
  for _, s in ipairs(p.sensors) do
    if s.role == "live" then
      d.clients[s.key] = H.sensor(ctx, p.plant, s)
      live[#live + 1] = s
    end
  end
  d.decoy = H.sensor(ctx, p.decoy_plant, p.decoy)
  H.round(ctx, live, "v3")
  d.dom3, d.dom3_err = H.dom_until(ctx, function(dom)
    for _, s in ipairs(live) do
      if not dom[s.key] or dom[s.key].value ~= s.v3 then return false end
    end
    return true
  end, DOM_WAIT)
end

-- Start the HTTP server on a private copy of `dir` and Chromium, or
-- nil, message when the machine lacks Chromium or mqtt.js.
function H.web(ctx, dir)
  local browser = require "mqlab.browser"
  local http = require "mqlab.http"
  local d = ctx.data
  local js, jerr = browser.mqttjs()
  if not js then return nil, jerr end
  d.srv = ctx:own(assert(http.start { root = dir, port = 0 }))
  d.srv:route_file("/vendor/mqtt.min.js", js)
  return true
end

local function setup(ctx)
  local d, p, px = ctx.data, ctx.p, ctx.proxy
  d.clients, d.gen = {}, 1
  local site = ctx.workdir .. "/site"
  H.copy_site(ctx, ctx.dir, site, 1)
  local ok, err = H.web(ctx, site)
  if not ok then return nil, "missing", err end
  local br, berr, code = require("mqlab.browser").start { timeout = 30 }
  if not br then return nil, code == "missing" and "missing" or "error", berr end
  d.br = ctx:own(br)
  H.act_plant(ctx)
  H.act_open(ctx)
  if d.connect then
    H.act_readings(ctx)
    H.act_kill(ctx)
    H.act_restart(ctx)
  end
  d.events = px:events()
  d.requests = d.srv:requests()
  d.console = br:console()
  br:close()
end

---------------------------------------------------------------- guided mode

function H.guide_connect(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "up" or ev.type ~= "CONNECT" then return nil end
  if ev.transport ~= "ws" then
    return false, { es = "ese CONNECT llegó por el puerto MQTT normal, no por WebSockets: tu página debe usar la URL ws://",
                    en = "that CONNECT came on the plain MQTT port, not over WebSockets: your page must use the ws:// URL" }
  end
  if ev.client_id ~= p.client_id then
    return false, { es = string.format("tu página se conectó con el client id «%s»; usa el del parámetro client_id, %s", ev.client_id or "", p.client_id),
                    en = string.format("your page connected with client id '%s'; use the one in the client_id parameter, %s", ev.client_id or "", p.client_id) }
  end
  return true, { es = "CONNECT por WebSockets con tu client id: tu página habla MQTT con el mismo broker",
                 en = "CONNECT over WebSockets with your client id: your page speaks MQTT to the same broker" }
end

function H.guide_subscribe(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "up" or ev.type ~= "SUBSCRIBE" then return nil end
  for _, f in ipairs(ev.filters or {}) do
    if not H.inside(f.filter, p.plant) then
      return false, { es = string.format("te suscribiste a «%s», fuera de tu planta; empieza por %s/", f.filter, p.plant),
                      en = string.format("you subscribed to '%s', outside your plant; start with %s/", f.filter, p.plant) }
    end
    if f.qos ~= 1 then
      return false, { es = string.format("tu SUBSCRIBE a «%s» pidió QoS %d; este paso pide 1 ({ qos: 1 })", f.filter, f.qos or 0),
                      en = string.format("your SUBSCRIBE to '%s' asked for QoS %d; this step needs 1 ({ qos: 1 })", f.filter, f.qos or 0) }
    end
  end
  local names = {}
  for _, f in ipairs(ev.filters or {}) do names[#names + 1] = f.filter end
  return true, { es = "SUBSCRIBE con QoS 1 a " .. table.concat(names, ", "), en = "SUBSCRIBE at QoS 1 to " .. table.concat(names, ", ") }
end

function H.guide_readings(ctx)
  local d, p = ctx.data, ctx.p
  d.clients, d.gen = d.clients or {}, (d.gen or 0) + 1
  for _, s in ipairs(p.sensors) do
    if not d.clients[s.key] then d.clients[s.key] = H.sensor(ctx, p.plant, s) end
    assert(d.clients[s.key]:publish(p.plant .. "/" .. s.key .. "/temp", H.json(s, s.v1), { qos = 1 }))
  end
  return { es = "Publicado: una lectura por sensor.", en = "Published: one reading per sensor." }
end

function H.guide_delivered(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "down" or ev.type ~= "PUBLISH" then return nil end
  if (ev.topic or ""):sub(-5) == "/temp" and ev.topic:sub(1, #p.plant) == p.plant then
    return true, { es = "el broker empujó las lecturas a tu página por su conexión WebSocket, sin que preguntara",
                   en = "the broker pushed the readings to your page over its WebSocket connection, without being asked" }
  end
end

function H.guide_kill(ctx)
  local d, p = ctx.data, ctx.p
  local s = p.sensors[1]
  d.clients = d.clients or {}
  d.gen = (d.gen or 0) + 1
  if not d.clients[s.key] then d.clients[s.key] = H.sensor(ctx, p.plant, s) end
  d.clients[s.key]:kill()
  d.clients[s.key] = nil
  return { es = "Cortado. El broker publica ahora su testamento.", en = "Cut. The broker now publishes its will." }
end

function H.guide_will(ev, ctx)
  local p = ctx.p
  if ev.kind ~= "packet" or ev.dir ~= "down" or ev.type ~= "PUBLISH" then return nil end
  if ev.topic == p.state_topic and ev.payload == "offline" then
    return true, { es = "el «offline» del testamento llegó a tu página: mira que lo marque offline",
                   en = "the will's 'offline' reached your page: check that it marks the sensor offline" }
  end
end

-- The guide serves the student's own folder (the lab's in the
-- workspace, or the current one) with the kit's mqtt.js; only a folder
-- with a dashboard.html, not whatever folder it was started in.
local function guide_start(ctx)
  local p = ctx.p
  p.site = ctx.dir or "."
  p.page_url = ctx:text({ es = "(no hay dashboard.html en %s: ejecuta mqlab start 11 en la carpeta del laboratorio)",
                          en = "(there is no dashboard.html in %s: run mqlab start 11 in the lab's folder)" }, p.site)
  if not ctx.dir or not kit.exists(ctx.dir .. "/dashboard.html") then return true end
  local ok, err = H.web(ctx, ctx.dir)
  if not ok then return nil, err end
  p.site = ctx.dir
  p.page_url = H.page_url(ctx.data.srv, p, p.ws_port)
  return true
end

return lab {
  id = "11-dashboard",
  title = { es = "Un panel en vivo en el navegador (mqtt.js)", en = "A live dashboard in the browser (mqtt.js)" },
  submission = { files = { "dashboard.html" } },
  broker = "persistence",
  proxy = true,
  websocket = true,
  setup_timeout = 90,
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,
  guide_start = guide_start,

  hints = {
    { es = "Lee los parámetros de la URL: const q = new URLSearchParams(location.search); q.get(\"url\"), q.get(\"plant\"), q.get(\"client_id\"). Luego mqtt.connect(q.get(\"url\"), { clientId: q.get(\"client_id\") }).",
      en = "Read the URL's parameters: const q = new URLSearchParams(location.search); q.get(\"url\"), q.get(\"plant\"), q.get(\"client_id\"). Then mqtt.connect(q.get(\"url\"), { clientId: q.get(\"client_id\") })." },
    { es = "Suscríbete dentro de client.on(\"connect\", ...), que se llama también tras cada reconexión: client.subscribe(plant + \"/#\", { qos: 1 }). Nunca «#» a secas.",
      en = "Subscribe inside client.on(\"connect\", ...), which is also called after every reconnection: client.subscribe(plant + \"/#\", { qos: 1 }). Never a bare '#'." },
    { es = "En client.on(\"message\", (topic, payload) => ...), quita el prefijo de la planta: lo que queda es zona/sensor/temp o zona/sensor/estado. Busca el elemento con document.querySelector(`[data-sensor=\"${clave}\"]`) y créalo si no existe.",
      en = "In client.on(\"message\", (topic, payload) => ...), strip the plant's prefix: what is left is zone/sensor/temp or zone/sensor/estado. Find the element with document.querySelector(`[data-sensor=\"${key}\"]`) and create it when missing." },
    { es = "Para temp: const v = JSON.parse(payload.toString()).v; el.dataset.value = String(v); y el texto también. Para estado: el.dataset.state = payload.toString(). Un sensor muerto antes de abrir la página solo envía su estado retenido: créalo también entonces.",
      en = "For temp: const v = JSON.parse(payload.toString()).v; el.dataset.value = String(v); and the text too. For estado: el.dataset.state = payload.toString(). A sensor dead before the page opened only sends its retained state: create it then too." },
  },
}
