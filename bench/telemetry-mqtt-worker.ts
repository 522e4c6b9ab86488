/**
 * Publishers for the telemetry-mqtt benchmark, in a worker thread so they do
 * not share the hub's event loop: one MQTT connection per simulated device,
 * each sending its report template `rounds` times at QoS 1 (as agents do),
 * with a fresh seq patched into the fixed-width (8-byte varint) seq field,
 * at most `window` unacknowledged publishes per connection.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { parentPort, workerData } from 'node:worker_threads';

interface Data { url: string; devices: { id: string; template: Uint8Array; seqAt: number }[]; rounds: number; window: number }
const data = workerData as Data;

/** v = 2^49 + seq as an 8-byte LEB128 varint (every value in [2^49, 2^56) takes exactly 8 bytes). */
function patchSeq(b: Buffer, at: number, seq: number): void {
  let v = 2 ** 49 + seq;
  for (let i = 0; i < 8; i++) { b[at + i] = (v % 128) | (i < 7 ? 0x80 : 0); v = Math.floor(v / 128); }
}

async function sendAll(c: MqttClient, d: Data['devices'][number], topic: string, firstSeq: number): Promise<void> {
  const tpl = Buffer.from(d.template);
  let inflight = 0;
  let next = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = () => {
      while (inflight < data.window && next < data.rounds) {
        const b = Buffer.from(tpl);
        patchSeq(b, d.seqAt, firstSeq + next++);
        inflight++;
        c.publish(topic, b, { qos: 1 }, (err) => {
          inflight--;
          if (err) reject(err);
          else if (next >= data.rounds && inflight === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

const clients = await Promise.all(data.devices.map((d) => new Promise<MqttClient>((resolve, reject) => {
  const c = mqtt.connect(data.url, { clientId: d.id, protocolVersion: 4, clean: true, reconnectPeriod: 0 });
  c.once('connect', () => resolve(c));
  c.once('error', reject);
})));
parentPort!.postMessage({ ready: true });
parentPort!.on('message', async (m: { prefix: string; firstSeq: number } | { end: true }) => {
  if ('end' in m) {
    await Promise.all(clients.map((c) => c.endAsync()));
    parentPort!.postMessage({ ended: true });
    return;
  }
  const t0 = performance.now();
  await Promise.all(clients.map((c, i) => sendAll(c, data.devices[i], `${m.prefix}/${data.devices[i].id}/telemetry`, m.firstSeq)));
  parentPort!.postMessage({ sentMs: performance.now() - t0 });
});
