-- Lab @ID@: a new lab, made by `mqlab new-lab`.
--
-- The student's program `client` publishes a greeting on its topic at
-- QoS 1. One check judges it from the wire: the kit's proxy stands
-- between the program and the broker and decodes every packet.
--
-- The plan comes first: the parameters each student gets, then the
-- checks in the order a student meets them. Helpers, the setup and the
-- lab table follow. The guide (docs/authoring.md) lists the whole API.

local wire = require "mqlab.wire"

---------------------------------------------------------------- the plan

-- Parameters: rng is seeded with the student id and the lab id, so each
-- student gets their own values, the same on every run. The names
-- client_id, topic, count and interval_ms become the program's
-- MQTT_CLIENT_ID, MQTT_TOPIC, LAB_COUNT and LAB_INTERVAL_MS. Every value
-- can be used as {{name}} in instructions.*.md and in the hints.
local function params(rng)
  local hex = rng:hex(4)
  local p = {
    client_id = "dev-" .. hex,
    topic = "acme/v1/lab@NN@/" .. hex .. "/greeting",
  }
  -- The payload the program must send: "hola " and its own client id.
  p.greeting = "hola " .. p.client_id
  return p
end

local checks = {
  check {
    id = "publishes", points = 2,
    title = { es = "Publica el saludo en su topic con QoS 1", en = "It publishes the greeting on its topic at QoS 1" },
    run = function(t, ctx)
      local d, p = ctx.data, ctx.p
      -- Every PUBLISH the program sent up to the broker, as the proxy
      -- decoded it (fields: topic, payload, qos, retain, dup, id, t, ...).
      local pubs = wire.select(d.events, { kind = "packet", type = "PUBLISH", dir = "up" })
      if #pubs == 0 then ctx:why_absent(t) end
      for _, ev in ipairs(pubs) do
        if ev.topic == p.topic and ev.payload == p.greeting then
          -- t:fail ends the check; t:expect records a failure and goes on.
          if ev.qos ~= 1 then
            t:fail({ es = "el saludo iba con QoS %d; se pide QoS 1\n%s",
                     en = "the greeting went at QoS %d; QoS 1 is asked for\n%s" }, ev.qos, wire.block(ev))
          end
          t:pass({ es = "PUBLISH «%s» en %s con QoS 1", en = "PUBLISH '%s' on %s at QoS 1" }, p.greeting, p.topic)
          return
        end
      end
      t:fail({ es = "ningún PUBLISH llevaba «%s» en %s; el primero:\n%s",
               en = "no PUBLISH carried '%s' on %s; the first one:\n%s" }, p.greeting, p.topic, wire.block(pubs[1]))
    end,
  },
}

-- Guided mode (mqlab start @NN@): the same step done by hand against a
-- live broker. on(ev, ctx) sees each new proxy event; it answers true
-- when the step is met, or false and what it saw, for the student.
local guide = {
  step {
    id = "publish",
    title = { es = "Publica el saludo con QoS 1", en = "Publish the greeting at QoS 1" },
    text = {
      es = "En otra terminal:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 1 -m '{{greeting}}'",
      en = "In another terminal:\n\n    mosquitto_pub -h {{host}} -p {{port}} -i {{client_id}} -t '{{topic}}' -q 1 -m '{{greeting}}'",
    },
    on = function(ev, ctx)
      if ev.kind ~= "packet" or ev.type ~= "PUBLISH" or ev.dir ~= "up" then return nil end
      if ev.payload ~= ctx.p.greeting then
        return false, { es = "publicaste «" .. tostring(ev.payload) .. "»", en = "you published '" .. tostring(ev.payload) .. "'" }
      end
      if ev.qos ~= 1 then
        return false, { es = "tu PUBLISH iba con QoS " .. ev.qos .. "; este paso pide 1 (-q 1)",
                        en = "your PUBLISH went at QoS " .. ev.qos .. "; this step needs 1 (-q 1)" }
      end
      return true, { es = "PUBLISH con QoS 1", en = "PUBLISH at QoS 1" }
    end,
  },
}

---------------------------------------------------------------- the run

-- Run the program once through the proxy and keep what the wire showed.
-- setup may take setup_timeout seconds (30 by default); each check 10.
local function setup(ctx)
  local d = ctx.data
  d.prog, d.prog_err = ctx:program("client", { timeout = 10 })
  if d.prog then d.prog:wait(11) end
  d.events = ctx.proxy:events()
end

return lab {
  id = "@ID@",
  title = { es = "Un laboratorio nuevo: publicar un saludo", en = "A new lab: publish a greeting" },
  -- What the student hands in: programs the kit runs (client.py,
  -- client.c, client.lua, client.sh or an executable client) and files.
  submission = { programs = { "client" }, files = {} },
  broker = "plain",     -- a broker profile: plain, tls, acl, persistence, sys, bench
  proxy = true,         -- the program reaches the broker only through the kit's proxy
  params = params,
  setup = setup,
  checks = checks,
  guide = guide,
  hints = {
    { es = "Publica con qos=1: client.publish(topic, saludo, qos=1).",
      en = "Publish with qos=1: client.publish(topic, greeting, qos=1)." },
  },
}
