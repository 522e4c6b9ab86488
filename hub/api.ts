/**
 * The hub's HTTP API (fastify). Every route has a JSON schema; every error
 * answers `{"error":{"code","message"}}` with a code from docs/errors.md and
 * its HTTP status. Bundle uploads are streamed to a temp file (never held in
 * memory), verified, then stored; JSON bodies are capped by maxJsonBytes.
 */
import Fastify, { LogController, type FastifyError, type FastifySchema, type RouteOptions } from 'fastify';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { FleetcastError, isFleetcastError, protocolError } from '@fleetcast/protocol/errors.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import type { Assigner } from './assignments.js';
import * as S from './api-schemas.js';
import { hubError } from './errors.js';
import { ingestBundleFile } from './ingest.js';
import { refuseUnknownDevices } from './known-devices.js';
import { fleetSummary, pageDevices, type DeviceFilter } from './device-query.js';
import { tagsOf } from './rollouts/rings.js';
import { buildOpenApi } from './openapi.js';
import { accessOf, actorOf, assertRouteAccess, type Access } from './auth/guard.js';
import type { HubOptions } from './options.js';
import type { BundleRecord, DeviceRecord, HubStore } from './store.js';
import type { LogAppender } from './translog/hooks.js';

export interface ApiDeps {
  options: HubOptions;
  store: HubStore;
  root: TrustedRoot;
  assigner: Assigner;
  /** The transparency log: every accepted bundle's manifest is appended to it. */
  log: LogAppender;
  logger: Logger;
  now: () => number;
  /** Live numbers for GET /v1/health. */
  health(): Omit<S.HealthBody, 'bundles' | 'devices'>;
  /** PEM certificate and key: serve HTTPS instead of HTTP. */
  tls?: { cert: Buffer; key: Buffer };
  /** Issue #5: devices in debug raw sampling now, shown in the device listing (hub/debug/). */
  debugOf?(): ReadonlyMap<string, { rowsPerWindow: number; until: number }>;
}

function bundleSummary(b: BundleRecord): S.BundleSummary {
  return { bundleId: b.id, name: b.name, version: b.version, compressedLength: b.compressedLength, rawLength: b.rawLength, chunkSize: b.chunkSize, chunkCount: b.chunkCount, createdAt: b.createdAt };
}

function deviceSummary(store: HubStore, d: DeviceRecord, online: boolean, debug?: ReadonlyMap<string, { rowsPerWindow: number; until: number }>): S.DeviceSummary {
  const a = store.getAssignment(d.id);
  const b = a ? store.getBundle(a.bundleId) : undefined;
  return {
    id: d.id,
    active: d.state.active,
    phase: d.phase,
    lastError: d.lastErrorCode,
    firstSeen: d.firstSeen,
    lastSeen: d.lastSeen,
    online,
    ring: a?.ring ?? null,
    tags: tagsOf(d.state),
    assignment: a && b ? { bundleId: a.bundleId, name: b.name, version: b.version, counter: a.counter, expiresAt: a.expiresAt } : null,
    ...(debug ? { debug: debug.get(d.id) ?? null } : {}),
  };
}

/** Copy the request body to `path`, refusing (413) past `max` bytes. */
async function receive(body: Readable | undefined, path: string, max: number): Promise<void> {
  let seen = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > max) cb(hubError('HUB_ERR_BODY_TOO_LARGE', `more than ${max} bytes`));
      else cb(null, chunk);
    },
  });
  const out = createWriteStream(path, { flags: 'wx' });
  if (!body) { out.end(); await new Promise<void>((r) => out.on('close', () => r())); return; }
  // Not pipeline(body, …): on a 413 it would destroy the socket before the answer is sent.
  body.pipe(limit);
  try {
    await pipeline(limit, out);
  } catch (e) {
    body.unpipe(limit);
    throw e;
  }
}

