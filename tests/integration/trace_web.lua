-- trace_web.lua: `mqlab trace --web` in a real browser. run.py starts the
-- trace (with --ws-port 0 --drop down:puback:3) and runs
--   mqlab run tests/integration/trace_web.lua WEB_PORT PROXY_PORT WS_PORT SHOT.png [LANG]
-- This script opens the page in headless Chromium, makes a short exchange
-- through the proxy (a dashboard subscribed at QoS 1, three sensors
-- publishing at QoS 1, the third one's PUBACK dropped, then a client over
-- WebSockets from the browser itself), waits until the page shows it,
-- tries the client filter and saves a screenshot (the README's
-- docs/trace-web.png is one). LANG is the trace's --lang, which the page
-- must take from the kit (its URL has no ?lang=). Prints "ok NAME" or "FAIL NAME: detail" per
-- assertion, "skip: why" when there is no browser, and "done".
local kit = require "mqlab.kit"

local web, pport, wsport, shot, lang = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5] or "en"
assert(web and pport and wsport and shot, "usage: trace_web.lua WEB_PORT PROXY_PORT WS_PORT SHOT.png [LANG]")

local function check(cond, name, detail)
  if cond then print("ok " .. name) else print("FAIL " .. name .. ": " .. tostring(detail)) end
end

local has, browser = pcall(require, "mqlab.browser")
if not has then
  print("skip: this mqlab has no mqlab.browser (" .. tostring(browser):match("[^\n]*") .. ")")
  print("done")
  return
end
local br, why = browser.start { width = 1600, height = 1500 }
if not br then
  print("skip: no headless browser: " .. tostring(why))
  print("done")
  return
end

-- Poll an expression of the page until it is true (or a value); nil on timeout.
local function wait_for(js, secs)
  local deadline = kit.now() + secs
  repeat
    local ok, v = pcall(br.eval, br, js)
    if ok and v and v ~= 0 and v ~= "" then return v end
    kit.sleep(0.1)
  until kit.now() > deadline
  return nil
end

local function count(pred)
  return br:eval("mqlabTrace.rows().filter(r => " .. pred .. ").length")
end

