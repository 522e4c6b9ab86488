import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { observeSyncs } from '../../agent/disk-storage.js';
import { atomicWrite, removeStaleTemps, StateStore } from '../../agent/state-store.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);
const ID = 'a'.repeat(64);

/** How many fsyncs of the folder `dir` itself the disk storage made while `fn` ran. */
async function countFolderSyncs(dir: string, fn: () => Promise<void>): Promise<number> {
  let n = 0;
  observeSyncs((kind, path) => { if (kind === 'dir' && path === dir) n++; });
  try { await fn(); } finally { observeSyncs(null); }
  return n;
}

describe('agent state store', () => {
  it('persists updates atomically and reads them back after a reopen', async () => {
    const dir = tempDir('fleetcast-agent-state-');
    const s = await StateStore.open(dir);
    expect(s.state.counter).toBe(0);
    expect(existsSync(join(dir, 'models')) && existsSync(join(dir, 'staging'))).toBe(true);
    // Concurrent updates are serialised: none is lost.
    await Promise.all(Array.from({ length: 20 }, () => s.update((d) => { d.counter++; })));
    await s.update((d) => {
      d.install = { bundleId: ID, counter: 20, name: 'm', version: 1, phase: 'fetching', startedAt: 1, updatedAt: 1, error: null };
    });
    expect(s.state.counter).toBe(20);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    const again = await StateStore.open(dir);
    expect(again.state.counter).toBe(20);
    expect(again.state.install?.phase).toBe('fetching');
    expect(again.state.saves).toBe(21);
    expect(again.payloadFile(ID)).toBe(join(dir, 'staging', ID, 'payload.zst'));
    expect(again.modelFile(ID)).toBe(join(dir, 'models', ID, 'model.onnx'));
  });

  it('State_writes_sync_their_folder_through_one_kept_handle_closed_on_close', async () => {
    // Each state write is made durable by a sync of dataDir after its rename; the folder is opened once for all of
    // them (two threadpool trips fewer per write, while predictions are served) and closed with the store.
    const dir = tempDir('fleetcast-agent-state-');
    const handles = () => readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === dir; } catch { return false; } });
    const synced: string[] = [];
    observeSyncs((kind, path) => { if (kind === 'dir') synced.push(path); });
    try {
      const s = await StateStore.open(dir);
      await s.update((d) => { d.counter = 1; });
      const kept = handles();
      expect(kept).toHaveLength(1);
      await s.update((d) => { d.counter = 2; });
      await s.update((d) => { d.counter = 3; });
      expect(handles()).toEqual(kept);
      expect(synced.filter((p) => p === dir)).toHaveLength(3);
      await s.close();
      expect(handles()).toEqual([]);
      // After close a write still syncs its folder, opening it for that sync only.
      await s.update((d) => { d.counter = 4; });
      expect(synced.filter((p) => p === dir)).toHaveLength(4);
      expect(handles()).toEqual([]);
      expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).counter).toBe(4);
    } finally {
      observeSyncs(null);
    }
  });

  it('State_writes_racing_close_each_sync_their_folder_and_leave_no_handle', async () => {
    // The agent's stop closes the store while writes may be queued: every write, whether it ran before the close
    // (through the kept handle) or after it (opening the folder for its own sync), syncs dataDir after its rename,
    // and none syncs through a handle already closed (an EBADF there would be swallowed and the rename not durable).
    const dir = tempDir('fleetcast-agent-state-');
    const syncs = await countFolderSyncs(dir, async () => {
      const s = await StateStore.open(dir);
      await s.update((d) => { d.counter = 1; }); // the folder is kept open from here
      const before = [2, 3].map((n) => s.update((d) => { d.counter = n; }));
      await new Promise((r) => setImmediate(r)); // the first of them under way, holding the kept handle
      const closing = s.close();
      const after = [4, 5].map((n) => s.update((d) => { d.counter = n; }));
      await Promise.all([...before, closing, ...after]);
    });
    expect(syncs).toBe(5);
    expect(readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === dir; } catch { return false; } })).toEqual([]);
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).counter).toBe(5);
  });

  it('a failed update leaves the previous state in memory and on disk', async () => {
    const dir = tempDir();
    const s = await StateStore.open(dir);
    await s.update((d) => { d.counter = 5; });
    await expect(s.update(() => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(s.state.counter).toBe(5);
    await s.update((d) => { d.counter = 6; });
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).counter).toBe(6);
  });

  it('sets an unreadable state file aside instead of crashing', async () => {
    for (const junk of ['{"v":1,"counter":', '{"v":1,"counter":"x"}', '[]']) {
      const dir = tempDir();
      writeFileSync(join(dir, 'state.json'), junk);
      const s = await StateStore.open(dir, () => 42);
      expect(s.corruptAside).toBe(join(dir, 'state.json.corrupt-42'));
      expect(readFileSync(s.corruptAside!, 'utf8')).toBe(junk);
      expect(s.state.counter).toBe(0);
    }
  });

  it('atomicWrite replaces a file whole', async () => {
    const p = join(tempDir(), 'f.json');
    await atomicWrite(p, 'one');
    await atomicWrite(p, Buffer.from('two'));
    expect(readFileSync(p, 'utf8')).toBe('two');
  });

  it('removes the temporary copies interrupted atomic writes left (state, trust, model manifests), not staged payloads', async () => {
    const dir = tempDir();
    const store = await StateStore.open(dir);
    const id = 'a'.repeat(64);
    mkdirSync(join(dir, 'trust', 'roots'), { recursive: true });
    mkdirSync(store.modelDir(id), { recursive: true });
    mkdirSync(store.stagingDir(id), { recursive: true });
    const stale = [join(dir, 'state.json.tmp-4242'), join(dir, 'trust', 'checkpoint.tmp-7'), join(dir, 'trust', 'roots', 'root-2.json.tmp-9'), join(store.modelDir(id), 'manifest.json.tmp-11')];
    const kept = [join(dir, 'state.json.tmp-x'), store.payloadFile(id), join(store.stagingDir(id), 'manifest.json.tmp-5')];
    for (const p of [...stale, ...kept]) writeFileSync(p, '{');
    expect(await removeStaleTemps(dir)).toBe(stale.length);
    expect(stale.filter((p) => existsSync(p))).toEqual([]);
    expect(kept.every((p) => existsSync(p))).toBe(true);
  });
});
