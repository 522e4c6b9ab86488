/**
 * The operator's side of the agent benchmarks, in a worker thread: deploy
 * requests to the hub's API (HTTP, JSON) run here, not on the event loop of the
 * agent being measured. On a device the deploy comes from another machine; on
 * the agent's loop it would be benchmark work counted against swaps only.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { threadId } from '@fleetcast/agent/runtime-trace.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { makeThreadIdle } from './idle-priority.js';

const { url, token } = workerData as { url: string; token: string };
const api = new HubClient(url, token);

// The operator stands for another machine, like the hub (at SCHED_IDLE in its own process): this thread is moved to
// SCHED_IDLE too (bench/idle-priority.ts; nice 15 without chrt), so that its HTTP client work at the start of every
// swap does not take a core from the agent being measured. On Linux a thread has its own policy; elsewhere it runs as is.
const tid = threadId();
if (tid > 0) makeThreadIdle(tid);

parentPort!.on('message', (m: { id: number; name: string; version: number; devices: string[]; allowUnknown: boolean }) => {
  api.deploy({ name: m.name, version: m.version, devices: m.devices, allowUnknown: m.allowUnknown }).then(
    () => parentPort!.postMessage({ id: m.id, ok: true }),
    (e: unknown) => parentPort!.postMessage({ id: m.id, ok: false, error: (e as Error).message }),
  );
});