local ok, err = pcall(function()
  br:navigate(("http://127.0.0.1:%d/"):format(web))
  check(wait_for("window.mqlabTrace && mqlabTrace.status() === 'on'", 10), "the page connects to the kit",
        br:eval("document.getElementById('status').textContent"))
  check(wait_for("mqlabTrace.lang() === '" .. lang .. "'", 5), "the page speaks the kit's language, " .. lang,
        br:eval("mqlabTrace.lang()"))
  local status = br:eval("document.getElementById('status').textContent")
  check(status:find(lang == "es" and "conectada" or "connected", 1, true), "its status line says so in " .. lang, status)

  -- The exchange. The rule counts PUBACKs to clients: sensor-3's is the third.
  local dash <close> = assert(mqtt.connect { port = pport, id = "dashboard", clean = true })
  assert(dash:subscribe("acme/#", 1))
  local readings = { { "sensor-1", "acme/planta-1/temp", '{"t":21.5}' }, { "sensor-2", "acme/planta-1/hum", '{"h":40}' },
                     { "sensor-3", "acme/planta-2/temp", '{"t":19.0}' } }
  local acked = {}
  local heard = 0
  for _, r in ipairs(readings) do
    local c <close> = assert(mqtt.connect { port = pport, id = r[1], clean = true })
    acked[r[1]] = c:publish(r[2], r[3], { qos = 1, timeout = r[1] == "sensor-3" and 1 or 5 }) and true or false
    if r[1] ~= "sensor-3" then c:disconnect() end
    if dash:wait(2) then heard = heard + 1 end     -- the dashboard takes (and PUBACKs) it now, for the picture's order
  end
  check(acked["sensor-1"] and acked["sensor-2"] and not acked["sensor-3"], "sensors 1 and 2 acknowledged, sensor-3's PUBACK lost",
        acked)
  check(heard == 3, "the dashboard hears the three readings", heard)
  dash:disconnect()

  -- A client over WebSockets, as mqtt.js in a browser would be: a CONNECT
  -- by hand from the page, its CONNACK, a DISCONNECT.
  local rc = br:eval(([[new Promise((done) => {
    const ws = new WebSocket("ws://127.0.0.1:%d/mqtt", "mqtt");
    ws.binaryType = "arraybuffer";
    const id = [...new TextEncoder().encode("browser-1")];
    const rest = [0, 4, 77, 81, 84, 84, 4, 2, 0, 60, 0, id.length, ...id];
    ws.onopen = () => ws.send(new Uint8Array([0x10, rest.length, ...rest]));
    ws.onmessage = (m) => {
      const b = new Uint8Array(m.data);
      ws.send(new Uint8Array([0xe0, 0]));
      setTimeout(() => { ws.close(); done(b[0] === 0x20 ? b[3] : -1); }, 100);
    };
    ws.onerror = () => done(-2);
    setTimeout(() => done(-3), 5000);
  })]]):format(wsport), 10)
  check(rc == 0, "a client over WebSockets from the browser gets CONNACK 0", rc)

  check(wait_for("mqlabTrace.rows().filter(r => r.type === 'CONNECT').length >= 5", 10), "the five CONNECT rows appear",
        count("r.type === 'CONNECT'"))
  check(wait_for("mqlabTrace.rows().some(r => r.type === 'PUBLISH' && r.cid === 'sensor-3'"
                 .. " && r.text.includes('acme/planta-2/temp'))", 10),
        "sensor-3's PUBLISH row appears, with its topic", br:eval("JSON.stringify(mqlabTrace.rows().slice(-8))"))
  check(wait_for("mqlabTrace.rows().some(r => r.kind === 'close' && r.cid === 'dashboard')", 10),
        "the dashboard's closed row appears", count("r.kind === 'close'"))
  local word = lang == "es" and "descartado" or "dropped"
  check(br:eval("mqlabTrace.rows().some(r => r.type === 'PUBACK' && r.fate === 'dropped' && r.cid === 'sensor-3'"
                .. " && r.text.includes('" .. word .. "'))"),
        "the dropped PUBACK is drawn with the text trace's word", word)
  check(br:eval("document.querySelectorAll('.row[data-fate=dropped] .mark').length === 1"
                .. " && document.querySelector('.row[data-fate=dropped] .mark').textContent === '✗'"),
        "its arrow stops at the proxy with a ✗", br:eval("document.querySelectorAll('.mark').length"))
  check(wait_for("mqlabTrace.rows().some(r => r.kind === 'close' && r.cid === 'browser-1')", 10),
        "the WebSocket client's rows appear, up to its close", count("r.cid === 'browser-1'"))
  local chips = br:eval([[[...document.querySelectorAll('.row')].map(r =>
    r.querySelector('.cid').textContent + '=' + r.querySelector('.tr').textContent)
    .filter((v, i, a) => a.indexOf(v) === i).sort().join(',')]])
  check(chips == "browser-1=ws,dashboard=tcp,sensor-1=tcp,sensor-2=tcp,sensor-3=tcp",
        "each row shows its client id and transport (ws for the browser)", chips)

  -- The filter lists the ids seen; one id hides the others' rows.
  local ids = br:eval("[...document.getElementById('filter').options].map(o => o.value).slice(1).sort().join(',')")
  check(ids == "browser-1,dashboard,sensor-1,sensor-2,sensor-3", "the filter lists the client ids seen", ids)
  local shown = br:eval([[(() => {
    const s = document.getElementById('filter');
    s.value = 'sensor-2';
    s.dispatchEvent(new Event('change'));
    return mqlabTrace.rows().filter(r => !r.hidden).map(r => r.cid).join(',');
  })()]])
  local only = shown ~= "" and not shown:gsub("sensor%-2", ""):find("[^,]")
  check(only and count("r.hidden") > 0, "filtering by sensor-2 shows its rows only", shown)
  br:eval("mqlabTrace.filter('')")
  check(count("r.hidden") == 0, "'all clients' shows every row again", count("r.hidden"))

  -- The socket drops: the page says so, comes back by itself, hears the
  -- whole history again and draws each event once.
  local rows_before = count("true")
  br:eval("ws.close()")
  check(wait_for("mqlabTrace.status() === 'off'", 3), "a dropped socket shows in the status line",
        br:eval("mqlabTrace.status()"))
  check(wait_for("mqlabTrace.status() === 'on'", 10), "and the page reconnects by itself", br:eval("mqlabTrace.status()"))
  kit.sleep(0.6)
  check(count("true") == rows_before, "with the same rows, none twice", count("true") .. " vs " .. rows_before)

  -- It follows the newest row, unless scrolled up; then a button brings it back.
  local at_end = "(() => { const r = document.getElementById('rows'); return r.scrollHeight > r.clientHeight"
                 .. " && r.scrollTop + r.clientHeight >= r.scrollHeight - 8; })()"
  check(br:eval(at_end), "the page shows the newest row", br:eval("document.getElementById('rows').scrollTop"))
  local follow = br:eval([[new Promise((done) => {
    const r = document.getElementById('rows'), b = document.getElementById('follow');
    r.scrollTop = 0;
    setTimeout(() => {
      const shown = getComputedStyle(b).display !== 'none';
      b.click();
      setTimeout(() => done(shown && r.scrollTop > 0 ? 'ok' : 'button ' + shown + ', top ' + r.scrollTop), 100);
    }, 200);
  })]])
  check(follow == "ok", "scrolled up, it stops following and offers to go back to the newest", follow)
  check(br:eval(at_end), "back at the newest row")
  kit.sleep(0.3)   -- the page follows the newest row: the fault is on screen
  br:screenshot(shot)
  check(kit.exists(shot), "a screenshot is saved", shot)
  local errors = {}
  for _, m in ipairs(br:console() or {}) do
    local text = type(m) == "table" and (m.text or m.message or "") or tostring(m)
    local level = type(m) == "table" and (m.level or m.type or "") or ""
    if level == "error" or level == "exception" or text:match("Uncaught") then errors[#errors + 1] = text end
  end
  check(#errors == 0, "no errors on the page's console", table.concat(errors, " | "))
end)
br:close()
if not ok then print("FAIL the browser script raised: " .. tostring(err)) end
print("done")
