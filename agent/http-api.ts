/**
 * The local predict API on node:http (no framework: the agent must stay small
 * for a device): `POST /v1/predict`, `GET /v1/status`, the status page `GET /`,
 * and the Open Inference Protocol (KServe v2 / Triton HTTP) under `/v2`, with
 * the binary tensor data extension (agent/infer-v2.ts).
 *
 * Routes are a table (path, methods, token, body types, handler) that the
 * code and the tests both read. Every request first passes the caller checks
 * (Host, Origin: agent/request-guard.ts), then the route's method, token and
 * Content-Type, and only then is a body read. v1 errors are
 * `{"error": {"code", "message", "details"}}`; v2 errors are
 * `{"error": "<message>", "code", "details"}` ("Inference Response JSON
 * Error Object" in KServe required_api.md: an `error` string), with the same
 * codes and statuses. The body is capped while it streams: a declared
 * Content-Length over the cap is answered 413 before a byte of it is read, and
 * an undeclared (chunked) body is cut off as soon as it passes the cap. No
 * input can throw out of here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TensorSpec } from '@fleetcast/protocol/manifest.js';
import { isFleetcastError, type FleetcastError } from '@fleetcast/protocol/errors.js';
import { METRICS_CONTENT_TYPE } from '@fleetcast/protocol/metrics-exposition.js';
import { agentError } from './errors.js';
import { checkModel, encodeInferResponse, modelMetadata, parseInferRequest, type InferRequest } from './infer-v2.js';
import { RequestGuard, requireMediaType, type GuardOptions } from './request-guard.js';
import type { TensorData } from './runtime.js';

/** The model serving now, as the v2 metadata endpoints describe it. */
export interface ServedModel { name: string; version: number; inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] }

export interface InferResult { model: { name: string; version: number }; outputNames: readonly string[]; outputs: Record<string, TensorData> }

export interface PredictService {
  predict(body: unknown): Promise<unknown>;
  /** v2 inference of `model` (and `version`, when the URL names one); shares predict's limits, stats and telemetry. */
  infer(model: { name: string; version?: string }, req: InferRequest): Promise<InferResult>;
  /** The active model, or null when none is installed (v2 metadata and readiness). */
  served(): ServedModel | null;
  status(): unknown;
  /** GET /: the local status page (HTML). */
  statusPage?(): string;
  /** GET /metrics: Prometheus text format (agent/agent-metrics.ts). */
  metrics?(): Promise<string>;
}

export interface HttpApiOptions extends GuardOptions {
  maxBodyBytes: number;
  /** Server metadata for GET /v2. */
  server?: { name: string; version: string };
  /** Unexpected (non-coded) errors, for the log. */
  onInternalError?: (e: unknown) => void;
}

type Style = 'v1' | 'v2';

export interface Route {
  /** `/v2/models/{name}[/versions/{version}]/infer`: `{x}` is one path segment, `[…]` is optional. */
  pattern: string;
  path: RegExp;
  methods: readonly string[];
  style: Style;
  /** Needs the bearer token when apiTokenFile is set: the endpoints that run the model, and /metrics. */
  token: boolean;
  /** Media types the body must have; absent = the route reads no body. */
  body?: readonly string[];
  /** A request header that makes a missing Content-Type acceptable (see requireMediaType). */
  untypedWith?: string;
  handle(c: Call): Promise<void> | void;
}

interface Call { req: IncomingMessage; res: ServerResponse; params: string[]; body: Buffer }

const JSON_BODY = ['application/json'] as const;
// JSON, or the binary extension's JSON header + tensor bytes. Neither type is CORS-safelisted, so a
// browser sends either cross-origin only after a preflight, which the agent never approves.
const V2_BODY = ['application/json', 'application/octet-stream'] as const;
const READ = ['GET', 'HEAD'] as const;

function route(r: Omit<Route, 'path'>): Route {
  const src = r.pattern.replace(/\[/g, '(?:').replace(/\]/g, ')?').replace(/\{[a-z]+\}/g, '([^/]+)');
  return { ...r, path: new RegExp(`^${src}$`) };
}

export class HttpApi {
  readonly server: Server;
  readonly #svc: PredictService;
  readonly #o: HttpApiOptions;
  readonly #guard: RequestGuard;
  readonly routes: readonly Route[];

