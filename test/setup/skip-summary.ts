/**
 * Vitest reporter: after the run, one summary of the tests skipped because a
 * program from Debian was absent (test/helpers/programs.ts logs them), naming
 * each skipped test and the package that would run it. Silent when none was.
 */
import { existsSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';
import { SKIP_LOG_ENV, type SkipRecord } from '../helpers/programs.js';

export function readSkips(log: string | undefined): SkipRecord[] {
  if (!log || !existsSync(log)) return [];
  return readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as SkipRecord);
}

export default class SkipSummary implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const skips = readSkips(process.env[SKIP_LOG_ENV]);
    if (skips.length === 0) return;
    const byFile = new Map<string, SkipRecord[]>();
    for (const s of skips) {
      const list = byFile.get(s.file) ?? [];
      if (!list.some((x) => x.program === s.program)) list.push(s);
      byFile.set(s.file, list);
    }
    const lines: string[] = [];
    const pkgs = new Set<string>();
    for (const [file, needs] of byFile) {
      const why = needs.map((n) => `${n.program} (apt-get install ${n.pkg})`).join(', ');
      const mod = modules.find((m) => m.moduleId === file);
      const skipped = mod ? [...mod.children.allTests()].filter((t) => t.result().state === 'skipped').map((t) => t.fullName) : [];
      // A file that only imports a helper needing the program (and skipped nothing) is not news.
      if (mod && skipped.length === 0) continue;
      for (const n of needs) pkgs.add(n.pkg);
      lines.push(`  ${relative(process.cwd(), file)}: needs ${why}`);
      for (const t of skipped) lines.push(`    - skipped: ${t}`);
    }
    if (lines.length === 0) return;
    const n = lines.filter((l) => l.startsWith('    - ')).length;
    console.log(`\nSKIPPED for missing programs: ${n} test(s). Install ${[...pkgs].join(' ')} to run them (CI sets FLEETCAST_REQUIRE_PROGRAMS=1 and fails instead):\n${lines.join('\n')}\n`);
  }
}
