-- mqlab.browser end to end, run by `mqlab run` from run.py (test_browser):
-- headless Chromium loads a file:// page that includes mqtt.js's browser
-- bundle, and the Lua side gets values back. Prints "ok NAME" /
-- "FAIL NAME: detail" per assertion, "skip: reason" when Chromium or
-- mqtt.js is missing, and "done" at the end.
-- arg[1]: a private folder for the page (readable by the sandbox uid).
local browser = require "mqlab.browser"
local kit = require "mqlab.kit"

local function check(ok, name, detail)
  if ok then print("ok " .. name) else print("FAIL " .. name .. ": " .. tostring(detail)) end
end

local dir = assert(arg[1], "usage: browser.lua FOLDER")

-- Missing Chromium: nil, a message that says how to install it, "missing".
do
  local saved = os.getenv("MQLAB_CHROMIUM")
  local br, err, code = browser.start{ timeout = 5, sandbox = false }
  if saved and saved:find("^/nonexistent") then
    check(br == nil and code == "missing" and err:find("apt%-get install chromium"),
          "no Chromium: 'missing', with the install command", err)
    print("done")
    return
  end
  if br then br:close() elseif code == "missing" then print("skip: " .. err); print("done"); return end
end

local js, jerr = browser.mqttjs()
if not js then print("skip: " .. jerr); print("done"); return end
local f = assert(io.open(js, "rb")); local bundle = f:read("a"); f:close()
f = assert(io.open(dir .. "/mqtt.min.js", "wb")); f:write(bundle); f:close()
f = assert(io.open(dir .. "/page.html", "w"))
f:write([[<!doctype html><title>dashboard</title><script src="mqtt.min.js"></script>
<script>console.log("page up"); window.made = { n: 3, list: ["a", "b"], ok: true, none: null };</script>]])
f:close()

for _, sb in ipairs{ false, true } do
  local where = sb and "inside the sandbox" or "outside the sandbox"
  local br, err, code = browser.start{ sandbox = sb, ro = { dir }, timeout = 60 }
  if not br and sb and code == "missing" then
    print("skip: " .. where .. ": " .. err)
  else
    check(br ~= nil, "Chromium starts " .. where, err)
    if not br then break end
    check(br:sandboxed() == sb, "and says where it runs (" .. where .. ")", br:sandboxed())
    local ok, nerr = br:navigate("file://" .. dir .. "/page.html", 20)
    check(ok, "the file:// page loads " .. where, nerr)
    local v, eerr = br:eval("typeof mqtt.connect === 'function'")
    check(v == true, "mqtt.js's bundle defines mqtt.connect " .. where, eerr)
    local t = br:eval("window.made")
    check(type(t) == "table" and t.n == 3 and t.list[2] == "b" and t.ok == true and t.none == nil,
          "an object comes back as a Lua table " .. where, t)
    local r, rerr, rcode = br:eval("undefinedName.x")
    check(r == nil and rcode == "js" and rerr:find("undefinedName"), "a thrown error is nil, message, 'js'", rerr)
    local png = dir .. "/shot.png"
    check(br:screenshot(png), "a screenshot is written", png)
    local pf = io.open(png, "rb")
    local sig = pf and pf:read(8); if pf then pf:close() end
    check(sig == "\137PNG\r\n\26\n", "and is a PNG", sig)
    os.remove(png)
    local seen = false
    for _, m in ipairs(br:console()) do if m.text == "page up" and m.level == "log" then seen = true end end
    check(seen, "the page's console.log is in br:console() " .. where)
    br:close()
    check(not pcall(br.eval, br, "1"), "a closed browser refuses to work")
  end
end
print("done")
