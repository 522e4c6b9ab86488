/** The probation window's verdicts, fed with real outcome sequences. */
import { describe, expect, it } from 'vitest';
import { Probation } from '../../agent/probation.js';
import { PredictStats } from '../../agent/predict-stats.js';

const limits = { minRequests: 10, maxErrorRate: 0.1, maxLatencyRatio: 2 };
const make = (baselineP95: number | null, ms = 60_000) => new Probation({ bundleId: 'b'.repeat(64), until: Date.now() + ms, now: Date.now(), limits, baselineP95 });

describe('probation window', () => {
  it('judges nothing before minRequests, then rolls back on the error rate', async () => {
    const p = make(null);
    for (let i = 0; i < 5; i++) p.observe(1, true);
    for (let i = 0; i < 4; i++) p.observe(1, false);
    let settled = false;
    void p.done.then(() => { settled = true; });
    await Promise.resolve();
    expect(settled).toBe(false);
    p.observe(1, false);
    expect(await p.done).toMatchObject({ ok: false, code: 'AGENT_ERR_PROBATION_ERRORS', requests: 10, errors: 5 });
  });

  it('rolls back when p95 latency passes the ratio over the previous model, not below it', async () => {
    const slow = make(2);
    for (let i = 0; i < 9; i++) slow.observe(3, false);
    slow.observe(4.5, false);
    expect(await slow.done).toMatchObject({ ok: false, code: 'AGENT_ERR_PROBATION_LATENCY' });
    const fine = make(2, 50);
    for (let i = 0; i < 20; i++) fine.observe(3.9, false);
    expect(await fine.done).toMatchObject({ ok: true, requests: 20, errors: 0 });
  });

  it('commits at the end of a quiet window, and a cancel ends it without a verdict', async () => {
    expect(await make(null, 10).done).toEqual({ ok: true, requests: 0, errors: 0 });
    const p = make(null);
    p.cancel('superseded');
    expect(await p.done).toEqual({ ok: null, reason: 'superseded' });
  });
});

describe('predict stats', () => {
  it('keeps a bounded ring with per-model percentiles and the last codes', () => {
    const s = new PredictStats(() => 42);
    for (let i = 1; i <= 2000; i++) s.record({ bundleId: i % 2 ? 'a' : 'b', latencyMs: i, failed: i % 100 === 0 });
    s.noteCode('AGENT_ERR_BUSY');
    expect(s.requests).toBe(2000);
    expect(s.errors).toBe(20);
    expect(s.busy).toBe(1);
    const all = s.summary();
    expect(all.n).toBe(1024);
    expect(all.p50).toBe(1488);
    expect(s.summary('a').n).toBe(512);
    expect(s.lastCodes[0]).toEqual({ code: 'AGENT_ERR_BUSY', at: 42 });
  });
});
