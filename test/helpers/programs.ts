/**
 * Programs from Debian that some tests drive (mosquitto, chromium, openssl, the
 * zstd CLI, PostgreSQL). `needProgram` finds one on PATH (plus the sbin folders,
 * where Debian puts mosquitto and root's PATH may not look, and PostgreSQL's
 * versioned bin folder). When it is absent the caller skips its tests and the
 * skip is written to the run's skip log, which test/setup/skip-summary.ts prints
 * at the end with the package that would run them; under
 * FLEETCAST_REQUIRE_PROGRAMS=1 (or CI=true) a missing program throws instead, so
 * CI cannot pass by skipping.
 */
import { accessSync, appendFileSync, constants, existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { expect } from 'vitest';

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Environment variable naming the JSON-lines file that skipping tests append to (set by test/setup/global.ts). */
export const SKIP_LOG_ENV = 'FLEETCAST_SKIP_LOG';

export interface SkipRecord { program: string; pkg: string; file: string }

/** Missing programs fail the run instead of skipping: CI installs them all (.ci/run). */
export function programsRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.FLEETCAST_REQUIRE_PROGRAMS === '1' || env.CI === 'true' || env.CI === '1';
}

function executable(p: string): boolean {
  try { accessSync(p, constants.X_OK); return true; } catch { return false; }
}

/** PostgreSQL's server programs live in /usr/lib/postgresql/<major>/bin on Debian, off PATH; newest first. */
function postgresDirs(): string[] {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return [];
  return readdirSync(base).sort((a, b) => Number(b) - Number(a)).map((v) => join(base, v, 'bin'));
}

/** The program's path: PATH first, then the sbin and PostgreSQL folders; undefined when absent. */
export function findProgram(program: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN, ...postgresDirs()];
  for (const d of dirs) {
    const p = join(d, program);
    if (executable(p)) return p;
  }
  return undefined;
}

/**
 * The path of `program`, or undefined after registering the calling test file's skip
 * (`pkg` is the Debian package that provides it). Call it at the top of a test file
 * (or in a helper module it imports) and `describe.skipIf(!path)`.
 */
export function needProgram(program: string, pkg: string): string | undefined {
  const found = findProgram(program);
  if (found) return found;
  if (programsRequired()) {
    throw new Error(`${program} is not installed (FLEETCAST_REQUIRE_PROGRAMS/CI is set, so tests that need it fail instead of skipping): apt-get install -y ${pkg}`);
  }
  const log = process.env[SKIP_LOG_ENV];
  const file = expect.getState().testPath ?? 'unknown test file';
  const rec: SkipRecord = { program, pkg, file };
  if (log) appendFileSync(log, JSON.stringify(rec) + '\n');
  else console.warn(`${file}: ${program} is absent; skipping the tests that need it (apt-get install -y ${pkg})`);
  return undefined;
}
