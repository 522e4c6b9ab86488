/**
 * On disk the agent decompresses a payload while its chunks arrive
 * (agent/installer.ts #unpackWhileFetching, bundles/decompress-feed.ts):
 * every chunk that matched its signed hash goes, in index order, to the
 * decompression during the fetch, and only the tail is left for staging. What it
 * wrote is trusted no earlier than before: the payload hash (verifying), then the
 * model's signed length and raw sha256 (staging), then seal and rename.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { diskStorage } from '../../agent/disk-storage.js';
import type { Rejection } from '../../agent/installer.js';
import type { AgentStorage } from '../../agent/storage.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle, resign, type TestBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

let fx: Fixture;
let v1: TestBundle;
let v2: TestBundle;
beforeAll(async () => {
  fx = await fixture();
  // Small chunks: a payload of several, so that the order and the hand-over per chunk show.
  v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 41, padFloats: 20_000 }, chunkSize: 16_384 }));
  v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 42, padFloats: 20_000 }, chunkSize: 16_384 }));
});
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

/** The disk storage, recording in which persisted phase the agent fed, ended or skipped the decompression. */
function watchedDisk(phase: () => string) {
  const log: { what: 'write' | 'end' | 'decompress-after-fetch'; phase: string; bytes?: number }[] = [];
  const storage: AgentStorage = {
    ...diskStorage,
    streamDecompress(dst, o) {
      const t = diskStorage.streamDecompress!(dst, o);
      return {
        write: (b) => { log.push({ what: 'write', phase: phase(), bytes: b.length }); return t.write(b); },
        end: () => { log.push({ what: 'end', phase: phase() }); return t.end(); },
        abort: () => t.abort(),
      };
    },
    decompress(payload, dst, o) { log.push({ what: 'decompress-after-fetch', phase: phase() }); return diskStorage.decompress(payload, dst, o); },
  };
  return { storage, log };
}

describe('decompression while the payload arrives', () => {
  it('Payload_decompressed_while_fetching: every compressed byte goes to the decompression during the fetch; staging only finishes it', async () => {
    let agent: Agent | null = null;
    const w = watchedDisk(() => agent!.status().phase);
    agent = fx.newAgent('dev-stream', {}, { storage: w.storage });
    await agent.start();
    await fx.hub.assign('dev-stream', v1, 1);
    await waitInstalled(agent, v1.bundleId);
    const writes = w.log.filter((e) => e.what === 'write');
    expect(v1.manifest.payload.chunkHashes.length).toBeGreaterThan(2);
    expect(writes.length).toBe(v1.manifest.payload.chunkHashes.length);
    expect(writes.reduce((n, e) => n + e.bytes!, 0)).toBe(v1.manifest.payload.compressedLength);
    expect(new Set(writes.map((e) => e.phase))).toEqual(new Set(['fetching']));
    expect(w.log.filter((e) => e.what !== 'write')).toEqual([{ what: 'end', phase: 'staging' }]);
    const r = await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } });
    expect(r.model.version).toBe(1);
  });

  it('Stream_given_up_falls_back_to_the_staged_file: a decompression that falls behind its bound is stopped, and staging decompresses the staged payload', async () => {
    let agent: Agent | null = null;
    const w = watchedDisk(() => agent!.status().phase);
    const log: string[] = [];
    // The feed takes the first chunk, then says it is too far behind (as past its 32 MiB bound).
    const storage: AgentStorage = {
      ...w.storage,
      streamDecompress(dst, o) {
        const t = diskStorage.streamDecompress!(dst, o);
        let taken = 0;
        return {
          write: (b) => (taken++ === 0 ? t.write(b) : (log.push('refused'), false)),
          end: () => { log.push('end'); return t.end(); },
          abort: () => { log.push('abort'); return t.abort(); },
        };
      },
    };
    agent = fx.newAgent('dev-stream-drop', {}, { storage });
    await agent.start();
    await fx.hub.assign('dev-stream-drop', v2, 1);
    await waitInstalled(agent, v2.bundleId);
    expect(log).toEqual(['refused', 'abort']);
    expect(w.log).toEqual([{ what: 'decompress-after-fetch', phase: 'staging' }]);
    expect((await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } })).model.version).toBe(2);
  });

  it('Streamed_unpack_keeps_the_signed_size_limit: a model longer than its signed raw length is refused (AGENT_ERR_DECOMPRESS), nothing kept, the old model serves', async () => {
    let agent: Agent | null = null;
    const w = watchedDisk(() => agent!.status().phase);
    agent = fx.newAgent('dev-stream-bomb', {}, { storage: w.storage });
    const rejections: Rejection[] = [];
    agent.on('rejected', (r) => rejections.push(r));
    await agent.start();
    await fx.hub.assign('dev-stream-bomb', v1, 1);
    await waitInstalled(agent, v1.bundleId);
    // Signed by the release key, so every chunk and the payload hash match: only the decompression limit stops it.
    const bomb = fx.hub.add(resign(v2, [fx.keys.keys.release], (m) => { m.payload.rawLength = Math.floor(m.payload.rawLength / 2); }));
    await fx.hub.assign('dev-stream-bomb', bomb, 2);
    const r = await waitFor(() => rejections.find((x) => x.bundleId === bomb.bundleId), 'the oversized model refused', 60_000);
    expect(r).toMatchObject({ code: 'AGENT_ERR_DECOMPRESS', phase: 'staging' });
    // Refused by the decompression fed during the fetch: the staged file was not decompressed again.
    expect(w.log.filter((e) => e.what !== 'write')).toEqual([{ what: 'end', phase: 'staging' }, { what: 'end', phase: 'staging' }]);
    await agent.idle();
    expect(agent.status().active?.bundleId).toBe(v1.bundleId);
    expect(readdirSync(join(agent.options.dataDir, 'models'))).toEqual([v1.bundleId]);
    expect((await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } })).model.version).toBe(1);
  });

  it('Disk_full_during_streamed_unpack_is_transient: a model write that finds the disk full is AGENT_ERR_DISK_SPACE (not a bundle refused for good), the old model serves, and the bundle installs once there is room', async () => {
    // The first streamed decompression writes to /dev/full: the kernel's own ENOSPC on every write.
    let full = true;
    const storage: AgentStorage = {
      ...diskStorage,
      streamDecompress(dst, o) {
        const target = full ? '/dev/full' : dst;
        full = false;
        return diskStorage.streamDecompress!(target, o);
      },
    };
    const agent = fx.newAgent('dev-stream-full', {}, { storage });
    const rejections: Rejection[] = [];
    agent.on('rejected', (r) => rejections.push(r));
    await agent.start();
    // A first model installed with room on the disk.
    full = false;
    await fx.hub.assign('dev-stream-full', v1, 1);
    await waitInstalled(agent, v1.bundleId);
    full = true;
    await fx.hub.assign('dev-stream-full', v2, 2);
    const r = await waitFor(() => rejections.find((x) => x.bundleId === v2.bundleId), 'the full disk reported', 60_000);
    expect(r).toMatchObject({ code: 'AGENT_ERR_DISK_SPACE', phase: 'staging' });
    await agent.idle();
    expect(agent.status().active?.bundleId).toBe(v1.bundleId);
    expect((await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } })).model.version).toBe(1);
    // Room again: the same bundle delivered again installs (a permanent refusal would refuse it here for good).
    await fx.hub.assign('dev-stream-full', v2, 3);
    await waitInstalled(agent, v2.bundleId);
    expect((await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[2]] } })).model.version).toBe(2);
  });
});
