/**
 * The compiled CLI and agent in each package's dist/ (cli/dist/, agent/dist/),
 * which test/setup/global.ts compiles once
 * before any suite runs (a compile error stops the run there). Suites never
 * compile themselves: two tsc runs writing dist/ while a third suite spawns
 * from it is how a half-written file gets executed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Absolute path of the compiled form of a source file, named as the source is
 * ('cli/fleetcast.js' for cli/fleetcast.ts): a package's file is in that
 * package's dist/ (cli/dist/fleetcast.js), bench/ and tools/ in the root's
 * (dist/bench/run.js). Throws when it has not been compiled.
 */
export function distFile(rel: string): string {
  const [dir, ...rest] = rel.split('/');
  const p = existsSync(join(REPO, dir!, 'package.json')) ? join(REPO, dir!, 'dist', ...rest) : join(REPO, 'dist', rel);
  if (!existsSync(p)) throw new Error(`${p} is missing: dist/ is compiled by vitest's globalSetup (test/setup/global.ts); run the tests through vitest.config.ts, or npm run build`);
  return p;
}

/** The compiled `fleetcast` CLI (kept async and taking the repo root for its callers). */
export async function buildCli(root: string = REPO): Promise<string> {
  return root === REPO ? distFile('cli/fleetcast.js') : join(root, 'cli/dist/fleetcast.js');
}
