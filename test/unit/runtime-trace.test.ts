import { describe, expect, it } from 'vitest';
import { recordTrace, runtimeTrace, TRACE_KEEP } from '../../agent/runtime-trace.js';

describe('runtime trace', () => {
  it('Runtime_trace_keeps_only_the_latest_calls', () => {
    runtimeTrace.length = 0;
    for (let i = 0; i < TRACE_KEEP * 2 + 10; i++) recordTrace({ thread: 0, t: 'run', posted: i, back: i });
    expect(runtimeTrace.length).toBeLessThanOrEqual(TRACE_KEEP);
    expect(runtimeTrace.length).toBeGreaterThanOrEqual(TRACE_KEEP / 2);
    expect(runtimeTrace[runtimeTrace.length - 1].posted).toBe(TRACE_KEEP * 2 + 9);
    // In order, no gap: the latest calls, not a sample of them.
    expect(runtimeTrace.every((e, i) => i === 0 || e.posted === runtimeTrace[i - 1].posted + 1)).toBe(true);
    runtimeTrace.length = 0;
  });
});
