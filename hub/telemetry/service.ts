/**
 * The hub's telemetry and drift, wired: tables in hub.db, the ingest the MQTT
 * dispatcher feeds, roll-up and retention, drift reports (API, CLI), the alert
 * monitor, and the DriftReader the rollout gates read (hub/rollouts/gate-inputs.ts).
 *
 * Ring attribution: a device's figures count towards the ring of its current
 * assignment (the rollout engine issues assignments per ring name); devices
 * assigned without a ring count as ring "default".
 */
import type { Logger } from 'pino';
import type { TelemetryReport } from '@fleetcast/protocol/telemetry.js';
import { compilePlan, type TelemetryPlan } from '@fleetcast/protocol/telemetry-plan.js';
import { computeDriftReport, driftReading, type BundleRef, type DriftReport } from '../drift/report.js';
import { DriftMonitor } from '../drift/monitor.js';
import type { FamilyThresholds } from '../drift/judge-family.js';
import { DEFAULT_THRESHOLDS } from '../drift/metrics.js';
import { hubError } from '../errors.js';
import type { DriftReader, DriftReading } from '../rollouts/gate-inputs.js';
import type { HubStore } from '../store.js';
import { TelemetryIngest } from './ingest.js';
import { IngestPool } from './ingest-pool.js';
import { encodeTelemetryBinary } from '@fleetcast/protocol/telemetry-binary.js';
import type { TelemetryOptions } from './options.js';
import { TelemetryStore } from './telemetry-store.js';
import { DebugRows } from './debug-rows.js';

export const DEFAULT_RING = 'default';
/** How long a drift reading is reused for the rollout engine's ticks. */
const READING_TTL_MS = 1_000;

export interface ReportQuery {
  bundleId: string;
  ring?: string;
  since?: number;
  until?: number;
  thresholds?: Partial<FamilyThresholds>;
}

export class TelemetryService {
  readonly telemetry: TelemetryStore;
  readonly ingest: TelemetryIngest;
  readonly monitor: DriftMonitor;
  /** Ingest worker threads (`telemetry.ingestWorkers` > 0), or null: reports are ingested on this thread. */
  readonly pool: IngestPool | null;
  /** Reports refused by an ingest worker, by code (the hub points this at the MQTT link's rejected stats). */
  onRefused: (code: string, n: number) => void = () => {};
  /** Raw rows of devices in operator debug sampling (issue #5); record() is the entry point for every wire format. */
  readonly debugRows: DebugRows;
  readonly options: TelemetryOptions;
  readonly #store: HubStore;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #rings = new Map<string, { ring: string; at: number }>();
  readonly #plans = new Map<string, TelemetryPlan>();
  readonly #readings = new Map<string, { at: number; reading: DriftReading }>();
  #rollupTimer: NodeJS.Timeout | null = null;

  constructor(d: { store: HubStore; options: TelemetryOptions; logger: Logger; now: () => number }) {
    this.#store = d.store;
    this.#now = d.now;
    this.#logger = d.logger;
    this.options = d.options;
    this.telemetry = new TelemetryStore(d.store.db);
    this.debugRows = new DebugRows(d.store.db, { now: d.now, logger: d.logger });
    this.ingest = new TelemetryIngest({
      store: this.telemetry, options: d.options, now: d.now, logger: d.logger,
      manifest: (id) => d.store.getBundle(id)?.manifest,
      ringOf: (deviceId) => this.ringOf(deviceId),
    });
    this.pool = d.options.ingestWorkers > 0 ? new IngestPool({
      workers: d.options.ingestWorkers, options: d.options, store: this.telemetry, now: d.now, logger: d.logger,
      manifest: (id) => d.store.getBundle(id)?.manifest,
      ringOf: (deviceId) => this.ringOf(deviceId),
      onRefused: (code, n, sample) => { this.onRefused(code, n); d.logger.warn({ code, n }, sample); },
      onDebug: (r) => this.debugRows.record(r.deviceId, r.bundleId, r.rows, { from: r.from, to: r.to }),
    }) : null;
    this.monitor = new DriftMonitor({
      telemetry: this.telemetry, logger: d.logger, now: d.now, windowMs: d.options.driftWindowMs,
      webhookUrl: d.options.webhookUrl, webhookTimeoutMs: d.options.webhookTimeoutMs,
      reports: (since, until) => this.telemetry.activeBundles(since).flatMap((id) => (d.store.getBundle(id) ? [this.report({ bundleId: id, since, until })] : [])),
    });
  }

  start(): void {
    this.ingest.start();
    this.monitor.start(this.options.driftIntervalMs);
    this.#rollupTimer = setInterval(() => { try { this.rollup(); } catch (e) { this.#logger.error({ err: e }, 'telemetry roll-up failed'); } }, this.options.rollupIntervalMs);
    this.#rollupTimer.unref();
  }

