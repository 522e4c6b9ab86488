/**
 * Reconnect storm against the compiled hub, secure, on the real broker
 * (bench/reconnect-storm.ts): a fleet of raw-MQTT emulated devices, each
 * enrolled with its own credential, connects at once, is deployed to, and
 * reconnects at once after the hub restarts on the same data folder and ports
 * (with --broker, mosquitto restarts too). The hub never exits, serves its API
 * throughout, every device is back and reporting within the bound, and nothing
 * persisted is lost. The suite runs 1,000 devices per broker to fit ~90 s on
 * 2 shared cores; `npm run bench -- reconnect-storm` runs 10,000.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MOSQUITTO_BIN, MOSQUITTO_PASSWD_BIN, runStorm, type StormFigures } from '../../bench/reconnect-storm.js';
import { needProgram } from '../helpers/programs.js';
import { cleanupBenchDirs } from '../../bench/dirs.js';
import { buildCli } from '../helpers/build-cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEVICES = 1_000;
/** Each wave (first connect, and back after the restart) must finish within this, or the run fails. */
const BOUND_MS = 90_000;
// Found on PATH (or sbin); absent → skipped with the run's summary, a failure under CI (test/helpers/programs.ts).
const hasMosquitto = needProgram('mosquitto', 'mosquitto') !== undefined && needProgram('mosquitto_passwd', 'mosquitto') !== undefined && MOSQUITTO_BIN !== '' && MOSQUITTO_PASSWD_BIN !== '';

afterAll(() => cleanupBenchDirs());

function expectSurvived(f: StormFigures): void {
  // Every device's post-restart report reached the store, none of the registry or assignments was lost.
  expect(f.persisted).toEqual({ devices: DEVICES, assignments: DEVICES, assignmentsBefore: DEVICES, reportsCurrent: DEVICES });
  expect(f.brokerFaults).toBe(0);
  expect(f.healthFailures).toBe(0);
}

describe('reconnect storm', () => {
  it(`Storm_embedded: ${DEVICES} devices reconnect to a restarted hub's embedded broker; the hub stays up and loses nothing`, async () => {
    const f = await runStorm({ devices: DEVICES, broker: 'embedded', cli: await buildCli(ROOT), boundMs: BOUND_MS });
    process.stdout.write(`reconnect storm (embedded): ${JSON.stringify(f)}\n`);
    expectSurvived(f);
  }, 300_000);

  it.skipIf(!hasMosquitto)(`Storm_mosquitto: ${DEVICES} devices reconnect after mosquitto and the hub (--broker) restart; the hub stays up and loses nothing`, async () => {
    const f = await runStorm({ devices: DEVICES, broker: 'mosquitto', cli: await buildCli(ROOT), boundMs: BOUND_MS });
    process.stdout.write(`reconnect storm (mosquitto): ${JSON.stringify(f)}\n`);
    expectSurvived(f);
  }, 300_000);
});
