/**
 * Who may call the agent's local API. A device's loopback port is reachable by
 * every web page its browser opens, so the checks here stop the two browser
 * attacks on a local HTTP service, and optionally require a token:
 *
 * - DNS rebinding: a page on evil.example re-resolves its own name to
 *   127.0.0.1 and then reads the agent as same-origin. The browser still sends
 *   `Host: evil.example`, so the Host must be localhost, an IP literal (a
 *   rebinding page can only send its own domain name), the listen host, or a
 *   name in `allowedHosts`. A request without Host (HTTP/1.0) is not from a
 *   browser (browsers always send it [RFC 9110 7.2]) and passes.
 * - Cross-origin requests: a page may POST `text/plain` anywhere without a
 *   CORS preflight (a "simple request", Fetch standard 4.1 "CORS-safelisted
 *   request-header"); the response is unreadable but the prediction runs.
 *   Any request with an `Origin` of another site is refused unless listed in
 *   `allowedOrigins`, and bodies must carry a non-safelisted type
 *   (application/json, application/octet-stream), which a browser only sends
 *   cross-origin after a preflight that the agent never approves.
 * - Token: with `apiTokenFile`, the predict endpoints need
 *   `Authorization: Bearer <token>` [RFC 6750 2.1]; compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { agentError } from './errors.js';

export interface GuardOptions {
  /** The host part of the listen address (0.0.0.0 and :: name no host and add nothing). */
  listenHost?: string | null;
  allowedHosts?: readonly string[];
  allowedOrigins?: readonly string[];
  /** The bearer token the predict endpoints need; null/undefined = none. */
  apiToken?: string | null;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** `host[:port]` or `[v6]:port` → lower-case host without brackets and port. */
export function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(1, end);
  }
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

export class RequestGuard {
  readonly #hosts: ReadonlySet<string>;
  readonly #origins: ReadonlySet<string>;
  readonly #token: Buffer | null;

  constructor(o: GuardOptions) {
    const hosts = new Set(['localhost', ...(o.allowedHosts ?? []).map((h) => h.toLowerCase())]);
    if (o.listenHost) hosts.add(hostName(o.listenHost));
    this.#hosts = hosts;
    this.#origins = new Set((o.allowedOrigins ?? []).map((x) => x.toLowerCase()));
    this.#token = o.apiToken ? digest(o.apiToken) : null;
  }

  get tokenRequired(): boolean { return this.#token !== null; }

  /** Host, then Origin: every request, before routing (a rebinding page must not even learn which paths exist). */
  checkCaller(req: IncomingMessage): void {
    const host = req.headers.host;
    if (host !== undefined) {
      const name = hostName(host);
      if (!this.#hosts.has(name) && isIP(name) === 0) throw agentError('AGENT_ERR_HOST', `Host ${JSON.stringify(host.slice(0, 100))}`);
    }
    const origin = req.headers.origin;
    if (origin === undefined) return;
    const o = origin.toLowerCase();
    // Same origin: a page this agent served itself (scheme http, the Host just checked).
    if (host !== undefined && (o === `http://${host.toLowerCase()}`)) return;
    if (this.#origins.has(o)) return;
    throw agentError('AGENT_ERR_ORIGIN', `Origin ${JSON.stringify(origin.slice(0, 100))}`);
  }

  checkToken(req: IncomingMessage): void {
    if (!this.#token) return;
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
    // Digests have equal length, so timingSafeEqual never throws and leaks nothing about the length.
    if (!m || !timingSafeEqual(digest(m[1]), this.#token)) {
      throw agentError('AGENT_ERR_UNAUTHORIZED', auth ? 'the bearer token is wrong' : 'no Authorization header');
    }
  }
}

/** The media type of a request (no parameters, lower case), or '' when there is none. */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';', 1)[0].trim().toLowerCase();
}

/**
 * `allowed` media types only. `untypedWith` names a non-safelisted request header whose presence
 * makes a missing Content-Type acceptable: a browser sends such a header cross-origin only after a
 * preflight (Fetch standard, "CORS-safelisted request-header"), so the request cannot come from a
 * page unnoticed. Triton's HTTP client sends Inference-Header-Content-Length and no Content-Type.
 */
export function requireMediaType(req: IncomingMessage, allowed: readonly string[], untypedWith?: string): void {
  const t = mediaType(req);
  if (t === '' && untypedWith !== undefined && req.headers[untypedWith] !== undefined) return;
  if (!allowed.includes(t)) throw agentError('AGENT_ERR_CONTENT_TYPE', `got ${t ? JSON.stringify(t.slice(0, 100)) : 'no Content-Type'}, this endpoint takes ${allowed.join(' or ')}`);
}

/**
 * The API token from its file (one line; surrounding whitespace dropped). Read from a file, never
 * from argv or the environment, where `ps` and /proc/PID/environ show it to other users.
 */
export async function readApiToken(path: string): Promise<string> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch (e) {
    throw agentError('AGENT_ERR_CONFIG', `apiTokenFile ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const token = text.trim();
  // RFC 6750 2.1 b64token characters; 16+ so a guessable word is not a token.
  if (!/^[A-Za-z0-9\-._~+/]{16,4096}=*$/.test(token)) throw agentError('AGENT_ERR_CONFIG', `apiTokenFile ${path} must hold one token of at least 16 characters (letters, digits, - . _ ~ + /)`);
  return token;
}
