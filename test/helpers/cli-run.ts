/** Run the compiled `fleetcast` as an operator's shell would, and capture what it prints and its exit status. */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CliResult { code: number; stdout: string; stderr: string }

export async function runCli(cwd: string, cli: string, args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  try {
    const r = await run(process.execPath, [cli, ...args], { cwd, timeout: 60_000, env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/**
 * `fleetcast ARGS | head -0`, deterministically: our read end of the pipe is
 * closed before the child writes anything, so every write it makes gets EPIPE.
 */
export async function runIntoClosedPipe(cwd: string, cli: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const p = spawn(process.execPath, [cli, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env });
  p.stdout!.destroy();
  let stderr = '';
  p.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  const code = await new Promise<number | null>((r) => p.on('close', (c) => r(c)));
  return { code, stderr };
}
