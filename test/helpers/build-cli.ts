/**
 * Compile the shipped CLI (`tsconfig.build.json` → dist/) for the suites that
 * spawn it, unless dist/cli/fleetcast.js is already newer than every source
 * file: a full tsc run costs ~25 s on a shared 2-core machine.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const ROOMS = ['protocol', 'signing', 'bundles', 'agent', 'hub', 'simulator', 'cli'];

function newestSource(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestSource(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

export async function buildCli(root: string): Promise<string> {
  const cli = join(root, 'dist/cli/fleetcast.js');
  const fresh = existsSync(cli) && statSync(cli).mtimeMs > Math.max(...ROOMS.map((r) => newestSource(join(root, r))));
  // Other rooms' type errors do not stop tsc from emitting.
  if (!fresh) await promisify(execFile)('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, timeout: 120_000 }).catch(() => undefined);
  return cli;
}
