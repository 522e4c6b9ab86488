/**
 * Fetch edge cases over a real broker: a hub that never answers makes the
 * agent give up after exactly maxFetchAttempts requests with
 * AGENT_ERR_FETCH_TIMEOUT (the old model keeps serving) and resume when the
 * assignment is delivered again; a newer assignment cancels a stalled fetch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rejection } from '../../agent/installer.js';
import { topics } from '../../protocol/topics.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

describe('agent fetch', () => {
  it('gives up after maxFetchAttempts with AGENT_ERR_FETCH_TIMEOUT, keeps serving, and resumes on re-delivery', async () => {
    const v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 81 } }));
    const v2 = await makeBundle(fx.keys, { version: 2, mlp: { seed: 82 } }); // not served yet
    // Timeouts long enough that v1's own fetch never runs out of attempts on a loaded machine; v2 is never served.
    const agent = fx.newAgent('dev-timeout', { chunkTimeoutMs: 1_000, maxFetchAttempts: 3, maxBackoffMs: 1_000 });
    const rejected: Rejection[] = [];
    agent.on('rejected', (r) => rejected.push(r));
    await agent.start();
    await fx.hub.assign('dev-timeout', v1, 1);
    await waitInstalled(agent, v1.bundleId);

    await fx.hub.assign('dev-timeout', v2, 2);
    const r = await waitFor(() => rejected[0], 'fetch failure');
    expect(r).toMatchObject({ code: 'AGENT_ERR_FETCH_TIMEOUT', phase: 'fetching', bundleId: v2.bundleId, counter: 2 });
    // Exactly maxFetchAttempts requests, however slow: wait for the last to reach the hub, then no more come.
    await waitFor(() => fx.hub.requestsFor(v2.bundleId).length >= 3, 'three requests at the hub');
    await waitFor(() => fx.hub.events.some((e) => e.deviceId === 'dev-timeout' && e.kind === 'fetch-failed' && e.code === 'AGENT_ERR_FETCH_TIMEOUT'), 'fetch-failed event');
    expect(agent.status()).toMatchObject({ phase: 'failed', active: { bundleId: v1.bundleId }, lastError: { code: 'AGENT_ERR_FETCH_TIMEOUT' } });
    expect(fx.hub.requestsFor(v2.bundleId)).toHaveLength(3);
    expect((await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } })).model.version).toBe(1);

    // The same assignment delivered again (as after a reconnect) retries a transient failure.
    fx.hub.add(v2);
    await fx.hub.assign('dev-timeout', v2, 2);
    await waitInstalled(agent, v2.bundleId);
    expect(agent.status().counter).toBe(2);
  });

  it('a newer assignment cancels a stalled fetch without reporting it as a failure', async () => {
    const stalled = await makeBundle(fx.keys, { version: 1, mlp: { seed: 91 } }); // never served
    const next = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 92 } }));
    const agent = fx.newAgent('dev-cancel', { chunkTimeoutMs: 60_000 });
    const rejected: Rejection[] = [];
    agent.on('rejected', (r) => rejected.push(r));
    await agent.start();
    await fx.hub.assign('dev-cancel', stalled, 1);
    await waitFor(() => fx.hub.requestsFor(stalled.bundleId).length === 1, 'stalled fetch started');
    await fx.hub.assign('dev-cancel', next, 2);
    await waitInstalled(agent, next.bundleId);
    expect(rejected).toEqual([]);
    expect(agent.status()).toMatchObject({ counter: 2, phase: 'committed' });
  });
});

describe('agent fetch on a broker slow to acknowledge subscriptions', () => {
  // The two trust subscriptions wait 0.5 s each for their SUBACK, the first chunk subscription 3 s (later ones
  // at once): the agent's connect handler ends while the fetch the retained assignment started still waits for
  // its SUBACK, so a second round started by that handler would ask first.
  let slow: Fixture;
  let chunkSubscribes = 0;
  beforeAll(async () => {
    slow = await fixture({ subackDelayMs: (f) => f.includes('/trust/') ? 500 : f.includes('/chunk/') ? (chunkSubscribes++ === 0 ? 3_000 : 0) : 0 });
  });
  afterAll(async () => { await slow?.close(); });

  it('Assignment_waiting_at_connect_asked_once: a fetch started during the connect handler is not asked again by it', async () => {
    const b = slow.hub.add(await makeBundle(slow.keys, { version: 1, mlp: { seed: 95 } }));
    // Retained before the agent connects (a device booting with an assignment waiting, or resuming a fetch).
    await slow.hub.assign('dev-waiting', b, 1);
    const agent = slow.newAgent('dev-waiting', { chunkTimeoutMs: 60_000 });
    await agent.start();
    await waitInstalled(agent, b.bundleId);
    // One round: subscribe once, ask once. A second round asks again when its SUBACK comes first (the crash
    // suite's resumed fetch asked twice for its missing chunk this way), and the hub sends those chunks again to
    // every device subscribed to the bundle.
    expect(slow.broker.subscribes.filter((s) => s.filter === topics.chunkFilter(b.bundleId))).toHaveLength(1);
    expect(slow.hub.requestsFor(b.bundleId)).toEqual([Array.from({ length: b.manifest.payload.chunkHashes.length }, (_, i) => i)]);
  }, 60_000);
});
