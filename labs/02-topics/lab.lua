-- Lab 02: topic design for a real plant.
--
-- Each student gets a plant of their own (company, plants, zones,
-- devices, measures, commands) and a list of data points. They write one
-- topic per point (topics.txt) and answers to four subscription questions
-- (subscriptions.txt). The course's rules are checked one by one on the
-- topics; the answers are checked on a real broker: the kit subscribes
-- with them and publishes every one of the student's topics. There is no
-- program.
--
-- The rule checks judge the topics that are there (a missing line costs
-- "topics-file", not every rule); a subscription answer is judged only
-- against the points its question asks about, so each of those needs a
-- valid topic, or there is nothing the answer could be right about.

local topics = require "mqlab.topics"
local probe = require "mqlab.probe"

-- Helpers, defined below the plan; the checks call them at grading time.
local H = {}

local SUB_KEYS = { "S1", "S2", "S3", "S4" }

---------------------------------------------------------------- parameters

local function params(rng)
  local company = rng:pick({ "acme", "induval", "metalsur", "agrotec", "hidronor" })
  local plants = rng:sample({ "planta-1", "planta-2", "planta-3", "planta-4" }, 2)
  local zones = rng:sample({ "norte", "sur", "este", "oeste" }, 4)
  local nums = rng:sample({ "03", "07", "11", "12", "14", "18", "21", "22", "25", "31" }, 4)
  local sa, sb, sc = "sensor-" .. nums[1], "sensor-" .. nums[2], "sensor-" .. nums[3]
  local valve = "valvula-" .. nums[4]
  local m2 = rng:pick({ "humedad", "ruido-db" })
  local m4 = rng:pick({ "presion", "caudal" })
  local P1, P2 = plants[1], plants[2]
  local z1, z2, z3, z4 = zones[1], zones[2], zones[3], zones[4]
  local cmd_s = rng:pick({ "reinicio", "calibrar" })
  local cmd_v = rng:pick({ "consigna", "apertura" })

  -- The data points, in the order the instructions list them.
  local points = {
    { key = "D1", plant = P1, zone = z1, device = sa, what = "temp", kind = "data" },
    { key = "D2", plant = P1, zone = z1, device = sa, what = m2, kind = "data" },
    { key = "D3", plant = P1, zone = z1, device = sa, what = "estado", kind = "data" },
    { key = "D4", plant = P1, zone = z2, device = sb, what = m4, kind = "data" },
    { key = "D5", plant = P2, zone = z3, device = sc, what = "temp", kind = "data" },
    { key = "D6", plant = P2, zone = z3, device = sc, what = "estado", kind = "data" },
    { key = "D7", plant = P2, zone = z4, device = valve, what = cmd_v, kind = "cmd" },
    { key = "D8", plant = P1, zone = z2, device = sb, what = cmd_s, kind = "cmd" },
  }
  -- What each subscription question asks for: the keys it must select.
  local questions = {
    S1 = { es = "todas las temperaturas, de todas las plantas", en = "every temperature, in every plant",
           keys = { D1 = true, D5 = true } },
    S2 = { es = "todos los datos (no comandos) del " .. sa, en = "all the data (not commands) of " .. sa,
           keys = { D1 = true, D2 = true, D3 = true } },
    S3 = { es = "el estado de todos los dispositivos", en = "the state of every device",
           keys = { D3 = true, D6 = true } },
    S4 = { es = "todos los comandos, de todas las plantas", en = "every command, in every plant",
           keys = { D7 = true, D8 = true } },
  }

  local desc_es, desc_en = {}, {}
  local label_es = { temp = "temperatura", humedad = "humedad", ["ruido-db"] = "ruido (dB)", presion = "presión",
                     caudal = "caudal", estado = "estado (online/offline)" }
  local label_en = { temp = "temperature", humedad = "humidity", ["ruido-db"] = "noise (dB)", presion = "pressure",
                     caudal = "flow", estado = "state (online/offline)" }
  for _, pt in ipairs(points) do
    if pt.kind == "data" then
      desc_es[#desc_es + 1] = string.format("- **%s**: %s (`%s`) del `%s`, %s, zona %s", pt.key, label_es[pt.what], pt.what, pt.device, pt.plant, pt.zone)
      desc_en[#desc_en + 1] = string.format("- **%s**: %s (`%s`) of `%s`, %s, zone %s", pt.key, label_en[pt.what], pt.what, pt.device, pt.plant, pt.zone)
    else
      desc_es[#desc_es + 1] = string.format("- **%s**: comando `%s` para el `%s`, %s, zona %s", pt.key, pt.what, pt.device, pt.plant, pt.zone)
      desc_en[#desc_en + 1] = string.format("- **%s**: command `%s` to `%s`, %s, zone %s", pt.key, pt.what, pt.device, pt.plant, pt.zone)
    end
  end
  local q_es, q_en = {}, {}
  for _, k in ipairs(SUB_KEYS) do
    q_es[#q_es + 1] = string.format("- **%s**: %s", k, questions[k].es)
    q_en[#q_en + 1] = string.format("- **%s**: %s", k, questions[k].en)
  end
  return {
    company = company, plants = plants, zones = zones, points = points, questions = questions,
    points_es = table.concat(desc_es, "\n"), points_en = table.concat(desc_en, "\n"),
    questions_es = table.concat(q_es, "\n"), questions_en = table.concat(q_en, "\n"),
    plant1 = P1, plant2 = P2,
  }
end

---------------------------------------------------------------- the checks, in the student's order

local checks = {
  -- topics.txt: one line per point, each point its own topic.
  check {
    id = "topics-file", points = 2,
    title = { es = "Un topic por punto de datos", en = "One topic per data point" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      if d.topics_missing then
        t:fail({ es = "no hay topics.txt en tu carpeta", en = "there is no topics.txt in your folder" })
      end
      local missing = {}
      for _, pt in ipairs(p.points) do
        if not d.topics[pt.key] then missing[#missing + 1] = pt.key end
      end
      t:expect(#missing == 0, { es = "faltan los puntos %s", en = "points %s have no topic" }, table.concat(missing, ", "))
      t:expect(#d.dups == 0, { es = "%s aparece más de una vez", en = "%s appears more than once" }, table.concat(d.dups, ", "))
      t:expect(#d.unknown == 0, { es = "líneas que no son un punto de la lista: %s", en = "lines that are not a point of the list: %s" },
               table.concat(d.unknown, "; "))
      t:expect(#d.multi == 0, { es = "%s: un punto, un topic (sin espacios)", en = "%s: one point, one topic (no spaces)" },
               table.concat(d.multi, ", "))
      local by_topic = {}
      for _, pt in ipairs(p.points) do
        local tp = d.topics[pt.key]
        if tp then
          if by_topic[tp] then
            t:expect(false, { es = "%s y %s comparten el topic %s", en = "%s and %s share the topic %s" }, by_topic[tp], pt.key, tp)
          end
          by_topic[tp] = pt.key
        end
      end
      t:pass({ es = "%d puntos, %d topics distintos", en = "%d points, %d distinct topics" }, #p.points, #p.points)
    end,
  },

  -- Rule 2.
  check {
    id = "lowercase-ascii", points = 1,
    title = { es = "Minúsculas y sin acentos", en = "Lower case, no accents" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic)
        if H.lint_has(topic, { "uppercase" }) then return { { es = "tiene mayúsculas", en = "has upper case letters" } } end
        if H.lint_has(topic, { "non-ascii" }) then return { { es = "tiene acentos u otros caracteres no ASCII", en = "has accents or other non-ASCII characters" } } end
      end, {
        advice = { es = "usa solo minúsculas ASCII: los topics distinguen mayúsculas y un acento rompe filtros y scripts",
                   en = "use lower case ASCII only: topics are case-sensitive and an accent breaks filters and scripts" },
        ok = { es = "todos en minúsculas ASCII", en = "all lower case ASCII" },
      })
    end,
  },

  -- Rule 3.
  check {
    id = "no-odd-signs", points = 1,
    title = { es = "Sin espacios ni signos raros", en = "No spaces or odd signs" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic)
        if H.lint_has(topic, { "space" }) then return { { es = "tiene espacios", en = "has spaces" } } end
        if H.lint_has(topic, { "odd-char", "dollar" }) then return { { es = "tiene signos fuera de a-z 0-9 - _", en = "has signs outside a-z 0-9 - _" } } end
        if H.lint_has(topic, { "empty-level" }) then return { { es = "tiene un nivel vacío (// o / al principio o al final)", en = "has an empty level (// or a leading or trailing /)" } } end
      end, {
        advice = { es = "usa guiones: planta-3/sensor-01", en = "use dashes: planta-3/sensor-01" },
        ok = { es = "solo a-z, 0-9, - y _", en = "only a-z, 0-9, - and _" },
      })
    end,
  },

  -- Rule 4.
  check {
    id = "no-wildcards", points = 1,
    title = { es = "Nunca + ni # en un nombre", en = "Never + or # in a name" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic)
        if H.lint_has(topic, { "wildcard" }) then
          return { { es = "lleva + o #, que son comodines de suscripción: nadie podrá filtrarlo", en = "has + or #, which are subscription wildcards: nobody can filter it" } }
        end
      end, {
        advice = { es = "escribe temp-max, no temp+max", en = "write temp-max, not temp+max" },
        ok = { es = "ningún comodín en los nombres", en = "no wildcard in the names" },
      })
    end,
  },

  -- Rule 6.
  check {
    id = "versioned-root", points = 1,
    title = { es = "Raíz versionada (empresa/v1/...)", en = "Versioned root (company/v1/...)" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic, levels, p)
        if H.norm(levels[1] or "") ~= p.company then
          return { { es = "el primer nivel debe ser la empresa, %s", en = "the first level must be the company, %s" }, p.company }
        end
        if not (levels[2] or ""):match("^v%d+$") then
          return { { es = "el segundo nivel debe ser la versión (v1)", en = "the second level must be the version (v1)" } }
        end
      end, {
        advice = { es = "empieza por empresa/v1/: el día que cambie el diseño, v2 convivirá con v1",
                   en = "start with company/v1/: the day the design changes, v2 can live next to v1" },
        ok = { es = "todos empiezan por empresa/versión", en = "all start with company/version" },
      })
    end,
  },

  -- Rule 1: plant, zone and (for data) the measure are named as the list
  -- names them, in the order company, plant, zone, device, measure.
  check {
    id = "general-to-specific", points = 1,
    title = { es = "De lo general a lo específico", en = "General to specific" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic, levels, p)
        local plant, zone = H.find_level(levels, pt.plant), H.find_level(levels, pt.zone)
        if not plant then return { { es = "no nombra la planta %s", en = "does not name the plant %s" }, pt.plant } end
        if not zone then return { { es = "no nombra la zona %s", en = "does not name the zone %s" }, pt.zone } end
        local measure = pt.kind == "data" and H.find_level(levels, pt.what) or nil
        if pt.kind == "data" and not measure then
          return { { es = "no nombra su medida, %s (con el nombre que le da la lista)", en = "does not name its measure, %s (by the name the list gives it)" }, pt.what }
        end
        local order = { H.find_level(levels, p.company) or 1, plant, zone, H.find_level(levels, pt.device), measure }
        local last = 0
        for k = 1, 5 do
          local pos = order[k]
          if pos then
            if pos < last then
              return { { es = "el orden no va de general a específico (empresa, planta, zona, dispositivo, medida)",
                         en = "the order is not general to specific (company, plant, zone, device, measure)" } }
            end
            last = pos
          end
        end
      end, {
        advice = { es = "ordena empresa/v1/planta/zona/dispositivo/medida, como una dirección postal al revés, con los nombres de la lista",
                   en = "order company/v1/plant/zone/device/measure, like a postal address read backwards, with the names from the list" },
        ok = { es = "empresa → planta → zona → dispositivo → medida", en = "company → plant → zone → device → measure" },
      })
    end,
  },

  -- Rule 5.
  check {
    id = "commands-apart", points = 1,
    title = { es = "Comandos separados de los datos (cmd)", en = "Commands apart from data (cmd)" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic, levels)
        local has = H.find_level(levels, "cmd")
        if pt.kind == "cmd" and not has then
          return { { es = "es un comando y no tiene un nivel cmd", en = "is a command and has no cmd level" } }
        end
        if pt.kind == "data" and has then
          return { { es = "es un dato y tiene un nivel cmd", en = "is data and has a cmd level" } }
        end
      end, {
        advice = { es = "los comandos bajan al dispositivo y los datos suben: con un nivel cmd, las ACL y las suscripciones los separan",
                   en = "commands go down to the device and data comes up: with a cmd level, ACLs and subscriptions keep them apart" },
        ok = { es = "los comandos llevan cmd y los datos no", en = "commands have cmd and data does not" },
      })
    end,
  },

  -- "the device id is in the topic".
  check {
    id = "device-in-topic", points = 1,
    title = { es = "El id del dispositivo va en el topic", en = "The device id is in the topic" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic, levels)
        if not H.find_level(levels, pt.device) then
          return { { es = "no nombra al dispositivo %s", en = "does not name the device %s" }, pt.device }
        end
      end, {
        advice = { es = "con el id solo en el payload no puedes filtrar ni enrutar: todos escuchan todo",
                   en = "with the id only in the payload you cannot filter or route: everyone hears everything" },
        ok = { es = "cada topic nombra su dispositivo", en = "every topic names its device" },
      })
    end,
  },

  -- "4 to 6 levels".
  check {
    id = "levels-4-6", points = 1,
    title = { es = "Entre 4 y 6 niveles", en = "Between 4 and 6 levels" },
    run = function(t, ctx)
      H.per_topic(t, ctx, function(pt, topic, levels)
        if #levels < 4 or #levels > 6 then
          return { { es = "tiene %d niveles", en = "has %d levels" }, #levels }
        end
      end, {
        advice = { es = "cuanto más largo el topic, más frágil la jerarquía: no metas metadatos en él",
                   en = "the longer the topic, the more fragile the hierarchy: keep metadata out of it" },
        ok = { es = "todos tienen entre 4 y 6 niveles", en = "all have 4 to 6 levels" },
      })
    end,
  },

  -- "each level means the same thing in all your topics": plant, zone
  -- and device sit at one level in data and commands alike; the measure
  -- at one level in every data topic; cmd at one level in every command.
  check {
    id = "consistent-levels", points = 1,
    title = { es = "Cada nivel significa siempre lo mismo", en = "Each level always means the same" },
    run = function(t, ctx)
      H.need_topics(t, ctx)
      local where, bad = {}, false
      local names = { plant = { es = "la planta", en = "the plant" }, zone = { es = "la zona", en = "the zone" },
                      device = { es = "el dispositivo", en = "the device" }, measure = { es = "la medida", en = "the measure" },
                      cmd = { es = "el nivel cmd", en = "the cmd level" } }
      H.each_topic(ctx, function(pt, topic, levels)
        local roles = { plant = H.find_level(levels, pt.plant), zone = H.find_level(levels, pt.zone),
                        device = H.find_level(levels, pt.device) }
        if pt.kind == "data" then roles.measure = H.find_level(levels, pt.what)
        else roles.cmd = H.find_level(levels, "cmd") end
        for _, role in ipairs({ "plant", "zone", "device", "measure", "cmd" }) do
          local pos = roles[role]
          if pos then
            local w = where[role]
            if w and w.pos ~= pos and not w.told then
              w.told, bad = true, true
              t:say({ es = "%s: %s está en el nivel %d, pero en %s estaba en el %d",
                      en = "%s: %s is at level %d, but in %s it was at level %d" },
                    pt.key, ctx:text(names[role]), pos, w.key, w.pos)
            end
            where[role] = w or { pos = pos, key = pt.key }
          end
        end
      end)
      if bad then
        t:fail({ es = "un nivel debe tener un solo significado en todos tus topics, datos y comandos, o los filtros con + dejan de funcionar",
                 en = "a level must have one meaning in all your topics, data and commands alike, or filters with + stop working" })
      end
      t:pass({ es = "planta, zona, dispositivo, medida y cmd ocupan siempre el mismo nivel",
               en = "plant, zone, device, measure and cmd always sit at the same level" })
    end,
  },

  -- subscriptions.txt: each answer selects exactly the points asked for.
  check {
    id = "sub-1", points = 1,
    title = { es = "Suscripción S1 exacta", en = "Subscription S1 is exact" },
    run = function(t, ctx) H.sub(t, ctx, "S1") end,
  },
  check {
    id = "sub-2", points = 1,
    title = { es = "Suscripción S2 exacta", en = "Subscription S2 is exact" },
    run = function(t, ctx) H.sub(t, ctx, "S2") end,
  },
  check {
    id = "sub-3", points = 1,
    title = { es = "Suscripción S3 exacta", en = "Subscription S3 is exact" },
    run = function(t, ctx) H.sub(t, ctx, "S3") end,
  },
  check {
    id = "sub-4", points = 1,
    title = { es = "Suscripción S4 exacta", en = "Subscription S4 is exact" },
    run = function(t, ctx) H.sub(t, ctx, "S4") end,
  },

  -- "None may subscribe to # from the root".
  check {
    id = "no-root-hash", points = 1,
    title = { es = "Nadie se suscribe a # desde la raíz", en = "Nobody subscribes to # from the root" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      local any = false
      for _, k in ipairs(SUB_KEYS) do
        for _, f in ipairs(d.answers[k] or {}) do
          any = true
          if H.hash_from_root(f, p.company) then
            t:expect(false, { es = "%s se suscribe a %s: recibe toda la flota y un dashboard pequeño ahoga al broker",
                              en = "%s subscribes to %s: it gets the whole fleet, and a small dashboard floods the broker" }, k, f)
          end
        end
      end
      t:expect(any, { es = "subscriptions.txt no tiene respuestas", en = "subscriptions.txt has no answers" })
      t:pass({ es = "ningún filtro abarca la flota entera", en = "no filter covers the whole fleet" })
    end,
  },
}

-- Guided mode (mqlab start 02): a practice fleet of the kit's, not the
-- student's plant (that design is the lab's work), to try '+' and '#'
-- live: two subscribers, then the kit publishes the whole list.
local DEMO = {
  { topic = "demo/v1/planta-a/norte/sensor-01/temp", payload = "21.5" },
  { topic = "demo/v1/planta-a/norte/sensor-01/humedad", payload = "48" },
  { topic = "demo/v1/planta-a/norte/sensor-01/estado", payload = "online" },
  { topic = "demo/v1/planta-a/sur/bomba-02/caudal", payload = "3.2" },
  { topic = "demo/v1/planta-a/sur/bomba-02/cmd", payload = "parar" },
  { topic = "demo/v1/planta-b/este/sensor-03/temp", payload = "19.0" },
  { topic = "demo/v1/planta-b/este/sensor-03/estado", payload = "offline" },
  { topic = "demo/v1/planta-b/oeste/valvula-04/cmd", payload = "abrir" },
}
local DEMO_WANT = {
  temp = { ["demo/v1/planta-a/norte/sensor-01/temp"] = true, ["demo/v1/planta-b/este/sensor-03/temp"] = true },
  plant = { ["demo/v1/planta-b/este/sensor-03/temp"] = true, ["demo/v1/planta-b/este/sensor-03/estado"] = true,
            ["demo/v1/planta-b/oeste/valvula-04/cmd"] = true },
}
local DEMO_LIST = {}
for _, t in ipairs(DEMO) do DEMO_LIST[#DEMO_LIST + 1] = "    " .. t.topic end

local guide = {
  step {
    id = "plus",
    title = { es = "«+»: todas las temperaturas", en = "'+': every temperature" },
    text = {
      es = "Practicamos con una flota de ejemplo (no es tu planta). Estos son sus topics:\n\n"
        .. table.concat(DEMO_LIST, "\n") .. "\n\n"
        .. "En otra terminal, deja abierto un suscriptor cuyo filtro seleccione TODAS las temperaturas y nada más. «+» sustituye a un nivel entero:\n\n"
        .. "    mosquitto_sub -h {{host}} -p {{port}} -t 'FILTRO' -v",
      en = "We practise on an example fleet (not your plant). These are its topics:\n\n"
        .. table.concat(DEMO_LIST, "\n") .. "\n\n"
        .. "In another terminal, leave running a subscriber whose filter selects EVERY temperature and nothing else. '+' stands for one whole level:\n\n"
        .. "    mosquitto_sub -h {{host}} -p {{port}} -t 'FILTER' -v",
    },
    on = function(ev, ctx) return H.guide_filter(ev, ctx, "temp") end,
  },
  step {
    id = "hash",
    title = { es = "«#»: todo lo de planta-b", en = "'#': everything of planta-b" },
    text = {
      es = "Deja el primero abierto y, en una tercera terminal, otro suscriptor que reciba todo lo de planta-b (datos y comandos, de cualquier zona y dispositivo) y nada de planta-a. «#» va al final y cubre todos los niveles que quedan:\n\n"
        .. "    mosquitto_sub -h {{host}} -p {{port}} -t 'FILTRO' -v",
      en = "Leave the first one running and, in a third terminal, another subscriber that gets everything of planta-b (data and commands, any zone, any device) and nothing of planta-a. '#' goes last and covers every level that is left:\n\n"
        .. "    mosquitto_sub -h {{host}} -p {{port}} -t 'FILTER' -v",
    },
    on = function(ev, ctx) return H.guide_filter(ev, ctx, "plant") end,
  },
  step {
    id = "deliver",
    title = { es = "El broker reparte la lista entera", en = "The broker sorts out the whole list" },
    text = {
      es = "Ahora publico los 8 topics de la flota, uno por uno. Mira tus dos terminales: cada suscriptor imprime solo lo que su filtro selecciona.",
      en = "Now I publish the fleet's 8 topics, one by one. Watch your two terminals: each subscriber prints only what its filter selects.",
    },
    prompt = { es = "Pulsa Enter y publico la flota entera.", en = "Press Enter and I publish the whole fleet." },
    act = function(ctx) return H.guide_publish_all(ctx) end,
    on = function(ev, ctx) return H.guide_delivered(ev, ctx) end,
  },
}

local hints = {
  { es = "Empieza por D1: {{company}}/v1/planta/zona/dispositivo/medida. Los demás datos siguen la misma forma.",
    en = "Start with D1: {{company}}/v1/plant/zone/device/measure. The other data points follow the same shape." },
  { es = "Para los comandos añade un nivel cmd y nunca lo uses en los datos; por ejemplo, al final: .../dispositivo/cmd.",
    en = "For commands add a cmd level and never use it in data; for example at the end: .../device/cmd." },
  { es = "Una respuesta puede llevar varios filtros separados por espacios, pero casi siempre basta uno con + bien colocado.",
    en = "An answer may hold several filters separated by spaces, but one filter with a well-placed + is almost always enough." },
}

---------------------------------------------------------------- guided mode

-- Steps 1 and 2: a SUBSCRIBE whose filters select exactly DEMO_WANT[key]
-- among the practice fleet, judged before anything is published.
function H.guide_filter(ev, ctx, key)
  local d = ctx.data
  if ev.kind ~= "packet" or ev.dir ~= "up" or ev.type ~= "SUBSCRIBE" then return nil end
  local got, shown = {}, {}
  for _, f in ipairs(ev.filters or {}) do
    local filter = f.filter or ""
    shown[#shown + 1] = filter
    if filter == "#" then
      return false, { es = "te suscribiste a «#» desde la raíz: recibirías la flota entera, y eso nunca; este paso pide solo una parte",
                      en = "you subscribed to '#' from the root: you would get the whole fleet, never do that; this step asks for only a part" }
    end
    local ok, why = topics.valid_filter(filter)
    if not ok then
      return false, { es = string.format("«%s» no es un filtro válido (%s): «+» y «#» ocupan un nivel entero, y «#» solo al final", filter, tostring(why)),
                      en = string.format("'%s' is not a valid filter (%s): '+' and '#' take a whole level, and '#' only the last", filter, tostring(why)) }
    end
    for _, t in ipairs(DEMO) do
      if topics.matches(filter, t.topic) then got[t.topic] = true end
    end
  end
  local want = DEMO_WANT[key]
  local missing, extra = {}, {}
  for _, t in ipairs(DEMO) do
    if want[t.topic] and not got[t.topic] then missing[#missing + 1] = t.topic end
    if got[t.topic] and not want[t.topic] then extra[#extra + 1] = t.topic end
  end
  local fs = table.concat(shown, " ")
  if next(got) == nil then
    local lv = topics.levels(shown[1] or "")
    return false, { es = string.format("%s no selecciona ninguno de los 8 topics: tiene %d niveles y los topics 6, y «+» vale exactamente uno", fs, lv),
                    en = string.format("%s selects none of the 8 topics: it has %d levels and the topics have 6, and '+' stands for exactly one", fs, lv) }
  end
  if #extra > 0 then
    return false, { es = string.format("%s selecciona también lo que no se pide: %s", fs, table.concat(extra, ", ")),
                    en = string.format("%s also selects what is not asked for: %s", fs, table.concat(extra, ", ")) }
  end
  if #missing > 0 then
    return false, { es = string.format("%s deja fuera: %s", fs, table.concat(missing, ", ")),
                    en = string.format("%s leaves out: %s", fs, table.concat(missing, ", ")) }
  end
  d.guide_subs = d.guide_subs or {}
  d.guide_subs[key] = ev.conn
  local n = 0
  for _ in pairs(want) do n = n + 1 end
  return true, { es = string.format("%s selecciona justo los %d topics pedidos", fs, n),
                 en = string.format("%s selects just the %d topics asked for", fs, n) }
end

-- Step 3: the kit publishes every topic of the fleet (again when a
-- subscriber comes back), each connection's deliveries are collected.
function H.guide_publish_all(ctx)
  local d = ctx.data
  d.guide_got = { temp = {}, plant = {} }
  if not d.guide_pub then d.guide_pub = assert(ctx:client { id = "mqlab-guide-pub", clean = true }) end
  for _, t in ipairs(DEMO) do d.guide_pub:publish(t.topic, t.payload, { qos = 1 }) end
  return { es = "Publicados los 8 topics.", en = "Published the 8 topics." }
end

function H.guide_delivered(ev, ctx)
  local d = ctx.data
  local subs = d.guide_subs or {}
  local key_of = {}
  for k, c in pairs(subs) do key_of[c] = k end
  if ev.kind == "close" and key_of[ev.conn] then
    local k = key_of[ev.conn]
    return false, { es = string.format("tu suscriptor de %s se cerró: vuelve a abrirlo con el mismo filtro y publico otra vez", k == "temp" and "temperaturas" or "planta-b"),
                    en = string.format("your %s subscriber closed: open it again with the same filter and I publish again", k == "temp" and "temperature" or "planta-b") }
  end
  if ev.kind ~= "packet" then return nil end
  if ev.dir == "up" and ev.type == "SUBSCRIBE" then
    -- A subscriber that came back: judged as before, then the fleet again.
    for _, key in ipairs({ "temp", "plant" }) do
      local saved = d.guide_subs and d.guide_subs[key]
      local ok = H.guide_filter(ev, ctx, key)
      if ok then
        H.guide_publish_all(ctx)
        return false, { es = "suscriptor de vuelta: publico la flota otra vez", en = "subscriber back: I publish the fleet again" }
      end
      if d.guide_subs then d.guide_subs[key] = saved end
    end
    return nil
  end
  if ev.dir ~= "down" or ev.type ~= "PUBLISH" or not key_of[ev.conn] then return nil end
  local key = key_of[ev.conn]
  local got = d.guide_got[key]
  got[ev.topic or ""] = true
  for _, k in ipairs({ "temp", "plant" }) do
    for t in pairs(DEMO_WANT[k]) do
      if not d.guide_got[k][t] then return nil end
    end
  end
  return true, { es = "el broker entregó a cada suscriptor solo lo que su filtro selecciona: las 2 temperaturas a uno, los 3 topics de planta-b al otro (la temperatura de planta-b, a los dos)",
                 en = "the broker delivered to each subscriber only what its filter selects: the 2 temperatures to one, the 3 topics of planta-b to the other (planta-b's temperature, to both)" }
end

---------------------------------------------------------------- helpers

-- Compare levels the way a person reads them: case, accents and spaces
-- are other rules' business, not a reason to miss a plant name here.
function H.norm(s)
  s = s:lower()
  local map = { ["á"] = "a", ["é"] = "e", ["í"] = "i", ["ó"] = "o", ["ú"] = "u", ["ñ"] = "n", ["ü"] = "u",
                ["Á"] = "a", ["É"] = "e", ["Í"] = "i", ["Ó"] = "o", ["Ú"] = "u", ["Ñ"] = "n" }
  for k, v in pairs(map) do s = s:gsub(k, v) end
  return (s:gsub("[%s_]", "-"))
end

-- Position (1-based) of the level equal to name, or nil.
function H.find_level(levels, name)
  for i, l in ipairs(levels) do
    if H.norm(l) == name then return i end
  end
end

-- Parse topics.txt into { key = topic } plus problems found.
function H.parse_topics(text, points)
  local known = {}
  for _, pt in ipairs(points) do known[pt.key] = true end
  local map, dups, unknown, multi = {}, {}, {}, {}
  local n = 0
  for line in ((text or "") .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local s = line:gsub("\r$", ""):match("^%s*(.-)%s*$")
    if s ~= "" and not s:match("^//") then
      local key, rest = s:match("^(%S+)%s+(.+)$")
      key = (key or s):upper():gsub(":$", "")
      if not known[key] then
        unknown[#unknown + 1] = string.format("%d: %s", n, s)
      elseif map[key] then
        dups[#dups + 1] = key
      elseif not rest then
        -- a key with no topic: counted as missing by topics-file
      elseif rest:find("%s") and not rest:find("/") then
        multi[#multi + 1] = key
      else
        map[key] = rest
      end
    end
  end
  return map, dups, unknown, multi
end

-- With no topics at all there is nothing for a rule to judge.
function H.need_topics(t, ctx)
  if not next(ctx.data.topics) then
    t:fail({ es = "topics.txt no tiene ningún topic", en = "topics.txt has no topics" })
  end
end

function H.each_topic(ctx, fn)
  for _, pt in ipairs(ctx.p.points) do
    local t = ctx.data.topics[pt.key]
    if t then fn(pt, t, topics.split(t)) end
  end
end

-- A rule over every topic: test(pt, topic, levels, p) returns nil when
-- the topic is fine, or { {es=, en=}, args... } describing the problem.
-- texts: advice (on failure) and ok (on success).
function H.per_topic(t, ctx, test, texts)
  H.need_topics(t, ctx)
  local bad = 0
  H.each_topic(ctx, function(pt, topic, levels)
    local msg = test(pt, topic, levels, ctx.p)
    if msg then
      bad = bad + 1
      if bad <= 4 then
        t:say({ es = "%s %s: %s", en = "%s %s: %s" }, pt.key, topic, ctx:text(msg[1], table.unpack(msg, 2)))
      end
    end
  end)
  if bad > 4 then t:say({ es = "… y %d más", en = "… and %d more" }, bad - 4) end
  if bad > 0 then t:fail(texts.advice) end
  t:pass(texts.ok)
end

function H.lint_has(topic, names)
  for _, r in ipairs(topics.lint(topic)) do
    for _, n in ipairs(names) do
      if r == n then return true end
    end
  end
end

-- Is filter a "#" from the root: every level before the '#' is the
-- company, the version or '+'?
function H.hash_from_root(filter, company)
  local levels = topics.split(filter)
  if levels[#levels] ~= "#" then return false end
  for i = 1, #levels - 1 do
    local l = levels[i]
    local root = (i == 1 and H.norm(l) == company) or (i == 2 and l:match("^v%d+$")) or l == "+"
    if not root then return false end
  end
  return true
end

-- Grade one subscriptions.txt answer: the broker must deliver exactly
-- the topics of the points the question asks about, among all the
-- student's topics. Each asked-for point needs a valid topic: without
-- it, any filter would "select it exactly" and the answer would pass
-- on nothing.
function H.sub(t, ctx, key)
  H.need_topics(t, ctx)
  local d, p = ctx.data, ctx.p
  local q = p.questions[key]
  local filters = d.answers[key]
  if not filters or #filters == 0 then
    t:fail({ es = "subscriptions.txt no responde a %s (%s)", en = "subscriptions.txt has no answer for %s (%s)" },
           key, q[ctx.lang] or q.en)
  end
  local absent, invalid = {}, {}
  for _, pt in ipairs(p.points) do
    if q.keys[pt.key] then
      local topic = d.topics[pt.key]
      if not topic then absent[#absent + 1] = pt.key
      elseif not d.publishable[topic] then invalid[#invalid + 1] = string.format("%s %s", pt.key, topic) end
    end
  end
  if #absent > 0 then
    t:fail({ es = "%s pregunta por %s, y topics.txt no tiene topic para %s: sin él no hay nada que tu respuesta deba seleccionar",
             en = "%s asks for %s, and topics.txt has no topic for %s: without it there is nothing your answer has to select" },
           key, q[ctx.lang] or q.en, table.concat(absent, ", "))
  end
  if #invalid > 0 then
    t:fail({ es = "%s pregunta por %s, pero estos topics no son nombres de topic válidos y nadie puede publicar en ellos: %s",
             en = "%s asks for %s, but these are not valid topic names, so nothing can be published on them: %s" },
           key, q[ctx.lang] or q.en, table.concat(invalid, "; "))
  end
  local r = d.probe[key]
  if r.error then t:fail({ es = "filtro no válido %s", en = "invalid filter %s" }, r.error) end
  local want, order = {}, {}
  for _, pt in ipairs(p.points) do
    local topic = d.topics[pt.key]
    if topic and d.publishable[topic] then
      order[#order + 1] = topic
      if q.keys[pt.key] then want[topic] = true end
    end
  end
  local missing, extra = probe.diff(want, r.got, order)
  local shown = table.concat(filters, " ")
  if #missing > 0 then
    t:expect(false, { es = "con %s el broker NO entregó: %s", en = "with %s the broker did NOT deliver: %s" },
             shown, table.concat(missing, ", "))
  end
  if #extra > 0 then
    t:expect(false, { es = "con %s el broker entregó también (no pedidos): %s",
                      en = "with %s the broker also delivered (not asked for): %s" }, shown, table.concat(extra, ", "))
  end
  t:pass({ es = "con %s el broker entregó justo lo pedido (%s)", en = "with %s the broker delivered just what was asked (%s)" },
         shown, q[ctx.lang] or q.en)
end

---------------------------------------------------------------- setup

local function setup(ctx)
  local d, p = ctx.data, ctx.p
  local text = ctx:file("topics.txt")
  d.topics_missing = text == nil
  d.topics, d.dups, d.unknown, d.multi = H.parse_topics(text, p.points)
  -- Only valid topic names can be published; the rest are reported by
  -- the rule checks (and by the answers that ask for them).
  d.publishable = {}
  local list, seen = {}, {}
  for _, pt in ipairs(p.points) do
    local t = d.topics[pt.key]
    if t and topics.valid_name(t) and not seen[t] then
      seen[t] = true
      d.publishable[t] = true
      list[#list + 1] = t
    end
  end
  d.answers = probe.parse_answers(ctx:file("subscriptions.txt"), SUB_KEYS)
  d.probe = probe.run(ctx, d.answers, list)
  for _, k in ipairs(SUB_KEYS) do d.probe[k] = d.probe[k] or { got = {} } end
end

return lab {
  id = "02-topics",
  title = { es = "Diseño de topics para una planta real", en = "Topic design for a real plant" },
  submission = { files = { "topics.txt", "subscriptions.txt" } },
  broker = "plain",
  params = params,
  setup = setup,
  checks = checks,
  hints = hints,
  guide = guide,
}
