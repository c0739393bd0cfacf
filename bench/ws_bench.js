// ws_bench.js PLAIN_URL WS_URL MSGS ROUNDS: for bench/ws.sh. mqtt.js
// (from MQLAB_MQTTJS_DIR) publishes MSGS QoS 1 messages on one
// connection, keeping a window of 20 in flight (libmosquitto's default),
// to each URL in turn, ROUNDS times, alternating so a change of load hits
// both alike. Prints "plain RATE" and "ws RATE" lines (msg/s, from the
// first PUBLISH to the last PUBACK; the connection is not timed).
'use strict';
const mqtt = require(process.env.MQLAB_MQTTJS_DIR);

const [plainUrl, wsUrl, msgsArg, roundsArg] = process.argv.slice(2);
const MSGS = parseInt(msgsArg, 10);
const ROUNDS = parseInt(roundsArg, 10);
const WINDOW = 20;
const payload = Buffer.from('{"id":"r-0","ts":1700000000000,"v":21.5}');

function connect(url, id) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion: 4, clean: true, clientId: id, reconnectPeriod: 0,
                                  connectTimeout: 60000 });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

async function stream(url, id) {
  const c = await connect(url, id);
  const t0 = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    let sent = 0, acked = 0;
    const next = () => {
      if (sent >= MSGS) return;
      sent++;
      c.publish('acme/v1/bench/temp', payload, { qos: 1 }, (err) => {
        if (err) return reject(err);
        if (++acked === MSGS) return resolve();
        next();
      });
    };
    for (let i = 0; i < WINDOW; i++) next();
  });
  const t1 = process.hrtime.bigint();
  await c.endAsync();
  return Math.round(MSGS * 1e9 / Number(t1 - t0));
}

(async () => {
  for (let r = 0; r < ROUNDS; r++) {
    console.log('plain ' + await stream(plainUrl, 'bench-plain'));
    console.log('ws ' + await stream(wsUrl, 'bench-ws'));
  }
})().catch((e) => {
  console.error('ws bench: ' + e);
  process.exit(1);
});
