/**
 * Runs once per `vitest run`, before any test file:
 * - compiles every package's dist/ and the root's (`tsc -b tsconfig.build.json`,
 *   project references) when a source is newer than the last build, so the
 *   suites that spawn the compiled CLI or agent share one build and none rebuilds
 *   while another runs it; a compile error stops the run with tsc's output;
 * - creates the skip log that test/helpers/programs.ts appends to and
 *   test/setup/skip-summary.ts prints.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SKIP_LOG_ENV } from '../helpers/programs.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// The workspace packages (package.json "workspaces") and the root's compiled folders.
const PACKAGES = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;
const SOURCES = [...PACKAGES, 'bench', 'tools'];
const STAMP = join(ROOT, 'dist/.build-stamp');

function newest(dir: string): number {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'dist' && e.name !== 'node_modules') t = Math.max(t, newest(p)); }
    else if (e.name.endsWith('.ts') || e.name.endsWith('.json')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

function buildDist(): void {
  const sourcesAt = Math.max(...SOURCES.map((s) => newest(join(ROOT, s))), ...['tsconfig.base.json', 'tsconfig.build.json', 'tsconfig.console.json'].map((f) => statSync(join(ROOT, f)).mtimeMs));
  // The stamp is written only after a clean compile, so a failed one is retried next run.
  if (existsSync(STAMP) && statSync(STAMP).mtimeMs > sourcesAt) return;
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-b', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`compiling dist/ (tsc -b tsconfig.build.json) failed, so the suites that run the compiled CLI and agent cannot run:\n${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}`);
  // The web console's browser code (DOM, no node) has its own options; the hub serves what this writes.
  const c = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.console.json'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  if (c.status !== 0) throw new Error(`compiling the web console (tsc -p tsconfig.console.json) failed:\n${c.stdout}${c.stderr}${c.error ? String(c.error) : ''}`);
  writeFileSync(STAMP, new Date().toISOString() + '\n');
}

export default function setup(): () => void {
  buildDist();
  const dir = mkdtempSync(join(tmpdir(), 'fleetcast-skips-'));
  const log = join(dir, 'skips.jsonl');
  writeFileSync(log, '');
  process.env[SKIP_LOG_ENV] = log;
  return () => rmSync(dir, { recursive: true, force: true });
}
