/** Token routes (admin only, see guard.ts): create (the token is in this answer and nowhere else), list, revoke. */
import type { FastifyInstance } from 'fastify';

// The hub's app is typed with its pino Logger; these routes need nothing logger-specific.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type App = FastifyInstance<any, any, any, any>;
import { errorBody } from '../api-schemas.js';
import { hubError } from '../errors.js';
import { arr, bool, int, nullable, obj, optional, str } from '@fleetcast/protocol/schema.js';
import { actorOf, whoOf } from './guard.js';
import { ROLES, type Role, type TokenStore } from './tokens.js';

// A label is printed in decision and audit lines: one line of visible text, no control characters.
const createBody = obj({
  role: str({ enum: ROLES }),
  label: optional(str({ min: 1, max: 200, pattern: /^[^\u0000-\u001f\u007f]+$/ })),
  /** Epoch ms after which the token is refused (HUB_ERR_UNAUTHENTICATED); omitted: it does not expire. */
  expiresAt: optional(int({ min: 1 })),
});
const created = obj({ id: str(), token: str(), role: str(), label: nullable(str()), expiresAt: nullable(int()) });
const info = obj({ id: str(), role: str(), label: nullable(str()), createdAt: int(), createdBy: str(), revoked: bool(), expiresAt: nullable(int()) });
const directoryEntry = obj({ id: str(), role: str(), label: nullable(str()), expiresAt: nullable(int()), revoked: bool() });
const idParams = obj({ id: str({ pattern: /^tok-[0-9a-f]{12}$/ }) });

export function registerTokenRoutes(app: App, tokens: TokenStore, now: () => number): void {
  const errors = { '4xx': errorBody.json, '5xx': errorBody.json };
  app.post('/v1/tokens', { config: { access: 'admin' }, schema: { summary: 'Create an API token with a role (admin); the token is shown once, the hub keeps its hash', body: createBody.json, response: { 201: created.json, ...errors } } }, async (req, reply) => {
    const b = req.body as { role: Role; label?: string; expiresAt?: number };
    if (b.expiresAt !== undefined && b.expiresAt <= now()) throw hubError('HUB_ERR_BAD_REQUEST', `expiresAt ${new Date(b.expiresAt).toISOString()} is not in the future`);
    reply.code(201);
    return tokens.create(b.role, actorOf(req), now(), b.label ?? null, b.expiresAt ?? null);
  });
  // Auditors read actors in the log as token ids; this resolves them to labels (no hashes, no creators).
  app.get('/v1/tokens/directory', { config: { access: 'auditor' }, schema: { summary: 'Token ids with their role, label, expiry and whether revoked, to resolve the actors in decisions and the log (auditor)', response: { 200: obj({ tokens: arr(directoryEntry) }).json, ...errors } } },
    async () => ({ tokens: tokens.list().map(({ id, role, label, expiresAt, revoked }) => ({ id, role, label, expiresAt, revoked })) }));
  // The console asks who its token is, to show only what the role may do; the API still decides every call.
  app.get('/v1/whoami', { config: { access: 'auditor' }, schema: { summary: 'The calling token: id, role, label and expiry (any role)', response: { 200: directoryEntry.json, ...errors } } },
    async (req) => ({ ...whoOf(req)!, revoked: false }));
  app.get('/v1/tokens', { config: { access: 'admin' }, schema: { summary: 'List tokens (ids and roles, never the tokens) (admin)', response: { 200: obj({ tokens: arr(info) }).json, ...errors } } },
    async () => ({ tokens: tokens.list() }));
  app.delete('/v1/tokens/:id', { config: { access: 'admin' }, schema: { summary: 'Revoke a token (admin)', params: idParams.json, response: { 200: obj({ id: str(), revoked: bool() }).json, ...errors } } }, async (req) => {
    const { id } = req.params as { id: string };
    if (!tokens.revoke(id)) throw hubError('HUB_ERR_BAD_REQUEST', `no token ${id}`);
    return { id, revoked: true };
  });
}
