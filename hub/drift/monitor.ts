/**
 * Drift alerts: every `driftIntervalMs` the monitor computes the report of each
 * bundle with recent telemetry over the last `driftWindowMs`. A (bundle, ring,
 * feature, baseline) that turns to 'drift' raises one alert — logged (pino
 * warn), recorded in drift_events, and POSTed to the webhook when one is set —
 * and one 'cleared' record when it goes back to ok. An alarm is raised on the
 * transition, not on every evaluation, so a drifting feature does not page
 * every minute.
 */
import type { Logger } from 'pino';
import { hubError } from '../errors.js';
import type { TelemetryStore } from '../telemetry/telemetry-store.js';
import type { DriftReport, DriftRow } from './report.js';

export interface DriftAlert {
  type: 'fleetcast.drift-alert/v1';
  state: 'drift' | 'cleared';
  at: number;
  bundleId: string;
  name: string;
  version: number;
  ring: string;
  feature: string;
  baseline: DriftRow['baseline'];
  metric: string;
  value: number;
  threshold: number;
  n: number;
}

export interface MonitorDeps {
  telemetry: TelemetryStore;
  logger: Logger;
  now: () => number;
  webhookUrl?: string;
  webhookTimeoutMs: number;
  /** Reports of every bundle with telemetry since `since`. */
  reports(since: number, until: number): DriftReport[];
  windowMs: number;
}

export class DriftMonitor {
  readonly #d: MonitorDeps;
  readonly #active = new Map<string, DriftAlert>();
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  readonly alerts: DriftAlert[] = [];
  webhookFailures = 0;

  constructor(d: MonitorDeps) { this.#d = d; }

  start(intervalMs: number): void {
    if (intervalMs <= 0 || this.#timer) return;
    this.#timer = setInterval(() => { void this.evaluate(); }, intervalMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** One evaluation over the last window; resolves when its webhooks have been answered (or timed out). */
  evaluate(): Promise<void> {
    if (this.#running) return this.#running;
    this.#running = this.#evaluate().finally(() => { this.#running = null; });
    return this.#running;
  }

  async #evaluate(): Promise<void> {
    const now = this.#d.now();
    let reports: DriftReport[];
    try { reports = this.#d.reports(now - this.#d.windowMs, now + 1); } catch (e) {
      this.#d.logger.error({ err: e }, 'drift evaluation failed');
      return;
    }
    const fired: DriftAlert[] = [];
    for (const r of reports) {
      const seen = new Set<string>();
      for (const row of r.rows) {
        const id = `${r.bundleId}\0${row.ring}\0${row.feature}\0${row.baseline}`;
        if (row.verdict === 'insufficient-data') { if (this.#active.has(id)) seen.add(id); continue; }
        if (row.verdict !== 'drift') continue;
        seen.add(id);
        if (this.#active.has(id)) continue;
        const worst = [...row.alarms].sort((a, b) => b.value / b.threshold - a.value / a.threshold)[0];
        const a: DriftAlert = {
          type: 'fleetcast.drift-alert/v1', state: 'drift', at: now, bundleId: r.bundleId, name: r.name, version: r.version, ring: row.ring,
          feature: row.feature, baseline: row.baseline, metric: worst.metric, value: worst.value, threshold: worst.threshold, n: row.n,
        };
        this.#active.set(id, a);
        fired.push(a);
      }
      for (const [id, a] of this.#active) {
        if (a.bundleId === r.bundleId && !seen.has(id)) { this.#active.delete(id); fired.push({ ...a, state: 'cleared', at: now }); }
      }
    }
    for (const a of fired) {
      this.alerts.push(a);
      if (a.state === 'drift') this.#d.logger.warn({ alert: a }, `drift: ${a.name}@${a.version} ring ${a.ring} feature ${a.feature} ${a.metric} ${a.value.toFixed(3)} ≥ ${a.threshold} (n ${a.n}, vs ${a.baseline})`);
      else this.#d.logger.info({ alert: a }, `drift cleared: ${a.name}@${a.version} ring ${a.ring} feature ${a.feature}`);
      try {
        this.#d.telemetry.recordDriftEvent({ at: a.at, bundleId: a.bundleId, ring: a.ring, feature: a.feature, metric: a.metric, value: a.value, threshold: a.threshold, n: a.n, state: a.state });
      } catch (e) { this.#d.logger.error({ err: e }, 'recording a drift event failed'); }
    }
    if (this.#d.webhookUrl) await Promise.all(fired.map((a) => this.#post(a)));
  }

  async #post(a: DriftAlert): Promise<void> {
    try {
      const res = await fetch(this.#d.webhookUrl!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(a), signal: AbortSignal.timeout(this.#d.webhookTimeoutMs) });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      await res.arrayBuffer();
    } catch (e) {
      this.webhookFailures++;
      const err = hubError('HUB_ERR_DRIFT_WEBHOOK', `${this.#d.webhookUrl}: ${(e as Error).message}`);
      this.#d.logger.warn({ code: err.code }, err.message);
    }
  }
}