  constructor(svc: PredictService, o: HttpApiOptions) {
    this.#svc = svc;
    this.#o = o;
    this.#guard = new RequestGuard(o);
    this.routes = this.#table();
    this.server = createServer((req, res) => { void this.#handle(req, res); });
    // A slow or stalled client must not hold a device's sockets for minutes.
    this.server.requestTimeout = 30_000;
    this.server.headersTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
  }

  #table(): Route[] {
    const svc = this.#svc;
    const infer = async (c: Call) => {
      const [name, version] = c.params;
      const header = c.req.headers['inference-header-content-length'];
      const req = parseInferRequest(c.body, Array.isArray(header) ? header[0] : header);
      const r = await svc.infer({ name, ...(version !== undefined ? { version } : {}) }, req);
      const enc = encodeInferResponse(r.model, req, r.outputNames, r.outputs);
      sendRaw(c.res, 200, enc.body, enc.headers);
    };
    const metadata = (c: Call) => send(c.res, 200, modelMetadata(this.#model(c.params[0], c.params[1])));
    const ready = (c: Call) => { this.#model(c.params[0], c.params[1]); sendRaw(c.res, 200, EMPTY, {}); };
    return [
      route({ pattern: '/v1/predict', methods: ['POST'], style: 'v1', token: true, body: JSON_BODY, handle: async (c) => send(c.res, 200, await svc.predict(parseJson(c.body))) }),
      route({ pattern: '/v1/status', methods: READ, style: 'v1', token: false, handle: (c) => send(c.res, 200, svc.status()) }),
      route({ pattern: '/', methods: READ, style: 'v1', token: false, handle: (c) => this.#statusPage(c) }),
      // Behind the token when there is one: a Prometheus scraping a device sends it (authorization.credentials_file).
      route({ pattern: '/metrics', methods: READ, style: 'v1', token: true, handle: (c) => this.#metrics(c) }),
      // required_api.md "Health": 200 = true, 4xx = false, empty body.
      route({ pattern: '/v2/health/live', methods: READ, style: 'v2', token: false, handle: (c) => sendRaw(c.res, 200, EMPTY, {}) }),
      route({ pattern: '/v2/health/ready', methods: READ, style: 'v2', token: false, handle: (c) => sendRaw(c.res, svc.served() ? 200 : 400, EMPTY, {}) }),
      route({ pattern: '/v2', methods: READ, style: 'v2', token: false, handle: (c) => send(c.res, 200, { name: this.#o.server?.name ?? 'fleetcast-agent', version: this.#o.server?.version ?? '0', extensions: ['binary_tensor_data'] }) }),
      route({ pattern: '/v2/models/{name}[/versions/{version}]', methods: READ, style: 'v2', token: false, handle: metadata }),
      route({ pattern: '/v2/models/{name}[/versions/{version}]/ready', methods: READ, style: 'v2', token: false, handle: ready }),
      route({ pattern: '/v2/models/{name}[/versions/{version}]/infer', methods: ['POST'], style: 'v2', token: true, body: V2_BODY, untypedWith: 'inference-header-content-length', handle: infer }),
    ];
  }

  /** The active model if it is the one named (and the version, when given); else 404. */
  #model(name: string, version: string | undefined): ServedModel {
    const m = this.#svc.served();
    if (!m) throw agentError('AGENT_ERR_NO_MODEL');
    checkModel(m, name, version);
    return m;
  }

  #statusPage(c: Call): void {
    if (!this.#svc.statusPage) throw agentError('AGENT_ERR_NOT_FOUND', `${c.req.method} /`);
    const html = this.#svc.statusPage();
    c.res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html), 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" });
    c.res.end(c.req.method === 'HEAD' ? undefined : html);
  }

  async #metrics(c: Call): Promise<void> {
    if (!this.#svc.metrics) throw agentError('AGENT_ERR_NOT_FOUND', `${c.req.method} /metrics`);
    // For HEAD, node sends the headers (Content-Length included) and drops the body.
    sendRaw(c.res, 200, Buffer.from(await this.#svc.metrics()), { 'content-type': METRICS_CONTENT_TYPE });
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        const a = this.server.address() as AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) { resolve(); return; }
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      // In-flight predictions get a moment; then sockets go regardless.
      setTimeout(() => this.server.closeAllConnections(), 2_000).unref();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Without listeners, a client reset during a request would surface as an uncaught error.
    req.on('error', () => {});
    res.on('error', () => {});
    const path = (req.url ?? '/').split('?', 1)[0];
    let style: Style = path.startsWith('/v2/') || path === '/v2' ? 'v2' : 'v1';
    let bodyRead = false;
    try {
      this.#guard.checkCaller(req);
      let params: string[] | null = null;
      let hit: Route | undefined;
      for (const r of this.routes) {
        const m = r.path.exec(path);
        if (m) { hit = r; params = m.slice(1); break; }
      }
      // An unknown path answers in the shape of its prefix: a v2 client reads {"error": "<string>"}.
      if (!hit || !params) throw agentError('AGENT_ERR_NOT_FOUND', `${req.method} ${path.slice(0, 200)}`);
      style = hit.style;
      const method = req.method ?? '';
      if (!hit.methods.includes(method)) throw agentError('AGENT_ERR_METHOD', `${method} ${path.slice(0, 200)}`, { allow: hit.methods.join(', ') });
      if (hit.token) this.#guard.checkToken(req);
      let decoded: string[];
      try { decoded = params.map((p) => (p === undefined ? p : decodeURIComponent(p))) as string[]; } catch {
        throw agentError('AGENT_ERR_NOT_FOUND', `${method} ${path.slice(0, 200)} (bad percent-encoding)`);
      }
      let body: Buffer = EMPTY;
      if (hit.body) {
        requireMediaType(req, hit.body, hit.untypedWith);
        body = await this.#readBody(req);
        bodyRead = true;
      }
      await hit.handle({ req, res, params: decoded, body });
    } catch (e) {
      let err: FleetcastError;
      if (isFleetcastError(e)) err = e;
      else {
        this.#o.onInternalError?.(e);
        err = agentError('AGENT_ERR_INTERNAL');
      }
      if (err.code === 'AGENT_ERR_METHOD' && typeof err.details.allow === 'string') res.setHeader('allow', err.details.allow);
      // RFC 6750 3: a 401 names the scheme; "invalid_token" when a token was sent but is wrong.
      if (err.code === 'AGENT_ERR_UNAUTHORIZED') res.setHeader('www-authenticate', req.headers.authorization ? 'Bearer realm="fleetcast-agent", error="invalid_token"' : 'Bearer realm="fleetcast-agent"');
      // A body refused unread (too large, no token, wrong type, wrong Host…) is still on the wire:
      // close rather than let node read and discard however much the client sends.
      if (!bodyRead && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0)) res.setHeader('connection', 'close');
      const details = err.details;
      send(res, err.status, style === 'v2' ? { error: err.message, code: err.code, ...(Object.keys(details).length ? { details } : {}) } : { error: err.toJSON() });
    }
  }

  #readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.#o.maxBodyBytes;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      return Promise.reject(agentError('AGENT_ERR_BODY_TOO_LARGE', `Content-Length ${declared}, limit ${max}`));
    }
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (err: unknown, value?: Buffer) => {
        if (done) return;
        done = true;
        req.off('data', onData);
        if (err) reject(err); else resolve(value!);
      };
      const onData = (b: Buffer) => {
        size += b.length;
        if (size > max) {
          req.pause();
          finish(agentError('AGENT_ERR_BODY_TOO_LARGE', `more than ${max} bytes`));
          return;
        }
        parts.push(b);
      };
      req.on('data', onData);
      req.on('end', () => finish(null, parts.length === 1 ? parts[0] : Buffer.concat(parts, size)));
      req.on('aborted', () => finish(agentError('AGENT_ERR_BAD_REQUEST', 'the client aborted the request')));
      req.on('error', (e) => finish(agentError('AGENT_ERR_BAD_REQUEST', e.message)));
    });
  }
}

const EMPTY = Buffer.alloc(0);

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw agentError('AGENT_ERR_BAD_JSON', (e as Error).message.slice(0, 200));
  }
}

/** `headers`: a fresh object of the caller's, which gets content-length and cache-control added. */
function sendRaw(res: ServerResponse, status: number, body: Buffer, headers: Record<string, string | number>): void {
  if (res.headersSent || res.destroyed) return;
  // Not `{ ...headers, 'content-length': … }`: on Node 20 (V8 11.3) an object spread followed by a named property
  // makes a new hidden class per call, allocated straight into the old generation (~65 B per property added), so
  // every reply grew the old space by ~0.4 kB and paced the agent's mark-compacts under load.
  headers['content-length'] = body.length;
  headers['cache-control'] = 'no-store';
  res.writeHead(status, headers);
  res.end(body);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  sendRaw(res, status, Buffer.from(JSON.stringify(body)), { 'content-type': 'application/json; charset=utf-8' });
}
