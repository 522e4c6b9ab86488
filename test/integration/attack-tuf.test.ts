/**
 * The Update Framework's threat model against the real agent (issue #6), one
 * named test per attack. Each refused attack is reported to the hub with its
 * code and leaves the running model serving. The hub here is the test double
 * (test/helpers/agent-test-hub.ts): it plays the attacker, signing and serving
 * whatever each attack needs; the agent, broker and onnxruntime are real.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import type { Rejection } from '../../agent/installer.js';
import { PAYLOAD_TYPES, type Envelope } from '../../protocol/envelope.js';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { generateKeyPair, keyIdOf } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { loadRootText } from '../../signing/root.js';
import { nextRootPayload, signNextRoot } from '../../signing/root-rotation.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle, resign, type TestBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

let fx: Fixture;
let agent: Agent;
let v1: TestBundle;
let v2: TestBundle;
const DEV = 'dev-attack';
const rejections: Rejection[] = [];
let counter = 10;
const DAY = 86_400_000;
// ed25519 group order L (RFC 8032 5.1)
const L = (1n << 252n) + 27742317777372353535851937790883648493n;

beforeAll(async () => {
  fx = await fixture();
  v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 51 }, chunkSize: 2048 }));
  v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 52 }, chunkSize: 2048 }));
  // Attempts long enough that a legitimate fetch never runs out of them on a loaded machine.
  agent = fx.newAgent(DEV, { chunkTimeoutMs: 2_000, maxFetchAttempts: 2, maxBackoffMs: 2_000, capabilities: { hardware: 'pi4' } });
  agent.on('rejected', (r) => rejections.push(r));
  await agent.start();
  await fx.hub.assign(DEV, v1, counter);
  await waitInstalled(agent, v1.bundleId);
});
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const codes = () => fx.hub.events.filter((e) => e.deviceId === DEV).map((e) => e.code);

/** Send, expect `code` (as a rejection or a security event), reported to the hub, with v1 still serving. */
async function refused(code: string, send: (c: number) => Promise<void>): Promise<void> {
  const seen = fx.hub.events.length;
  await send(++counter);
  await waitFor(() => fx.hub.events.slice(seen).some((e) => e.deviceId === DEV && e.code === code), `${code} reported to the hub`);
  await agent.idle();
  expect(agent.status().active?.bundleId).toBe(v1.bundleId);
  expect((await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } })).model.version).toBe(1);
}

const flip = (b64: string, i = 5) => { const b = Buffer.from(b64, 'base64'); b[i] ^= 1; return b.toString('base64'); };

describe('arbitrary installation', () => {
  it('attack: an unsigned assignment', () => refused('AGENT_ERR_ASSIGNMENT_SIGNATURE', (c) => fx.hub.assign(DEV, v2, c, { tamper: (e) => ({ ...e, signatures: [] }) })));
  it('attack: an unsigned manifest', () => refused('AGENT_ERR_MANIFEST_SIGNATURE', (c) => fx.hub.assign(DEV, v2, c, { manifestEnvelope: { ...v2.envelope, signatures: [] } })));
  it('attack: a manifest signed with a key root.json does not list', () => refused('AGENT_ERR_MANIFEST_SIGNATURE', (c) => {
    const evil = resign(v2, [generateKeyPair()], () => {});
    return fx.hub.assign(DEV, fx.hub.add(evil), c);
  }));
  it('attack: a bad signature', () => refused('AGENT_ERR_MANIFEST_SIGNATURE', (c) => fx.hub.assign(DEV, v2, c, { manifestEnvelope: { ...v2.envelope, signatures: [{ ...v2.envelope.signatures[0], sig: flip(v2.envelope.signatures[0].sig) }] } })));
  it('attack: tampered payload bytes', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 3, mlp: { seed: 53 }, chunkSize: 2048 }));
    fx.hub.corrupt.set(b.bundleId, new Set([0, 1, 2, 3]));
    await refused('AGENT_ERR_CHUNK_HASH', (c) => fx.hub.assign(DEV, b, c));
  });
});

describe('endless data', () => {
  it('attack: more bytes than the manifest declares', async () => {
    const b = await makeBundle(fx.keys, { version: 4, mlp: { seed: 54 }, chunkSize: 2048 });
    // The served payload runs past the signed length: the last chunk is longer than its signed hash covers.
    fx.hub.add({ ...b, payload: Buffer.concat([b.payload, Buffer.alloc(4096, 7)]) });
    await refused('AGENT_ERR_CHUNK_HASH', (c) => fx.hub.assign(DEV, b, c));
  });
  it('attack: a raw size that lies (decompression is bounded by the signed length)', async () => {
    const liar = fx.hub.add(resign(v2, [fx.keys.keys.release], (m) => { m.version = 5; m.payload.rawLength = 100; }));
    await refused('AGENT_ERR_DECOMPRESS', (c) => fx.hub.assign(DEV, liar, c));
  });
});

