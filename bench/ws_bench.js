// ws_bench.js URL MODE MSGS: for bench/ws.sh. mqtt.js (from
// MQLAB_MQTTJS_DIR) connects to URL and publishes MSGS QoS 1 messages on
// one connection, keeping a window of 20 in flight (libmosquitto's
// default), then prints its rate (msg/s, from the first PUBLISH to the
// last PUBACK; the connection is not timed). bench/ws.sh runs one fresh
// Node per stream, so that no stream inherits another's warm JIT or
// garbage.
//
// MODE is how mqtt.js speaks WebSockets in Node: "lib" is its Node path,
// the npm ws library as a stream, which sends each chunk mqtt-packet
// writes as a frame of its own (several per PUBLISH); "native" is the
// path it takes in a browser (forceNativeWebSocket: a WHATWG WebSocket,
// its writes batched by mqtt.js's BufferedDuplex), which is what a
// dashboard page runs. For mqtt:// the mode changes nothing.
'use strict';
const mqtt = require(process.env.MQLAB_MQTTJS_DIR);

const [url, mode, msgsArg] = process.argv.slice(2);
const MSGS = parseInt(msgsArg, 10);
const WINDOW = 20;
const payload = Buffer.from('{"id":"r-0","ts":1700000000000,"v":21.5}');

const c = mqtt.connect(url, { protocolVersion: 4, clean: true, clientId: 'bench-' + mode, reconnectPeriod: 0,
                              connectTimeout: 60000, forceNativeWebSocket: mode === 'native' });
c.once('error', (e) => {
  console.error('ws bench: ' + e.message);
  process.exit(1);
});
c.once('connect', () => {
  const t0 = process.hrtime.bigint();
  let sent = 0, acked = 0;
  const next = () => {
    if (sent >= MSGS) return;
    sent++;
    c.publish('acme/v1/bench/temp', payload, { qos: 1 }, (err) => {
      if (err) {
        console.error('ws bench: ' + err.message);
        process.exit(1);
      }
      if (++acked === MSGS) {
        const t1 = process.hrtime.bigint();
        console.log(Math.round(MSGS * 1e9 / Number(t1 - t0)));
        c.end();
        return;
      }
      next();
    });
  };
  for (let i = 0; i < WINDOW; i++) next();
});
