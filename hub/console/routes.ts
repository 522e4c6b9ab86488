/**
 * The operator's web console at `/`: one HTML page, one stylesheet and the
 * browser modules compiled from hub/console/web/ by tsconfig.console.json,
 * all served by the hub's own process (no CDN, nothing fetched elsewhere).
 * These routes are public because they carry code, never data: every figure
 * the console shows comes from the API with the operator's token, and the API
 * alone decides what a role may do.
 *
 * A strict Content-Security-Policy goes with each: scripts and styles only
 * from this origin (no inline script or style, no eval), requests only to this
 * origin, no frames, no plugins, no base-URI or form tricks. The browser code
 * writes data with textContent, never innerHTML.
 */
import type { FastifyInstance, FastifyReply, FastifySchema } from 'fastify';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { obj, str } from '@fleetcast/protocol/schema.js';
import { hubError } from '../errors.js';
import { CONSOLE_CSS, CONSOLE_ICON, consolePage } from './page.js';

export const CONSOLE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/**
 * Where the compiled browser modules are: next to this file when the hub runs
 * from dist/, or in dist/ when it runs from the TypeScript sources (tests).
 */
function scriptDir(): string | undefined {
  const candidates = [new URL('./web/', import.meta.url), new URL('../../hub/dist/console/web/', import.meta.url)];
  return candidates.map((u) => fileURLToPath(u)).find((d) => existsSync(`${d}app.js`));
}

/** The compiled modules, read once (a few tens of kB): name → source. */
function loadScripts(): Map<string, Buffer> {
  const dir = scriptDir();
  if (!dir) return new Map();
  return new Map(readdirSync(dir).filter((f) => /^[a-z-]+\.js$/.test(f)).map((f) => [f, readFileSync(`${dir}${f}`)]));
}

function secure(reply: FastifyReply, type: string): FastifyReply {
  return reply.type(type).header('content-security-policy', CONSOLE_CSP).header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer').header('cache-control', 'no-cache');
}

export function registerConsoleRoutes(app: FastifyInstance): void {
  const scripts = loadScripts();
  const html = consolePage();
  app.get('/', { config: { access: 'public' }, schema: { summary: 'The web console (HTML; data comes from the API with the signed-in token)' } as FastifySchema }, async (_req, reply) => {
    if (!scripts.has('app.js')) throw hubError('HUB_ERR_CONSOLE_NOT_BUILT', 'no app.js in hub/dist/console/web/');
    return secure(reply, 'text/html; charset=utf-8').send(html);
  });
  app.get('/console/console.css', { config: { access: 'public' }, schema: { summary: 'The console stylesheet' } as FastifySchema }, async (_req, reply) => secure(reply, 'text/css; charset=utf-8').send(CONSOLE_CSS));
  app.get('/console/icon.svg', { config: { access: 'public' }, schema: { summary: 'The console icon' } as FastifySchema }, async (_req, reply) => secure(reply, 'image/svg+xml').send(CONSOLE_ICON));
  app.get('/console/:file', { config: { access: 'public' }, schema: { summary: 'The console\'s compiled browser modules', params: obj({ file: str({ pattern: /^[a-z-]{1,40}\.js$/ }) }).json } as FastifySchema }, async (req, reply) => {
    const body = scripts.get((req.params as { file: string }).file);
    if (!body) throw hubError('HUB_ERR_NO_ROUTE', `GET ${req.url.slice(0, 200)}`);
    return secure(reply, 'text/javascript; charset=utf-8').send(body);
  });
}
