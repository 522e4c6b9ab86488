/**
 * What a follower does with an API call that needs the single writer (a route
 * registered with `config.leader: true`: publish, deploy, rollout start and
 * actions, debug on/off): it forwards the request, as it came, to the leader's
 * API URL advertised in the lease row, and streams the leader's answer back.
 *
 * Why forward rather than write here: these calls issue assignment counters or
 * append to the transparency log, which only the leader may do (a follower
 * doing it under the leader's epoch would race the leader's own counters), and
 * rather than queue a command row for the leader: the caller gets the leader's
 * real answer (its status, body and error code) at once, nothing has to be
 * polled, and a bundle upload streams through without being stored twice.
 *
 * The follower authenticates the caller first (the guard runs before this hook)
 * and the leader does again with the same Authorization header. A request is
 * forwarded once: a hub that receives a forwarded request and does not lead
 * either answers HUB_ERR_NO_LEADER (503), as does a follower while no hub holds
 * a live lease; the caller retries.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { hubError } from '../errors.js';
import type { LeaderView } from './leader.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = FastifyInstance<any, any, any, any>;

export const FORWARDED_HEADER = 'x-fleetcast-forwarded';
/** On a relayed answer: the leader's API URL that gave it. */
export const ANSWERED_BY_HEADER = 'x-fleetcast-leader';

/** Does the route need the cluster's single writer (its registration says `config.leader: true`)? */
export function leaderOnly(config: unknown): boolean {
  return (config as { leader?: unknown } | undefined)?.leader === true;
}

// Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded.
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function forwardable(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
  return out;
}

export interface ForwardDeps {
  isLeader(): boolean;
  /** Who leads, as the lease row says now. */
  leader(): Promise<LeaderView | undefined>;
  logger: Logger;
  /** How long the leader may take to answer (a bundle upload included). */
  timeoutMs?: number;
}

/** Install after the auth guard: leader-only routes on a follower are forwarded to the leader. */
export function installLeaderForwarding(app: App, d: ForwardDeps): void {
  app.addHook('onRequest', async (req, reply) => {
    if (req.is404 || !leaderOnly(req.routeOptions.config) || d.isLeader()) return;
    if (req.headers[FORWARDED_HEADER] !== undefined) throw hubError('HUB_ERR_NO_LEADER', 'this request was forwarded here as to the leader, but this hub does not lead (a takeover in progress)');
    const view = await d.leader().catch((e: unknown) => { throw hubError('HUB_ERR_NO_LEADER', `the lease row cannot be read: ${(e as Error).message}`); });
    if (!view || view.expired || !view.url) throw hubError('HUB_ERR_NO_LEADER', view ? (view.url ? `the lease of epoch ${view.epoch} has expired` : `the leader (epoch ${view.epoch}) advertises no API URL`) : 'no hub has ever led');
    const target = new URL(req.raw.url ?? '/', view.url);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    reply.hijack();
    const res = reply.raw;
    const fail = (why: string) => {
      d.logger.warn({ code: 'HUB_ERR_NO_LEADER', leader: view.url, epoch: view.epoch, why }, 'forwarding a leader-only request failed');
      if (res.headersSent) { res.destroy(); return; }
      const e = hubError('HUB_ERR_NO_LEADER', `the leader at ${view.url} (epoch ${view.epoch}) did not answer: ${why}`);
      res.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: e.toJSON() }));
    };
    const out = send(target, {
      method: req.method,
      headers: { ...forwardable(req.headers), [FORWARDED_HEADER]: String(view.epoch) },
      timeout: d.timeoutMs ?? 120_000,
    }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, { ...forwardable(answer.headers), [ANSWERED_BY_HEADER]: view.url! });
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    out.on('timeout', () => out.destroy(new Error('timed out')));
    out.on('error', (e) => fail((e as NodeJS.ErrnoException).code ?? e.message));
    req.raw.pipe(out);
  });
}
