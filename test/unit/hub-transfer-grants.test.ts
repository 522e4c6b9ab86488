/**
 * Which bundles a device may download (hub/transfer-grants.ts), on a real
 * SQLite table; the store seam gives each device's current assignment and
 * reported state. The chunk server on the real hub is tested in
 * test/integration/hub-transfer-grants.test.ts.
 */
import { openMigrated } from '../../hub/db/open-migrated.js';
import { describe, expect, it } from 'vitest';
import { BundleGrants } from '../../hub/transfer-grants.js';
import type { HubStore } from '../../hub/store.js';

const [X, Y, Z, W] = ['a', 'b', 'c', 'e'].map((c) => c.repeat(64));

function world() {
  const assigned = new Map<string, string>();
  const reported = new Map<string, { active: string | null; previous: string | null }>();
  const ref = (id: string | null) => (id ? { bundleId: id, name: 'm', version: 1 } : null);
  const store = {
    getAssignment: (d: string) => (assigned.has(d) ? { bundleId: assigned.get(d)! } : undefined),
    getDevice: (d: string) => (reported.has(d) ? { state: { active: ref(reported.get(d)!.active), previous: ref(reported.get(d)!.previous) } } : undefined),
  } as unknown as Pick<HubStore, 'getAssignment' | 'getDevice'>;
  const grants = new BundleGrants(openMigrated(':memory:'), store);
  /** What the hub does on a deploy: record (before storing), then store the assignment. */
  const assign = (bundle: string, ...devices: string[]) => { grants.record(bundle, devices); for (const d of devices) assigned.set(d, bundle); };
  return { grants, assign, assigned, reported };
}

describe('bundle grants', () => {
  it('nothing assigned: nothing may be fetched', () => {
    const { grants } = world();
    expect(grants.mayFetch('dev-1', X)).toBe(false);
  });

  it('the current and the previous assignment may be fetched; older ones and others may not', () => {
    const { grants, assign } = world();
    assign(X, 'dev-1', 'dev-2');
    expect(grants.mayFetch('dev-1', X)).toBe(true);
    expect(grants.mayFetch('dev-1', Y)).toBe(false);
    assign(Y, 'dev-1');
    expect([X, Y].map((b) => grants.mayFetch('dev-1', b))).toEqual([true, true]);
    expect(grants.mayFetch('dev-2', Y)).toBe(false);
    assign(Z, 'dev-1');
    expect([X, Y, Z].map((b) => grants.mayFetch('dev-1', b))).toEqual([false, true, true]);
    // Rolled back to Y: Z is now the previous one.
    assign(Y, 'dev-1');
    expect([X, Y, Z].map((b) => grants.mayFetch('dev-1', b))).toEqual([false, true, true]);
  });

  it('an older bundle the device reports as active or previous may be fetched only if the hub once assigned it', () => {
    const { grants, assign, reported } = world();
    assign(X, 'dev-1'); assign(Y, 'dev-1'); assign(Z, 'dev-1');
    reported.set('dev-1', { active: Z, previous: X });
    expect(grants.mayFetch('dev-1', X)).toBe(true);
    // A claim alone grants nothing.
    reported.set('dev-1', { active: W, previous: null });
    expect(grants.mayFetch('dev-1', W)).toBe(false);
    expect(grants.mayFetch('dev-1', X)).toBe(false);
  });

  it('an assignment made before the grants table existed (upgraded hub) becomes the previous one on the next deploy', () => {
    const { grants, assign, assigned } = world();
    assigned.set('dev-1', X); // stored by an older hub; never recorded here
    expect(grants.mayFetch('dev-1', X)).toBe(true);
    assign(Y, 'dev-1');
    expect([X, Y].map((b) => grants.mayFetch('dev-1', b))).toEqual([true, true]);
  });
});
