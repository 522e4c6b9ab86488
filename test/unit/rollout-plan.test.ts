/** Rollout plan pieces without a hub: spec parsing, ring placement, windows, rate, gate judgement, compatibility. */
import { describe, expect, it } from 'vitest';
import { satisfies } from '../../hub/rollouts/compat.js';
import { insideWindow, validCron } from '../../hub/rollouts/cron-window.js';
import { allowedByRate } from '../../hub/rollouts/engine.js';
import { judgeRing } from '../../hub/rollouts/gates.js';
import type { MemberRow } from '../../hub/rollouts/rollout-store.js';
import { placeDevices, placeLateDevice } from '../../hub/rollouts/rings.js';
import { buildPlan, DEFAULT_GATES, parseRate, parseRolloutFile, parseRolloutText } from '../../hub/rollouts/spec.js';

const fleet = (n: number, caps: (i: number) => Record<string, unknown> = () => ({})) => Array.from({ length: n }, (_, i) => ({ id: `d-${i}`, capabilities: caps(i) }));

describe('rollout plans', () => {
  it('uses canary 1% / early 10% / broad 100% by default with the documented gates', () => {
    const p = buildPlan(parseRolloutFile({}));
    expect(p.rings.map((r) => [r.name, r.percent])).toEqual([['canary', 1], ['early', 10], ['broad', 100]]);
    expect(p.rings[0].gates).toEqual(DEFAULT_GATES);
    expect(DEFAULT_GATES).toMatchObject({ minInstallSuccess: 0.95, maxErrorRate: 0.01, maxLatencyRatio: 2, minRequests: 50, soakMs: 600_000 });
    expect(p.onFailure).toBe('rollback');
  });

  it('applies per-rollout and per-ring gate overrides, durations and rates', () => {
    const p = buildPlan(parseRolloutText(JSON.stringify({ gates: { soak: '30s', maxErrorRate: 0.05 }, rings: [{ name: 'a', percent: 5, gates: { soak: '2h' }, rate: '3/min x2' }, { name: 'b', percent: 100 }], policy: { onFailure: 'halt' } })), { rate: '10/min' });
    expect(p.rings[0].gates).toMatchObject({ soakMs: 7_200_000, maxErrorRate: 0.05 });
    expect(p.rings[1].gates.soakMs).toBe(30_000);
    expect(p.rings[0].rate).toEqual({ perMinute: 3, growth: 2 });
    expect(p.rings[1].rate).toEqual({ perMinute: 10, growth: 1 });
    expect(p.onFailure).toBe('halt');
    expect(parseRate({ perMinute: 4, growth: 1.5 }, 'rate')).toEqual({ perMinute: 4, growth: 1.5 });
  });

  it('reads the same plan from YAML as from JSON, and refuses YAML that is not a plan', () => {
    const json = { gates: { soak: '30s', maxErrorRate: 0.05 }, rings: [{ name: 'lab', tags: ['lab', 'on'] }, { name: 'a', percent: 5, rate: '3/min x2' }, { name: 'b', percent: 100 }] };
    const yaml = [
      'gates: { soak: 30s, maxErrorRate: 0.05 }',
      'rings:',
      '  - name: lab',
      '    tags: [lab, on]   # "on" stays a string under the YAML 1.2 core schema',
      '  - { name: a, percent: 5, rate: 3/min x2 }',
      '  - name: b',
      '    percent: 100',
    ].join('\n');
    expect(parseRolloutText(yaml, 'r.yaml')).toEqual(parseRolloutFile(json));
    expect(() => parseRolloutText('rings: []\nrings: []')).toThrow(expect.objectContaining({ code: 'HUB_ERR_ROLLOUT_SPEC' }));
    expect(() => parseRolloutText('rings:\n  - name: a\n    percnt: 5')).toThrow(expect.objectContaining({ code: 'HUB_ERR_ROLLOUT_SPEC', message: expect.stringMatching(/percnt/) }));
    expect(() => parseRolloutText('a: &a [1]\nb: [' + Array(40).fill('*a').join(',') + ']')).toThrow(expect.objectContaining({ code: 'HUB_ERR_ROLLOUT_SPEC' }));
  });

  it('refuses bad plans with HUB_ERR_ROLLOUT_SPEC naming the field', () => {
    const bad = [
      () => parseRolloutText('rings:\n  - canary'),
      () => buildPlan(parseRolloutFile({ rings: [{ name: 'x', percent: 101 }] })),
      () => buildPlan(parseRolloutFile({ rings: [{ name: 'x', percent: 10, devices: ['a'] }] })),
      () => buildPlan(parseRolloutFile({ rings: [{ name: 'x', percent: 10 }, { name: 'x', percent: 20 }] })),
      () => buildPlan(parseRolloutFile({}), { window: '* * *' }),
      () => buildPlan(parseRolloutFile({}), { rate: '0/min' }),
    ];
    for (const f of bad) expect(f).toThrow(expect.objectContaining({ code: 'HUB_ERR_ROLLOUT_SPEC' }));
  });

  it('places exact, stable ring sizes, honours explicit rings, and places late devices without moving anyone', () => {
    const rings = buildPlan(parseRolloutFile({ rings: [{ name: 'lab', tags: ['lab'] }, { name: 'canary', percent: 1 }, { name: 'early', percent: 10 }, { name: 'broad', percent: 100 }] })).rings;
    const devices = fleet(1000, (i) => (i % 250 === 0 ? { tags: ['lab', 'eu'] } : {}));
    const a = placeDevices('ro-1', rings, devices);
    const sizes = [0, 1, 2, 3].map((k) => [...a.values()].filter((x) => x === k).length);
    expect(sizes).toEqual([4, 10, 90, 896]);
    expect(placeDevices('ro-1', rings, [...devices].reverse())).toEqual(a);
    // Another rollout id shuffles who is canary.
    const b = placeDevices('ro-2', rings, devices);
    expect([...b].filter(([, r]) => r === 1).map(([d]) => d)).not.toEqual([...a].filter(([, r]) => r === 1).map(([d]) => d));
    expect(placeDevices('ro-1', rings, fleet(3)).size).toBe(3);
    expect([...placeDevices('ro-1', rings, fleet(3)).values()].filter((r) => r === 1)).toHaveLength(1);
    expect(placeLateDevice('ro-1', rings, { id: 'new', capabilities: { tags: ['lab'] } })).toBe(0);
    expect(placeLateDevice('ro-1', rings, { id: 'new', capabilities: {} })).toBeGreaterThan(0);
  });

  it('judges maintenance windows as UTC cron minutes', () => {
    expect(validCron('* 2-4 * * *')).toBe(true);
    expect(validCron('*/15 22 * * mon-fri')).toBe(true);
    expect(validCron('nope')).toBe(false);
    expect(insideWindow('* 2-4 * * *', Date.UTC(2026, 0, 5, 3, 59))).toBe(true);
    expect(insideWindow('* 2-4 * * *', Date.UTC(2026, 0, 5, 5, 0))).toBe(false);
    // 2026-01-05 is a Monday.
    expect(insideWindow('*/15 22 * * mon-fri', Date.UTC(2026, 0, 5, 22, 30))).toBe(true);
    expect(insideWindow('*/15 22 * * mon-fri', Date.UTC(2026, 0, 5, 22, 31))).toBe(false);
    expect(insideWindow('* * * * sat,sun', Date.UTC(2026, 0, 5, 12, 0))).toBe(false);
    expect(insideWindow(null, 0)).toBe(true);
  });

  it('grows the allowed count per minute, linearly or exponentially', () => {
    expect(allowedByRate(null, 0)).toBe(Number.POSITIVE_INFINITY);
    expect([0, 59_999, 60_000, 180_000].map((t) => allowedByRate({ perMinute: 5, growth: 1 }, t))).toEqual([5, 5, 10, 20]);
    expect([0, 60_000, 120_000].map((t) => allowedByRate({ perMinute: 2, growth: 2 }, t))).toEqual([2, 6, 14]);
  });

  it('fails a ring as soon as a gate cannot pass, and passes only when every gate holds', () => {
    const m = (id: string, status: MemberRow['status'], prevP95: number | null = 1, doneAt = 0): MemberRow => ({ rolloutId: 'r', deviceId: id, ring: 0, status, reason: null, prevBundleId: 'p', prevP95, assignedAt: 0, counter: 1, doneAt });
    const g = { ...DEFAULT_GATES, soakMs: 1000, minRequests: 50 };
    const none = { value: null, n: 0 };
    const health = (req: number, err: number, p95: number) => [{ deviceId: 'a', bundleId: 'b', requests: req, errors: err, p95Ms: p95 }];
    expect(judgeRing({ members: [m('a', 'installed')], health: health(60, 0, 1.5), drift: none, gates: g, now: 2000 }).verdict).toBe('pass');
    expect(judgeRing({ members: [m('a', 'installed')], health: health(60, 0, 1.5), drift: none, gates: g, now: 500 }).waitingOn).toEqual(['soak']);
    expect(judgeRing({ members: [m('a', 'installed')], health: health(10, 5, 1), drift: none, gates: g, now: 2000 }).waitingOn).toEqual(['minRequests']);
    const nan = judgeRing({ members: [m('a', 'installed')], health: health(60, 60, 1), drift: none, gates: g, now: 0 });
    expect(nan).toMatchObject({ verdict: 'fail', failed: ['errorRate'], errorRate: 1 });
    expect(judgeRing({ members: [m('a', 'installed')], health: health(60, 0, 5), drift: none, gates: g, now: 2000 })).toMatchObject({ verdict: 'fail', failed: ['latency'], latencyRatio: 5 });
    expect(judgeRing({ members: [m('a', 'installed')], health: health(60, 0, 1), drift: { value: 0.9, n: 500 }, gates: { ...g, maxDrift: 0.2 }, now: 2000 }).failed).toEqual(['drift']);
    // 1 failed of 20 is 95%: still possible; 2 failed cannot reach 95% any more.
    const many = (failed: number) => Array.from({ length: 20 }, (_, i) => m(`d${i}`, i < failed ? 'failed' : 'assigned'));
    expect(judgeRing({ members: many(1), health: [], drift: none, gates: g, now: 0 }).verdict).toBe('wait');
    expect(judgeRing({ members: many(2), health: [], drift: none, gates: g, now: 0 })).toMatchObject({ verdict: 'fail', failed: ['installSuccess'] });
    // Skipped devices are not judged; a ring of only skipped devices passes.
    expect(judgeRing({ members: [m('a', 'skipped')], health: [], drift: none, gates: g, now: 0 }).verdict).toBe('pass');
  });

  it('reads agent version ranges', () => {
    expect(satisfies('0.1.0', '>=0.1.0 <1.0.0')).toBe(true);
    expect(satisfies('1.2.3', '^1.2.0')).toBe(true);
    expect(satisfies('2.0.0', '^1.2.0')).toBe(false);
    expect(satisfies('1.2.9', '~1.2.3')).toBe(true);
    expect(satisfies('1.3.0', '1.2.x')).toBe(false);
  });
});
