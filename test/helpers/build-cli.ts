/**
 * The compiled CLI and agent in dist/, which test/setup/global.ts compiles once
 * before any suite runs (a compile error stops the run there). Suites never
 * compile themselves: two tsc runs writing dist/ while a third suite spawns
 * from it is how a half-written file gets executed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Absolute path of a compiled file (e.g. 'cli/fleetcast.js'); throws when dist/ lacks it. */
export function distFile(rel: string): string {
  const p = join(REPO, 'dist', rel);
  if (!existsSync(p)) throw new Error(`${p} is missing: dist/ is compiled by vitest's globalSetup (test/setup/global.ts); run the tests through vitest.config.ts, or npm run build`);
  return p;
}

/** The compiled `fleetcast` CLI (kept async and taking the repo root for its callers). */
export async function buildCli(root: string = REPO): Promise<string> {
  return root === REPO ? distFile('cli/fleetcast.js') : join(root, 'dist/cli/fleetcast.js');
}
