/**
 * bench/thread-sampler.ts runs as a process of its own beside agent-swap (FLEETCAST_BENCH_SWAP_THREADS=1). A bench
 * that ends without stopping it (a failure, a kill) must not leave it sampling every ms for good.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { distFile } from '../helpers/build-cli.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

const left: number[] = [];
afterEach(() => {
  for (const pid of left.splice(0)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  cleanupTempDirs();
});

/** Gone, or a zombie waiting for whoever adopted it to reap it: either way it no longer runs. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch { return false; }
}

describe.runIf(process.platform === 'linux')('bench thread sampler', () => {
  it('Sampler_exits_when_its_bench_dies: a sampler whose bench was killed stops by itself', async () => {
    const sampler = distFile('bench/thread-sampler.js');
    const out = join(tempDir(), 'threads.json');
    // A stand-in bench: starts the sampler on itself, says its pid, then waits to be killed.
    const bench = spawn(process.execPath, ['-e', `
      const { spawn } = require('node:child_process');
      const s = spawn(process.execPath, [${JSON.stringify(sampler)}, String(process.pid), ${JSON.stringify(out)}], { stdio: 'ignore' });
      process.stdout.write(s.pid + '\\n');
      setInterval(() => {}, 1000);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    left.push(bench.pid!);
    const pid = await new Promise<number>((resolve, reject) => {
      let text = '';
      bench.stdout!.on('data', (b: Buffer) => { text += b.toString(); if (text.includes('\n')) resolve(Number(text.trim())); });
      bench.once('exit', () => reject(new Error('the stand-in bench exited early')));
    });
    left.push(pid);
    await new Promise((r) => setTimeout(r, 300));
    expect(running(pid)).toBe(true);
    bench.kill('SIGKILL');
    const until = Date.now() + 20_000;
    while (running(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(running(pid)).toBe(false);
  }, 40_000);
});
