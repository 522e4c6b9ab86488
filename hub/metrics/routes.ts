/**
 * /metrics on the hub, two ways, as a Prometheus operator would configure it:
 *
 * - on the API, behind a bearer token of role auditor or higher (Prometheus:
 *   `authorization: { credentials_file: … }`), like every other read;
 * - with `metricsPort`, on a listener of its own that serves /metrics and
 *   nothing else, without a token: bind it to an interface only the
 *   monitoring network reaches (`metricsHost`).
 *
 * The API's latency histogram is labelled by the route fastify matched
 * (`/v1/devices/:id`), never by the URL text.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { METRICS_CONTENT_TYPE } from '@fleetcast/protocol/metrics-exposition.js';
import { hubError } from '../errors.js';
import type { HubMetrics } from './hub-metrics.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = FastifyInstance<any, any, any, any>;

/** The route label of a request that matched no route (its URL is not a label: it is unbounded). */
export const UNMATCHED_ROUTE = '(unmatched)';

export function registerMetricsRoutes(app: App, metrics: HubMetrics): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.is404 ? UNMATCHED_ROUTE : (req.routeOptions.url ?? UNMATCHED_ROUTE);
    metrics.request(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { config: { access: 'auditor' }, schema: { summary: 'Prometheus metrics of this hub and its process (text format 0.0.4)', produces: ['text/plain'] } as object },
    async (_req, reply) => reply.type(METRICS_CONTENT_TYPE).send(await metrics.text()));
}

/** The token-free metrics listener (only GET/HEAD /metrics); resolves once it listens. */
export async function startMetricsServer(o: { host: string; port: number; metrics: HubMetrics; logger: Logger; tls?: { cert: Buffer; key: Buffer } }): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?', 1)[0];
    const answer = (status: number, type: string, body: string) => { res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }); res.end(req.method === 'HEAD' ? undefined : body); };
    const error = (status: number, code: 'HUB_ERR_NO_ROUTE', what: string) => answer(status, 'application/json; charset=utf-8', JSON.stringify({ error: { code, message: hubError(code, what).message } }));
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) { error(404, 'HUB_ERR_NO_ROUTE', `${req.method} ${path.slice(0, 200)}: this listener serves only GET /metrics`); return; }
    metrics.text().then((text) => answer(200, METRICS_CONTENT_TYPE, text), (e: unknown) => {
      o.logger.error({ err: e }, 'collecting metrics failed');
      answer(500, 'text/plain; charset=utf-8', 'collecting metrics failed; see the hub log\n');
    });
  };
  const { metrics } = o;
  const server = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key }, handle) : createHttpServer(handle);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  try {
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(o.port, o.host, () => { server.off('error', reject); resolve(); }); });
  } catch (e) {
    throw hubError('HUB_ERR_LISTEN', `metrics listener cannot listen on ${o.host}:${o.port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const port = (server.address() as { port: number }).port;
  const url = `${o.tls ? 'https' : 'http'}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}/metrics`;
  return {
    server, url,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
