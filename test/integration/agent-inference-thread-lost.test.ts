/**
 * A prediction whose inference thread dies (a native crash, an out-of-memory
 * abort) is answered 503 AGENT_ERR_RUNTIME_LOST, as README and
 * docs/architecture.md promise ("retry the request"), not 500
 * AGENT_ERR_INFERENCE (which says the model failed on valid input); the next
 * request is served from a new thread. The real agent, real onnxruntime-node
 * on its inference thread, a real broker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkerRuntime, type WorkerModelRuntime } from '../../agent/runtime-worker.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { cleanupTempDirs } from '../helpers/env.js';

let fx: Fixture;
let runtime: WorkerModelRuntime;
beforeAll(async () => {
  fx = await fixture();
  runtime = await createWorkerRuntime({ intraOpNumThreads: 1 });
});
afterAll(async () => {
  await fx?.close();
  await runtime?.close();
  cleanupTempDirs();
});

describe('agent inference thread', () => {
  it('a prediction whose thread dies is 503 AGENT_ERR_RUNTIME_LOST, and the next one is served', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 93 } }));
    const agent = fx.newAgent('dev-thread-lost', { listen: '127.0.0.1:0' }, { runtime });
    await agent.start();
    await fx.hub.assign('dev-thread-lost', b, 1);
    await waitInstalled(agent, b.bundleId);
    const port = agent.address!.port;
    const body = JSON.stringify({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } });
    expect((await http(port, 'POST', '/v1/predict', body)).status).toBe(200);

    // The thread ends (as a native crash ends it) with the next inference queued behind the exit.
    const thread = runtime.thread!;
    const post = thread.postMessage.bind(thread);
    thread.postMessage = (m: { t?: string }, transfer?: readonly ArrayBuffer[]) => {
      if (m.t === 'run') post({ id: -4, t: 'exit', code: 9 });
      post(m, transfer);
    };
    const lost = await http(port, 'POST', '/v1/predict', body);
    expect(lost.status).toBe(503);
    expect(lost.json.error.code).toBe('AGENT_ERR_RUNTIME_LOST');

    const again = await http(port, 'POST', '/v1/predict', body);
    expect(again.status).toBe(200);
    expect(runtime.thread).not.toBe(thread);
  });
});
