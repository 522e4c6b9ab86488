/**
 * Operating the compiled `fleetcast-agent` the way systemd runs it:
 * - every configuration failure exits 2 with a coded line (the unit's
 *   RestartPreventExitStatus=2: restarting cannot fix a configuration), and a
 *   runtime failure exits 1 (systemd restarts it);
 * - the log is one stream on stdout, one JSON record per line in the shape the
 *   hub also writes (protocol/log-format.ts), or readable text with
 *   --log-format pretty; status lines are log records with machine keys.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileAgent, killAll, spawnAgent } from '../helpers/agent-process.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';

let entry: string;
const keys = makeKeys();

beforeAll(() => { entry = compileAgent(); }, 180_000);
afterAll(() => { killAll(); cleanupTempDirs(); });

/** Runs the agent to its exit (config errors exit at once) and returns status and stderr. */
async function exitOf(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const p = spawnAgent(entry, args, env);
  const { code } = await p.exit;
  return { code, stderr: p.io.stderr, stdout: p.io.stdout };
}

const base = () => ['--device-id', 'op-1', '--data', join(tempDir(), 'data'), '--root', keys.rootPath];

describe('fleetcast-agent exit status (compiled)', () => {
  it('every configuration failure exits 2 with a coded message', async () => {
    const dir = tempDir();
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const notJson = join(dir, 'not-json.json');
    writeFileSync(notJson, '{"payloadType":');
    // A root whose signature was changed: it parses but does not verify against its own root keys.
    const env = JSON.parse(readFileSync(keys.rootPath, 'utf8')) as { signatures: { sig: string }[] };
    const sig = Buffer.from(env.signatures[0].sig, 'base64');
    sig[0] ^= 1;
    env.signatures[0].sig = sig.toString('base64');
    const forged = join(dir, 'forged-root.json');
    writeFileSync(forged, JSON.stringify(env));
    const typo = join(dir, 'typo.json');
    writeFileSync(typo, JSON.stringify({ heartbeatMillis: 5 }));
    const rootDir = join(dir, 'root-is-a-folder');
    mkdirSync(rootDir);
    const cases: { what: string; args: string[]; env?: Record<string, string>; code: RegExp }[] = [
      { what: 'unknown flag', args: [...base(), '--bogus', 'x'], code: /^error PROTO_ERR_INVALID_OPTION: /m },
      { what: 'missing --device-id', args: ['--data', dir, '--root', keys.rootPath], code: /^error PROTO_ERR_INVALID_OPTION: --device-id is required/m },
      { what: 'bad option value', args: [...base(), '--log-level', 'loud'], code: /^error PROTO_ERR_INVALID_OPTION: .*logLevel/m },
      { what: 'broker URL without a protocol', args: [...base(), '--broker', 'broker.local:1883'], code: /^error PROTO_ERR_INVALID_OPTION: .*brokerUrl/m },
      { what: 'listen port out of range', args: [...base(), '--listen', '127.0.0.1:99999'], code: /^error PROTO_ERR_INVALID_OPTION: .*listen 127\.0\.0\.1:99999/m },
      { what: 'unknown FLEETCAST_AGENT_ variable', args: base(), env: { FLEETCAST_AGENT_HEARTBEAT_MILLIS: '5' }, code: /^error PROTO_ERR_UNKNOWN_OPTION: .*FLEETCAST_AGENT_HEARTBEAT_MILLIS/m },
      { what: 'unknown key in the config file', args: [...base(), '--config', typo], code: /^error PROTO_ERR_UNKNOWN_OPTION: .*heartbeatMillis/m },
      { what: 'missing config file', args: [...base(), '--config', join(dir, 'nope.json')], code: /^error PROTO_ERR_INVALID_OPTION: --config .*ENOENT/m },
      { what: 'unreadable config file', args: [...base(), '--config', rootDir], code: /^error PROTO_ERR_INVALID_OPTION: --config .*EISDIR/m },
      { what: 'missing root.json', args: ['--device-id', 'op-1', '--data', join(dir, 'd1'), '--root', join(dir, 'missing.json')], code: /^error SIGN_ERR_BAD_ROOT: .*ENOENT/m },
      { what: 'unreadable root.json', args: ['--device-id', 'op-1', '--data', join(dir, 'd2'), '--root', rootDir], code: /^error SIGN_ERR_BAD_ROOT: .*EISDIR/m },
      { what: 'root.json not valid JSON', args: ['--device-id', 'op-1', '--data', join(dir, 'd3'), '--root', notJson], code: /^error SIGN_ERR_BAD_ROOT: .*not JSON/m },
      { what: 'root.json that does not verify', args: ['--device-id', 'op-1', '--data', join(dir, 'd4'), '--root', forged], code: /^error SIGN_ERR_BAD_ROOT: .*does not verify/m },
      { what: 'data folder path is a file', args: ['--device-id', 'op-1', '--data', file, '--root', keys.rootPath], code: /^error AGENT_ERR_DATA_DIR: .*(ENOTDIR|EEXIST)/m },
      { what: 'data folder under a file', args: ['--device-id', 'op-1', '--data', join(file, 'data'), '--root', keys.rootPath], code: /^error AGENT_ERR_DATA_DIR: .*ENOTDIR/m },
    ];
    // Sequential: each is a short-lived process on a shared, loaded machine.
    for (const c of cases) {
      const r = await exitOf(c.args, c.env);
      expect({ what: c.what, code: r.code }).toEqual({ what: c.what, code: 2 });
      expect(r.stderr, c.what).toMatch(c.code);
      expect(r.stderr, c.what).not.toMatch(/PROTO_ERR_INTERNAL|\n\s+at /);
    }
  }, 180_000);

  it('a runtime failure (listen address in use) exits 1, so systemd restarts the agent', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (taken.address() as { port: number }).port;
      const r = await exitOf([...base(), '--listen', `127.0.0.1:${port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error AGENT_ERR_LISTEN: .*EADDRINUSE/m);
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  }, 60_000);
});

describe('fleetcast-agent log (compiled)', () => {
  it('one JSON stream on stdout, in the hub\'s line shape; status lines are records with machine keys', async () => {
    const p = spawnAgent(entry, [...base(), '--listen', '127.0.0.1:0', '--log-level', 'debug']);
    const started = await waitFor(() => p.io.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'started'), `started record (stderr: ${p.io.stderr.slice(-300)})`, 60_000);
    expect(started).toMatchObject({ level: 'info', component: 'fleetcast-agent', deviceId: 'op-1', predictApi: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) });
    expect(new Date(started.time as string).toISOString()).toBe(started.time);
    // The human-readable text keeps the address too (scrapers of the old status line keep working).
    expect(started.msg).toContain(`predict API ${started.predictApi as string}`);
    p.child.kill('SIGTERM');
    expect((await p.exit).code).toBe(0);
    const lines = p.io.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.event === 'stopping')).toMatchObject({ level: 'info', signal: 'SIGTERM', msg: 'SIGTERM, stopping' });
    for (const l of lines) expect(Object.keys(l).slice(0, 3)).toEqual(['level', 'time', 'component']);
    expect(lines.every((l) => typeof l.msg === 'string' && !('pid' in l) && !('hostname' in l))).toBe(true);
    // Nothing but the log: stderr stays empty when nothing fails.
    expect(p.io.stderr).toBe('');
  }, 90_000);

  it('--log-format pretty writes one readable line per record; --quiet keeps only lifecycle records; --log-level warn drops info', async () => {
    const p = spawnAgent(entry, [...base(), '--listen', '127.0.0.1:0', '--log-format', 'pretty']);
    await waitFor(() => /predict API http:\/\/127\.0\.0\.1:\d+/.test(p.io.stdout), `started line (stderr: ${p.io.stderr.slice(-300)})`, 60_000);
    p.child.kill('SIGTERM');
    const ended = await p.exit;
    // Once seen failing with code null on a loaded machine (ended by a signal): say which, with what it wrote.
    expect(ended.code, `${JSON.stringify(ended)} stderr: ${p.io.stderr.slice(-500)} stdout: ${p.io.stdout.slice(-500)}`).toBe(0);
    expect(p.io.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  fleetcast-agent: op-1 started, predict API http:\/\/127\.0\.0\.1:\d+, runtime \S+ event=started/m);
    expect(p.io.stdout).toMatch(/ INFO  fleetcast-agent: SIGTERM, stopping event=stopping signal=SIGTERM$/m);
    // --quiet keeps only warnings, errors and the lifecycle records that scripts wait for.
    const q = spawnAgent(entry, [...base(), '--listen', '127.0.0.1:0', '--quiet']);
    await waitFor(() => /"event":"started"/.test(q.io.stdout), `started record with --quiet (stderr: ${q.io.stderr.slice(-300)})`, 60_000);
    // Signalled as soon as the started record is read: the agent's handlers are in place before it writes that
    // record (once seen ending with code null, by Node's default SIGTERM action, when they came after it).
    q.child.kill('SIGTERM');
    const qEnded = await q.exit;
    expect(qEnded.code, `${JSON.stringify(qEnded)} stdout: ${q.io.stdout.slice(-500)}`).toBe(0);
    const qLines = q.io.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; event?: string });
    expect(qLines.filter((l) => l.level === 'info').map((l) => l.event)).toEqual(['started', 'stopping']);
    // At warn, the broker it cannot reach is logged (warn) and started/info records are not. The listen
    // socket answering and two reconnect warnings mean start-up finished well before the kill.
    const port = await freePort();
    const quiet = spawnAgent(entry, [...base(), '--listen', `127.0.0.1:${port}`, '--broker', `mqtt://127.0.0.1:${await freePort()}`], { FLEETCAST_AGENT_LOG_LEVEL: 'warn' });
    await waitFor(() => new Promise<boolean | null>((r) => { const c = connect(port, '127.0.0.1', () => { c.destroy(); r(true); }); c.on('error', () => r(null)); }), 'the quiet agent listening', 60_000, 100);
    // The agent logs each distinct broker failure once (agent/broker-client.ts); its status counts the attempts.
    await waitFor(async () => {
      const st = await fetch(`http://127.0.0.1:${port}/v1/status`).then((r) => r.json() as Promise<{ broker?: { attempts?: number } }>, () => null);
      return (st?.broker?.attempts ?? 0) >= 2 && /"code":"AGENT_ERR_BROKER_UNREACHABLE"/.test(quiet.io.stdout);
    }, `two failed connection attempts, the first logged (stdout: ${quiet.io.stdout.slice(-300)})`, 60_000);
    quiet.child.kill('SIGKILL');
    await quiet.exit;
    const records = quiet.io.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: string; code?: string; msg?: string });
    expect(records.map((r) => r.level).filter((l) => l !== 'warn')).toEqual([]);
    // Once per distinct reason, with its code (the err{message, code, stack} shape is tested in log-format.test.ts).
    expect(records.filter((r) => r.code === 'AGENT_ERR_BROKER_UNREACHABLE')).toEqual([expect.objectContaining({ msg: expect.stringContaining('ECONNREFUSED') })]);
  }, 90_000);
});
