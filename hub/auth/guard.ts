/**
 * Who may call what. Every route declares its access in its own route config
 * (`config: { access }`): 'public' (health, OpenAPI, the signed checkpoints and
 * proofs of the transparency log), or the lowest role that may call it. The
 * guard reads the access of the route fastify MATCHED, never the URL text:
 * fastify routes on the decoded path (`/v1/%74okens` is `/v1/tokens`, and an
 * absolute-form target `http://x/v1/tokens` too), so a rule written against
 * `req.url` can be walked around by any encoding the router accepts.
 * A route registered without a valid access stops the hub at start-up
 * (assertRouteAccess); a request that matched no route still needs a valid
 * token before it learns that nothing is there (default deny).
 * A missing or unknown token is 401, a known token whose role is too low is
 * 403, both with a code and nothing else revealed. Roles: admin > operator > auditor.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = FastifyInstance<any, any, any, any>;
import { hubError } from '../errors.js';
import { ROLES, type Role, type TokenStore } from './tokens.js';

export type Access = 'public' | Role;
export const ACCESS: readonly Access[] = ['public', ...ROLES];
const RANK: Record<Role, number> = { auditor: 1, operator: 2, admin: 3 };

/** A route's access, as its registration declared it (config.access). */
export function accessOf(config: unknown): Access | undefined {
  const a = (config as { access?: unknown } | undefined)?.access;
  return typeof a === 'string' && (ACCESS as readonly string[]).includes(a) ? (a as Access) : undefined;
}

/** For the onRoute hook: a route with no declared access is a programming error, refused before the hub listens. */
export function assertRouteAccess(r: RouteOptions): void {
  if (accessOf(r.config) === undefined) {
    throw hubError('HUB_ERR_ROUTE_ACCESS', `${String(r.method)} ${r.url} has config.access ${JSON.stringify((r.config as { access?: unknown } | undefined)?.access)}`);
  }
}

/** "role:tokenId (label)" of the caller (for decision records), set by the guard. */
export function actorOf(req: FastifyRequest): string {
  return (req as FastifyRequest & { fcActor?: string }).fcActor ?? 'unknown';
}

/** The caller's token (id, role, label, expiry), set by the guard on every route that is not public. */
export function whoOf(req: FastifyRequest): Caller | undefined {
  return (req as FastifyRequest & { fcWho?: Caller }).fcWho;
}
export interface Caller { id: string; role: Role; label: string | null; expiresAt: number | null }

export function installGuard(app: App, tokens: TokenStore, now: () => number = Date.now): void {
  app.addHook('onRequest', async (req) => {
    // req.is404: no route matched, so no route config; any valid token may then hear "no route".
    const need: Access = req.is404 ? 'auditor' : (accessOf(req.routeOptions.config) ?? 'admin');
    if (need === 'public') return;
    const m = /^Bearer\s+(\S{1,512})$/i.exec(String(req.headers.authorization ?? ''));
    const who = m ? tokens.verify(m[1], now()) : undefined;
    if (!who) throw hubError('HUB_ERR_UNAUTHENTICATED', m ? 'the token is unknown, revoked or expired' : 'no Authorization: Bearer header');
    const route = req.is404 ? 'this route' : `${req.method} ${req.routeOptions.url}`;
    if (RANK[who.role] < RANK[need]) throw hubError('HUB_ERR_FORBIDDEN', `${route} needs ${need}; this token is ${who.role}`);
    // The label goes into every decision and log line the caller causes (`operator:tok-… (alice)`); the id stays first so it can be resolved.
    (req as FastifyRequest & { fcActor?: string }).fcActor = `${who.role}:${who.id}${who.label ? ` (${who.label})` : ''}`;
    (req as FastifyRequest & { fcWho?: Caller }).fcWho = { id: who.id, role: who.role, label: who.label, expiresAt: who.expiresAt };
  });
}
