/**
 * The hub's Prometheus metrics, in a Registry of its own (many hubs run in one
 * test process). Almost everything is read at scrape time, in collect(), from
 * state the hub already keeps (the registry in hub.db, the MQTT link's stats,
 * the ingest and transfer counters, device events), so no hot path pays for
 * it; only what nothing else counts is counted as it happens: outbound
 * publishes by channel, acknowledged assignments, and API latency by route.
 *
 * Label values are bounded: channels, phases, states, error codes, gate names,
 * route PATTERNS (never the raw URL: one series per URL would grow without
 * bound), and the ids of rollouts that are still running or paused.
 */
import client, { type Registry } from 'prom-client';
import { PHASES } from '@fleetcast/protocol/messages.js';
import { exposition } from '@fleetcast/protocol/metrics-exposition.js';
import { parseTopic } from '@fleetcast/protocol/topics.js';
import type { EventStats } from '../events/device-events.js';
import type { MqttLink } from '../mqtt-link.js';
import type { GateValues } from '../rollouts/gates.js';
import { ACTIVE_STATES, ROLLOUT_STATES, type RolloutRow } from '../rollouts/rollout-store.js';
import type { HubStore } from '../store.js';
import type { TelemetryService } from '../telemetry/service.js';
import type { ChunkServer } from '../transfer.js';
import { FleetCounts } from './fleet-counts.js';

export interface HubMetricsSources {
  store: Pick<HubStore, 'db' | 'flushReports'>;
  link: Pick<MqttLink, 'stats' | 'queue'>;
  telemetry: Pick<TelemetryService, 'ingest' | 'pool'>;
  transfer: Pick<ChunkServer, 'pendingCount'>;
  events: { readonly stats: EventStats };
  /** Running and paused rollouts, with their last gate evaluation per ring. */
  activeRollouts(): RolloutRow[];
  now: () => number;
  /** A device counts as online while its last state report is at most this old. */
  onlineWindowMs: number;
}

/** Each gate of GateValues: the value judged and the threshold it is judged against. */
const GATES: readonly { gate: string; value: (v: GateValues) => number | null; threshold: (v: GateValues) => number | null }[] = [
  { gate: 'installSuccess', value: (v) => v.installSuccess, threshold: (v) => v.thresholds.minInstallSuccess },
  { gate: 'errorRate', value: (v) => v.errorRate, threshold: (v) => v.thresholds.maxErrorRate },
  { gate: 'latency', value: (v) => v.latencyRatio, threshold: (v) => v.thresholds.maxLatencyRatio },
  { gate: 'drift', value: (v) => v.drift, threshold: (v) => v.thresholds.maxDrift },
  { gate: 'minRequests', value: (v) => v.requests, threshold: (v) => v.thresholds.minRequests },
  { gate: 'minDevices', value: (v) => v.installed, threshold: (v) => v.thresholds.minDevices },
  // Seconds, as Prometheus wants durations.
  { gate: 'soak', value: (v) => v.soakedMs / 1000, threshold: (v) => v.thresholds.soakMs / 1000 },
];

/** Outbound topic → a bounded channel label. */
export function publishChannel(topic: string): string {
  try {
    const t = parseTopic(topic);
    return t.kind === 'trust' ? t.what : t.kind === 'device' ? t.channel : t.kind;
  } catch {
    return 'other';
  }
}

/** A counter whose value is read at scrape time from a running total kept elsewhere. */
function readCounter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], read: () => Iterable<[Partial<Record<L, string>>, number]>) {
  return new client.Counter<L>({
    name, help, labelNames, registers: [registry],
    collect() { this.reset(); for (const [labels, n] of read()) this.inc(labels, n); },
  });
}

function readGauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], read: () => Iterable<[Partial<Record<L, string>>, number]>) {
  return new client.Gauge<L>({
    name, help, labelNames, registers: [registry],
    collect() { this.reset(); for (const [labels, n] of read()) this.set(labels, n); },
  });
}

export class HubMetrics {
  readonly registry: Registry = new client.Registry();
  readonly #published: client.Counter<'channel'>;
  readonly #publishFailures: client.Counter<'channel'>;
  readonly #assignments: client.Counter;
  readonly #http: client.Histogram<'method' | 'route' | 'status_code'>;

