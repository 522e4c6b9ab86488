/**
 * The replay guard after a restart (hub/report-replay.ts): a new guard learns each device's highest
 * state seq from the store, so a report captured before the restart is still refused, and it reads
 * it without committing the queued reports of other devices (one commit per device was the cost of
 * a whole fleet reconnecting).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { HubStore } from '../../hub/store.js';
import { ReplayGuard } from '../../hub/report-replay.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { stateReport } from '../helpers/hub-fixtures.js';
import type { DeviceEvent } from '../../protocol/messages.js';

afterAll(() => cleanupTempDirs());

const deviceEvent = (deviceId: string, seq: number): DeviceEvent => ({ v: 1, deviceId, seq, at: 5, kind: 'installed' });

describe('report replay guard across a restart', () => {
  it('refuses a state report at or below the stored seq, accepts a higher one, for a device unknown to this guard', () => {
    const dir = tempDir();
    const before = HubStore.open(dir);
    before.recordState(stateReport('dev-r', { seq: 5 }), 1);
    before.close();
    const store = HubStore.open(dir);
    try {
      const guard = new ReplayGuard(store);
      expect(guard.fresh('state', { deviceId: 'dev-r', seq: 3 })).toBe(false);
      expect(guard.fresh('state', { deviceId: 'dev-r', seq: 5 })).toBe(false);
      expect(guard.fresh('state', { deviceId: 'dev-r', seq: 6 })).toBe(true);
      expect(guard.fresh('state', { deviceId: 'dev-new', seq: 1 })).toBe(true);
      expect(guard.dropped.state).toBe(2);
    } finally { store.close(); }
  });

  it('accepts a state seq with a gap (the agent publishes only the last report of a turn) and still refuses the skipped seqs later', () => {
    const store = HubStore.open(tempDir());
    try {
      const guard = new ReplayGuard(store);
      expect(guard.fresh('state', { deviceId: 'dev-g', seq: 10 })).toBe(true);
      // 11 (verifying) was superseded in the agent by 12 (staging) before it was sent.
      expect(guard.fresh('state', { deviceId: 'dev-g', seq: 12 })).toBe(true);
      expect(guard.fresh('state', { deviceId: 'dev-g', seq: 11 })).toBe(false);
      expect(guard.fresh('state', { deviceId: 'dev-g', seq: 15 })).toBe(true);
    } finally { store.close(); }
  });

  it('learning a device\'s seq does not commit the reports other devices have queued', () => {
    const store = HubStore.open(tempDir());
    try {
      store.recordState(stateReport('dev-q', { seq: 1 }), 1);
      const guard = new ReplayGuard(store);
      expect(store.queuedReports).toBe(1);
      expect(guard.fresh('state', { deviceId: 'dev-other', seq: 1 })).toBe(true);
      expect(store.queuedReports).toBe(1);
    } finally { store.close(); }
  });

  // A rollout's first event of each of 200 agents committed every queued report (one fsync'd transaction per device).
  it('learning a device\'s event seq does not commit the queued reports either, and still refuses a stored event replayed', () => {
    const dir = tempDir();
    const before = HubStore.open(dir);
    before.recordEvent(deviceEvent('dev-e', 4), 1);
    before.close();
    const store = HubStore.open(dir);
    try {
      store.recordState(stateReport('dev-q', { seq: 1 }), 1);
      const guard = new ReplayGuard(store);
      expect(guard.fresh('event', { deviceId: 'dev-other', seq: 1 })).toBe(true);
      expect(store.queuedReports).toBe(1);
      expect(guard.fresh('event', { deviceId: 'dev-e', seq: 4 })).toBe(false);
      expect(guard.fresh('event', { deviceId: 'dev-e', seq: 5 })).toBe(true);
      expect(store.queuedReports).toBe(1);
    } finally { store.close(); }
  });
});