/** Map anything a route throws to a FleetcastError with a hub or protocol code. */
function toCoded(e: unknown): FleetcastError {
  if (isFleetcastError(e)) return e;
  const fe = e as FastifyError;
  if (fe?.validation) return hubError('HUB_ERR_BAD_REQUEST', fe.message);
  switch (fe?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return hubError('HUB_ERR_BODY_TOO_LARGE', fe.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return hubError('HUB_ERR_UNSUPPORTED_MEDIA_TYPE', fe.message);
    default:
      if (typeof fe?.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return hubError('HUB_ERR_BAD_REQUEST', fe.message);
      return protocolError('PROTO_ERR_INTERNAL');
  }
}

/** Largest page of GET /v1/devices (the console asks for 50). */
export const MAX_DEVICE_PAGE = 1000;
const SUMMARY_TTL_MS = 2000;

const tables = new WeakMap<object, readonly RouteOptions[]>();

export interface RouteAccess { method: string; url: string; access: Access }

/** Every route of an API built by buildApi, with its declared access (the authorization tests iterate it). */
export function routeTable(app: object): RouteAccess[] {
  return (tables.get(app) ?? []).flatMap((r) => (Array.isArray(r.method) ? r.method : [r.method]).map((method) => ({ method: String(method), url: r.url, access: accessOf(r.config)! })));
}

export function buildApi(deps: ApiDeps) {
  const { store, options, logger } = deps;
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.maxJsonBytes,
    // Refuse unknown keys and wrong types instead of silently dropping or coercing them.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    // The same app over node:https: typed as the plain HTTP instance, which is all the routes and the hub use.
    ...(deps.tls ? ({ https: { cert: deps.tls.cert, key: deps.tls.key } } as object) : {}),
  });
  const routes: RouteOptions[] = [];
  // Every route says who may call it (hub/auth/guard.ts); one that does not stops the hub here, at start-up.
  app.addHook('onRoute', (r) => { assertRouteAccess(r); routes.push(r); });
  tables.set(app, routes);

  // Bundles arrive as a raw stream; the route copies it to disk itself.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

  app.setErrorHandler((err, req, reply) => {
    const coded = toCoded(err);
    if (coded.status >= 500) logger.error({ err, code: coded.code, url: req.url }, 'API request failed');
    if (coded.code === 'HUB_ERR_BODY_TOO_LARGE') reply.header('connection', 'close');
    const details = Object.keys(coded.details).length > 0 ? { details: coded.details } : {};
    return reply.code(coded.status).send({ error: { code: coded.code, message: coded.message, ...details } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'HUB_ERR_NO_ROUTE', message: hubError('HUB_ERR_NO_ROUTE', `${req.method} ${req.url.slice(0, 200)}`).message } });
  });

  const errors = { '4xx': S.errorBody.json, '5xx': S.errorBody.json };

  app.post('/v1/bundles', { config: { access: 'operator', leader: true },
    schema: { summary: 'Publish a bundle file (the body is the file, application/octet-stream)', consumes: ['application/octet-stream'], response: { 200: S.publishResult.json, 201: S.publishResult.json, ...errors } },
  }, async (req, reply) => {
    const type = String(req.headers['content-type'] ?? '');
    if (!type.startsWith('application/octet-stream')) throw hubError('HUB_ERR_UNSUPPORTED_MEDIA_TYPE', `got ${type || 'none'}`);
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > options.maxBundleBytes) throw hubError('HUB_ERR_BODY_TOO_LARGE', `${declared} bytes, limit ${options.maxBundleBytes}`);
    const tmp = store.tempPath('upload');
    try {
      await receive(req.body as Readable | undefined, tmp, options.maxBundleBytes);
      const r = await ingestBundleFile(tmp, { store, root: deps.root, now: deps.now, log: deps.log });
      if (r.created) logger.info({ bundleId: r.bundle.id, name: r.bundle.name, version: r.bundle.version }, 'bundle published');
      reply.code(r.created ? 201 : 200);
      return { bundleId: r.bundle.id, name: r.bundle.name, version: r.bundle.version, created: r.created };
    } finally {
      await rm(tmp, { force: true });
    }
  });

  app.get('/v1/bundles', { config: { access: 'auditor' }, schema: { summary: 'List published bundles', response: { 200: S.bundleList.json, ...errors } } },
    async () => ({ bundles: store.listBundles().map(bundleSummary) }));

  app.get('/v1/bundles/:id', { config: { access: 'auditor' }, schema: { summary: 'One bundle with its signed manifest', params: S.bundleIdParams.json, response: { 200: S.bundleDetail.json, ...errors } } }, async (req) => {
    const { id } = req.params as { id: string };
    const b = store.getBundle(id);
    if (!b) throw hubError('HUB_ERR_UNKNOWN_BUNDLE', id);
    return { ...bundleSummary(b), manifest: b.manifest, envelope: b.envelope };
  });

  app.post('/v1/deployments', { config: { access: 'operator', leader: true }, schema: { summary: 'Assign a bundle to devices (signed, retained on each device\'s assign topic)', body: S.deployBody.json, response: { 200: S.deployResult.json, ...errors } } }, async (req) => {
    const body = req.body as S.DeployBody;
    const bundle = store.getBundleByVersion(body.name, body.version);
    if (!bundle) throw hubError('HUB_ERR_UNKNOWN_BUNDLE', `${body.name}@${body.version}`);
    if (body.all && body.devices) throw hubError('HUB_ERR_NO_TARGETS', 'both `all` and `devices` were given');
    const targets = body.all ? store.listDevices().map((d) => d.id) : (body.devices ?? []);
    if (targets.length === 0) throw hubError('HUB_ERR_NO_TARGETS', body.all ? 'no device has reported to the hub yet' : 'neither `all` nor `devices` was given');
    // A typo in an id must not pass as "assigned": refused before anything is signed or stored.
    if (body.devices && !body.allowUnknown) refuseUnknownDevices(store, body.devices, 'the deployment');
    // actor: who approved this deployment, for the transparency log (issue #6).
    const r = await deps.assigner.assign(bundle, targets, { rolloutId: body.rolloutId ?? null, ring: body.ring ?? null, actor: actorOf(req) });
    logger.info({ bundleId: r.bundleId, devices: r.devices.length }, 'deployment assigned');
    return r;
  });

  // Online: heard from within onlineWindowMs (lastSeen moves with every message, heartbeats included).
  const isOnline = (d: DeviceRecord) => deps.now() - d.lastSeen <= options.onlineWindowMs;
  app.get('/v1/devices', { config: { access: 'auditor' }, schema: { summary: 'The device registry, from state reports, in id order; filters: state=online|offline, version=NAME@VERSION|none, tag, ring, phase, q (part of the id); pages: limit and after=next', querystring: S.deviceListQuery.json, response: { 200: S.deviceList.json, ...errors } } },
    async (req) => {
      const q = req.query as S.DeviceListQuery;
      if (q.limit !== undefined && Number(q.limit) > MAX_DEVICE_PAGE) throw hubError('HUB_ERR_BAD_REQUEST', `limit ${q.limit} is over ${MAX_DEVICE_PAGE}; page with after=next`);
      const debug = deps.debugOf?.();
      const { limit, after, ...filter } = q;
      // Without limit: every device, as the CLI's `devices list` has always read it.
      const page = pageDevices(store, filter as DeviceFilter, { onlineSince: deps.now() - options.onlineWindowMs, limit: limit === undefined ? Number.MAX_SAFE_INTEGER - 1 : Number(limit), ...(after !== undefined ? { after } : {}) });
      return { devices: page.devices.map((d) => deviceSummary(store, d, isOnline(d), debug)), total: page.total, next: page.next };
    });

  // Counting 100,000 devices by version, ring and phase takes ~0.2 s; every open console asks every few
  // seconds, so one answer serves all callers for SUMMARY_TTL_MS (of real time: a test's frozen clock must not freeze it).
  let summary: { at: number; body: S.FleetSummary } | undefined;
  app.get('/v1/fleet/summary', { config: { access: 'auditor' }, schema: { summary: `Devices by active version, ring and phase, and how many are online (counted in the database; at most ${SUMMARY_TTL_MS / 1000} s old)`, response: { 200: S.fleetSummary.json, ...errors } } },
    async () => {
      if (!summary || performance.now() - summary.at > SUMMARY_TTL_MS) summary = { at: performance.now(), body: fleetSummary(store, deps.now() - options.onlineWindowMs) };
      return summary.body;
    });

  app.get('/v1/devices/:id', { config: { access: 'auditor' }, schema: { summary: 'One device: its last state report and recent events', params: S.deviceIdParams.json, response: { 200: S.deviceDetail.json, ...errors } } }, async (req) => {
    const { id } = req.params as { id: string };
    const d = store.getDevice(id);
    if (!d) throw hubError('HUB_ERR_UNKNOWN_DEVICE', id);
    return { ...deviceSummary(store, d, isOnline(d), deps.debugOf?.()), state: d.state, events: store.listEvents(id, 50) };
  });

  app.get('/v1/health', { config: { access: 'public' }, schema: { summary: 'Liveness and counters', response: { 200: S.health.json, ...errors } } },
    async () => ({ ...deps.health(), bundles: store.listBundles().length, devices: store.countDevices() }));

  app.get('/openapi.json', { config: { access: 'public' }, schema: { summary: 'This document', hide: true } as FastifySchema }, async () => buildOpenApi(routes));

  return app;
}
