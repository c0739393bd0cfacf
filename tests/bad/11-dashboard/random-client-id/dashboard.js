// A live dashboard: one box per sensor, updated as the broker pushes.
// The kit opens dashboard.html?url=ws://...&plant=acme/v1/planta-N&client_id=...
const q = new URLSearchParams(location.search);
const plant = q.get("plant");
document.getElementById("title").textContent = plant;

// clean session, reconnect every second (mqtt.js's defaults, said aloud)
const client = mqtt.connect(q.get("url"), { reconnectPeriod: 1000 });   // mqtt.js makes up an id
const status = document.getElementById("status");

// Subscribe on every connect: after a broker restart the session is new.
client.on("connect", () => {
  status.textContent = "conectado";
  client.subscribe(plant + "/#", { qos: 1 });
});
client.on("reconnect", () => { status.textContent = "reconectando…"; });
client.on("close", () => { status.textContent = "desconectado"; });

// The element of a sensor ("zona/sensor"), made the first time it shows up.
function box(key) {
  let el = document.querySelector(`[data-sensor="${key}"]`);
  if (!el) {
    el = document.createElement("div");
    el.className = "sensor";
    el.dataset.sensor = key;
    el.innerHTML = "<span></span> <b>–</b>";
    el.querySelector("span").textContent = key;
    document.getElementById("sensors").appendChild(el);
  }
  return el;
}

client.on("message", (topic, payload) => {
  // plant/zone/sensor/leaf: what follows the plant's root.
  const [zone, sensor, leaf] = topic.slice(plant.length + 1).split("/");
  if (!zone || !sensor) return;
  const el = box(zone + "/" + sensor);
  const text = payload.toString();
  if (leaf === "temp") {
    let v;
    try { v = JSON.parse(text).v; } catch (e) { return; }
    el.dataset.value = String(v);
    el.querySelector("b").textContent = String(v);
  } else if (leaf === "estado") {
    el.dataset.state = text;     // "online" or "offline" (the will)
  }
});
