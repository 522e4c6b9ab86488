/**
 * Retained control messages across a root change, on a real hub.db. A device
 * that takes a root revoking a hub key resets its control counter and refuses
 * any control message signed under an older root (AGENT_ERR_CONTROL_REPLAY,
 * agent/device-control.ts), and any signed by the revoked key. The hub
 * re-signs its current assignments under the new root at start
 * (Assigner.resignOlderRoot). A retained "off" must be re-signed likewise, or
 * a device that takes the new root before it refuses the operator's "off" and
 * keeps sending raw rows until the old `until`. An "on" is left as signed
 * (README: sampling switched on before the rotation must be switched on again).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DebugControl } from '../../hub/debug/debug-control.js';
import { HubStore } from '../../hub/store.js';
import { controlPayloadSchema, decodeControlMessage, type ControlPayload } from '../../protocol/control.js';
import { parse } from '../../protocol/schema.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { silentLogger, stateReport } from '../helpers/hub-fixtures.js';

afterAll(cleanupTempDirs);

const payloadOf = (bytes: Buffer): { payload: ControlPayload; keyids: string[] } => {
  const m = decodeControlMessage(bytes);
  return { payload: parse(controlPayloadSchema, JSON.parse(Buffer.from(m.control.payload, 'base64').toString('utf8'))), keyids: m.control.signatures.map((s) => s.keyid) };
};

describe('debug control across a root change', () => {
  it('Control_off_resigned_under_new_root: at start, a retained "off" signed under an older root is re-signed under the current root and key; an "on" is not', async () => {
    const dir = tempDir();
    let t = 10_000_000;
    const now = () => t;
    const store = HubStore.open(dir);
    store.recordState(stateReport('dev-1', { seq: 1 }), now());
    store.recordState(stateReport('dev-2', { seq: 1 }), now());
    const sent = new Map<string, Buffer>();
    const deps = { store, now, logger: silentLogger(), maxDevices: 10, publishTimeoutMs: 5_000, publish: async (topic: string, p: Buffer) => { sent.set(topic, p); } };

    const h1 = { ...generateKeyPair(), role: 'hub' as const };
    const before = new DebugControl({ ...deps, hubKey: h1, rootVersion: 1 });
    await before.turnOn('dev-1', 5, 30, 'operator:tok-1');
    await before.turnOn('dev-2', 5, 30, 'operator:tok-1');
    await before.turnOff('dev-2', 'operator:tok-1');
    await before.close();
    const old1 = payloadOf(sent.get('fc/v1/dev/dev-1/control')!);
    const old2 = payloadOf(sent.get('fc/v1/dev/dev-2/control')!);
    expect(old1.payload.rootVersion).toBe(1);

    // Root v2 revoked h1; the hub restarts with its new key h2.
    t += 60_000;
    sent.clear();
    const h2 = { ...generateKeyPair(), role: 'hub' as const };
    const after = new DebugControl({ ...deps, hubKey: h2, rootVersion: 2 });
    await after.start();
    await after.close();
    const off = payloadOf(sent.get('fc/v1/dev/dev-2/control')!);
    expect(off.payload.rootVersion).toBe(2);
    expect(off.keyids).toEqual([h2.keyid]);
    expect(off.payload.counter).toBeGreaterThan(old2.payload.counter);
    // What it says is unchanged: off, retained as long.
    expect(off.payload.debug).toBeNull();
    expect(off.payload.expiresAt).toBe(old2.payload.expiresAt);
    expect(after.state('dev-2')).toMatchObject({ on: false, delivered: true });
    // The "on" is republished exactly as signed: the device refuses it, and the operator switches it on again.
    expect(payloadOf(sent.get('fc/v1/dev/dev-1/control')!)).toEqual(old1);
    store.close();
  });
});
