-- brokerconf.lua: a student's mosquitto.conf, made safe to run.
--
-- Labs 07 and 08 grade a config by running it in a real mosquitto. The
-- kit must never let that config open anything but 127.0.0.1, run as
-- another user, write outside a private folder, load code or reach other
-- brokers, and yet the broker must behave as the student's config says.
-- prepare() reads the file as mosquitto 2.0 does (one directive per line,
-- words split on spaces, `#` only at the start of a line), and:
--   * moves every listener to a free port on 127.0.0.1, and tells the lab
--     where each one went and how it was written (TLS, address, exposed);
--   * points relative file names at copies in the private folder (certs/
--     means the kit's PKI), and refuses what it must not run, naming the
--     line and saying why in both languages;
--   * drops the logging lines and appends its own, so the kit can read
--     what the broker saw.
-- A config that mosquitto itself rejects is left to mosquitto: the start
-- fails with its own words (brokerconf.explain() maps its line numbers).
--
--   res, why = brokerconf.prepare{ text =, file = "mosquitto.conf",
--                                  student_dir =, certs = tls.certs(), workdir = kit.tmpdir() }
--   res.config     the text for broker.start{template = res.config, port = res.main_port}
--   res.listeners  in file order: { line, student_port, port, address (as written,
--                  nil = every interface), exposed (reachable beyond this machine as
--                  written), tls, protocol "mqtt"|"websockets", require_certificate,
--                  tls_version, cafile/certfile/keyfile (as written), implicit (the
--                  default listener: `port`, or no listener at all), local_only,
--                  and with per_listener_settings: allow_anonymous, password_file, acl_file }
--   res.settings   allow_anonymous, password_file, acl_file, per_listener_settings (as written)
--   res.copies     path as written -> the copy in workdir (0600)
--   res.notes      { line, message = {es, en} } for every line dropped
--   res.line_map   line of res.config -> the student's line (false: a line the kit added)
--   why            { line, file, directive, message = {es, en} (the sentence),
--                    text = {es, en} ("mosquitto.conf, line 3: " .. sentence) }

local kit = require "mqlab.kit"

local M = {}

-- Directives whose value is a file the broker reads.
local FILE_OPTS = {
  password_file = true, acl_file = true, cafile = true, certfile = true, keyfile = true,
  capath = true, crlfile = true, psk_file = true, dhparamfile = true,
}

-- Options that belong to the listener they follow.
local LISTENER_OPTS = {
  bind_interface = true, cafile = true, capath = true, certfile = true, keyfile = true,
  tls_engine = true, tls_keyform = true, tls_engine_kpass_sha1 = true, ciphers = true,
  ["ciphers_tls1.3"] = true, dhparamfile = true, psk_hint = true, require_certificate = true,
  crlfile = true, use_identity_as_username = true, use_subject_as_username = true,
  use_username_as_clientid = true, max_connections = true, max_qos = true, maximum_qos = true,
  mount_point = true, protocol = true, socket_domain = true, tls_version = true, http_dir = true,
  websockets_origin = true,
}

-- Security options: per listener with per_listener_settings true.
local SECURITY_OPTS = {
  allow_anonymous = true, password_file = true, acl_file = true, psk_file = true,
  allow_zero_length_clientid = true, auto_id_prefix = true,
}

local PLACEHOLDERS = { "@PORT@", "@DIR@", "@USER@", "@LOG@", "@CERTS@" }

local function truthy(v) return v == "true" or v == "1" end

-- mosquitto reads numbers with atoi(): leading digits, else 0.
local function atoi(s)
  local n = s and s:match("^%s*([-+]?%d+)")
  return n and tonumber(n) or 0
end

-- Would mosquitto make the default listener out of this line of the
-- part before the first `listener`? (mosquitto 2.0.11, conf.c: any of
-- these set on it creates a listener on 1883, on every interface.)
local function makes_default_listener(dir, v, pls)
  if dir == "require_certificate" or dir == "use_identity_as_username"
     or dir == "use_subject_as_username" or dir == "use_username_as_clientid" then
    return truthy(v)
  elseif dir == "max_connections" then return atoi(v) >= 0
  elseif dir == "max_qos" or dir == "maximum_qos" then return atoi(v) ~= 2
  elseif dir == "protocol" then return v ~= "mqtt"
  elseif dir == "tls_keyform" then return v ~= "pem"
  elseif dir == "tls_version" or dir == "http_dir" or dir == "websockets_origin" then return false
  elseif LISTENER_OPTS[dir] then return true
  elseif pls and (dir == "password_file" or dir == "psk_file") then return true
  elseif pls and dir == "allow_zero_length_clientid" then return not truthy(v)
  end
  return false
end

local function is_loopback(addr)
  return addr == "localhost" or addr == "ip6-localhost" or addr == "::1" or addr == "[::1]"
      or addr:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- ---------------------------------------------------------------------
-- Paths

-- "a/./b/../c" -> "a/c"; nil when ".." climbs above the start.
local function normalize(rel)
  local parts = {}
  for p in rel:gmatch("[^/]+") do
    if p == ".." then
      if #parts == 0 then return nil end
      parts[#parts] = nil
    elseif p ~= "." then
      parts[#parts + 1] = p
    end
  end
  return table.concat(parts, "/")
end

local function inside(path, dir)
  return path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

-- The part after certs/ when the path names the kit's certs folder
-- ("certs/x", "./certs/x", "../certs/x"): "" for the folder itself.
local function certs_part(p)
  local s = p
  while s:sub(1, 2) == "./" do s = s:sub(3) end
  while s:sub(1, 3) == "../" do s = s:sub(4) end
  if s == "certs" or s == "certs/" then return "" end
  return s:match("^certs/(.+)$")
end

-- ---------------------------------------------------------------------
-- Messages

local function say(es, en, ...)
  return { es = string.format(es, ...), en = string.format(en, ...) }
end

-- ---------------------------------------------------------------------
-- The parse: what each line is, the listeners, the settings as written.

local function split_lines(text)
  local lines = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  -- "a\n" is one line, not one line and an empty one.
  if text:sub(-1) == "\n" then lines[#lines] = nil end
  return lines
end

local function parse_line(raw)
  raw = raw:gsub("[\r\n]+$", "")
  if raw == "" or raw:sub(1, 1) == "#" then return { raw = raw } end
  local words = {}
  for w in raw:gmatch("[^ ]+") do words[#words + 1] = w end
  if #words == 0 then return { raw = raw } end
  -- String values are the rest of the line, trimmed (conf__parse_string).
  local rest = raw:match("^ *[^ ]+ ?(.*)$") or ""
  rest = rest:gsub("^%s+", ""):gsub("%s+$", "")
  return { raw = raw, dir = words[1], words = words, value = rest }
end

-- ---------------------------------------------------------------------
-- prepare

local Prep = {}
Prep.__index = Prep

function Prep:refuse(line, directive, msg)
  local e = {
    line = line, file = self.file, directive = directive, message = msg,
    text = { es = string.format("%s, línea %d: %s", self.file, line, msg.es),
             en = string.format("%s, line %d: %s", self.file, line, msg.en) },
  }
  error(setmetatable(e, Prep.REFUSAL), 0)
end
Prep.REFUSAL = {}

function Prep:note(line, msg)
  self.notes[#self.notes + 1] = { line = line, message = msg }
end

function Prep:student_root(line)
  if self.student_real then return self.student_real end
  if not self.student_dir then
    error("brokerconf.prepare: the config names a file (line " .. line .. ") but student_dir is not set", 0)
  end
  local rp = kit.realpath(self.student_dir)
  if not rp then error("brokerconf.prepare: student_dir " .. self.student_dir .. " does not exist", 0) end
  self.student_real = rp
  return rp
end

function Prep:certs_root(line, directive, path)
  if self.certs_real then return self.certs_real end
  local rp = self.certs and kit.realpath(self.certs)
  if not rp then
    self:refuse(line, directive, say(
      "%s usa %s, pero este lab no tiene los certificados del kit; usa un archivo de tu carpeta",
      "%s uses %s, but this lab has no kit certificates; use a file of your folder", directive, path))
  end
  self.certs_real = rp
  return rp
end

-- The absolute path mosquitto should read for `directive path` on line
-- `line`, copying a student's file into the private folder.
function Prep:resolve_file(line, directive, path)
  local want_dir = directive == "capath"
  local sub = certs_part(path)
  if sub and path:sub(1, 1) ~= "/" then
    local root = self:certs_root(line, directive, path)
    local n = normalize(sub)
    local rp = n and kit.realpath(n == "" and root or root .. "/" .. n)
    if not rp or not inside(rp, root) or kit.is_dir(rp) ~= want_dir then
      self:refuse(line, directive, say(
        "%s %s: certs/ es la carpeta de certificados del kit, y %s no está en ella (tiene ca.crt, server.crt, server.key, client.crt, client.key...)",
        "%s %s: certs/ is the kit's certificate folder, and %s is not in it (it has ca.crt, server.crt, server.key, client.crt, client.key...)",
        directive, path, sub))
    end
    return rp
  end

  local student
  if path:sub(1, 1) == "/" then
    local rp = kit.realpath(path)
    local certs = self.certs and kit.realpath(self.certs)
    if rp and certs and inside(rp, certs) and kit.is_dir(rp) == want_dir then return rp end
    student = self:student_root(line)
    if not (rp and inside(rp, student)) and not inside(path, student) then
      self:refuse(line, directive, say(
        "%s %s: una ruta absoluta fuera de tu carpeta; el kit solo usa archivos de tu carpeta (rutas relativas, como «passwd») y sus certificados (certs/...)",
        "%s %s: an absolute path outside your folder; the kit only uses files of your folder (relative paths, such as \"passwd\") and its certificates (certs/...)",
        directive, path))
    end
  else
    student = self:student_root(line)
    local n = normalize(path)
    if not n then
      self:refuse(line, directive, say(
        "%s %s sale de tu carpeta con «..»; el archivo tiene que estar en ella",
        "%s %s climbs out of your folder with \"..\"; the file must be in it", directive, path))
    end
  end
  local full = path:sub(1, 1) == "/" and path or student .. "/" .. normalize(path)
  local rp = kit.realpath(full)
  if not rp then
    self:refuse(line, directive, say(
      "%s aparece en la configuración pero no está en tu carpeta (%s)",
      "%s is referenced but not in your folder (%s)", path, directive))
  end
  if not inside(rp, student) then
    self:refuse(line, directive, say(
      "%s %s es un enlace a un archivo fuera de tu carpeta",
      "%s %s is a link to a file outside your folder", directive, path))
  end
  if kit.is_dir(rp) ~= want_dir then
    self:refuse(line, directive, want_dir
      and say("capath %s no es una carpeta", "capath %s is not a folder", path)
      or say("%s %s es una carpeta, no un archivo", "%s %s is a folder, not a file", directive, path))
  end
  -- A folder of CAs (capath) is only read by mosquitto: used in place,
  -- as realpath resolved it inside the student's folder.
  if want_dir then return rp end
  if self.copies[path] then return self.copies[path] end
  local files = self.workdir .. "/files"
  assert(kit.mkdir(files))
  local base = rp:match("([^/]+)$")
  local name, i = base, 1
  while self.used_names[name] do i = i + 1; name = base .. "-" .. i end
  self.used_names[name] = true
  local dst = files .. "/" .. name
  local ok, why = kit.copy_file(rp, dst, "0600")
  if not ok then error("brokerconf.prepare: " .. tostring(why), 0) end
  self.copies[path] = dst
  return dst
end

-- A path the broker writes (persistence_location, log_dest file): inside
-- the private folder, relative ones made absolute there.
function Prep:resolve_written(line, directive, path)
  if path:sub(1, 1) == "/" then
    local n = normalize(path:sub(2))
    local abs = n and ("/" .. n) or nil
    if abs and inside(abs, self.workdir) then return path end
  else
    local n = normalize(path)
    if n then return n == "" and self.workdir or (self.workdir .. "/" .. n) end
  end
  if directive == "log_dest file" then
    self:refuse(line, directive, say(
      "«log_dest file %s»: el broker escribiría fuera de la carpeta privada del kit; quita la línea (el kit guarda su propio log)",
      "\"log_dest file %s\": the broker would write outside the kit's private folder; remove the line (the kit keeps its own log)",
      path))
  end
  self:refuse(line, directive, say(
    "«%s %s»: el broker escribiría fuera de la carpeta privada del kit; usa una ruta relativa (p. ej. «%s data/»)",
    "\"%s %s\": the broker would write outside the kit's private folder; use a relative path (e.g. \"%s data/\")",
    directive, path, directive))
end

-- One pass over the lines: refusals, drops, rewrites; listeners found.
function Prep:scan()
  local pls = false
  for _, l in ipairs(self.lines) do
    if l.dir == "per_listener_settings" and truthy(l.words[2]) then pls = true end
  end
  self.pls = pls
  local user = kit.user()
  local section = { line = nil, opts = {}, security = {}, default = true, trigger = false }
  self.default_section = section
  local sections = {}
  local settings = {}
  local port_line, port_value, bind_line, bind_value

  for i, l in ipairs(self.lines) do
    local d, v = l.dir, l.value
    if d then
      for _, ph in ipairs(PLACEHOLDERS) do
        if l.raw:find(ph, 1, true) then
          self:refuse(i, d, say("%s está reservado para el kit; no lo uses en tu configuración",
                                "%s is reserved for the kit; do not use it in your config", ph))
        end
      end
    end

    if not d then
      -- comment or blank: as it is
    elseif d == "listener" then
      local w2, w3 = l.words[2], l.words[3]
      if w3 and w3:sub(1, 1) == "#" then w3 = nil end
      local port = atoi(w2)
      if not w2 or port < 0 or port > 65535 or (port == 0 and not w3) then
        self:refuse(i, d, say("«listener %s»: el puerto tiene que ser un número entre 1 y 65535",
                              "\"listener %s\": the port must be a number between 1 and 65535", w2 or ""))
      end
      section = { line = i, port = port, address = w3, opts = {}, security = {} }
      sections[#sections + 1] = section
      l.out = "listener"   -- written once ports are known
    elseif d == "port" then
      local port = atoi(l.words[2])
      if port < 1 or port > 65535 then
        self:refuse(i, d, say("«port %s»: el puerto tiene que ser un número entre 1 y 65535",
                              "\"port %s\": the port must be a number between 1 and 65535", l.words[2] or ""))
      end
      port_line, port_value = port_line or i, port
      l.drop = say("«port» (el listener por defecto) pasa a ser un listener en 127.0.0.1",
                   "\"port\" (the default listener) becomes a listener on 127.0.0.1")
    elseif d == "bind_address" then
      bind_line, bind_value = bind_line or i, v
      l.drop = say("«bind_address» es la dirección del listener por defecto; el kit lo ata a 127.0.0.1",
                   "\"bind_address\" is the address of the default listener; the kit binds it to 127.0.0.1")
    elseif d == "user" then
      if v ~= user then
        self:refuse(i, d, say("«user %s»: el kit ejecuta el broker como tú (%s); quita la línea",
                              "\"user %s\": the kit runs the broker as you (%s); remove the line", v, user))
      end
      l.drop = say("«user»: el kit ya ejecuta el broker como tú", "\"user\": the kit runs the broker as you already")
    elseif d == "include_dir" then
      self:refuse(i, d, say("«include_dir» cargaría archivos que el kit no ve; pon esas líneas en %s",
                            "\"include_dir\" would load files the kit does not see; put those lines in %s", self.file))
    elseif d == "plugin" or d == "auth_plugin" or d == "global_plugin" then
      self:refuse(i, d, say("«%s»: el kit no carga plugins (son código que se ejecuta dentro del broker)",
                            "\"%s\": the kit does not load plugins (they are code that runs inside the broker)", d))
    elseif d == "connection" or d == "address" or d == "addresses" then
      self:refuse(i, d, say("«%s» configura un puente (bridge) hacia otro broker; el broker del kit no habla con nadie más",
                            "\"%s\" configures a bridge to another broker; the kit's broker talks to nobody else", d))
    elseif d == "pid_file" then
      self:refuse(i, d, say("«pid_file»: el kit vigila el proceso él mismo, y el archivo se escribiría fuera de su carpeta; quita la línea",
                            "\"pid_file\": the kit tracks the process itself, and the file would be written outside its folder; remove the line"))
    elseif d == "log_dest" then
      if l.words[2] == "file" then
        local path = l.raw:match("^ *log_dest +file +(.-)%s*$") or ""
        if path ~= "" then self:resolve_written(i, "log_dest file", path) end
        l.drop = say("«log_dest file»: el kit escribe su propio log, que lee para corregir",
                     "\"log_dest file\": the kit writes its own log, which it reads to grade")
      else
        l.drop = say("«log_dest»: el kit decide adónde va el log", "\"log_dest\": the kit decides where the log goes")
      end
    elseif d == "log_type" or d == "log_timestamp" or d == "log_timestamp_format" or d == "connection_messages" then
      l.drop = say("«%s»: el kit fija el formato del log que lee", "\"%s\": the kit sets the format of the log it reads", d)
    elseif d == "persistence_location" then
      local abs = self:resolve_written(i, d, v)
      if v:sub(-1) == "/" and abs:sub(-1) ~= "/" then abs = abs .. "/" end
      assert(kit.mkdir(abs))
      l.out = "persistence_location " .. abs
    elseif d == "persistence_file" then
      if v:sub(1, 1) == "/" or not normalize(v) or v:find("..", 1, true) then
        self:refuse(i, d, say("«persistence_file %s»: tiene que ser un nombre de archivo, sin carpetas fuera de persistence_location",
                              "\"persistence_file %s\": it must be a file name, with no folders outside persistence_location", v))
      end
    elseif d == "http_dir" then
      l.drop = say("«http_dir»: el kit no sirve páginas web", "\"http_dir\": the kit does not serve web pages")
    elseif d == "socket_domain" or d == "bind_interface" then
      l.drop = say("«%s»: el kit ata cada listener a 127.0.0.1 (IPv4)", "\"%s\": the kit binds every listener to 127.0.0.1 (IPv4)", d)
    end

    if d and FILE_OPTS[d] then
      l.out = d .. " " .. self:resolve_file(i, d, v)
    end

    -- What the line means for the listener it belongs to.
    if d and section.default and makes_default_listener(d, v, pls) then section.trigger = true end
    if d and LISTENER_OPTS[d] then section.opts[d] = v end
    if d and SECURITY_OPTS[d] then
      if pls then section.security[d] = v end
    end
    if d == "allow_anonymous" or d == "password_file" or d == "acl_file" or d == "per_listener_settings" then
      settings[d] = v
    end
  end

  for i, l in ipairs(self.lines) do
    if l.drop then self:note(i, l.drop) end
  end
  self.sections = sections
  self.settings = settings
  self.port_line, self.port_value = port_line, port_value
  self.bind_line, self.bind_value = bind_line, bind_value
end

-- The listeners mosquitto would open, as the student wrote them.
function Prep:listeners()
  local list = {}
  local function record(s, fields)
    local o = s.opts
    local l = {
      line = fields.line, student_port = fields.student_port, address = fields.address,
      protocol = o.protocol == "websockets" and "websockets" or "mqtt",
      tls = (o.certfile ~= nil and o.keyfile ~= nil) or o.psk_hint ~= nil,
      require_certificate = truthy(o.require_certificate),
      tls_version = o.tls_version,
      cafile = o.cafile, certfile = o.certfile, keyfile = o.keyfile,
      implicit = fields.implicit, local_only = fields.local_only,
      section = s,
    }
    if fields.unix_socket then
      l.exposed = false   -- `listener 0 PATH`: a Unix socket; the kit makes it TCP on 127.0.0.1
    else
      l.exposed = l.address == nil or not is_loopback(l.address)
    end
    if self.pls then
      l.allow_anonymous = s.security.allow_anonymous
      l.password_file = s.security.password_file
      l.acl_file = s.security.acl_file
    end
    list[#list + 1] = l
  end

  local d = self.default_section
  local explicit = #self.sections > 0
  self.local_only = not explicit and not self.port_line and not self.bind_line
  if not explicit or self.port_line or self.bind_line or d.trigger then
    local address = self.bind_value
    -- No listener at all is mosquitto's local-only mode: loopback only,
    -- unless an option meant for the default listener opened it.
    if self.local_only and not d.trigger then address = "127.0.0.1" end
    record(d, { line = self.port_line or self.bind_line, student_port = self.port_value or 1883,
                address = address, implicit = true, local_only = self.local_only or nil })
  end
  for _, s in ipairs(self.sections) do
    record(s, { line = s.line, student_port = s.port, address = s.address, unix_socket = s.port == 0 })
  end
  -- In file order; the default listener without a line of its own
  -- (opened by an option) comes last, as in mosquitto.
  table.sort(list, function(a, b) return (a.line or math.huge) < (b.line or math.huge) end)
  return list
end

function Prep:free_ports(n)
  local ports, seen = {}, {}
  local tries = 0
  while #ports < n do
    local p = assert(kit.free_port())
    tries = tries + 1
    if not seen[p] then seen[p] = true; ports[#ports + 1] = p end
    if tries > 50 * n then error("brokerconf.prepare: cannot find free ports", 0) end
  end
  return ports
end

-- The text mosquitto runs, and which of its lines is which of the student's.
function Prep:build(listeners)
  local before, after = {}, {}
  local function add(t, i, s) t[i] = t[i] or {}; table.insert(t[i], s) end
  local lines = self.lines
  local n = #lines

  local ports = self:free_ports(#listeners)
  for k, l in ipairs(listeners) do
    l.port = ports[k]
    l.section.listener_text = string.format("listener %s 127.0.0.1", k == 1 and "@PORT@" or tostring(l.port))
  end

  for _, l in ipairs(lines) do
    if l.drop then l.text = "# [mqlab: dropped] " .. l.raw
    elseif l.out == "listener" then l.text = nil   -- below
    elseif l.out then l.text = l.out
    else l.text = l.raw end
  end
  for _, s in ipairs(self.sections) do lines[s.line].text = s.listener_text end

  -- The default listener, made explicit where its options start: the
  -- top, so that every line before the first `listener` still belongs
  -- to it. A blank line or its own `port` line there takes it without
  -- moving the line numbers.
  local d = self.default_section
  if d.listener_text then
    local first = n + 1
    for i, l in ipairs(lines) do if l.dir then first = i; break end end
    local spot
    for i = first - 1, 1, -1 do if lines[i].raw == "" then spot = i; break end end
    if not spot and first <= n and (lines[first].dir == "port" or lines[first].dir == "bind_address") then
      spot = first
    end
    if spot then
      lines[spot].text = d.listener_text
      d.at = spot
    elseif first <= n then
      add(before, first, d.listener_text)
      d.at = first
      d.before = true
    else
      add(after, n, d.listener_text)
      d.at = n
    end
  end

  -- A websockets listener bound to 127.0.0.1 still listens on every
  -- interface unless it is told IPv4 (libwebsockets ignores the address
  -- of an IPv6 socket): one more line, right after its listener line.
  for _, l in ipairs(listeners) do
    if l.protocol == "websockets" then
      local s = l.section
      local fix = "socket_domain ipv4"
      if s.default then
        if d.before then add(before, d.at, fix) else add(after, d.at, fix) end
      else
        add(after, s.line, fix)
      end
    end
  end

  local out, map = {}, {}
  local function emit(s, from) out[#out + 1] = s; map[#out] = from or false end
  for i = 1, n do
    for _, s in ipairs(before[i] or {}) do emit(s) end
    emit(lines[i].text, i)
    for _, s in ipairs(after[i] or {}) do emit(s) end
  end
  if n == 0 then for _, s in ipairs(after[0] or {}) do emit(s) end end

  emit("")
  emit("# [mqlab] the kit's own lines: it runs the broker as you and reads its log")
  if self.local_only then
    -- Without any listener mosquitto runs in local-only mode, which lets
    -- anonymous clients in whatever allow_anonymous says.
    if not self.pls or d.security.allow_anonymous == nil then
      emit("# [mqlab] no listener in your file: mosquitto's local-only mode allows anonymous clients")
      emit("allow_anonymous true")
    end
  end
  emit("user @USER@")
  emit("log_dest file @LOG@")
  emit("log_type all")
  emit("log_timestamp true")
  emit("log_timestamp_format %s")
  emit("connection_messages true")
  return table.concat(out, "\n") .. "\n", map
end

-- brokerconf.prepare{ text=, file=, student_dir=, certs=, workdir= }
--   -> res | nil, refusal   (see the contract in the header of this file)
function M.prepare(o)
  if type(o) ~= "table" then error("brokerconf.prepare: expects a table", 2) end
  if type(o.text) ~= "string" then error("brokerconf.prepare: text (the config) must be a string", 2) end
  if type(o.workdir) ~= "string" or not kit.is_dir(o.workdir) then
    error("brokerconf.prepare: workdir must be an existing folder (kit.tmpdir())", 2)
  end
  for _, k in ipairs({ "file", "student_dir", "certs" }) do
    if o[k] ~= nil and type(o[k]) ~= "string" then error("brokerconf.prepare: " .. k .. " must be a string", 2) end
  end
  local self = setmetatable({
    file = o.file or "mosquitto.conf", student_dir = o.student_dir, certs = o.certs,
    workdir = kit.realpath(o.workdir), notes = {}, copies = {}, used_names = {},
  }, Prep)
  self.lines = {}
  for i, raw in ipairs(split_lines(o.text)) do self.lines[i] = parse_line(raw) end

  local ok, err = pcall(function()
    self:scan()
    local listeners = self:listeners()
    local config, map = self:build(listeners)
    local out = {}
    for k, l in ipairs(listeners) do
      l.section = nil
      l.implicit = l.implicit or nil
      out[k] = l
    end
    self.result = {
      config = config, main_port = listeners[1].port, listeners = out,
      settings = self.settings, copies = self.copies, notes = self.notes, line_map = map,
      file = self.file,
    }
  end)
  if ok then return self.result end
  if type(err) == "table" and getmetatable(err) == Prep.REFUSAL then
    return nil, setmetatable(err, nil)
  end
  error(err, 0)
end

-- broker.start's message quotes mosquitto's "(config line N)", a line of
-- the prepared config: name the student's line instead.
function M.explain(res, msg)
  if type(msg) ~= "string" or type(res) ~= "table" or not res.line_map then return msg end
  return (msg:gsub("%(config line (%d+)%)", function(n)
    local i = res.line_map[tonumber(n)]
    if i then return string.format("(%s line %d)", res.file or "config", i) end
    return string.format("(a line the kit added, %s)", n)
  end))
end

return M
