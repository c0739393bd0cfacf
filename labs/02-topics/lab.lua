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

local hints = {
  { es = "Empieza por D1: {{company}}/v1/planta/zona/dispositivo/medida. Los demás datos siguen la misma forma.",
    en = "Start with D1: {{company}}/v1/plant/zone/device/measure. The other data points follow the same shape." },
  { es = "Para los comandos añade un nivel cmd y nunca lo uses en los datos; por ejemplo, al final: .../dispositivo/cmd.",
    en = "For commands add a cmd level and never use it in data; for example at the end: .../device/cmd." },
  { es = "Una respuesta puede llevar varios filtros separados por espacios, pero casi siempre basta uno con + bien colocado.",
    en = "An answer may hold several filters separated by spaces, but one filter with a well-placed + is almost always enough." },
}

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
}
