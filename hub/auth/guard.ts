/**
 * Who may call what. `Authorization: Bearer <token>` on every route except the
 * open ones (health, OpenAPI, reads of the public transparency log); a missing or unknown token is 401, a known token
 * whose role is too low is 403, both with a code and nothing else revealed.
 * Rule: /v1/tokens* needs admin; reads (GET) need auditor; every other write
 * needs operator. Roles are ordered admin > operator > auditor.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = FastifyInstance<any, any, any, any>;
import { hubError } from '../errors.js';
import type { Role, TokenStore } from './tokens.js';

const RANK: Record<Role, number> = { auditor: 1, operator: 2, admin: 3 };
const OPEN = new Set(['/v1/health', '/openapi.json']);

export function requiredRole(method: string, path: string): Role | null {
  if (OPEN.has(path)) return null;
  // The transparency log is public by design (RFC 9162: anyone may fetch checkpoints and proofs).
  if ((method === 'GET' || method === 'HEAD') && (path === '/v1/log' || path.startsWith('/v1/log/'))) return null;
  if (path === '/v1/tokens' || path.startsWith('/v1/tokens/')) return 'admin';
  return method === 'GET' || method === 'HEAD' ? 'auditor' : 'operator';
}

/** "role:tokenId" of the caller (for decision records), set by the guard. */
export function actorOf(req: FastifyRequest): string {
  return (req as FastifyRequest & { fcActor?: string }).fcActor ?? 'unknown';
}

export function installGuard(app: App, tokens: TokenStore): void {
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0];
    const need = requiredRole(req.method, path);
    if (need === null) return;
    const m = /^Bearer\s+(\S{1,512})$/i.exec(String(req.headers.authorization ?? ''));
    const who = m ? tokens.verify(m[1]) : undefined;
    if (!who) throw hubError('HUB_ERR_UNAUTHENTICATED', m ? 'the token is unknown or revoked' : 'no Authorization: Bearer header');
    if (RANK[who.role] < RANK[need]) throw hubError('HUB_ERR_FORBIDDEN', `${req.method} ${path} needs ${need}; this token is ${who.role}`);
    (req as FastifyRequest & { fcActor?: string }).fcActor = `${who.role}:${who.id}`;
  });
}
