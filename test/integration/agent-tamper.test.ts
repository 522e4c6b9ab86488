/**
 * Every kind of tampering with what reaches a device is refused with its own
 * code, reported to the hub, loads nothing, and leaves the old model serving.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import type { Rejection } from '../../agent/installer.js';
import type { Envelope } from '../../protocol/envelope.js';
import { topics } from '../../protocol/topics.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle, resign, type AssignOverrides, type TestBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

let fx: Fixture;
let agent: Agent;
let v1: TestBundle;
let v2: TestBundle;
const DEV = 'dev-tamper';
const rejections: Rejection[] = [];
let counter = 10;

beforeAll(async () => {
  fx = await fixture();
  v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 41 } }));
  v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 42 } }));
  // Two attempts (the corrupt-chunk case gives up after them), each long enough that a legitimate fetch
  // never runs out of them on a loaded machine.
  agent = fx.newAgent(DEV, { chunkTimeoutMs: 2_000, maxFetchAttempts: 2, maxBackoffMs: 2_000 });
  agent.on('rejected', (r) => rejections.push(r));
  await agent.start();
  await fx.hub.assign(DEV, v1, counter);
  await waitInstalled(agent, v1.bundleId);
});
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const flipB64 = (b64: string, at: (len: number) => number): string => {
  const b = Buffer.from(b64, 'base64');
  b[at(b.length)] ^= 0x01;
  return b.toString('base64');
};
const withSig = (env: Envelope, sig: string): Envelope => ({ ...env, signatures: [{ ...env.signatures[0], sig }] });

/** Publish an assignment, expect a rejection with `code`, and check v1 still serves and nothing else was installed. */
async function expectRejected(code: string, send: (c: number) => Promise<void>): Promise<void> {
  const seen = rejections.length;
  const eventsBefore = fx.hub.events.length;
  const c = ++counter;
  await send(c);
  const r = await waitFor(() => rejections.slice(seen).find((x) => x.code === code) ?? (rejections.length > seen ? rejections[seen] : null), `rejection ${code}`);
  expect(r.code).toBe(code);
  await agent.idle();
  // Only events sent for THIS refusal count: the same code may have been reported by an earlier case.
  await waitFor(() => fx.hub.events.slice(eventsBefore).some((e) => e.deviceId === DEV && e.code === code), `${code} reported to the hub`);
  const st = agent.status();
  expect(st.active?.bundleId).toBe(v1.bundleId);
  expect((await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } })).model.version).toBe(1);
  expect(readdirSync(join(agent.options.dataDir, 'models'))).toEqual([v1.bundleId]);
}

const assign = (b: TestBundle, o: AssignOverrides = {}) => (c: number) => fx.hub.assign(DEV, b, c, o);

describe('agent refuses tampered assignments and bundles', () => {
  it('a flipped byte in the served payload: chunks fail their signed hashes', async () => {
    fx.hub.corrupt.set(v2.bundleId, new Set([0]));
    await expectRejected('AGENT_ERR_CHUNK_HASH', assign(v2));
    fx.hub.corrupt.delete(v2.bundleId);
  });

  it('a payload whose chunk hashes were re-signed but not its payload hash', async () => {
    const bad = Buffer.from(v2.payload);
    bad[bad.length >> 1] ^= 0x01;
    const size = v2.manifest.payload.chunkSize;
    const forged = fx.hub.add(resign(v2, [fx.keys.keys.release], (m) => {
      m.payload.chunkHashes = m.payload.chunkHashes.map((_, i) => createHash('sha256').update(bad.subarray(i * size, (i + 1) * size)).digest('hex'));
    }, bad));
    await expectRejected('AGENT_ERR_PAYLOAD_HASH', assign(forged));
  });

  it('a decompressed model that is not the signed raw model', async () => {
    const forged = fx.hub.add(resign(v2, [fx.keys.keys.release], (m) => { m.payload.rawSha256 = 'ab'.repeat(32); }));
    await expectRejected('AGENT_ERR_PAYLOAD_HASH', assign(forged));
  });

  it('a flipped byte in the manifest', async () => {
    const env = { ...v2.envelope, payload: flipB64(v2.envelope.payload, (n) => n - 5) };
    await expectRejected('AGENT_ERR_MANIFEST_SIGNATURE', assign(v2, { manifestEnvelope: env }));
  });

  it('a flipped byte in the manifest signature', async () => {
    const env = withSig(v2.envelope, flipB64(v2.envelope.signatures[0].sig, () => 3));
    await expectRejected('AGENT_ERR_MANIFEST_SIGNATURE', assign(v2, { manifestEnvelope: env }));
  });

  it('a flipped byte in the assignment signature', async () => {
    await expectRejected('AGENT_ERR_ASSIGNMENT_SIGNATURE', assign(v2, { tamper: (env) => withSig(env, flipB64(env.signatures[0].sig, () => 10)) }));
  });

  it('a manifest signed by a key root.json does not list', async () => {
    const rogue = resign(v2, [generateKeyPair()], () => {});
    await expectRejected('AGENT_ERR_MANIFEST_SIGNATURE', assign(rogue));
  });

  it('an assignment not signed by the hub key (signed by the release key)', async () => {
    await expectRejected('AGENT_ERR_ASSIGNMENT_SIGNATURE', assign(v2, { signWith: [fx.keys.keys.release] }));
  });

  it('an assignment whose counter goes backwards', async () => {
    await expectRejected('AGENT_ERR_ASSIGNMENT_REPLAY', () => fx.hub.assign(DEV, v2, 3));
  });

  it('an expired assignment', async () => {
    await expectRejected('AGENT_ERR_ASSIGNMENT_EXPIRED', assign(v2, { issuedAt: Date.now() - 120_000, expiresAt: Date.now() - 60_000 }));
  });

  it('an assignment for another device', async () => {
    await expectRejected('AGENT_ERR_ASSIGNMENT_WRONG_DEVICE', assign(v2, { deviceId: 'someone-else' }));
  });

  it('an assignment and a manifest that disagree', async () => {
    await expectRejected('AGENT_ERR_MANIFEST_MISMATCH', assign(v2, { manifestEnvelope: v1.envelope }));
    await expectRejected('AGENT_ERR_MANIFEST_MISMATCH', assign(v2, { version: 7 }));
  });

  it('garbage on the assign topic', async () => {
    await expectRejected('AGENT_ERR_ASSIGNMENT_INVALID', (c) => fx.hub.publishRaw(topics.assign(DEV), Buffer.from(`{"v":1,"junk":${c}`), true));
  });

  it('a correctly signed model that fails its smoke inference', async () => {
    const nan = fx.hub.add(await makeBundle(fx.keys, { version: 3, mlp: { seed: 43, nanOutput: true }, smokeCheck: false }));
    await expectRejected('AGENT_ERR_SMOKE_FAILED', assign(nan));
  });

  it('a correctly signed model whose golden cases disagree with what it computes on this device', async () => {
    const inputs = { x: [[1, 2, 3, 4]], category: [[1]] };
    const wrong = fx.hub.add(await makeBundle(fx.keys, { version: 4, mlp: { seed: 44 }, golden: [{ inputs, outputs: { y: { dims: [1, 2], data: [123, -456] } }, tolerance: 1e-3 }], smokeCheck: false }));
    await expectRejected('AGENT_ERR_SMOKE_FAILED', assign(wrong));
  });

  it('still installs a good assignment afterwards, and the counter never went back', async () => {
    const c = ++counter;
    await fx.hub.assign(DEV, v2, c);
    await waitInstalled(agent, v2.bundleId);
    expect(agent.status().counter).toBe(c);
  });
});