  constructor(s: HubMetricsSources) {
    const r = this.registry;
    const counts = new FleetCounts(s.store);
    readGauge(r, 'fleetcast_hub_devices', 'Devices in the registry by reported install phase and active model version', ['phase', 'model', 'version'], function* () {
      const seen = new Set<string>();
      for (const d of counts.devices()) { seen.add(d.phase); yield [{ phase: d.phase, model: d.model, version: d.version }, d.n]; }
      // Every phase is always present, so that a phase emptying reads 0 rather than vanishing.
      for (const phase of PHASES) if (!seen.has(phase)) yield [{ phase, model: 'none', version: 'none' }, 0];
    });
    readGauge(r, 'fleetcast_hub_devices_online', 'Devices whose last state report (heartbeats included) is within the online window', [], () => [[{}, counts.seenSince(s.now() - s.onlineWindowMs)]]);
    readGauge(r, 'fleetcast_hub_rollouts', 'Rollouts by state', ['state'], () => {
      const by = new Map<string, number>(ROLLOUT_STATES.map((st) => [st, 0]));
      for (const x of counts.rollouts()) by.set(x.state, x.n);
      return [...by].map(([state, n]) => [{ state }, n]);
    });
    const gateRows = () => s.activeRollouts().flatMap((ro) => Object.entries(ro.gates).map(([ring, v]) => ({ rollout: ro.id, ring, v: v as GateValues | null })).filter((x) => x.v && x.v.thresholds));
    readGauge(r, 'fleetcast_hub_rollout_gate_value', `Last judged value of each gate, per running or paused rollout (${ACTIVE_STATES.join(', ')}) and ring; soak in seconds`, ['rollout', 'ring', 'gate'], function* () {
      for (const { rollout, ring, v } of gateRows()) for (const g of GATES) { const x = g.value(v!); if (x !== null) yield [{ rollout, ring, gate: g.gate }, x]; }
    });
    readGauge(r, 'fleetcast_hub_rollout_gate_threshold', 'The threshold each gate is judged against (installSuccess, minRequests, minDevices, soak: at least; errorRate, latency, drift: at most)', ['rollout', 'ring', 'gate'], function* () {
      for (const { rollout, ring, v } of gateRows()) for (const g of GATES) { const x = g.threshold(v!); if (x !== null) yield [{ rollout, ring, gate: g.gate }, x]; }
    });
    readGauge(r, 'fleetcast_hub_rollout_ring_verdict', 'The last verdict of a ring\'s gates (1 for the verdict it has: pass, fail or wait)', ['rollout', 'ring', 'verdict'], function* () {
      for (const { rollout, ring, v } of gateRows()) yield [{ rollout, ring, verdict: v!.verdict }, 1];
    });
    this.#assignments = new client.Counter({ name: 'fleetcast_hub_assignments_sent_total', help: 'Signed assignments published and acknowledged by the broker (refreshes and start-up republishes included)', registers: [r] });
    this.#published = new client.Counter({ name: 'fleetcast_hub_mqtt_messages_published_total', help: 'MQTT messages the hub published and the broker acknowledged, by channel', labelNames: ['channel'], registers: [r] });
    this.#publishFailures = new client.Counter({ name: 'fleetcast_hub_mqtt_publish_failures_total', help: 'MQTT publishes that failed or were not acknowledged, by channel', labelNames: ['channel'], registers: [r] });
    readCounter(r, 'fleetcast_hub_mqtt_messages_received_total', 'Device messages handled, by channel', ['channel'], () => Object.entries(s.link.stats.handled).map(([channel, n]) => [{ channel }, n]));
    readCounter(r, 'fleetcast_hub_mqtt_messages_rejected_total', 'Device messages refused, by error code (HUB_ERR_OVERLOADED: shed by the inbound queue or the ingest workers)', ['code'], () => Object.entries(s.link.stats.rejected).map(([code, n]) => [{ code }, n]));
    readCounter(r, 'fleetcast_hub_telemetry_reports_ingested_total', 'Telemetry reports merged (on the main thread or by ingest workers)', [], () => [[{}, s.telemetry.ingest.stats.accepted + (s.telemetry.pool?.stats.accepted ?? 0)]]);
    readCounter(r, 'fleetcast_hub_telemetry_reports_shed_total', 'Telemetry reports shed by the ingest workers because their backlog was full (sheds at the inbound queue are in fleetcast_hub_mqtt_messages_rejected_total{code="HUB_ERR_OVERLOADED"})', [], () => [[{}, s.telemetry.pool?.stats.shed ?? 0]]);
    readGauge(r, 'fleetcast_hub_inbound_queue_bytes', 'Bytes of device messages waiting to be handled', [], () => [[{}, s.link.queue.bytes]]);
    readGauge(r, 'fleetcast_hub_inbound_queue_peak_bytes', 'The most bytes of device messages ever waiting at once', [], () => [[{}, s.link.queue.peakBytes]]);
    readGauge(r, 'fleetcast_hub_ingest_backlog_bytes', 'Bytes of telemetry waiting in the ingest workers (0 without workers)', [], () => [[{}, s.telemetry.pool?.backlog ?? 0]]);
    readGauge(r, 'fleetcast_hub_chunk_requests_pending', 'Bundle chunks requested and not yet published', [], () => [[{}, s.transfer.pendingCount()]]);
    readCounter(r, 'fleetcast_hub_device_events_stored_total', 'Device events stored', [], () => [[{}, s.events.stats.stored]]);
    readCounter(r, 'fleetcast_hub_device_events_claims_total', 'Device events naming a bundle never assigned to the device (kept as unverified claims)', [], () => [[{}, s.events.stats.claims]]);
    readCounter(r, 'fleetcast_hub_device_events_rate_limited_total', 'Device events dropped by the per-device rate limit', [], () => [[{}, s.events.stats.rateLimited]]);
    this.#http = new client.Histogram({
      name: 'fleetcast_hub_http_request_duration_seconds', help: 'API request duration by method, matched route pattern and status code',
      labelNames: ['method', 'route', 'status_code'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [r],
    });
  }

  /** A publish through the hub's link finished (acknowledged, or failed). */
  published(topic: string, ok: boolean): void {
    (ok ? this.#published : this.#publishFailures).inc({ channel: publishChannel(topic) });
  }

  assignmentSent(): void { this.#assignments.inc(); }

  /** `route` is the matched route's pattern (`/v1/devices/:id`), or a fixed label when nothing matched. */
  request(method: string, route: string, status: number, seconds: number): void {
    this.#http.observe({ method, route, status_code: String(status) }, seconds);
  }

  text(): Promise<string> { return exposition(this.registry); }
}
