/**
 * The Prometheus text exposition both daemons serve on /metrics. Each hub and
 * each agent keeps its own prom-client Registry (tests and the simulator run
 * many in one process, so the global default registry would mix them up);
 * process metrics (CPU, memory, event loop, GC) describe the process, not an
 * instance, so they are collected once per process into one registry shared
 * here. Registering them per instance would add a GC observer and an event
 * loop monitor, never removed, for every hub or agent started.
 *
 * prom-client is loaded on first use, not on import: an agent without its
 * HTTP API (the simulator's in-process fleets) never serves metrics and never
 * pays the module's memory.
 */
import type { Registry } from 'prom-client';

let processRegistry: Promise<Registry> | null = null;

/** The process metrics registry, created (and its collectors started) on first use. */
function processMetrics(): Promise<Registry> {
  processRegistry ??= import('prom-client').then(({ default: client }) => {
    const r = new client.Registry();
    client.collectDefaultMetrics({ register: r });
    return r;
  });
  return processRegistry;
}

/** `Content-Type` of the exposition: text format 0.0.4 (prom-client's Registry.PROMETHEUS_CONTENT_TYPE). */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** One instance's metrics followed by the process metrics, as one exposition text. */
export async function exposition(own: Registry): Promise<string> {
  // Collected in turn: each ends with a newline, and metric names never overlap (fleetcast_ vs process_/nodejs_).
  return (await own.metrics()) + (await (await processMetrics()).metrics());
}
