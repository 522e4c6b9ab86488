import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];

/** A scratch folder for one benchmark, removed by `cleanupBenchDirs`. */
export function benchDir(name: string): string {
  const d = mkdtempSync(join(tmpdir(), `fleetcast-bench-${name}-`));
  mkdirSync(d, { recursive: true });
  made.push(d);
  return d;
}

export function cleanupBenchDirs(): void {
  while (made.length) rmSync(made.pop()!, { recursive: true, force: true });
}
