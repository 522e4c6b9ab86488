/**
 * The hub a `fleetcast sim` test rehearses against: the real hub in its
 * default secure mode (authentication on), its admin token in a 0600 file
 * for FLEETCAST_TOKEN_FILE, and the demo's two bundles (demo-mlp@1 and @2,
 * with the signed reference profile drift is judged against) in a folder
 * for --bundles, built from the examples' schema.json and reference.csv. `sim()` runs the compiled CLI as an operator's shell would.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { readReferenceFile } from '../../bundle-build/reference.js';
import { readSchemaFile } from '../../bundle-build/schema-file.js';
import type { Hub } from '../../hub/hub.js';
import type { RunRecord } from '../../simulator/run-record.js';
import { expect } from 'vitest';
import { buildCli, REPO } from './build-cli.js';
import { makeKeys, tempDir } from './env.js';
import { adminToken, startTestHub } from './hub-harness.js';

export const EXAMPLES = join(REPO, 'examples/scenarios');

export interface SimRun { code: number | null; stdout: string; stderr: string; ms: number }

export interface SimHub {
  hub: Hub;
  keys: ReturnType<typeof makeKeys>;
  tokenFile: string;
  bundles: string;
  /** --broker, --root, --hub and --bundles of this hub. */
  common(): string[];
  sim(args: string[], env?: NodeJS.ProcessEnv): Promise<SimRun>;
}

export async function startSimHub(): Promise<SimHub> {
  const keys = makeKeys();
  const hub = await startTestHub(keys, { insecureDemo: false });
  const tokenFile = join(tempDir('fleetcast-sim-token-'), 'admin.token');
  writeFileSync(tokenFile, adminToken(hub), { mode: 0o600 });
  const cli = await buildCli();
  const bundles = tempDir('fleetcast-sim-bundles-');
  // As README (Rehearsing a rollout) builds them: `fleetcast model example --seed N` (8 floats and a category), the
  // examples' schema.json and reference.csv.
  const schema = readSchemaFile(join(EXAMPLES, 'schema.json'));
  const reference = readReferenceFile(join(EXAMPLES, 'reference.csv'));
  for (const version of [1, 2]) {
    await buildBundle({
      model: buildMlp({ features: 8, categorical: true, hidden: 32, seed: version }), name: 'demo-mlp', version, releaseKeys: [keys.keys.release],
      out: join(bundles, `demo-mlp-${version}.fcb`), schema, reference,
    });
  }
  return {
    hub, keys, tokenFile, bundles,
    common: () => ['--broker', hub.mqttUrl, '--root', keys.rootPath, '--hub', hub.httpUrl, '--bundles', bundles],
    sim(args, env = {}) {
      const t0 = Date.now();
      return new Promise((resolve) => {
        execFile(process.execPath, [cli, 'sim', ...args], { cwd: REPO, timeout: 90_000, env: { ...process.env, FLEETCAST_TOKEN_FILE: tokenFile, FLEETCAST_TOKEN: '', ...env } }, (err, stdout, stderr) => {
          resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr, ms: Date.now() - t0 });
        });
      });
    },
  };
}

/**
 * Run a shipped example (examples/scenarios/FILE) with a report against this hub and check it ended as every
 * example must: exit 0, every expectation met, every action done (the output shown when not). Returns the run,
 * its report record and the report folder for the example's own checks.
 */
export async function runExample(h: SimHub, file: string): Promise<{ run: SimRun; rec: RunRecord; report: string }> {
  const report = tempDir('fleetcast-sim-report-');
  const run = await h.sim(['--scenario', join(EXAMPLES, file), ...h.common(), '--report', report]);
  const rec = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8')) as RunRecord;
  expect({ code: run.code, unmet: rec.expectations.filter((e) => !e.met), failedActions: rec.actions.filter((a) => !a.ok) }, run.stdout + run.stderr).toEqual({ code: 0, unmet: [], failedActions: [] });
  return { run, rec, report };
}
