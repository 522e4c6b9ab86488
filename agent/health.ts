/**
 * The predict-path health window a device reports to the hub (the rollout
 * gates read it, issue #3): requests served, errors, outputs holding NaN or
 * Infinity where the manifest does not allow them, and the p95 latency of the
 * recent predictions. Counters are per active bundle and only grow while that
 * bundle serves, so the hub can read them as running totals; they restart at 0
 * when another bundle takes over.
 */
import type { StateReport } from '@fleetcast/protocol/messages.js';

/** Latencies kept for the p95 (a ring buffer: memory stays fixed on a device). */
const WINDOW = 256;

export type HealthWindow = NonNullable<StateReport['health']>;

export class PredictHealth {
  #bundleId: string | null = null;
  #requests = 0;
  #errors = 0;
  #nanOutputs = 0;
  readonly #lat = new Float64Array(WINDOW);
  #n = 0;

  #switch(bundleId: string): void {
    if (this.#bundleId === bundleId) return;
    this.#bundleId = bundleId;
    this.#requests = this.#errors = this.#nanOutputs = this.#n = 0;
  }

  /** A prediction that ran: `nonFinite` when an output held NaN/±Infinity it may not. */
  ok(bundleId: string, latencyMs: number, nonFinite: boolean): void {
    this.#switch(bundleId);
    this.#requests++;
    if (nonFinite) { this.#errors++; this.#nanOutputs++; }
    this.#lat[this.#n++ % WINDOW] = latencyMs;
  }

  /** A prediction the model failed (inference error); bad requests are the caller's fault and not counted. */
  failed(bundleId: string, latencyMs: number): void {
    this.#switch(bundleId);
    this.#requests++;
    this.#errors++;
    this.#lat[this.#n++ % WINDOW] = latencyMs;
  }

  snapshot(): HealthWindow | undefined {
    if (this.#bundleId === null) return undefined;
    const k = Math.min(this.#n, WINDOW);
    let p95: number | null = null;
    if (k > 0) {
      const s = Array.from(this.#lat.subarray(0, k)).sort((a, b) => a - b);
      p95 = Math.round(s[Math.min(k - 1, Math.ceil(0.95 * k) - 1)] * 1000) / 1000;
    }
    return { bundleId: this.#bundleId, requests: this.#requests, errors: this.#errors, nanOutputs: this.#nanOutputs, p95Ms: p95 };
  }
}

/** True when a float output holds NaN or ±Infinity and its spec does not allow them (manifest `allowNaN`). */
export function hasForbiddenNonFinite<T extends { readonly data: ArrayLike<unknown>; readonly type?: string }>(outputs: Readonly<Record<string, T>>, allowed: (name: string) => boolean): boolean {
  // Values first, `allowed` only for an output that holds one: the common all-finite reply never looks up its spec.
  for (const name of Object.keys(outputs)) {
    const d = outputs[name].data;
    if (outputs[name].type === 'float16' && d instanceof Uint16Array) {
      // float16 arrives as raw half bits (protocol/float16.ts), each a finite integer: NaN and ±Infinity are
      // the bit patterns with an all-ones exponent, so they must be looked for in the bits.
      for (let i = 0; i < d.length; i++) {
        if ((d[i] & 0x7c00) === 0x7c00) {
          if (allowed(name)) break;
          return true;
        }
      }
      continue;
    }
    for (let i = 0; i < d.length; i++) {
      const x = d[i];
      if (typeof x === 'number' && !Number.isFinite(x)) {
        if (allowed(name)) break;
        return true;
      }
    }
  }
  return false;
}
