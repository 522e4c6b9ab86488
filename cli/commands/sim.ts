/**
 * `fleetcast sim`: rehearse a rollout on simulated devices (real agent code)
 * against a real hub. A scenario file (--scenario) describes the groups,
 * traffic, drift, faults, actions and expectations; without one, --agents N
 * devices send predictions until --duration or Ctrl-C. Against a secure hub
 * the devices are enrolled through its API (admin token from
 * FLEETCAST_TOKEN_FILE / FLEETCAST_TOKEN, never argv) or use the credential
 * files of `fleetcast device enroll --file … --out-dir DIR` (--credentials).
 * Exit 0 when every expectation is met, 1 when one is not or an action failed,
 * 130 after Ctrl-C; a refusal by the broker or the API exits 1 at once with
 * its code.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { liveJson, liveLine, liveScreen, summary } from '@fleetcast/simulator/live-view.js';
import { renderReportHtml } from '@fleetcast/simulator/report-html.js';
import { enrollThroughHub, groupIds, readCredentialDir, type Credential, type HubApi } from '@fleetcast/simulator/scenario-devices.js';
import { readScenarioFile, validateScenario, type ScenarioFile } from '@fleetcast/simulator/scenario-file.js';
import { runScenario } from '@fleetcast/simulator/scenario-run.js';
import { need, parseCli } from '@fleetcast/protocol/cli-args.js';
import { HubClient, tokenFrom } from '../hub-client.js';

export const USAGE = `fleetcast sim --scenario FILE --broker URL --root root.json [--hub URL] [--credentials DIR] [--bundles DIR] [--time-scale X] [--report DIR] [--json] [--data DIR]
fleetcast sim --agents N --broker URL --root root.json [--hub URL] [--credentials DIR] [--prefix sim] [--duration SECONDS] [--rate PER_SECOND] [--report DIR] [--json]
  --hub (or FLEETCAST_HUB) with an admin token in FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN enrolls every simulated device
  through the hub's API; --credentials DIR uses DIR/ID.json files instead. Scenario files: README, Rehearsing a rollout.`;

const bad = (p: string) => new FleetcastError('PROTO_ERR_INVALID_OPTION', `${p}\nusage: ${USAGE}`, 2);

function numberArg(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw bad(`${flag} must be a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** Without a hub the run still works (an insecure or credential-file broker), but an action needs one. */
const NO_HUB: HubApi = new Proxy({} as HubApi, { get: () => () => Promise.reject(bad('this scenario has actions or expectations that need the hub\'s API: give --hub URL')) });

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    scenario: { type: 'string' }, broker: { type: 'string' }, root: { type: 'string' }, hub: { type: 'string' }, token: { type: 'string' },
    credentials: { type: 'string' }, bundles: { type: 'string' }, 'time-scale': { type: 'string' }, report: { type: 'string' }, json: { type: 'boolean' },
    data: { type: 'string' }, agents: { type: 'string' }, prefix: { type: 'string' }, duration: { type: 'string' }, rate: { type: 'string' },
  }, USAGE);
  const token = tokenFrom(values.token);
  if ((values.scenario === undefined) === (values.agents === undefined)) throw bad('give --scenario FILE or --agents N');
  const brokerUrl = need(values.broker, '--broker', USAGE);
  if (!/^(mqtts?|tcp|wss?):\/\/\S+$/.test(brokerUrl)) throw bad(`--broker must be an mqtt:// URL, got ${JSON.stringify(brokerUrl)}`);
  const rootPath = need(values.root, '--root', USAGE);
  let scenario: ScenarioFile;
  if (values.scenario !== undefined) scenario = readScenarioFile(values.scenario);
  else {
    const agents = numberArg(values.agents, '--agents', 1, 20_000)!;
    if (!Number.isInteger(agents)) throw bad('--agents must be a whole number');
    scenario = validateScenario({
      name: `${agents} agents`, duration: numberArg(values.duration, '--duration', 1, 86_400) ?? 86_400,
      groups: [{ name: values.prefix ?? 'sim', count: agents }], traffic: [{ rate: numberArg(values.rate, '--rate', 0, 100_000) ?? 100 }],
    });
  }
  const hubUrl = values.hub ?? process.env.FLEETCAST_HUB;
  const api: HubApi = hubUrl ? new HubClient(hubUrl, token) : NO_HUB;
  const ids = scenario.groups.flatMap(groupIds);
  let credentials: Map<string, Credential> | null = null;
  if (values.credentials !== undefined) credentials = readCredentialDir(values.credentials, ids);
  else if (hubUrl) {
    if (!token) throw bad('--hub needs an admin token to enroll the simulated devices: FLEETCAST_TOKEN_FILE=FILE or FLEETCAST_TOKEN (or give --credentials DIR)');
    credentials = await enrollThroughHub(api, ids);
  }
  const dataDir = values.data ?? mkdtempSync(join(tmpdir(), 'fleetcast-sim-'));
  const tty = process.stdout.isTTY && !values.json;
  const show = values.json ? liveJson : tty ? liveScreen : liveLine;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const scenarioDir = values.scenario ? dirname(resolve(values.scenario)) : process.cwd();
  process.stderr.write(`sim: ${ids.length} devices (${ids[0]} … ${ids[ids.length - 1]}) in ${dataDir}${credentials ? `, ${hubUrl && values.credentials === undefined ? 'enrolled through the hub' : `credentials from ${values.credentials}`}` : ''}\n`);
  let rec;
  try {
    rec = await runScenario({
      scenario, source: values.scenario ?? 'sim', api, brokerUrl, rootPath, dataDir, credentials,
      bundleDir: values.bundles ?? scenarioDir, scenarioDir, signal: stop.signal,
      ...(values['time-scale'] !== undefined ? { timeScale: numberArg(values['time-scale'], '--time-scale', 0.001, 1000) } : {}),
      onSample: (s, r) => process.stdout.write(`${show(s, r)}\n`),
      onEvent: (text) => { if (!values.json) process.stderr.write(`sim: ${text}\n`); },
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // A data folder the run made for itself holds nothing anyone can use afterwards (the report has the facts); --data DIR is kept.
    if (values.data === undefined) rmSync(dataDir, { recursive: true, force: true });
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ summary: { totals: rec.totals, expectations: rec.expectations, brokerOutages: rec.brokerOutages, interrupted: rec.interrupted } })}\n`);
  else process.stdout.write(summary(rec));
  if (values.report !== undefined) {
    mkdirSync(values.report, { recursive: true });
    writeFileSync(join(values.report, 'report.json'), `${JSON.stringify(rec, null, 1)}\n`);
    writeFileSync(join(values.report, 'report.html'), renderReportHtml(rec));
    process.stderr.write(`sim: report in ${join(values.report, 'report.html')} and report.json\n`);
  }
  if (rec.interrupted) return 130;
  return rec.expectations.every((e) => e.met) && rec.actions.every((a) => a.ok) ? 0 : 1;
}
