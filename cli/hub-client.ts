/**
 * A tiny client of the hub's HTTP API for the CLI. A hub error body
 * (`{"error":{"code","message"}}`) becomes a FleetcastError with the hub's
 * code, so the CLI prints the same code the API answered.
 */
import { openAsBlob, readFileSync, statSync } from 'node:fs';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import type { BundleSummary, DeployBody, DeviceSummary } from '@fleetcast/hub/api-schemas.js';
import { hubError } from '@fleetcast/hub/errors.js';
import { refuseSecretFlag } from '@fleetcast/protocol/cli-args.js';

export interface PublishResult { bundleId: string; name: string; version: number; created: boolean }
export interface DeployResult { bundleId: string; devices: string[]; counters: Record<string, number> }

export class HubClient {
  readonly baseUrl: string;
  /** Bearer token sent with every request (issue #3: every route but health and OpenAPI needs one). */
  readonly token: string | undefined;

  constructor(baseUrl: string, token?: string) {
    this.token = token;
    let u: URL;
    try { u = new URL(baseUrl); } catch { u = new URL('invalid:'); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `--hub must be an http(s) URL such as http://127.0.0.1:8080, got ${JSON.stringify(baseUrl)}`, 2);
    }
    this.baseUrl = u.href.replace(/\/+$/, '');
  }

  /** Upload a bundle file. The body streams from disk (a file-backed Blob, with its length), never read whole into memory. */
  async publish(file: string): Promise<PublishResult> {
    let body: Blob;
    try {
      if (!statSync(file).isFile()) throw Object.assign(new Error('not a file'), { code: 'not a regular file' });
      body = await openAsBlob(file, { type: 'application/octet-stream' });
    } catch (e) {
      throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`, 2);
    }
    // A Blob has a known size, so fetch sends Content-Length and the hub can refuse an oversized upload up front.
    return this.request('POST', '/v1/bundles', { body, headers: { 'content-type': 'application/octet-stream' } });
  }

  bundles(): Promise<{ bundles: BundleSummary[] }> { return this.request('GET', '/v1/bundles'); }
  bundle(id: string): Promise<BundleSummary & { manifest: unknown; envelope: unknown }> { return this.request('GET', `/v1/bundles/${encodeURIComponent(id)}`); }
  deploy(req: DeployBody): Promise<DeployResult> { return this.json('POST', '/v1/deployments', req); }
  devices(): Promise<{ devices: DeviceSummary[] }> { return this.request('GET', '/v1/devices'); }
  device(id: string): Promise<DeviceSummary & { state: unknown; events: unknown[] }> { return this.request('GET', `/v1/devices/${encodeURIComponent(id)}`); }
  health(): Promise<Record<string, unknown>> { return this.request('GET', '/v1/health'); }

  // Rollouts and tokens (issue #3); shapes in hub/rollouts/api-schemas.ts and hub/auth/routes.ts.
  startRollout<T = Record<string, unknown>>(req: Record<string, unknown>): Promise<T> { return this.json('POST', '/v1/rollouts', req); }
  rollouts<T = { rollouts: Record<string, unknown>[] }>(): Promise<T> { return this.request('GET', '/v1/rollouts'); }
  rollout<T = Record<string, unknown>>(id: string): Promise<T> { return this.request('GET', `/v1/rollouts/${encodeURIComponent(id)}`); }
  rolloutHistory<T = { rolloutId: string; decisions: Record<string, unknown>[] }>(id: string): Promise<T> { return this.request('GET', `/v1/rollouts/${encodeURIComponent(id)}/history`); }
  rolloutAction<T = Record<string, unknown>>(id: string, action: string, reason?: string): Promise<T> {
    return this.json('POST', `/v1/rollouts/${encodeURIComponent(id)}/${action}`, reason === undefined ? {} : { reason });
  }
  createToken(role: string, label?: string, expiresAt?: number): Promise<{ id: string; token: string; role: string; label: string | null; expiresAt: number | null }> {
    return this.json('POST', '/v1/tokens', { role, ...(label === undefined ? {} : { label }), ...(expiresAt === undefined ? {} : { expiresAt }) });
  }
  tokens(): Promise<{ tokens: Record<string, unknown>[] }> { return this.request('GET', '/v1/tokens'); }
  revokeToken(id: string): Promise<{ id: string; revoked: boolean }> { return this.request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`); }

  /** GET any API path (routes without a dedicated method, e.g. /v1/drift/NAME/VERSION). */
  get<T>(path: string): Promise<T> { return this.request('GET', path); }
  /** PUT/POST/DELETE any API path, with a JSON body when given (e.g. /v1/devices/ID/debug). */
  send<T>(method: 'PUT' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> { return body === undefined ? this.request(method, path) : this.json(method, path, body); }

  private json<T>(method: string, path: string, value: unknown): Promise<T> {
    return this.request(method, path, { body: JSON.stringify(value), headers: { 'content-type': 'application/json' } });
  }

  private async request<T>(method: string, path: string, init: { body?: BodyInit; headers?: Record<string, string> } = {}): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    let res: Response;
    try {
      const auth: Record<string, string> = this.token ? { authorization: `Bearer ${this.token}` } : {};
      res = await fetch(url, { method, body: init.body, headers: { accept: 'application/json', ...auth, ...init.headers } });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const err = hubError('HUB_ERR_UNREACHABLE', `${method} ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
      err.cause = e;
      throw err;
    }
    const text = await res.text();
    let value: unknown;
    try { value = JSON.parse(text); } catch {
      throw hubError('HUB_ERR_BAD_RESPONSE', `${method} ${url} answered ${res.status} with ${JSON.stringify(text.slice(0, 120))}`);
    }
    if (!res.ok) {
      const e = (value as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
      if (e && typeof e.code === 'string' && typeof e.message === 'string') {
        throw new FleetcastError(e.code, e.message, res.status, (e.details && typeof e.details === 'object' ? e.details : {}) as Record<string, unknown>);
      }
      throw hubError('HUB_ERR_BAD_RESPONSE', `${method} ${url} answered ${res.status} without a coded error`);
    }
    return value as T;
  }
}

/** --hub, or FLEETCAST_HUB from the environment; the token from tokenFrom(). */
export function hubUrlFrom(flag: string | undefined, usage: string, token?: string): HubClient {
  const url = flag ?? process.env.FLEETCAST_HUB;
  if (!url) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `--hub URL is required (or set FLEETCAST_HUB)\nusage: ${usage}`, 2);
  return new HubClient(url, token ?? tokenFrom(undefined));
}

/**
 * The API token: FLEETCAST_TOKEN, else the file named by FLEETCAST_TOKEN_FILE
 * (e.g. the hub's first admin token, <data>/admin.token). A --token flag is
 * refused: on the command line any local user can read it (protocol/cli-args.ts).
 */
export function tokenFrom(flag: string | undefined): string | undefined {
  refuseSecretFlag(flag, '--token', 'FLEETCAST_TOKEN_FILE=FILE (mode 0600) or FLEETCAST_TOKEN');
  const t = process.env.FLEETCAST_TOKEN;
  if (t) return t.trim();
  const file = process.env.FLEETCAST_TOKEN_FILE;
  if (!file) return undefined;
  try { return readFileSync(file, 'utf8').trim(); } catch (e) {
    throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `FLEETCAST_TOKEN_FILE ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
  }
}
