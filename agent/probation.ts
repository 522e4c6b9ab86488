/**
 * The probation window after a swap (DESIGN "Probation (health window) →
 * Commit, or Rollback"): the new model serves real requests while its error
 * rate and latency are compared with limits and with the model it replaced.
 * A verdict is reached as soon as a limit is passed (roll back now, not at
 * the end of the window) or when the window ends without one (commit).
 * Nothing is judged on fewer than `minRequests` samples: one early failure
 * on a quiet device is not evidence. With no traffic at all the window ends
 * in a commit: there is nothing against the model.
 */
import { pct } from './predict-stats.js';

export interface ProbationLimits { minRequests: number; maxErrorRate: number; maxLatencyRatio: number }
export type Verdict =
  | { ok: true; requests: number; errors: number }
  | { ok: false; code: 'AGENT_ERR_PROBATION_ERRORS' | 'AGENT_ERR_PROBATION_LATENCY'; detail: string; requests: number; errors: number }
  | { ok: null; reason: 'superseded' | 'stopped' };

const MAX_SAMPLES = 4096;

export class Probation {
  readonly bundleId: string;
  readonly until: number;
  readonly done: Promise<Verdict>;
  readonly #limits: ProbationLimits;
  /** p95 latency of the previous model before the swap, or null when it had too few samples. */
  readonly #baselineP95: number | null;
  readonly #lat: number[] = [];
  #errors = 0;
  #requests = 0;
  #settle!: (v: Verdict) => void;
  #timer: NodeJS.Timeout | null;
  #over = false;

  constructor(o: { bundleId: string; until: number; now: number; limits: ProbationLimits; baselineP95: number | null }) {
    this.bundleId = o.bundleId;
    this.until = o.until;
    this.#limits = o.limits;
    this.#baselineP95 = o.baselineP95;
    this.done = new Promise((r) => { this.#settle = r; });
    this.#timer = setTimeout(() => this.#end({ ok: true, requests: this.#requests, errors: this.#errors }), Math.max(0, o.until - o.now));
  }

  get requests(): number { return this.#requests; }
  get errors(): number { return this.#errors; }

  /** One finished prediction of the model under probation. */
  observe(latencyMs: number, failed: boolean): void {
    if (this.#over) return;
    this.#requests++;
    if (failed) this.#errors++;
    if (this.#lat.length < MAX_SAMPLES) this.#lat.push(latencyMs);
    const { minRequests, maxErrorRate, maxLatencyRatio } = this.#limits;
    if (this.#requests < minRequests) return;
    const rate = this.#errors / this.#requests;
    if (rate > maxErrorRate) {
      this.#end({ ok: false, code: 'AGENT_ERR_PROBATION_ERRORS', detail: `${this.#errors} of ${this.#requests} predictions failed (limit ${maxErrorRate})`, requests: this.#requests, errors: this.#errors });
      return;
    }
    if (this.#baselineP95 !== null && this.#baselineP95 > 0) {
      const p95 = pct([...this.#lat].sort((a, b) => a - b), 95)!;
      if (p95 > maxLatencyRatio * this.#baselineP95) {
        this.#end({ ok: false, code: 'AGENT_ERR_PROBATION_LATENCY', detail: `p95 ${p95.toFixed(2)} ms vs ${this.#baselineP95.toFixed(2)} ms before the swap (limit ${maxLatencyRatio}×)`, requests: this.#requests, errors: this.#errors });
      }
    }
  }

  /** End without a verdict (a newer assignment, or the agent stopping). */
  cancel(reason: 'superseded' | 'stopped'): void { this.#end({ ok: null, reason }); }

  #end(v: Verdict): void {
    if (this.#over) return;
    this.#over = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#settle(v);
  }
}