  async close(): Promise<void> {
    if (this.#rollupTimer) clearInterval(this.#rollupTimer);
    this.#rollupTimer = null;
    await this.monitor.close();
    try { await this.pool?.close(); } catch (e) { this.#logger.error({ err: e }, 'final telemetry worker flush failed'); }
    try { this.ingest.close(); } catch (e) { this.#logger.error({ err: e }, 'final telemetry flush failed'); }
  }

  /**
   * The dispatcher's handler for `telemetry` messages, as bytes (binary or JSON):
   * decoded into the ingest's scratch, so the device-id check against the topic is made here.
   */
  handleMessage(topicDeviceId: string, payload: Uint8Array): void {
    if (this.pool) { this.pool.submit(topicDeviceId, payload); return; }
    const d = this.ingest.decode(payload);
    if (d.deviceId !== topicDeviceId) throw hubError('HUB_ERR_DEVICE_MISMATCH', `topic names ${JSON.stringify(topicDeviceId)}, body names ${JSON.stringify(d.deviceId)}`);
    this.ingest.handleDecoded(d);
    this.#debug(d);
  }

  /** Resolves once every report received so far is merged and stored (immediate without ingest workers). */
  async settle(): Promise<void> {
    if (this.pool) await this.pool.flush();
    else this.ingest.flush();
  }

  /** A report in object form (tools, tests): the same checks and merge. */
  handle(r: TelemetryReport): void {
    if (this.pool) { this.pool.submit(r.deviceId, encodeTelemetryBinary(r)); return; }
    this.ingest.handle(r);
    this.#debug(r);
  }

  #debug(r: { deviceId: string; bundleId: string; from: number; to: number; debug?: TelemetryReport['debug'] }): void {
    // Issue #5 debug sampling: raw rows are kept only for a device in operator debug; the rest of the report is ingested above either way.
    if (r.debug?.length) this.debugRows.record(r.deviceId, r.bundleId, r.debug, { from: r.from, to: r.to });
  }

  ringOf(deviceId: string): string {
    const now = this.#now();
    const hit = this.#rings.get(deviceId);
    if (hit && now - hit.at < this.options.flushMs) return hit.ring;
    const ring = this.#store.getAssignment(deviceId)?.ring ?? DEFAULT_RING;
    this.#rings.set(deviceId, { ring, at: now });
    return ring;
  }

  /** Per device: last seq, reports dropped while offline, last report (written first, so it is current). */
  deviceStats(): ReturnType<TelemetryStore['deviceStats']> {
    this.ingest.flush();
    return this.telemetry.deviceStats();
  }

  rollup(): { folded: number; expired: number } {
    this.ingest.flush();
    const now = this.#now();
    this.ingest.forgetBefore(now - this.options.rollupAfterMs);
    return this.telemetry.rollup(now - this.options.rollupAfterMs, now - this.options.retentionMs);
  }

  bundleRef(id: string): BundleRef {
    const b = this.#store.getBundle(id);
    if (!b) throw hubError('HUB_ERR_UNKNOWN_BUNDLE', id);
    return { id: b.id, name: b.name, version: b.version, manifest: b.manifest };
  }

  /** Defaults < the bundle's signed reference thresholds < the caller's (a rollout gate or a request). */
  thresholdsFor(bundle: BundleRef, over: Partial<FamilyThresholds> = {}): FamilyThresholds {
    const o = this.options;
    const ref = (bundle.manifest.reference as { thresholds?: Partial<FamilyThresholds> } | undefined)?.thresholds ?? {};
    const pick = (k: keyof FamilyThresholds, def: number) => over[k] ?? (typeof ref[k] === 'number' ? ref[k] : def);
    return { psi: pick('psi', o.psi), wasserstein: pick('wasserstein', o.wasserstein), minN: pick('minN', o.minN), alpha: pick('alpha', o.alpha), missing: pick('missing', DEFAULT_THRESHOLDS.missing) };
  }

  report(q: ReportQuery): DriftReport {
    const bundle = this.bundleRef(q.bundleId);
    const now = this.#now();
    return computeDriftReport({
      telemetry: this.telemetry, fineMs: this.options.bucketMs, flush: () => this.ingest.flush(),
      planOf: (b) => { let p = this.#plans.get(b.id); if (!p) this.#plans.set(b.id, (p = compilePlan(b.id, b.manifest))); return p; },
      versionsOf: (name) => this.#store.listBundles().filter((b) => b.name === name).map((b) => ({ id: b.id, name: b.name, version: b.version, manifest: b.manifest })),
    }, { bundle, ring: q.ring, since: q.since ?? now - this.options.driftWindowMs, until: q.until ?? now + 1, thresholds: this.thresholdsFor(bundle, q.thresholds) });
  }

  /**
   * The rollout drift gate's reading: the worst drift score of the ring (an
   * effect size over its threshold: 1.0 = at the bundle's threshold), counting
   * only comparisons with enough data that are also statistically clear;
   * 0 when there is enough data and nothing moved, null when there is not
   * enough data to judge. A gate `maxDrift: 1` halts on what the report calls drift.
   */
  readonly reader: DriftReader = {
    maxDrift: (bundleId: string, ring: string, sinceMs: number): DriftReading => {
      // The engine asks on every tick; a report is milliseconds of work, so reuse one for a second.
      const key = `${bundleId}\0${ring}\0${sinceMs}`;
      const now = this.#now();
      const hit = this.#readings.get(key);
      if (hit && now - hit.at >= 0 && now - hit.at < READING_TTL_MS) return hit.reading;
      const reading = this.#reading(bundleId, ring, sinceMs);
      if (this.#readings.size > 1000) this.#readings.clear();
      this.#readings.set(key, { at: now, reading });
      return reading;
    },
  };

  #reading(bundleId: string, ring: string, sinceMs: number): DriftReading {
    if (!this.#store.getBundle(bundleId)) return { value: null, n: 0 };
    return driftReading(this.report({ bundleId, ring, since: sinceMs }));
  }
}
