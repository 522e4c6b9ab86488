/**
 * The agent's Prometheus metrics, in a Registry of its own (the simulator
 * runs many agents in one process). The predict path pays two counter
 * increments and one histogram observation; everything else (model, install
 * phase, telemetry, broker) is read at scrape time from what the agent
 * already keeps. Labels are bounded: error codes, phases, the installed model.
 * agent.ts imports this module (and so prom-client) only when the HTTP API is on.
 */
import client, { type Registry } from 'prom-client';
import { PHASES, type Phase } from '@fleetcast/protocol/messages.js';
import { exposition } from '@fleetcast/protocol/metrics-exposition.js';

export interface AgentMetricsSources {
  model(): { name: string; version: number; bundleId: string } | null;
  phase(): Phase;
  telemetry(): { sent: number; dropped: number; buffered: number } | null;
  connected(): boolean;
}

export class AgentMetrics {
  readonly registry: Registry = new client.Registry();
  readonly #requests: client.Counter;
  readonly #failures: client.Counter<'code'>;
  readonly #latency: client.Histogram;
  #lastInstall: { result: 'installed' | 'rejected'; code: string; phase: string; bundleId: string; at: number } | null = null;

  constructor(s: AgentMetricsSources) {
    const r = this.registry;
    this.#requests = new client.Counter({ name: 'fleetcast_agent_predictions_total', help: 'Prediction requests received (v1 predict and v2 infer), answered or refused', registers: [r] });
    this.#failures = new client.Counter({ name: 'fleetcast_agent_prediction_failures_total', help: 'Prediction requests that failed, by error code', labelNames: ['code'], registers: [r] });
    // From the lease of the model to its outputs: what the model costs, without HTTP and JSON. Small
    // models run in tens of microseconds on a device, so the buckets start at 50 µs.
    this.#latency = new client.Histogram({ name: 'fleetcast_agent_predict_latency_seconds', help: 'Model run latency of predictions the model ran (validation included)', buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [r] });
    new client.Gauge({
      name: 'fleetcast_agent_model_info', help: 'The model serving now (1), by name, version and bundle id', labelNames: ['name', 'version', 'bundle_id'], registers: [r],
      collect() { this.reset(); const m = s.model(); if (m) this.set({ name: m.name, version: String(m.version), bundle_id: m.bundleId }, 1); },
    });
    new client.Gauge({
      name: 'fleetcast_agent_install_phase', help: 'The install state machine\'s phase (1 for the current one)', labelNames: ['phase'], registers: [r],
      collect() { const now = s.phase(); for (const p of PHASES) this.set({ phase: p }, p === now ? 1 : 0); },
    });
    const last = () => this.#lastInstall;
    new client.Gauge({
      name: 'fleetcast_agent_last_install', help: 'The last install outcome since start (1): installed, or rejected with the code and the phase that refused it (assignment: refused before any fetch)', labelNames: ['result', 'code', 'phase', 'bundle_id'], registers: [r],
      collect() { this.reset(); const l = last(); if (l) this.set({ result: l.result, code: l.code, phase: l.phase, bundle_id: l.bundleId }, 1); },
    });
    new client.Gauge({
      name: 'fleetcast_agent_last_install_timestamp_seconds', help: 'When the last install since start ended (Unix time)', registers: [r],
      collect() { this.reset(); const l = last(); if (l) this.set(l.at / 1000); },
    });
    const telemetry = (pick: (t: { sent: number; dropped: number; buffered: number }) => number) => () => { const t = s.telemetry(); return t ? pick(t) : 0; };
    const sent = telemetry((t) => t.sent);
    const dropped = telemetry((t) => t.dropped);
    const buffered = telemetry((t) => t.buffered);
    new client.Counter({ name: 'fleetcast_agent_telemetry_reports_sent_total', help: 'Telemetry reports published to the broker', registers: [r], collect() { this.reset(); this.inc(sent()); } });
    new client.Counter({ name: 'fleetcast_agent_telemetry_reports_dropped_total', help: 'Telemetry reports dropped from the offline buffer (oldest first)', registers: [r], collect() { this.reset(); this.inc(dropped()); } });
    new client.Gauge({ name: 'fleetcast_agent_telemetry_reports_buffered', help: 'Telemetry reports waiting to be sent', registers: [r], collect() { this.set(buffered()); } });
    new client.Gauge({ name: 'fleetcast_agent_broker_connected', help: '1 while connected to the MQTT broker', registers: [r], collect() { this.set(s.connected() ? 1 : 0); } });
  }

  /** A prediction request arrived (counted before it can be refused). */
  request(): void { this.#requests.inc(); }
  failure(code: string): void { this.#failures.inc({ code }); }
  latency(ms: number): void { this.#latency.observe(ms / 1000); }
  installed(bundleId: string, at: number): void { this.#lastInstall = { result: 'installed', code: '', phase: 'committed', bundleId, at }; }
  rejected(r: { bundleId?: string; code: string; phase: string }, at: number): void { this.#lastInstall = { result: 'rejected', code: r.code, phase: r.phase, bundleId: r.bundleId ?? '', at }; }

  text(): Promise<string> { return exposition(this.registry); }
}