describe('extraneous installs, rollback, mix-and-match, freeze, wrong software', () => {
  it('attack: an assignment for another device', () => refused('AGENT_ERR_ASSIGNMENT_WRONG_DEVICE', (c) => fx.hub.assign(DEV, v2, c, { deviceId: 'someone-else' })));
  it('attack: a replayed older assignment', () => refused('AGENT_ERR_ASSIGNMENT_REPLAY', () => fx.hub.assign(DEV, v2, 3)));
  it('attack: an expired assignment', () => refused('AGENT_ERR_ASSIGNMENT_EXPIRED', (c) => fx.hub.assign(DEV, v2, c, { issuedAt: 1, expiresAt: 2 })));
  it('attack: an assignment naming a manifest that differs from the bytes sent (mix-and-match)', () => refused('AGENT_ERR_MANIFEST_MISMATCH', (c) => fx.hub.assign(DEV, v2, c, { manifestEnvelope: v1.envelope })));
  it('attack: a bundle for another hardware class', async () => {
    const other = fx.hub.add(resign(v2, [fx.keys.keys.release], (m) => { m.version = 6; m.compat.hardware = ['jetson-orin']; }));
    await refused('AGENT_ERR_INCOMPATIBLE', (c) => fx.hub.assign(DEV, other, c));
  });
  it('attack: a malleable assignment signature (S + L)', () => refused('AGENT_ERR_ASSIGNMENT_SIGNATURE', (c) => fx.hub.assign(DEV, v2, c, {
    tamper: (e) => {
      const sig = Buffer.from(e.signatures[0].sig, 'base64');
      let s = 0n; for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
      s += L; for (let i = 0; i < 32; i++) { sig[32 + i] = Number(s & 255n); s >>= 8n; }
      return { ...e, signatures: [{ ...e.signatures[0], sig: sig.toString('base64') }] };
    },
  })));
});

describe('roots and keys', () => {
  const rootV1 = () => loadRootText(readFileSync(fx.keys.rootPath, 'utf8'));
  const sendRoots = (roots: Envelope[]) => fx.hub.publishRaw(topics.trustRoots(), encode({ v: 1, roots }), true);

  it('attack: a root signed only by new root keys (not cross-signed) is refused', () => refused('AGENT_ERR_ROOT_UPDATE', async () => {
    const mine = generateKeyPair();
    const p2 = nextRootPayload(rootV1().payload, { expires: Date.now() + DAY, roles: { root: { replace: [mine.publicKey] }, hub: { replace: [mine.publicKey] } } });
    await sendRoots([signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(p2)), [mine])]);
  }));

  it('attack: a small-order public key in a root (anyone could forge under it) is refused', () => refused('AGENT_ERR_ROOT_UPDATE', async () => {
    const identity = Buffer.alloc(32); identity[0] = 1;
    const p2 = nextRootPayload(rootV1().payload, { expires: Date.now() + DAY });
    p2.keys[keyIdOf(identity)] = { scheme: 'ed25519', public: identity.toString('base64') };
    p2.roles.hub.keyids.push(keyIdOf(identity));
    await sendRoots([signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(p2)), [fx.keys.keys.root])]);
  }));

  it('attack: fast-forward (a counter pushed far ahead by a stolen hub key), recovered from by rotating the hub key; then an older root is refused', async () => {
    // The stolen key signs a valid assignment with a huge counter; the agent accepts it (it is validly signed)…
    const seen = codes().length;
    await fx.hub.assign(DEV, v1, 2 ** 40);
    await waitFor(() => agent.status().counter === 2 ** 40, 'the far-ahead counter was accepted');
    expect(codes().slice(seen).filter(Boolean)).toEqual([]); // accepted, not refused with some code
    // …and from then on the honest hub's counters look like replays.
    await refused('AGENT_ERR_ASSIGNMENT_REPLAY', (c) => fx.hub.assign(DEV, v2, c));
    // Recovery: root v2 revokes the stolen hub key and lists a new one; the agent resets its counter.
    const newHub = generateKeyPair();
    const { envelope: r2 } = signNextRoot(rootV1(), nextRootPayload(rootV1().payload, { expires: Date.now() + DAY, roles: { hub: { replace: [newHub.publicKey] } } }), [fx.keys.keys.root]);
    await sendRoots([rootV1().envelope, r2]);
    await waitFor(() => agent.status().counter === 0, 'counter reset by the hub key rotation');
    // The stolen key no longer signs anything the agent accepts…
    await refused('AGENT_ERR_ASSIGNMENT_SIGNATURE', (c) => fx.hub.assign(DEV, v2, c + 2 ** 41));
    // …and a replayed older root is refused and reported (rollback).
    await refused('AGENT_ERR_ROOT_UPDATE', () => sendRoots([rootV1().envelope]));
    // The honest hub, with its new key, its own small counter and the root it signs under, installs again.
    await fx.hub.assign(DEV, v2, ++counter, { signWith: [newHub], rootVersion: 2 });
    await waitInstalled(agent, v2.bundleId);
  });
});
