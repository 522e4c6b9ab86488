/**
 * The baseline side of bench/sim-scale.ts, in its own process as the hub is on
 * the measured side: an embedded broker of the same kind as the hub's (aedes,
 * no access control: the baseline measures delivery only) and a plain MQTT
 * publisher on loopback. Prints `url <mqtt-url>`; on a stdin line
 * `publish <file> <chunkSize> <inflight>` publishes the file's bytes in chunks
 * of chunkSize at QoS 1 to bench/chunk/<index>, that many publishes in flight,
 * and prints `published`. Exits when stdin closes.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import mqtt from 'mqtt';
import { startBroker } from '@fleetcast/hub/broker.js';

// argv[2]: the drain timeout the hub's broker has in the same run (bench/sim-scale.ts).
const broker = await startBroker({ host: '127.0.0.1', port: 0, ...(process.argv[2] ? { drainTimeoutMs: Number(process.argv[2]) } : {}) });
const pub = await mqtt.connectAsync(broker.url, { clientId: 'plain-pub', reconnectPeriod: 0 });
process.stdout.write(`url ${broker.url}\n`);
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [cmd, file, size, lanes] = line.split(' ');
  if (cmd !== 'publish') return;
  void (async () => {
    const payload = readFileSync(file);
    const chunkSize = Number(size);
    const chunks = Math.ceil(payload.length / chunkSize);
    let next = 0;
    const lane = async () => {
      while (next < chunks) {
        const i = next++;
        await pub.publishAsync(`bench/chunk/${i}`, payload.subarray(i * chunkSize, Math.min(payload.length, (i + 1) * chunkSize)), { qos: 1 });
      }
    };
    await Promise.all(Array.from({ length: Number(lanes) }, lane));
    process.stdout.write('published\n');
  })();
});
lines.on('close', () => { void pub.endAsync().finally(() => broker.close()).finally(() => process.exit(0)); });
