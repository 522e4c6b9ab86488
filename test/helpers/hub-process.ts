/** The compiled hub (`node cli/dist/fleetcast.js hub …`) as an operator starts it: its URLs scraped from stdout. */
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './env.js';

export interface HubProcess { proc: ChildProcess; httpUrl: string; mqttUrl: string; tokenFile: string; out(): string; err(): string; stop(): Promise<void> }

export async function startHubProcess(root: string, cli: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<HubProcess> {
  const proc = spawn(process.execPath, [cli, 'hub', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  proc.stderr!.on('data', (b: Buffer) => { err += b.toString(); });
  const urls = await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`hub exited ${proc.exitCode}: ${err.slice(-2000)}`);
    const api = /api (https?:\/\/\S+)/.exec(out);
    const mq = /mqtt (mqtts?:\/\/\S+)/.exec(out);
    const tok = /admin token in (\S+)/.exec(out);
    return api && mq && tok ? { httpUrl: api[1], mqttUrl: mq[1], tokenFile: tok[1] } : undefined;
  }, 'the hub to print its URLs', 60_000);
  return {
    proc, ...urls, out: () => out, err: () => err,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
