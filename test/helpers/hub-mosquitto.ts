/** An external mosquitto broker for the `--broker` tests, started by the test and killed after. */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, tempDir, waitFor } from './env.js';
import { needProgram } from './programs.js';

/** Found on PATH or in an sbin folder (Debian installs it in /usr/sbin); absent → the importing file's mosquitto tests skip. */
const found = needProgram('mosquitto', 'mosquitto');
export const MOSQUITTO = found ?? 'mosquitto';
export const hasMosquitto = found !== undefined;

export interface Mosquitto { url: string; port: number; proc: ChildProcess; stop(): Promise<void> }

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Start mosquitto on `port` (a free one by default; the same one again to simulate a broker restart).
 * `security` replaces `allow_anonymous true` (password and ACL lines); `dir` is where its files live.
 */
export async function startMosquitto(port?: number, security?: { dir: string; lines: string[] }): Promise<Mosquitto & { dir: string }> {
  const dir = security?.dir ?? tempDir('fleetcast-mosquitto-');
  port ??= await freePort();
  const conf = join(dir, 'mosquitto.conf');
  // `user root` keeps mosquitto from switching to a "mosquitto" account that a test machine may lack.
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...(security?.lines ?? ['allow_anonymous true']), 'persistence false', 'log_dest stderr', 'log_type error', ...(process.getuid?.() === 0 ? ['user root'] : [])].join('\n') + '\n');
  const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  let exited = false;
  proc.once('exit', () => { exited = true; });
  await waitFor(async () => {
    if (exited) throw new Error(`mosquitto exited: ${stderr}`);
    return canConnect(port);
  }, 'mosquitto listening', 15_000);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    proc,
    dir,
    async stop() {
      if (exited) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    },
  };
}
