/**
 * The compiled fleetcast-agent as a real child process (crash tests): compile
 * once into a private folder (other suites compile into dist/ concurrently),
 * spawn with environment overrides, read its stdout/stderr, kill it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './env.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/** tsc emits even when another room has a type error mid-work, so only the output file matters. */
export function compileAgent(): string {
  const out = tempDir('fleetcast-agent-build-');
  spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', join(out, 'dist')], { cwd: repo, encoding: 'utf8', timeout: 150_000 });
  const entry = join(out, 'dist/cli/fleetcast-agent.js');
  if (!existsSync(entry)) throw new Error('compiling the agent failed');
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  symlinkSync(join(repo, 'node_modules'), join(out, 'node_modules'));
  return entry;
}

export interface AgentProcess {
  child: ChildProcess;
  io: { stdout: string; stderr: string };
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();

export function spawnAgent(entry: string, args: string[], env: Record<string, string> = {}): AgentProcess {
  const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  const io = { stdout: '', stderr: '' };
  child.stdout!.on('data', (b: Buffer) => { io.stdout += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { io.stderr += b.toString(); });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => { children.delete(child); r({ code, signal }); }));
  return { child, io, exit };
}

export function killAll(): void {
  for (const c of children) c.kill('SIGKILL');
}
