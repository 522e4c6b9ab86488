/**
 * A page of the device registry at 100,000 devices (the console's Fleet page):
 * `pageDevices` (hub/device-query.ts: keyset page and count in SQL) against
 * the way GET /v1/devices answered before, every device read and parsed, then
 * filtered in JavaScript, measured in the same run on the same SQLite file.
 * Two cases: the first page with no filter, and a page filtered by a tag.
 */
import { performance } from 'node:perf_hooks';
import { pageDevices } from '@fleetcast/hub/device-query.js';
import { HubStore } from '@fleetcast/hub/store.js';
import { tagsOf } from '@fleetcast/hub/rollouts/rings.js';
import { benchDir } from './dirs.js';
import type { BenchResult } from './lib.js';

const N = 100_000;
const RUNS = 15;

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }

function time(fn: () => unknown): number {
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) { const s = performance.now(); fn(); t.push(performance.now() - s); }
  return median(t);
}

export async function benchDevicePage(): Promise<BenchResult> {
  const store = HubStore.open(benchDir('device-page'));
  const now = Date.now();
  const put = store.db.prepare('INSERT INTO devices (id, state, first_seen, last_seen, active_bundle_id, phase, last_error_code) VALUES (?, ?, ?, ?, NULL, ?, NULL)');
  store.db.transaction(() => {
    for (let i = 0; i < N; i++) {
      const id = `d-${String(i).padStart(6, '0')}`;
      const state = { v: 1, deviceId: id, seq: 1, at: now, agentVersion: '0.1.0', runtime: 'onnxruntime-node', active: null, previous: null, phase: 'committed', target: null, progress: null, lastError: null, counter: 0, capabilities: { tags: i % 10 === 0 ? ['eu', 'cam'] : ['eu'] } };
      put.run(id, JSON.stringify(state), now, now, 'committed');
    }
  })();
  const o = { onlineSince: now - 180_000, limit: 50 };
  const ours = { firstPageMs: time(() => pageDevices(store, {}, o)), tagPageMs: time(() => pageDevices(store, { tag: 'cam' }, o)) };
  // Before: store.listDevices() and a filter in JavaScript, for any page.
  const baseline = {
    firstPageMs: time(() => store.listDevices().slice(0, 50)),
    tagPageMs: time(() => store.listDevices().filter((d) => tagsOf(d.state).includes('cam')).slice(0, 50)),
  };
  store.close();
  return {
    name: `device-page: one page of 50 at ${N} devices (median of ${RUNS})`,
    ours, baseline,
    ratios: [
      { name: 'first page', value: ours.firstPageMs / baseline.firstPageMs, goal: 0.2 },
      { name: 'tag-filtered page', value: ours.tagPageMs / baseline.tagPageMs, goal: 0.5 },
    ],
    notes: ['each of ours also counts the matching devices (the page\'s total), which the baseline does not'],
  };
}
