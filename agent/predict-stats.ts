/**
 * Recent predict outcomes, kept in a fixed-size ring so memory stays flat on a
 * device that serves for months: latency percentiles and error counts per
 * model for the status page, the baseline a probation window compares a new
 * model against, and the last error codes seen.
 */
export interface PredictSample { bundleId: string | null; latencyMs: number; failed: boolean; code?: string }
export interface LatencySummary { n: number; errors: number; p50: number | null; p95: number | null; p99: number | null }

const RING = 1024;
const LAST_CODES = 10;

export class PredictStats {
  readonly #ring: (PredictSample | undefined)[] = new Array(RING);
  #next = 0;
  requests = 0;
  errors = 0;
  busy = 0;
  readonly lastCodes: { code: string; at: number }[] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) { this.#now = now; }

  record(s: PredictSample): void {
    this.#ring[this.#next] = s;
    this.#next = (this.#next + 1) % RING;
    this.requests++;
    if (s.failed) this.errors++;
    if (s.code) this.noteCode(s.code);
  }

  /** A refused request (busy, bad input): counted by code, not as a model sample. */
  noteCode(code: string): void {
    if (code === 'AGENT_ERR_BUSY') this.busy++;
    this.lastCodes.unshift({ code, at: this.#now() });
    if (this.lastCodes.length > LAST_CODES) this.lastCodes.pop();
  }

  /** Summary of the samples still in the ring, optionally of one model only. */
  summary(bundleId?: string): LatencySummary {
    const lat: number[] = [];
    let errors = 0;
    for (const s of this.#ring) {
      if (!s || (bundleId !== undefined && s.bundleId !== bundleId)) continue;
      lat.push(s.latencyMs);
      if (s.failed) errors++;
    }
    lat.sort((a, b) => a - b);
    return { n: lat.length, errors, p50: pct(lat, 50), p95: pct(lat, 95), p99: pct(lat, 99) };
  }
}

export function pct(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
