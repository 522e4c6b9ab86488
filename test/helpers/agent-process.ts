/**
 * The compiled fleetcast-agent as a real child process (crash tests): spawn the
 * dist/ build with environment overrides, read its stdout/stderr, kill it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { distFile } from './build-cli.js';

/** The compiled agent entry point (dist/ is built once by test/setup/global.ts). */
export function compileAgent(): string {
  return distFile('agent/fleetcast-agent.js');
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
