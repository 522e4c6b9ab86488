/**
 * A/B measurement for small differences (a few % of a ~10 µs call) on a
 * shared, noisy machine. Single alternating samples pooled into one p50 mix
 * machine-load drift, GC pauses and order effects into the ratio; here:
 *
 * - Requests run in short blocks, one arm per block. Each round runs one block
 *   of every arm in the next order of a balanced set (all permutations: for two
 *   arms A B, B A, i.e. ABBA), so every arm is first, second, … equally often
 *   and load drifts slower than a round cancel out.
 * - Each block yields its median (robust to a GC pause or a preempted
 *   request); each round yields a ratio of block medians per compared pair.
 *   The figure is the median of those ratios, with p25/p75 and min/max so the
 *   reader sees the noise instead of one number.
 * - Warm-up rounds (JIT, caches) are run the same way and discarded.
 * - Garbage collections are observed (perf_hooks 'gc' entries, no
 *   --expose-gc needed) and charged to the arm whose block they started in.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';

export interface Arm { name: string; run: (i: number) => Promise<unknown> }
export interface InterleaveOptions { rounds: number; warmupRounds: number; block: number }

export interface ArmResult {
  /** Every measured request, ms. */
  samples: number[];
  /** One median per measured block, ms, in round order. */
  blockMedians: number[];
  /** Wall time of the arm's measured blocks / requests, ms (includes GC and every sampled request). */
  meanMs: number;
  gcCount: number;
  gcMs: number;
}

/** `ciLo`..`ciHi`: distribution-free 95 % confidence interval of the median (order statistics n/2 ± 0.98·√n). */
export interface Spread { median: number; p25: number; p75: number; min: number; max: number; n: number; ciLo: number; ciHi: number }

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  // Linear interpolation between order statistics (type 7, the R/NumPy default).
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  return sorted[lo] + (h - lo) * ((sorted[Math.min(lo + 1, sorted.length - 1)] ?? sorted[lo]) - sorted[lo]);
}

export function spread(xs: readonly number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const k = Math.max(0, Math.floor((s.length - 1.96 * Math.sqrt(s.length)) / 2));
  return {
    median: quantile(s, 0.5), p25: quantile(s, 0.25), p75: quantile(s, 0.75), min: s[0] ?? Number.NaN, max: s[s.length - 1] ?? Number.NaN, n: s.length,
    ciLo: s[k] ?? Number.NaN, ciHi: s[s.length - 1 - k] ?? Number.NaN,
  };
}

/** Per-round ratios of block medians, arm `a` over arm `b`. */
export function blockRatios(res: Record<string, ArmResult>, a: string, b: string): Spread {
  const x = res[a].blockMedians;
  const y = res[b].blockMedians;
  return spread(x.map((v, i) => v / y[i]));
}

export async function interleave(arms: readonly Arm[], o: InterleaveOptions): Promise<Record<string, ArmResult>> {
  const orders = permutations(arms);
  if (o.rounds % orders.length !== 0) throw new Error(`rounds (${o.rounds}) must be a multiple of ${orders.length} so every order runs equally often`);
  const res: Record<string, ArmResult> = {};
  const wall: Record<string, number> = {};
  for (const a of arms) { res[a.name] = { samples: [], blockMedians: [], meanMs: 0, gcCount: 0, gcMs: 0 }; wall[a.name] = 0; }
  const blocks: { start: number; end: number; arm: string }[] = [];
  const gcs: { start: number; duration: number }[] = [];
  const obs = new PerformanceObserver((list) => { for (const e of list.getEntries()) gcs.push({ start: e.startTime, duration: e.duration }); });
  obs.observe({ entryTypes: ['gc'] });
  const t = new Float64Array(o.block);
  let i = 0;
  try {
    for (let r = 0; r < o.warmupRounds + o.rounds; r++) {
      const measured = r >= o.warmupRounds;
      for (const a of orders[r % orders.length]) {
        const b0 = performance.now();
        for (let k = 0; k < o.block; k++) {
          const s = performance.now();
          await a.run(i++);
          t[k] = performance.now() - s;
        }
        const b1 = performance.now();
        if (!measured) continue;
        const ar = res[a.name];
        for (let k = 0; k < o.block; k++) ar.samples.push(t[k]);
        ar.blockMedians.push(quantile(Array.from(t).sort((x, y) => x - y), 0.5));
        wall[a.name] += b1 - b0;
        blocks.push({ start: b0, end: b1, arm: a.name });
      }
    }
    // GC entries arrive asynchronously; give the observer a turn before reading them.
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    obs.disconnect();
  }
  for (const g of gcs) {
    const b = blocks.find((x) => g.start >= x.start && g.start < x.end);
    if (!b) continue;
    res[b.arm].gcCount++;
    res[b.arm].gcMs += g.duration;
  }
  for (const a of arms) res[a.name].meanMs = wall[a.name] / Math.max(1, res[a.name].samples.length);
  return res;
}
