// ws_client.js URL [CA_FILE]: mqtt.js (from MQLAB_MQTTJS_DIR, a
// node_modules/mqtt folder) through the proxy's WebSocket port, as a
// browser would: subscribe at QoS 1, publish a small message and one of
// 300 KiB at QoS 1, wait for both to come back intact, disconnect.
// Prints one line of JSON; exits 0 when all went well. Run by run.py
// (test websocket) beside websocket.lua.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const mqtt = require(process.env.MQLAB_MQTTJS_DIR);

const [url, ca] = process.argv.slice(2);
const topic = 'mqlab/ws/t';
const small = Buffer.from('hello over websockets');
const big = crypto.randomBytes(300 * 1024);

function done(ok, extra) {
  console.log(JSON.stringify(Object.assign({ ok }, extra)));
  process.exit(ok ? 0 : 1);
}

// Generous: the machine may be loaded; run.py has its own deadline.
const timer = setTimeout(() => done(false, { why: 'no answer in 120 s' }), 120000);
const opts = { protocolVersion: 4, clean: true, clientId: 'mqlab-ws-itest', connectTimeout: 60000, reconnectPeriod: 0 };
if (ca) opts.ca = fs.readFileSync(ca);
const client = mqtt.connect(url, opts);
const got = [];
client.on('error', (e) => done(false, { why: String(e) }));
client.on('message', (t, payload) => {
  got.push(payload);
  if (got.length < 2) return;
  const ok = got[0].equals(small) && got[1].equals(big);
  client.end(false, {}, () => {
    clearTimeout(timer);
    done(ok, { sizes: got.map((g) => g.length) });
  });
});
client.on('connect', async () => {
  try {
    await client.subscribeAsync(topic, { qos: 1 });
    await client.publishAsync(topic, small, { qos: 1 });
    await client.publishAsync(topic, big, { qos: 1 });
  } catch (e) {
    done(false, { why: String(e) });
  }
});
