/**
 * Start-up with bad surroundings: each problem is a coded error (or, for a
 * damaged state file, a coded report) and never a crash; a failed start
 * releases what it took. An expired root keeps the installed model serving
 * but refuses new assignments.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../agent/agent.js';
import type { Rejection } from '../../agent/installer.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const track = (a: Agent) => { fx.agents.push(a); return a; };

describe('agent start-up', () => {
  it('a data folder it cannot create is AGENT_ERR_DATA_DIR', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    const a = track(createAgent({ deviceId: 'd1', dataDir: join(file, 'data'), rootPath: fx.keys.rootPath }));
    await expect(a.start()).rejects.toMatchObject({ code: 'AGENT_ERR_DATA_DIR' });
  });

  it('a missing or damaged root.json is SIGN_ERR_BAD_ROOT', async () => {
    const a = track(createAgent({ deviceId: 'd2', dataDir: tempDir(), rootPath: join(tempDir(), 'nope.json') }));
    await expect(a.start()).rejects.toMatchObject({ code: 'SIGN_ERR_BAD_ROOT' });
    const bad = join(tempDir(), 'root.json');
    writeFileSync(bad, '{"payloadType":"x"');
    await expect(track(createAgent({ deviceId: 'd2', dataDir: tempDir(), rootPath: bad })).start()).rejects.toMatchObject({ code: 'SIGN_ERR_BAD_ROOT' });
  });

  it('a listen address in use is AGENT_ERR_LISTEN, and the failed start released everything', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    const dataDir = tempDir();
    const a = track(createAgent({ deviceId: 'd3', dataDir, rootPath: fx.keys.rootPath, brokerUrl: fx.broker.url, listen: `127.0.0.1:${port}` }));
    await expect(a.start()).rejects.toMatchObject({ code: 'AGENT_ERR_LISTEN' });
    await new Promise<void>((r) => taken.close(() => r()));
    const again = track(createAgent({ deviceId: 'd3', dataDir, rootPath: fx.keys.rootPath, listen: '127.0.0.1:0' }));
    await again.start();
    expect(again.address?.port).toBeGreaterThan(0);
  });

  it('a damaged state file is set aside and reported; the agent starts empty', async () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, 'state.json'), '{"v":1,"counter":');
    const a = track(createAgent({ deviceId: 'd4', dataDir, rootPath: fx.keys.rootPath }));
    await a.start();
    expect(a.status()).toMatchObject({ counter: 0, active: null, lastError: { code: 'AGENT_ERR_STATE_CORRUPT' } });
  });

  it('after the root expires the installed model keeps serving and new assignments are refused', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 71 } }));
    const v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 72 } }));
    const first = track(createAgent({ deviceId: 'd5', dataDir: tempDir(), rootPath: fx.keys.rootPath, brokerUrl: fx.broker.url, heartbeatMs: 0 }));
    await first.start();
    await fx.hub.assign('d5', b, 1);
    await waitInstalled(first, b.bundleId);
    await first.stop();
    // Four hundred days later (root.json from `keys init` lasts 365).
    const later = Date.now() + 400 * 86_400_000;
    const rejected: Rejection[] = [];
    const second = track(createAgent(first.options, { now: () => later }));
    second.on('rejected', (r) => rejected.push(r));
    await second.start();
    expect(second.status().active?.bundleId).toBe(b.bundleId);
    expect((await second.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } })).model.version).toBe(1);
    await fx.hub.assign('d5', v2, 2);
    await waitFor(() => rejected.find((r) => r.code === 'AGENT_ERR_ROOT_EXPIRED'), 'root expiry rejection');
    expect(second.status().active?.bundleId).toBe(b.bundleId);
  });
});
