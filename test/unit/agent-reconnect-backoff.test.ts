import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../agent/reconnect-backoff.js';

describe('reconnect backoff (capped exponential, equal jitter)', () => {
  const s = { firstMs: 1000, maxMs: 60_000 };
  it('doubles per failure up to the cap, each wait between half its step and the step', () => {
    for (let n = 1; n <= 12; n++) {
      const step = Math.min(60_000, 1000 * 2 ** (n - 1));
      expect(backoffDelay(n, s, () => 0)).toBe(step / 2);
      expect(backoffDelay(n, s, () => 1)).toBe(step);
    }
    expect(backoffDelay(1000, s, () => 0.5)).toBe(45_000);
  });
  it('spreads a fleet that fails at the same instant over half the step (no synchronised reconnects)', () => {
    let seed = 7;
    const rnd = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31; };
    const waits = Array.from({ length: 1000 }, () => backoffDelay(1, s, rnd));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...waits)).toBeLessThanOrEqual(1000);
    // No 50 ms slot holds more than a fifth of the fleet.
    const slots = new Map<number, number>();
    for (const w of waits) slots.set(Math.floor(w / 50), (slots.get(Math.floor(w / 50)) ?? 0) + 1);
    expect(Math.max(...slots.values())).toBeLessThan(200);
  });
});
