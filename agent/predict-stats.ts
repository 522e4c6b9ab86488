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
  // The ring as columns that grow with use up to RING: a device that never predicts holds nothing, a busy one
  // ~17 kB instead of 1,024 sample objects (~55 kB), which a simulator running 10,000 agents pays 10,000 times.
  #latency = new Float64Array(0);
  #failed = new Uint8Array(0);
  /** Model of each sample (bundle ids are the same few strings, held by reference). */
  readonly #bundle: (string | null)[] = [];
  #next = 0;
  requests = 0;
  errors = 0;
  busy = 0;
  readonly lastCodes: { code: string; at: number }[] = [];
  readonly #now: () => number;

  constructor(now: () => number = Date.now) { this.#now = now; }

  record(s: PredictSample): void {
    const i = this.#next;
    if (i >= this.#latency.length) this.#grow();
    this.#latency[i] = s.latencyMs;
    this.#failed[i] = s.failed ? 1 : 0;
    this.#bundle[i] = s.bundleId;
    this.#next = (i + 1) % RING;
    this.requests++;
    if (s.failed) this.errors++;
    if (s.code) this.noteCode(s.code);
  }

  /** Until the ring is full, the slot to write is the next free one past the end: double the columns. */
  #grow(): void {
    const size = Math.min(RING, Math.max(16, this.#latency.length * 2));
    const lat = new Float64Array(size);
    lat.set(this.#latency);
    const failed = new Uint8Array(size);
    failed.set(this.#failed);
    this.#latency = lat;
    this.#failed = failed;
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
    for (let i = 0; i < this.#bundle.length; i++) {
      if (bundleId !== undefined && this.#bundle[i] !== bundleId) continue;
      lat.push(this.#latency[i]);
      if (this.#failed[i]) errors++;
    }
    lat.sort((a, b) => a - b);
    return { n: lat.length, errors, p50: pct(lat, 50), p95: pct(lat, 95), p99: pct(lat, 99) };
  }
}

export function pct(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
