/**
 * The transparency log over HTTP: the latest and every earlier checkpoint,
 * leaves by index, inclusion proofs and consistency proofs between any two
 * sizes (RFC 9162 2.1.3, 2.1.4), the root chain, and the installs devices
 * reported (what `fleetcast audit export` collects). Proof and range errors
 * come from signing/merkle.ts as SIGN_ERR_MERKLE_* with status 400.
 */
import type { FastifyInstance } from 'fastify';
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import { arr, int, json, nullable, obj, optional, str, type Infer } from '@fleetcast/protocol/schema.js';
import { errorBody } from '../api-schemas.js';
import { hubError } from '../errors.js';
import { loggedInstalls, type DeviceEvents } from '../events/device-events.js';
import type { TransparencyLog } from './translog.js';

const count = str({ pattern: /^(0|[1-9][0-9]{0,14})$/ });
const b64 = str({ max: 64 });
const checkpointBody = obj({ size: int({ min: 0 }), checkpoint: str(), createdAt: int({ min: 0 }) });
const install = { deviceId: str(), bundleId: str(), counter: int({ min: 0 }), at: int({ min: 0 }), receivedAt: int({ min: 0 }), seq: int({ min: 0 }) };
const installsBody = obj({
  /** Installs in signed log leaves (logIndex: the leaf). */
  installs: arr(obj({ ...install, logIndex: int({ min: 0 }) })),
  /** Consistent installs waiting for their leaf (events.logIntervalMs): not evidence yet. */
  pending: arr(obj(install)),
});
// bundleId null: an install that named no bundle (hub/events/device-events.ts keeps it as a claim).
const claimsBody = obj({ claims: arr(obj({ deviceId: str(), seq: int({ min: 0 }), kind: str(), bundleId: nullable(str()), counter: nullable(int({ min: 0 })), at: int({ min: 0 }), receivedAt: int({ min: 0 }) })) });
export type InstallReport = Infer<typeof installsBody>['installs'][number];

/** Leaves per entries request; the exporter pages through larger logs. */
export const MAX_ENTRIES_PER_REQUEST = 1000;

const n = (s: string | undefined, def: number): number => (s === undefined ? def : Number(s));

export function registerTranslogRoutes(app: FastifyInstance, deps: { log: TransparencyLog; events: Pick<DeviceEvents, 'pendingInstalls' | 'claims'>; roots: () => readonly Envelope[] }): void {
  const { log } = deps;
  const errors = { '4xx': errorBody.json, '5xx': errorBody.json };

  app.get('/v1/log/checkpoint', { config: { access: 'public' }, schema: { summary: 'The latest signed checkpoint of the transparency log', response: { 200: checkpointBody.json, ...errors } } }, async () => {
    const cp = log.latest();
    if (!cp) throw hubError('HUB_ERR_STORE', 'the transparency log has no checkpoint yet');
    return { size: cp.size, checkpoint: cp.note, createdAt: cp.createdAt };
  });

  app.get('/v1/log/checkpoints', { config: { access: 'public' },
    schema: { summary: 'Signed checkpoints from a tree size on, oldest first', querystring: obj({ from: optional(count), limit: optional(count) }).json, response: { 200: obj({ checkpoints: arr(checkpointBody) }).json, ...errors } },
  }, async (req) => {
    const q = req.query as { from?: string; limit?: string };
    return { checkpoints: log.checkpoints(n(q.from, 0), Math.min(n(q.limit, 10_000), 10_000)).map((c) => ({ size: c.size, checkpoint: c.note, createdAt: c.createdAt })) };
  });

  app.get('/v1/log/entries', { config: { access: 'auditor' },
    schema: { summary: `Leaves [start, end) as base64 of their exact bytes (at most ${MAX_ENTRIES_PER_REQUEST})`, querystring: obj({ start: count, end: count }).json, response: { 200: obj({ entries: arr(obj({ index: int({ min: 0 }), data: str() })) }).json, ...errors } },
  }, async (req) => {
    const q = req.query as { start: string; end: string };
    const start = Number(q.start);
    const end = Math.min(Number(q.end), start + MAX_ENTRIES_PER_REQUEST, log.size);
    return { entries: log.leaves(start, end).map((l) => ({ index: l.index, data: l.data.toString('base64') })) };
  });

  app.get('/v1/log/proof/inclusion', { config: { access: 'public' },
    schema: { summary: 'Inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 2.1.3)', querystring: obj({ index: count, size: optional(count) }).json, response: { 200: obj({ index: int(), size: int(), leafHash: b64, proof: arr(b64) }).json, ...errors } },
  }, async (req) => {
    const q = req.query as { index: string; size?: string };
    const size = n(q.size, log.size);
    const p = log.inclusionProof(Number(q.index), size);
    return { index: Number(q.index), size, leafHash: p.leafHash.toString('base64'), proof: p.proof.map((h) => h.toString('base64')) };
  });

  app.get('/v1/log/proof/consistency', { config: { access: 'public' },
    schema: { summary: 'Consistency proof between tree sizes `from` and `to` (RFC 9162 2.1.4)', querystring: obj({ from: count, to: optional(count) }).json, response: { 200: obj({ from: int(), to: int(), proof: arr(b64) }).json, ...errors } },
  }, async (req) => {
    const q = req.query as { from: string; to?: string };
    const to = n(q.to, log.size);
    return { from: Number(q.from), to, proof: log.consistencyProof(Number(q.from), to).map((h) => h.toString('base64')) };
  });

  app.get('/v1/log/roots', { config: { access: 'public' }, schema: { summary: 'Every root version the hub serves, oldest first', response: { 200: obj({ roots: arr(json()) }).json, ...errors } } },
    async () => ({ roots: deps.roots() }));

  app.get('/v1/log/installs', { config: { access: 'auditor' }, schema: { summary: 'Installs devices reported that match their assignments: those in signed log leaves, and those still waiting for a leaf', response: { 200: installsBody.json, ...errors } } },
    async () => ({ installs: loggedInstalls(log), pending: deps.events.pendingInstalls() }));

  app.get('/v1/log/claims', { config: { access: 'auditor' }, schema: { summary: 'Events devices reported for bundles never assigned to them: unverified claims, never installs (newest first)', response: { 200: claimsBody.json, ...errors } } },
    async () => ({ claims: deps.events.claims() }));
}
