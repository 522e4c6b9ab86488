/**
 * deploy/fleetcast-hub.service as an operator installs it: its ExecStart command line, with the unit's
 * folders and certificate paths pointed at temporary ones and its ports at free ones (appended flags win),
 * starts the compiled hub with TLS on both the API and the embedded broker. The unit's file-descriptor limit
 * is what README "Scale-out" says one hub needs for its sockets (one per device).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildCli } from '../helpers/build-cli.js';
import { needProgram } from '../helpers/programs.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir } from '../helpers/env.js';
import { startHubProcess } from '../helpers/hub-process.js';

afterAll(cleanupTempDirs);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OPENSSL = needProgram('openssl', 'openssl');
const UNIT = readFileSync(join(ROOT, 'deploy/fleetcast-hub.service'), 'utf8');

/** The unit's `Key=value` lines (continuations joined). */
function directive(key: string): string {
  const joined = UNIT.replace(/\\\n\s*/g, ' ');
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(joined);
  if (!m) throw new Error(`no ${key}= in the unit`);
  return m[1].trim();
}

describe.skipIf(!OPENSSL)('the hub systemd unit', () => {
  it('its ExecStart starts the compiled hub with TLS on the API and the broker', async () => {
    const argv = directive('ExecStart').split(/\s+/);
    expect(argv[0]).toBe('/usr/bin/node');
    // The unit runs the CLI the repository compiles to cli/dist/fleetcast.js, installed under /opt/fleetcast.
    expect(argv[1]).toBe('/opt/fleetcast/cli/dist/fleetcast.js');
    expect(argv[2]).toBe('hub');
    const cli = await buildCli(ROOT);
    expect(existsSync(join(ROOT, 'cli/dist/fleetcast.js'))).toBe(true);

    const keys = makeKeys();
    const tls = tempDir('fleetcast-unit-tls-');
    execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=fleetcast unit test',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(tls, 'key.pem'), '-out', join(tls, 'cert.pem')], { stdio: 'ignore' });
    const data = tempDir('fleetcast-unit-data-');
    const args = argv.slice(3).map((a) => a
      .replace('/etc/fleetcast-hub/keys', keys.dir)
      .replace('/etc/fleetcast-hub/tls', tls)
      .replace('/var/lib/fleetcast-hub', data)
      // Tests listen on loopback only.
      .replace('0.0.0.0', '127.0.0.1'));
    // Every path the unit names was replaced: nothing of the test reaches /etc or /var.
    expect(args.filter((a) => a.startsWith('/etc/') || a.startsWith('/var/'))).toEqual([]);
    const hub = await startHubProcess(ROOT, cli, [...args, '--log-level', 'warn', '--http-port', String(await freePort()), '--mqtt-port', String(await freePort())]);
    try {
      expect(hub.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:/);
      expect(hub.mqttUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:/);
      expect(hub.out()).toContain('(embedded)');
      expect(hub.out()).not.toContain('INSECURE');
    } finally {
      await hub.stop();
    }
    expect(hub.proc.exitCode).toBe(0);
  }, 180_000);

  it('raises the open-file limit above what 100,000 devices on the embedded broker need', () => {
    expect(Number(directive('LimitNOFILE'))).toBeGreaterThanOrEqual(110_000);
    expect(directive('RestartPreventExitStatus')).toBe('2');
  });
});
