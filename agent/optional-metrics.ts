/**
 * prom-client is an optional dependency of @fleetcast/agent: a device installed
 * with `npm install --omit=optional` gets only mqtt, onnxruntime-node, pino and
 * the core packages, and its agent serves everything but GET /metrics (which
 * then answers AGENT_ERR_METRICS_UNAVAILABLE). Kept as prom-client rather than
 * a hand-written exposition: the hub serves the same metric kinds through
 * prom-client, and a second writer of the text format would be a second thing
 * to keep equal to it.
 */
import type { AgentMetrics } from './agent-metrics.js';

/** AgentMetrics, or null when prom-client is not installed (any other load failure is thrown). */
export async function loadAgentMetrics(): Promise<typeof AgentMetrics | null> {
  try {
    return (await import('./agent-metrics.js')).AgentMetrics;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && /['"]prom-client['"]/.test(err.message)) return null;
    throw e;
  }
}
