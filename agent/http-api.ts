/**
 * The local predict API on node:http (no framework: the agent must stay small
 * for a device). `POST /v1/predict`, `GET /v1/status`; every error is
 * `{"error": {"code", "message", "details"}}` with a 4xx/5xx status. The body
 * is capped while it streams: a declared Content-Length over the cap is
 * answered 413 before a byte of it is read, and an undeclared (chunked) body
 * is cut off as soon as it passes the cap. No input can throw out of here.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isFleetcastError, type FleetcastError } from '../protocol/errors.js';
import { agentError } from './errors.js';

export interface PredictService {
  predict(body: unknown): Promise<unknown>;
  status(): unknown;
  /** GET /: the local status page (HTML). */
  statusPage?(): string;
}

export interface HttpApiOptions {
  maxBodyBytes: number;
  /** Unexpected (non-coded) errors, for the log. */
  onInternalError?: (e: unknown) => void;
}

export class HttpApi {
  readonly server: Server;
  readonly #svc: PredictService;
  readonly #o: HttpApiOptions;

  constructor(svc: PredictService, o: HttpApiOptions) {
    this.#svc = svc;
    this.#o = o;
    this.server = createServer((req, res) => { void this.#handle(req, res); });
    // A slow or stalled client must not hold a device's sockets for minutes.
    this.server.requestTimeout = 30_000;
    this.server.headersTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
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
    try {
      const path = (req.url ?? '/').split('?', 1)[0];
      if (path === '/v1/predict') {
        if (req.method !== 'POST') throw agentError('AGENT_ERR_METHOD', `${req.method} ${path}`, { allow: 'POST' });
        const body = await this.#readJson(req);
        send(res, 200, await this.#svc.predict(body));
      } else if (path === '/' && this.#svc.statusPage) {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw agentError('AGENT_ERR_METHOD', `${req.method} ${path}`, { allow: 'GET, HEAD' });
        const html = this.#svc.statusPage();
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html), 'cache-control': 'no-store', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" });
        res.end(req.method === 'HEAD' ? undefined : html);
      } else if (path === '/v1/status') {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw agentError('AGENT_ERR_METHOD', `${req.method} ${path}`, { allow: 'GET, HEAD' });
        send(res, 200, this.#svc.status());
      } else {
        throw agentError('AGENT_ERR_NOT_FOUND', `${req.method} ${path.slice(0, 200)}`);
      }
    } catch (e) {
      let err: FleetcastError;
      if (isFleetcastError(e)) err = e;
      else {
        this.#o.onInternalError?.(e);
        err = agentError('AGENT_ERR_INTERNAL');
      }
      if (err.code === 'AGENT_ERR_METHOD' && typeof err.details.allow === 'string') res.setHeader('allow', err.details.allow);
      // After a refused body the rest of it is still on the wire: close rather than read it.
      if (err.code === 'AGENT_ERR_BODY_TOO_LARGE') res.setHeader('connection', 'close');
      send(res, err.status, { error: err.toJSON() });
    }
  }

  #readJson(req: IncomingMessage): Promise<unknown> {
    const max = this.#o.maxBodyBytes;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) {
      return Promise.reject(agentError('AGENT_ERR_BODY_TOO_LARGE', `Content-Length ${declared}, limit ${max}`));
    }
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (err: unknown, value?: unknown) => {
        if (done) return;
        done = true;
        req.off('data', onData);
        if (err) reject(err); else resolve(value);
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
      req.on('end', () => {
        const text = Buffer.concat(parts, size).toString('utf8');
        try {
          finish(null, JSON.parse(text));
        } catch (e) {
          finish(agentError('AGENT_ERR_BAD_JSON', (e as Error).message.slice(0, 200)));
        }
      });
      req.on('aborted', () => finish(agentError('AGENT_ERR_BAD_REQUEST', 'the client aborted the request')));
      req.on('error', (e) => finish(agentError('AGENT_ERR_BAD_REQUEST', e.message)));
    });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
