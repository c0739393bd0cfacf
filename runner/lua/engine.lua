-- engine.lua: the lab engine's Lua half.
--
-- A lab file is run in a sandbox where `lab{}` and `check{}` validate
-- what it declares (errors point at the lab file's own line). The C
-- side (runner/lab.c) then drives a grading through four calls:
-- begin -> setup -> check(i) for each check -> finish. Everything a run
-- opens (broker, clients, programs, folders) is recorded in the run and
-- closed by finish, whatever happened before.

local kit = require "mqlab.kit"
local mqtt = require "mqlab.mqtt"
local programs = require "mqlab.programs"
local brokermod = require "mqlab.broker"
local proxymod = require "mqlab.proxy"
local text = require "mqlab.text"

local M = {}

-- Sentinel raised by t:fail() to end a check early; not an error.
local FAIL = setmetatable({}, { __tostring = function() return "check failed" end })

---------------------------------------------------------------- validation

local function is_text(v)
  if type(v) == "string" then return true end
  return type(v) == "table" and type(v.es) == "string" and type(v.en) == "string"
end

local function need(cond, level, fmt, ...)
  if not cond then error(string.format(fmt, ...), level + 1) end
end

-- lab{} is called as `return lab {...}`, a tail call: Lua no longer
-- knows the caller's line. So lab-level mistakes are raised as a table
-- naming the field, and load() finds that field's line in the source.
local function lab_need(cond, field, fmt, ...)
  if not cond then error({ lab_field = field, message = string.format(fmt, ...) }, 0) end
end

-- check{...}: validated where it is written, so a mistake names its line.
local function check(def)
  need(type(def) == "table", 2, "check{} expects a table")
  need(type(def.id) == "string" and def.id:match("^[%w%-_]+$"), 2,
       "check: 'id' must be a short name of letters, digits, '-' or '_'")
  local where = "check '" .. def.id .. "'"
  need(is_text(def.title), 2, "%s: 'title' must be {es=..., en=...}", where)
  need(type(def.points) == "number" and def.points >= 0, 2, "%s: 'points' must be a number >= 0", where)
  need(type(def.run) == "function", 2, "%s: 'run' must be a function(t, ctx)", where)
  need(def.timeout == nil or (type(def.timeout) == "number" and def.timeout > 0), 2,
       "%s: 'timeout' must be seconds > 0", where)
  if type(def.after) == "string" then def.after = { def.after } end
  need(def.after == nil or type(def.after) == "table", 2, "%s: 'after' must be a check id or a list of them", where)
  local info = debug.getinfo(2, "Sl")
  def._where = info and (info.short_src .. ":" .. info.currentline) or "?"
  def._kind = "check"
  return def
end

-- step{...}: one step of a lab's guided mode (mqlab start). The student
-- acts in another terminal; `on(ev, ctx)` is called with each new event
-- of the proxy and answers true when the step is met, or false (or nil)
-- and what it saw, for the student: "your SUBSCRIBE asked for QoS 0".
-- A fault step has `act(ctx)`, run when the student presses Enter (after
-- `prompt`), and may then wait with `on` for what follows. `poll(ctx)`,
-- called about every quarter second while the step waits, answers as
-- `on` does: for what no proxy event shows (a log, a quiet wire).
local function step(def)
  need(type(def) == "table", 2, "step{} expects a table")
  need(type(def.id) == "string" and def.id:match("^[%w%-_]+$"), 2,
       "step: 'id' must be a short name of letters, digits, '-' or '_'")
  local where = "step '" .. def.id .. "'"
  local function both(v) return type(v) == "table" and type(v.es) == "string" and type(v.en) == "string" end
  need(both(def.title), 2, "%s: 'title' must be {es=..., en=...}", where)
  need(both(def.text), 2, "%s: 'text' must be {es=..., en=...}", where)
  need(def.on == nil or type(def.on) == "function", 2, "%s: 'on' must be a function(ev, ctx)", where)
  need(def.act == nil or type(def.act) == "function", 2, "%s: 'act' must be a function(ctx)", where)
  need(def.poll == nil or type(def.poll) == "function", 2, "%s: 'poll' must be a function(ctx)", where)
  need(def.on or def.act or def.poll, 2, "%s: a step needs 'on' (what it waits for on the wire), 'poll' or 'act' (a fault the student starts)", where)
  need(def.prompt == nil or both(def.prompt), 2, "%s: 'prompt' must be {es=..., en=...}", where)
  need(def.done == nil or both(def.done), 2, "%s: 'done' must be {es=..., en=...}", where)
  local info = debug.getinfo(2, "Sl")
  def._where = info and (info.short_src .. ":" .. info.currentline) or "?"
  def._kind = "step"
  return def
end

local function lab(def)
  lab_need(type(def) == "table", nil, "lab{} expects a table")
  lab_need(type(def.id) == "string" and def.id:match("^%d%d%-[%w%-]+$"), "id",
       "lab: 'id' must look like '01-hello' (two digits, a dash, a name)")
  lab_need(is_text(def.title), "title", "lab '%s': 'title' must be {es=..., en=...}", def.id)
  -- The instructions live beside the lab file, in instructions.es.md
  -- and instructions.en.md; a lab may instead give them inline.
  local files = M._files or {}
  local es_md, en_md = files["instructions.es.md"], files["instructions.en.md"]
  if def.instructions == nil then
    lab_need(es_md and en_md, nil, "lab '%s': no instructions: write %s beside the lab file", def.id,
             not es_md and not en_md and "instructions.es.md and instructions.en.md"
             or (es_md and "instructions.en.md" or "instructions.es.md"))
    def.instructions = { es = es_md, en = en_md }
    def._instructions_file = { es = (M._dir or ".") .. "/instructions.es.md",
                               en = (M._dir or ".") .. "/instructions.en.md" }
  else
    lab_need(not es_md and not en_md, "instructions",
             "lab '%s': the instructions are both inline and in instructions.*.md: keep one", def.id)
    lab_need(is_text(def.instructions) or type(def.instructions) == "function", "instructions",
             "lab '%s': 'instructions' must be {es=..., en=...} or a function(p, lang)", def.id)
  end
  lab_need(def.params == nil or type(def.params) == "function", "params", "lab '%s': 'params' must be a function(rng, student)", def.id)
  lab_need(def.setup == nil or type(def.setup) == "function", "setup", "lab '%s': 'setup' must be a function(ctx)", def.id)
  lab_need(def.proxy == nil or type(def.proxy) == "boolean", "proxy", "lab '%s': 'proxy' must be true or false", def.id)
  lab_need(not def.proxy or def.broker, "proxy", "lab '%s': 'proxy = true' needs a 'broker' to stand in front of", def.id)
  lab_need(def.websocket == nil or type(def.websocket) == "boolean", "websocket",
       "lab '%s': 'websocket' must be true or false", def.id)
  lab_need(not def.websocket or def.proxy, "websocket", "lab '%s': 'websocket = true' needs 'proxy = true'", def.id)
  lab_need(def.guide_start == nil or type(def.guide_start) == "function", "guide_start",
       "lab '%s': 'guide_start' must be a function(ctx)", def.id)
  lab_need(def.tcp_broker == nil or type(def.tcp_broker) == "boolean", "tcp_broker",
       "lab '%s': 'tcp_broker' must be true or false", def.id)
  lab_need(type(def.checks) == "table" and #def.checks > 0, "checks", "lab '%s': 'checks' must list at least one check{}", def.id)
  lab_need(type(def.hints) == "table" and #def.hints > 0, "hints", "lab '%s': 'hints' must list at least one {es=..., en=...}", def.id)
  for i, h in ipairs(def.hints) do
    lab_need(is_text(h), "hints", "lab '%s': hint %d must be {es=..., en=...}", def.id, i)
  end
  local seen = {}
  for i, c in ipairs(def.checks) do
    lab_need(type(c) == "table" and c._kind == "check", "checks", "lab '%s': checks[%d] is not a check{}", def.id, i)
    lab_need(not seen[c.id], "checks", "lab '%s': two checks are called '%s' (%s)", def.id, c.id, c._where)
    for _, dep in ipairs(c.after or {}) do
      lab_need(seen[dep], "checks", "lab '%s': check '%s' (%s) comes after '%s', which is not an earlier check",
           def.id, c.id, c._where, tostring(dep))
    end
    seen[c.id] = true
  end
  if def.guide ~= nil then
    lab_need(type(def.guide) == "table" and #def.guide > 0, "guide", "lab '%s': 'guide' must list at least one step{}", def.id)
    local ids = {}
    for i, st in ipairs(def.guide) do
      lab_need(type(st) == "table" and st._kind == "step", "guide", "lab '%s': guide[%d] is not a step{}", def.id, i)
      lab_need(not ids[st.id], "guide", "lab '%s': two guide steps are called '%s' (%s)", def.id, st.id, st._where)
      ids[st.id] = true
    end
  end
  def.submission = def.submission or {}
  def.submission.programs = def.submission.programs or {}
  def.submission.files = def.submission.files or {}
  def._kind = "lab"
  return def
end

-- A shallow copy: a lab that assigns to string.format or to a kit
-- module's function changes its own copy, not the engine's.
local function copy_of(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Strings share one metatable; without this a lab could reach the real
-- string table through getmetatable("").__index and change it for all.
getmetatable("").__metatable = false

-- What lab files may use. No io, no os.execute, no load of binary
-- chunks, no debug: a lab acts on the world only through the kit, and
-- the kit's file functions reach only what the grading allows (the C
-- side keeps that list; see runner/policy.h).
local guard_handler = require("mqlab.host").guard_handler
local private = { ["mqlab.engine"] = true, ["mqlab.host"] = true }

local function sandbox()
  local env = {
    assert = assert, error = error, ipairs = ipairs, pairs = pairs, next = next,
    select = select, tonumber = tonumber, tostring = tostring, type = type,
    pcall = pcall,
    -- The handler is skipped for the kit's own stop (budget, Ctrl-C).
    xpcall = function(f, h, ...) return xpcall(f, guard_handler(h), ...) end, rawequal = rawequal, rawget = rawget,
    rawset = rawset, rawlen = rawlen, setmetatable = setmetatable,
    getmetatable = getmetatable,
    string = copy_of(string), table = copy_of(table), math = copy_of(math),
    utf8 = copy_of(utf8), coroutine = copy_of(coroutine),
    os = { time = os.time, clock = os.clock, date = os.date },
    lab = lab, check = check, step = step,
    -- print goes to stderr: stdout belongs to the verdict (--format json).
    print = function(...)
      local n, parts = select("#", ...), {}
      for i = 1, n do parts[i] = tostring((select(i, ...))) end
      io.stderr:write(table.concat(parts, "\t"), "\n")
    end,
  }
  local modules = {}
  env.require = function(name)
    if type(name) ~= "string" or not name:match("^mqlab%.[%w_]+$") or private[name] then
      error("labs may only require the kit's modules (mqlab.*), not '" .. tostring(name) .. "'", 2)
    end
    if not modules[name] then
      local m = require(name)
      modules[name] = type(m) == "table" and copy_of(m) or m
    end
    return modules[name]
  end
  env._G = env
  return env
end
M.sandbox = sandbox

-- The line of `field =` inside `return lab {`, else that line itself:
-- checks and helpers above the lab table have fields of the same names
-- (a check's `id`), so the search starts at the lab table.
local function field_line(code, field)
  local lines = {}
  for line in (code .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local lab_line
  for n, line in ipairs(lines) do
    if line:match("^%s*return%s+lab%s*{") or line:match("^%s*return%s+lab%s*$") then lab_line = n end
  end
  if not lab_line then
    for n, line in ipairs(lines) do
      if line:match("lab%s*{") then lab_line = n; break end
    end
  end
  if not lab_line then return 1 end
  if field then
    local depth = 0
    for n = lab_line, #lines do
      local line = lines[n]
      if depth <= 1 and line:match("^%s*" .. field .. "%s*=") then return n end
      local _, opens = line:gsub("{", "")
      local _, closes = line:gsub("}", "")
      depth = depth + opens - closes
      if n > lab_line and depth <= 0 then break end
    end
  end
  return lab_line
end

-- Load a lab from its source text. chunkname is "@path" so that errors
-- read "labs/01-hello/lab.lua:12: ...". bytecode, for the labs built into
-- the kit, is the same file compiled at build time (it keeps its debug
-- information, so file:line still hold); the text is still needed to
-- place a lab-level error on its line.
-- files: the texts beside the lab file that it may name instead of
-- writing them inline ({ ["instructions.es.md"] = ..., ... }).
function M.load(code, chunkname, bytecode, files)
  M._files = files
  M._dir = chunkname:sub(2):match("^(.*)/[^/]*$") or "."
  local fn, err
  if bytecode then fn, err = load(bytecode, chunkname, "b", sandbox())
  else fn, err = load(code, chunkname, "t", sandbox()) end
  if not fn then error(err, 0) end
  local ok, res = pcall(fn)
  M._files = nil
  if not ok then
    if type(res) == "table" and res.message then
      res = string.format("%s:%d: %s", chunkname:sub(2), field_line(code, res.lab_field), res.message)
    end
    error(res, 0)
  end
  if type(res) ~= "table" or res._kind ~= "lab" then
    error(chunkname:sub(2) .. ": the file must end with 'return lab { ... }'", 0)
  end
  res._source, res._file = code, chunkname:sub(2)
  return res
end

---------------------------------------------------------------- parameters

-- xorshift64* seeded with FNV-1a of "student/lab": the same student gets
-- the same plant every time, on every machine.
local function fnv1a(s)
  local h = -3750763034362895579   -- 0xcbf29ce484222325 as a signed integer
  for i = 1, #s do
    h = h ~ s:byte(i)
    h = h * 1099511628211
  end
  return h
end

local Rng = {}
Rng.__index = Rng

function M.rng(seedtext)
  local s = fnv1a(seedtext)
  if s == 0 then s = 88172645463325252 end
  return setmetatable({ s = s }, Rng)
end

function Rng:next()
  local x = self.s
  x = x ~ (x >> 12)
  x = x ~ (x << 25)
  x = x ~ (x >> 27)
  self.s = x
  return (x * 2685821657736338717) >> 11   -- 53 non-negative bits
end

-- An integer in [a, b].
function Rng:int(a, b)
  return a + self:next() % (b - a + 1)
end

function Rng:pick(list)
  return list[self:int(1, #list)]
end

-- A new list with the elements of list in a seeded order.
function Rng:shuffle(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  for i = #out, 2, -1 do
    local j = self:int(1, i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

-- n distinct elements of list.
function Rng:sample(list, n)
  local s = self:shuffle(list)
  local out = {}
  for i = 1, math.min(n, #s) do out[i] = s[i] end
  return out
end

function Rng:hex(n)
  local t = {}
  for i = 1, n do t[i] = string.format("%x", self:int(0, 15)) end
  return table.concat(t)
end

function M.params(labdef, student)
  if not labdef.params then return {} end
  local p = labdef.params(M.rng(student .. "/" .. labdef.id), student)
  if type(p) ~= "table" then error("lab '" .. labdef.id .. "': params() must return a table", 0) end
  return p
end

---------------------------------------------------------------- texts

function M.title(labdef, lang)
  return text.pick(labdef.title, lang)
end

-- What the kit itself fills in the texts, beside the lab's parameters:
-- {{python}}, the Python the kit runs .py programs with (the one that
-- imports paho here; MQLAB_PYTHON overrides), so that "{{python}}
-- sensor.py" in the instructions runs the same as a grading does.
local function with_kit_params(p)
  local q = {}
  for k, v in pairs(p) do q[k] = v end
  q.python = programs.python() or "python3"
  return q
end

function M.instructions(labdef, student, lang)
  local p = with_kit_params(M.params(labdef, student))
  local body = labdef.instructions
  if type(body) == "function" then body = body(p, lang) end
  local file = labdef._instructions_file
  if file then
    local l = (lang == "es" or lang == "en") and lang or "en"
    return text.fill(body[l], p, file[l], true)
  end
  return text.fill(text.pick(body, lang), p, labdef.id .. " instructions")
end

---------------------------------------------------------------- verify

-- Where a lab's texts fall short of two languages, for `mqlab verify`:
-- its title, every check's title and every hint must be {es=, en=},
-- and any literal table in the source that has one of es/en must have
-- the other (feedback written inline, t:fail{ en = ... }). A list of
-- "file:line: what".
local function scan_texts(code, file, out)
  local i, n, line = 1, #code, 1
  local stack = {}
  local function long_end(j)
    -- at '[', a long bracket: returns the index after its end, or nil
    local eqs = code:match("^%[(=*)%[", j)
    if not eqs then return nil end
    local close = "]" .. eqs .. "]"
    local k = code:find(close, j + #eqs + 2, true)
    return (k or n) + #close, code:sub(j, (k or n) + #close - 1)
  end
  while i <= n do
    local c = code:sub(i, i)
    if c == "\n" then line = line + 1; i = i + 1
    elseif c == "-" and code:sub(i, i + 1) == "--" then
      local e, body = long_end(i + 2)
      if e then
        local _, nl = body:gsub("\n", ""); line = line + nl; i = e
      else
        local k = code:find("\n", i, true) or n + 1
        i = k
      end
    elseif c == "\"" or c == "'" then
      local k = i + 1
      while k <= n do
        local ch = code:sub(k, k)
        if ch == "\\" then k = k + 2
        elseif ch == c or ch == "\n" then break
        else k = k + 1 end
      end
      i = k + 1
    elseif c == "[" and code:match("^%[=*%[", i) then
      local e, body = long_end(i)
      local _, nl = body:gsub("\n", ""); line = line + nl; i = e
    elseif c == "{" then
      stack[#stack + 1] = { line = line, keys = {} }; i = i + 1
    elseif c == "}" then
      local f = table.remove(stack)
      if f and (f.keys.es ~= nil) ~= (f.keys.en ~= nil) then
        out[#out + 1] = string.format("%s:%d: a text in %s only: add its %s", file, f.line,
                                      f.keys.es and "Spanish" or "English", f.keys.es and "'en'" or "'es'")
      end
      i = i + 1
    elseif c:match("[%a_]") then
      local word = code:match("^[%w_]+", i)
      local after = code:match("^%s*=[^=]", i + #word)
      if after and (word == "es" or word == "en") and stack[#stack] then stack[#stack].keys[word] = true end
      i = i + #word
    else
      i = i + 1
    end
  end
end

function M.text_problems(labdef)
  local out = {}
  local function both(v) return type(v) == "table" and type(v.es) == "string" and type(v.en) == "string" end
  if not both(labdef.title) then out[#out + 1] = labdef._file .. ": the lab's title needs es and en" end
  for _, c in ipairs(labdef.checks) do
    if not both(c.title) then out[#out + 1] = c._where .. ": check '" .. c.id .. "': its title needs es and en" end
  end
  for i, h in ipairs(labdef.hints) do
    if not both(h) then out[#out + 1] = labdef._file .. ": hint " .. i .. " needs es and en" end
  end
  for _, st in ipairs(labdef.guide or {}) do
    if not both(st.title) or not both(st.text) then
      out[#out + 1] = st._where .. ": guide step '" .. st.id .. "': its title and text need es and en"
    end
  end
  if type(labdef.instructions) == "table" and not both(labdef.instructions) then
    out[#out + 1] = labdef._file .. ": the instructions need es and en"
  end
  if labdef._source then scan_texts(labdef._source, labdef._file, out) end
  return out
end

function M.hint(labdef, i, student, lang)
  local p = with_kit_params(M.params(labdef, student))
  return text.fill(text.pick(labdef.hints[i], lang), p, labdef.id .. " hint " .. i)
end

function M.nhints(labdef) return #labdef.hints end
function M.nchecks(labdef) return #labdef.checks end

-- A short description of the lab for `list` and `show`.
function M.describe(labdef, lang)
  local progs, files = {}, {}
  for _, n in ipairs(labdef.submission.programs) do progs[#progs + 1] = n end
  for _, n in ipairs(labdef.submission.files) do files[#files + 1] = n end
  local max = 0
  for _, c in ipairs(labdef.checks) do max = max + c.points end
  return { id = labdef.id, title = M.title(labdef, lang), programs = progs, files = files,
           checks = #labdef.checks, max_points = max }
end

---------------------------------------------------------------- a run

local Ctx = {}
Ctx.__index = Ctx

-- Record something for finish() to close.
function Ctx:own(obj)
  self._owned[#self._owned + 1] = obj
  return obj
end

function Ctx:text(msg, ...)
  return text.format(msg, self.lang, ...)
end

-- Say what the grading is doing now ({ es = ..., en = ... }, with
-- string.format arguments): on a terminal, `mqlab check` shows it on its
-- live line until the next status or step. Nothing else sees it; a
-- grading without a listener ignores it.
function Ctx:status(msg, ...)
  local s = text.format(msg, self.lang, ...)
  if self._status then self._status(s) end
end

-- "once", "twice", "3 times".
function Ctx:times(n)
  return text.times(n, self.lang)
end

-- How a program ended, as a clause for feedback: "it exited with code 1
-- after 2.3 s", "the kit stopped it after 30 s", ...
function Ctx:how_ended(prog)
  if not prog then return self:text({ es = "no llegó a arrancar", en = "it never started" }) end
  if prog:running() then return self:text({ es = "sigue en marcha", en = "it is still running" }) end
  if prog:timed_out() then
    return self:text({ es = "el kit lo paró a los %.0f s", en = "the kit stopped it after %.0f s" }, prog:runtime())
  end
  local code, sig = prog:exit_code()
  if code then
    return self:text({ es = "salió con código %d a los %.1f s", en = "it exited with code %d after %.1f s" }, code, prog:runtime())
  end
  return self:text({ es = "terminó por la señal %s a los %.1f s", en = "it was ended by signal %s after %.1f s" },
                   tostring(sig), prog:runtime())
end

-- The end of a program's stderr, or "(empty)".
function Ctx:stderr_tail(prog, n)
  local err = prog and text.tail(prog:stderr(), n or 500) or ""
  return err ~= "" and err or self:text({ es = "(vacía)", en = "(empty)" })
end

-- Fail check t, saying why a program never showed up on the proxy:
-- it did not start (err), it is still running, the kit stopped it, or it
-- ended; with the end of its stderr. who is optional: { prog = ...,
-- err = ..., name = {es=, en=} } (default: ctx.data.prog and prog_err,
-- "program").
function Ctx:why_absent(t, who)
  who = who or { prog = self.data.prog, err = self.data.prog_err }
  local prog = who.prog
  if not prog then
    t:fail(who.err or { es = "tu programa no llegó a arrancar", en = "your program never started" })
  end
  local name = self:text(who.name or { es = "programa", en = "program" })
  if prog:running() then
    t:fail({ es = "tu %s lleva %.0f s en marcha y el proxy no ha visto ningún CONNECT. ¿Usa MQTT_HOST y MQTT_PORT? Su salida de error:\n%s",
             en = "your %s has been running for %.0f s and the proxy has seen no CONNECT. Does it use MQTT_HOST and MQTT_PORT? Its stderr:\n%s" },
           name, prog:runtime(), self:stderr_tail(prog))
  end
  if prog:timed_out() then
    t:fail({ es = "tu %s no llegó a conectarse a través del proxy y el kit lo paró a los %.0f s. Su salida de error:\n%s",
             en = "your %s never connected through the proxy, and the kit stopped it after %.0f s. Its stderr:\n%s" },
           name, prog:runtime(), self:stderr_tail(prog))
  end
  t:fail({ es = "el proxy no vio ningún CONNECT de tu %s (%s). ¿Usa MQTT_HOST y MQTT_PORT? Su salida de error:\n%s",
           en = "the proxy saw no CONNECT from your %s (%s). Does it use MQTT_HOST and MQTT_PORT? Its stderr:\n%s" },
         name, self:how_ended(prog), self:stderr_tail(prog))
end

-- The first proxy event from index `from` on that matches `match`,
-- waiting up to s seconds but no longer than prog runs (a program that
-- has left sends nothing more). px defaults to ctx.proxy.
function Ctx:wait_running(prog, match, s, from, px)
  px = px or self.proxy
  local t_end = kit.now() + s
  repeat
    local ev = px:wait(match, 0.1, from)
    if ev then return ev end
  until not (prog and prog:running()) or kit.now() >= t_end
  return px:wait(match, 0, from)
end

-- A file of the submission, or nil when it does not exist. Only plain
-- names: the lab reads the student's folder, nothing else. A symbolic
-- link that leads out of the folder (to another student's work, say)
-- counts as no file at all.
function Ctx:file(name)
  assert(type(name) == "string" and not name:find("/") and not name:find("^%."),
         "ctx:file takes a plain file name")
  local path = self.dir .. "/" .. name
  local inside, why = kit.exists(path)
  if not inside then return nil, why end
  return kit.read_file(path)
end

-- The environment LABS.md promises to every program, plus extra. With a
-- proxy, the program is sent through it: that is where the kit watches
-- the wire and breaks it.
function Ctx:env(extra)
  local p = self.p
  local port = self.proxy and self.proxy:port() or (self.broker and self.broker:port())
  local env = {
    MQTT_HOST = "127.0.0.1",
    MQTT_PORT = port and tostring(port) or nil,
    MQTT_CLIENT_ID = p.client_id,
    MQTT_TOPIC = p.topic,
    LAB_COUNT = p.count and tostring(p.count) or nil,
    LAB_INTERVAL_MS = p.interval_ms and tostring(p.interval_ms) or nil,
  }
  for k, v in pairs(extra or {}) do env[k] = v and tostring(v) or nil end
  return env
end

-- The forms a program may take, in the order the kit prefers them.
local FORMS = { ".py", ".lua", ".c", ".sh", "" }

-- The forms of program `name` in the submission (file names, in the
-- kit's order), and which of them are the lab's starter file unchanged.
function Ctx:program_forms(name)
  local listed = {}
  for _, f in ipairs(kit.listdir(self.copy) or {}) do listed[f] = true end
  local forms, starters = {}, {}
  for _, ext in ipairs(FORMS) do
    local f = name .. ext
    if listed[f] then
      forms[#forms + 1] = f
      local want = self.starters and self.starters[f]
      if want and self:file(f) == want then starters[#starters + 1] = f end
    end
  end
  return forms, starters
end

-- Start the student's program `name`, in the grading's private copy of
-- the submission (made once, kept through every start and restart). The
-- program may also write ctx.scratch, and read the files the lab hands
-- it: MQTT_CAFILE, and whatever opts.ro lists. Returns prog, or nil,
-- message (already in the student's language), code.
--
-- With several forms of it (hello.py and hello.sh), the kit's order
-- decides, except that the lab's starter file, unchanged, is taken only
-- when nothing else is there: a hello.sh written next to the untouched
-- hello.py runs. The verdict says which one ran and which were ignored.
function Ctx:program(name, opts)
  opts = opts or {}
  if not self.copy then
    error("lab '" .. self.id .. "' starts the program '" .. tostring(name) ..
          "' but does not list any in submission.programs", 2)
  end
  local env = self:env(opts.env)
  local ro = {}
  for _, path in ipairs(opts.ro or {}) do ro[#ro + 1] = path end
  if env.MQTT_CAFILE then ro[#ro + 1] = env.MQTT_CAFILE end
  local forms, starters = self:program_forms(name)
  local prog, msg, code = programs.start {
    dir = self.copy, name = name, workdir = self.workdir,
    env = env, timeout = opts.timeout or 20,
    grace = opts.grace, link_sqlite = opts.link_sqlite,
    rw = { self.scratch }, ro = ro, avoid = starters,
  }
  if not prog then
    if code == "notfound" then
      msg = self:missing_program(name, msg)
    elseif code == "compile" then
      msg = self:text({ es = "%s.c no compila:\n%s", en = "%s.c does not compile:\n%s" }, name, msg)
    end
    return nil, msg, code
  end
  if #forms > 1 and not self._forms_said[name] then
    self._forms_said[name] = true
    local ran = prog:path():match("[^/]*$")
    local ignored, unchanged = {}, {}
    for _, f in ipairs(forms) do
      if f ~= ran then ignored[#ignored + 1] = f end
    end
    for _, f in ipairs(starters) do
      if f ~= ran then unchanged[#unchanged + 1] = f end
    end
    local why = #unchanged > 0
      and self:text({ es = " (%s sigue igual que el fichero de partida)", en = " (%s is still the starter file, unchanged)" },
                    table.concat(unchanged, ", "))
      or self:text({ es = " (el kit prueba .py, .lua, .c, .sh y luego un ejecutable, en ese orden)",
                     en = " (the kit tries .py, .lua, .c, .sh and then an executable, in that order)" })
    self._notes[#self._notes + 1] = self:text(
      #ignored == 1 and { es = "hay varias versiones de %s: se ejecutó %s y se ignoró %s%s",
                          en = "there are several versions of %s: %s ran, and %s was ignored%s" }
        or { es = "hay varias versiones de %s: se ejecutó %s y se ignoraron %s%s",
             en = "there are several versions of %s: %s ran, and %s were ignored%s" },
      name, ran, table.concat(ignored, ", "), why)
  end
  return self:own(prog)
end

-- Levenshtein distance between two short strings.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

-- Why the program `name` was not found, in the student's words, as one
-- sentence: the names the kit runs, and the file that looks like a
-- misnamed one (helo.py, Hello.py, hello_final.py, hello.PY), which
-- otherwise looks exactly like an empty folder.
function Ctx:missing_program(name, raw)
  local lname = name:lower()
  local guess, guess_rank, guess_ext
  for _, f in ipairs(kit.listdir(self.copy) or {}) do
    local base, ext = f:match("^(.-)(%.[^.]*)$")
    if not base or base == "" then base, ext = f, "" end
    local lext = ext:lower()
    local known = lext == "" or lext == ".py" or lext == ".lua" or lext == ".c" or lext == ".sh"
    if known and f ~= name then
      -- A near spelling of the base name (helo, Hello, helloo), or one
      -- that holds it (hello_final, my-hello), the nearest first.
      local lbase = base:lower()
      local d = distance(lbase, lname)
      local rank = d <= 2 and d or (lbase:find(lname, 1, true) and 3) or nil
      if rank and (not guess_rank or rank < guess_rank) then
        guess, guess_rank, guess_ext = f, rank, lext
      end
    end
  end
  local tried = string.format("%s.py, %s.c, %s.lua, %s.sh", name, name, name, name)
  if raw and raw:find("not executable", 1, true) then
    return self:text({ es = "%s está en %s, pero no es ejecutable: dale permiso con chmod +x %s, o escribe %s.py, %s.c, %s.lua o %s.sh",
                       en = "%s is in %s, but it is not executable: make it so with chmod +x %s, or write %s.py, %s.c, %s.lua or %s.sh" },
                     name, self.dir, name, name, name, name, name)
  end
  if guess then
    return self:text({ es = "no hay ningún %s en %s, pero sí %s: ¿querías decir %s? (el kit ejecuta %s o un ejecutable %s)",
                       en = "there is no %s in %s, but there is %s: did you mean %s? (the kit runs %s or an executable %s)" },
                     name, self.dir, guess, name .. guess_ext, tried, name)
  end
  return self:text({ es = "no hay ningún programa %s en %s: escribe %s o un ejecutable %s",
                     en = "there is no program %s in %s: write %s or an executable %s" },
                   name, self.dir, tried, name)
end

-- A kit client connected to the lab's broker.
function Ctx:client(opts)
  opts = opts or {}
  local sock = self.broker:socket()
  if sock and not opts.port and not opts.host and not opts.unix then
    opts.unix = sock
  else
    opts.host = opts.host or "127.0.0.1"
    opts.port = opts.port or self.broker:port()
  end
  local c, msg, code = mqtt.connect(opts)
  if not c then return nil, msg, code end
  return self:own(c)
end

-- A fault proxy in front of the lab's broker (see mqlab.proxy). The
-- first one becomes ctx.proxy, the one ctx:env() sends programs to.
-- websocket = true adds a port for MQTT over WebSockets (px:ws_port(),
-- ws_port to ask for one), where a browser's mqtt.js connects.
function Ctx:proxy_start(opts)
  opts = opts or {}
  assert(self.broker, "ctx:proxy_start needs the lab's broker")
  local upstream, path = opts.upstream, nil
  if not upstream then
    path = self.broker:socket()
    if not path then upstream = self.broker:port() end
  end
  local px, msg, code = proxymod.start { upstream = upstream, upstream_path = path, port = opts.port,
                                         max_packet = opts.max_packet, websocket = opts.websocket,
                                         ws_port = opts.ws_port }
  if not px then return nil, msg, code end
  self:own(px)
  if not self.proxy then self.proxy = px end
  return px
end

-- The broker's log, parsed (see mqlab.brokerlog).
function Ctx:brokerlog()
  return require("mqlab.brokerlog").parse(self.broker:log())
end

function Ctx:sleep(s) kit.sleep(s) end

-- Wait for an event, not for a fixed time: call fn() until it returns
-- something true (which is returned) or s seconds pass (nil). The kit's
-- MQTT clients are pumped in between, so their messages keep arriving;
-- the check's deadline and Ctrl-C cut the wait as they cut any other.
function Ctx:wait_for(fn, s, step)
  local t_end = kit.now() + (s or 5)
  step = step or 0.02
  while true do
    local v = fn()
    if v then return v end
    local left = t_end - kit.now()
    if left <= 0 then return nil end
    local ok, err = mqtt.pump(math.min(step, left))
    if not ok and err then kit.sleep(math.min(step, left)) end
  end
end

local Check = {}
Check.__index = Check

function Check:say(msg, ...)
  self.lines[#self.lines + 1] = text.format(msg, self.lang, ...)
end

-- The success message; after an expect() failed it would contradict the
-- feedback already given, so it is dropped.
function Check:pass(msg, ...)
  if msg and not self.failed then self:say(msg, ...) end
end

function Check:fail(msg, ...)
  if msg then self:say(msg, ...) end
  self.failed = true
  error(FAIL, 0)
end

-- End the check as not run (shown as skipped, no points), saying why:
-- for a check that has nothing to judge because of what an earlier one
-- already reported (lab 01's F2..F4 when there is no filters.txt).
function Check:skip(msg, ...)
  if msg then self:say(msg, ...) end
  self.failed = true
  self.skipped = true
  error(FAIL, 0)
end

function Check:expect(cond, msg, ...)
  if not cond then
    if msg then self:say(msg, ...) end
    self.failed = true
  end
  return cond
end

-- opts (from the C side): dir (the submission, read-only), copy (its
-- private copy, where programs run; only when the lab has programs),
-- scratch (writable by every program), workdir (the lab's own private
-- folder), student, lang, status (a function(text), or nil).
function M.begin(labdef, opts)
  local ctx = setmetatable({
    lab = labdef, id = labdef.id, lang = opts.lang or "en", student = opts.student,
    dir = opts.dir, copy = opts.copy, scratch = opts.scratch, workdir = opts.workdir,
    results = {}, _owned = {}, data = {}, _status = opts.status, starters = opts.starters or {},
    _notes = {}, _forms_said = {},
  }, Ctx)
  ctx.p = M.params(labdef, opts.student)
  return ctx
end

-- Everything a lab needs before its checks: the private folder, the
-- broker, then the lab's own setup (which usually runs the program once
-- and keeps what it saw in ctx.data). Returns true, or nil, code,
-- message when the machine could not provide what the lab needs; a bug
-- in the lab raises.
function M.setup(ctx)
  local labdef = ctx.lab
  if labdef.broker then
    local name = labdef.broker
    -- Behind a proxy, the broker listens on a unix socket in its private
    -- folder: a program can reach it only through the proxy, where the kit
    -- sees every packet. tcp_broker = true keeps a TCP listener (lab 10's
    -- load tools need its port).
    local b, msg, code = brokermod.start { profile = name, unix = labdef.proxy and not labdef.tcp_broker }
    if code == "noprofile" then error("lab '" .. labdef.id .. "': " .. msg, 0) end
    -- Not the lab's fault nor the student's: tell the C side which it is
    -- ("missing" becomes exit code 3 with the install hint).
    if not b then return nil, code == "missing" and "missing" or "error", msg end
    ctx.broker = ctx:own(b)
    if labdef.proxy then
      local px, pmsg = ctx:proxy_start { websocket = labdef.websocket }
      if not px then return nil, "error", pmsg end
    end
  end
  if labdef.setup then
    -- setup may answer nil, "missing", message when the machine lacks
    -- something (no mosquitto): that is exit code 3, not the student's
    -- fault nor the lab's. Its time budget is armed by the C side.
    local ok, err, code, msg = pcall(labdef.setup, ctx)
    if not ok then error(err, 0) end
    if err == nil and (code == "missing" or code == "error") then return nil, code, msg end
  end
  return true
end

local function deps_failed(ctx, c)
  for _, dep in ipairs(c.after or {}) do
    local r = ctx.results[dep]
    if r and not r.passed then return dep, r end
  end
end

-- What the kit has to say about the submission itself (which form of a
-- program ran), put before the message of the next check to be reported.
function M.with_notes(ctx, res)
  if #ctx._notes > 0 then
    local notes = table.concat(ctx._notes, "\n")
    res.message = res.message ~= "" and (notes .. "\n" .. res.message) or notes
    ctx._notes = {}
  end
  return res
end

-- Run check i. Returns a plain table for the C side. The C side arms
-- the check's time budget around this call; once it is spent, every
-- instruction raises again, so a lab's own pcall cannot hold on, and the
-- C side asks M.timed_out for the verdict instead.
function M.check(ctx, i)
  local c = ctx.lab.checks[i]
  local res = { id = c.id, title = text.pick(c.title, ctx.lang), max_points = c.points,
                points = 0, passed = false, skipped = false, message = "" }
  ctx.results[c.id] = res
  local dep, depres = deps_failed(ctx, c)
  if dep then
    res.skipped = true
    res.message = ctx:text({ es = "no se evalúa: antes debe pasar «%s» (%s)",
                             en = "not run: \"%s\" (%s) has to pass first" }, depres.title, dep)
    return M.with_notes(ctx, res)
  end
  local t = setmetatable({ lines = {}, failed = false, lang = ctx.lang, p = ctx.p }, Check)
  ctx._check = t
  local ok, err = pcall(c.run, t, ctx)
  ctx._check = nil
  if not ok and err ~= FAIL then
    -- A bug in the lab, not the student's fault: say so plainly.
    local msg = tostring(err)
    t.failed = true
    res.lab_error = msg
    t:say({ es = "error interno del laboratorio: %s", en = "internal error in the lab: %s" }, msg)
  end
  res.passed = not t.failed
  res.skipped = t.skipped and true or false
  res.points = res.passed and c.points or 0
  res.message = table.concat(t.lines, "\n")
  return M.with_notes(ctx, res)
end

-- Check i did not finish within budget_s: what it said so far, and why
-- it failed.
function M.timed_out(ctx, i, budget_s)
  local c = ctx.lab.checks[i]
  local res = ctx.results[c.id] or { id = c.id, title = text.pick(c.title, ctx.lang), max_points = c.points }
  ctx.results[c.id] = res
  local t = ctx._check or setmetatable({ lines = {}, failed = false, lang = ctx.lang, p = ctx.p }, Check)
  ctx._check = nil
  t:say({ es = "la comprobación no terminó en %g s", en = "the check did not finish within %g s" }, budget_s)
  res.passed, res.skipped, res.points = false, false, 0
  res.message = table.concat(t.lines, "\n")
  return res
end

-- Close everything the run opened, newest first. Never raises.
-- The grading's folders are the C side's to remove.
function M.finish(ctx)
  -- The listener lives only as long as the grading.
  ctx._status = nil
  for i = #ctx._owned, 1, -1 do
    pcall(function() ctx._owned[i]:close() end)
    ctx._owned[i] = nil
  end
  return true
end

---------------------------------------------------------------- guided mode

-- mqlab start: the lab's broker, a proxy in front of it on a port the
-- student connects to (the standard 1883 when it is free, else a free
-- one), then the steps one at a time. Everything is owned by the ctx, so
-- finish() closes it whatever happened.

M.GUIDE_WS_PORT = 9001

function M.guide_count(labdef) return labdef.guide and #labdef.guide or 0 end

local function say(ctx, msg, ...)
  io.stdout:write(ctx:text(msg, ...), "\n")
  io.stdout:flush()
end

-- A lab's `guide_broker = function(ctx)` may return the options of
-- mqlab.broker's start for the guide's broker (lab 08: its own ACL in
-- `extra`); it is always on a unix socket behind the proxy.
function M.guide_setup(ctx, want_port)
  local labdef = ctx.lab
  local opts = { profile = labdef.broker or "plain" }
  if type(labdef.guide_broker) == "function" then
    local o = labdef.guide_broker(ctx)
    if type(o) == "table" then for k, v in pairs(o) do opts[k] = v end end
  end
  opts.unix = true
  local b, msg, code = brokermod.start(opts)
  if not b then return nil, code == "missing" and "missing" or "error", msg end
  ctx.broker = ctx:own(b)
  -- A browser lab's page speaks MQTT over WebSockets: the course's port
  -- 9001 when it is free, as 1883 for the plain port.
  -- Each port asked for, then a free one where it is taken.
  local ws = labdef.websocket and M.GUIDE_WS_PORT or nil
  local px
  for _, try in ipairs({ { want_port, ws }, { want_port, nil }, { nil, ws }, { nil, nil } }) do
    px = ctx:proxy_start { port = try[1], websocket = labdef.websocket, ws_port = try[2] }
    if px then break end
  end
  if not px then return nil, "error", "cannot start the proxy" end
  ctx.p.host, ctx.p.port = "127.0.0.1", px:port()
  if labdef.websocket then
    ctx.p.ws_port = px:ws_port()
    ctx.p.ws_url = string.format("ws://127.0.0.1:%d/mqtt", ctx.p.ws_port)
    ctx.guide_want_ws = ws
  end
  -- A lab's `guide_start = function(ctx)` starts what else its guide
  -- needs (lab 11: an HTTP server on the student's folder, ctx.dir);
  -- nil, message means the machine lacks it (exit code 3).
  if type(labdef.guide_start) == "function" then
    local ok, gmsg = labdef.guide_start(ctx)
    if ok == nil and gmsg then return nil, "missing", gmsg end
  end
  ctx.guide_want = want_port
  ctx.guide_from = 1
  return px:port()
end

-- The parameters a student needs, and where to connect.
function M.guide_intro(ctx)
  local p = ctx.p
  say(ctx, { es = "Laboratorio %s, modo guiado. El broker del kit te espera en %s:%d (por un proxy que ve cada paquete).",
             en = "Lab %s, guided mode. The kit's broker waits for you at %s:%d (through a proxy that sees every packet)." },
      ctx.id, p.host, p.port)
  if ctx.guide_want and p.port ~= ctx.guide_want then
    say(ctx, { es = "(%d estaba ocupado: usa -p %d en cada orden.)", en = "(%d was taken: use -p %d in every command.)" },
        ctx.guide_want, p.port)
  end
  if p.ws_url then
    say(ctx, { es = "MQTT sobre WebSockets (mqtt.js en un navegador): %s%s", en = "MQTT over WebSockets (mqtt.js in a browser): %s%s" },
        p.ws_url, ctx.guide_want_ws and p.ws_port ~= ctx.guide_want_ws
          and ctx:text({ es = " (%d estaba ocupado)", en = " (%d was taken)" }, ctx.guide_want_ws) or "")
  end
  -- The parameters the steps' texts use, in the order they first appear.
  local rows, seen = {}, { host = true, port = true }
  for _, st in ipairs(ctx.lab.guide) do
    for k in text.pick(st.text, ctx.lang):gmatch("{{([%w_]+)}}") do
      local v = p[k]
      if not seen[k] and (type(v) == "string" or type(v) == "number") then
        seen[k] = true
        rows[#rows + 1] = string.format("  %-12s %s", k, tostring(v))
      end
    end
  end
  if #rows > 0 then
    say(ctx, { es = "Tus parámetros:", en = "Your parameters:" })
    say(ctx, table.concat(rows, "\n"))
  end
  say(ctx, { es = "Haz cada paso en otra terminal. Ctrl-C para salir (no deja nada en marcha).",
             en = "Do each step in another terminal. Ctrl-C leaves (nothing is left running)." })
end

-- Step i: print it, run its fault on Enter, wait until the wire shows it
-- met. Returns the step's id.
function M.guide_step(ctx, i)
  local st = ctx.lab.guide[i]
  local n = #ctx.lab.guide
  local where = st._where
  say(ctx, "")
  say(ctx, { es = "── Paso %d/%d · %s", en = "── Step %d/%d · %s" }, i, n, text.pick(st.title, ctx.lang))
  say(ctx, text.fill(text.pick(st.text, ctx.lang), ctx.p, where))
  local px = ctx.proxy
  if st.act then
    say(ctx, st.prompt or { es = "Pulsa Enter cuando estés listo.", en = "Press Enter when you are ready." })
    kit.wait_enter()
    ctx.guide_from = px:count() + 1
    local m = st.act(ctx)
    if m then say(ctx, m) end
  end
  if st.on or st.poll then
    local from = ctx.guide_from or 1
    local last
    local function met(m)
      say(ctx, { es = "✔ %s", en = "✔ %s" }, m and ctx:text(m) or ctx:text(st.done or { es = "hecho", en = "done" }))
      return st.id
    end
    while true do
      if st.poll then
        local ok, m = st.poll(ctx)
        if ok then ctx.guide_from = px:count() + 1; return met(m) end
        if m then
          m = ctx:text(m)
          if m ~= last then say(ctx, { es = "  · %s", en = "  · %s" }, m); last = m end
        end
      end
      local n_now = px:count()
      if n_now >= from then
        for _, ev in ipairs(st.on and px:events(from, n_now) or {}) do
          local ok, m = st.on(ev, ctx)
          if ok then
            ctx.guide_from = (ev.i or n_now) + 1
            say(ctx, { es = "✔ %s", en = "✔ %s" }, m and ctx:text(m) or ctx:text(st.done or { es = "hecho", en = "done" }))
            return st.id
          end
          if m then
            m = ctx:text(m)
            if m ~= last then say(ctx, { es = "  · %s", en = "  · %s" }, m); last = m end
          end
        end
        from = n_now + 1
        ctx.guide_from = from
      end
      px:wait(function() return true end, 0.25, from)
    end
  end
  ctx.guide_from = px:count() + 1
  if st.done then say(ctx, { es = "✔ %s", en = "✔ %s" }, ctx:text(st.done)) end
  return st.id
end

return M
