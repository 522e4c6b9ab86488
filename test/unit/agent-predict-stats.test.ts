import { describe, expect, it } from 'vitest';
import { pct, PredictStats } from '../../agent/predict-stats.js';

describe('predict stats ring', () => {
  it('summarises exactly the last 1,024 samples per model, as a list of them would, before and after it wraps', () => {
    const s = new PredictStats(() => 0);
    const all: { bundleId: string | null; latencyMs: number; failed: boolean }[] = [];
    const check = () => {
      const recent = all.slice(-1024);
      for (const id of [undefined, 'a', 'b', null]) {
        const mine = recent.filter((x) => id === undefined || x.bundleId === id);
        const lat = mine.map((x) => x.latencyMs).sort((p, q) => p - q);
        // null (no model) is not a filter: summary(undefined) covers every sample.
        if (id === null) continue;
        expect(s.summary(id)).toEqual({ n: mine.length, errors: mine.filter((x) => x.failed).length, p50: pct(lat, 50), p95: pct(lat, 95), p99: pct(lat, 99) });
      }
    };
    expect(s.summary()).toEqual({ n: 0, errors: 0, p50: null, p95: null, p99: null });
    for (let i = 0; i < 3000; i++) {
      const x = { bundleId: i % 3 === 0 ? 'a' : i % 3 === 1 ? 'b' : null, latencyMs: (i * 7919) % 1000, failed: i % 11 === 0 };
      s.record(x);
      all.push(x);
      if (i === 9 || i === 500 || i === 1023 || i === 1024 || i === 2999) check();
    }
    expect(s.requests).toBe(3000);
    expect(s.errors).toBe(all.filter((x) => x.failed).length);
  });
});
