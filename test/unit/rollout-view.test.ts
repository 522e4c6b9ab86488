/**
 * The rollout text views read the engine's own gate judgement (judgeRing, not a
 * hand-written object): gate counts, the soak time left, and rings that are
 * over (promoted, or of a finished rollout) never say "waiting on".
 */
import { describe, expect, it } from 'vitest';
import { duration, gateText, renderStatus, renderSummaryLines } from '../../cli/rollout-view.js';
import { judgeRing } from '../../hub/rollouts/gates.js';
import type { RolloutStatus } from '../../hub/rollouts/rollouts.js';
import type { MemberRow } from '../../hub/rollouts/rollout-store.js';
import { DEFAULT_GATES } from '../../hub/rollouts/spec.js';

const NOW = 1_800_000_000_000;
const member = (deviceId: string, doneAt: number): MemberRow => ({ rolloutId: 'ro-1', deviceId, ring: 0, status: 'installed', reason: null, prevBundleId: null, prevP95: null, assignedAt: doneAt - 1000, counter: 1, doneAt });
/** Two devices installed a minute ago, 100 requests without errors: only the 10-minute soak is open. */
const soaking = judgeRing({
  members: [member('a', NOW - 60_000), member('b', NOW - 60_000)],
  health: [{ deviceId: 'a', bundleId: 'x', requests: 100, errors: 0, p95Ms: 2 }] as never,
  drift: { value: null, n: 0 }, gates: { ...DEFAULT_GATES, soakMs: 600_000 }, now: NOW,
});

function status(state: string, ringIndex: number): RolloutStatus {
  const ring = (name: string, index: number) => ({ name, index, devices: 2, counts: { installed: index <= ringIndex ? 2 : 0, waiting: index > ringIndex ? 2 : 0 }, gates: index <= ringIndex ? soaking : null });
  return {
    id: 'ro-1', name: 'churn', version: 2, bundleId: 'b'.repeat(64), state, ring: ['canary', 'broad'][ringIndex], ringIndex, ringStartedAt: NOW, awaitingPromotion: false,
    autoPromote: false, window: null, onFailure: 'rollback', createdAt: NOW, createdBy: 'operator:tok-1', updatedAt: NOW, rings: [ring('canary', 0), ring('broad', 1)], skipped: [],
  };
}

describe('rollout views', () => {
  it('Rollout_status_gate_counts_and_time_left: a soaking ring shows how many gates passed and the soak time left', () => {
    expect(soaking.verdict).toBe('wait');
    expect(soaking.waitingOn).toEqual(['soak']);
    expect(gateText(soaking, null)).toBe('  gates 5/6 passed, waiting on soak (soak 9m00s left)');
    expect(duration(3_725_000)).toBe('1h02m');
  });

  it('Finished_ring_is_not_waiting: a promoted ring and every ring of a completed rollout say done, not "waiting on"', () => {
    const running = renderStatus(status('running', 1));
    expect(running).toMatch(/canary .* done \(promoted\)/);
    expect(running).toMatch(/broad .* waiting on soak \(soak 9m00s left\)/);
    const done = renderStatus(status('completed', 1));
    expect(done).not.toContain('waiting on');
    expect(done.split('\n').filter((l) => /^ {2}(canary|broad) /.test(l)).every((l) => l.endsWith('done') || /done {2}req/.test(l))).toBe(true);
  });

  it('Rollout_status_one_line_per_rollout: without an id, a header and one line each', () => {
    const lines = renderSummaryLines([status('running', 0), { ...status('completed', 1), id: 'ro-2' }]).trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^ID\s+BUNDLE\s+STATE\s+RING\s+DONE\s+GATES$/);
    expect(lines[1]).toMatch(/^ro-1\s+churn@2\s+running\s+canary 1\/2\s+2\/2\s+gates 5\/6 passed, waiting on soak \(soak 9m00s left\)$/);
    expect(lines[2]).toMatch(/^ro-2\s+churn@2\s+completed\s+broad 2\/2\s+2\/2\s+done$/);
  });
});
