/**
 * The operator's commands as shipped (compiled `fleetcast`, compiled
 * `fleetcast-agent`) against a real hub with authentication on: enrollment
 * through the API whose `--json` output is the agent's `--config`, deploys and
 * rollout rings that name an id the hub has never seen, and the device listing
 * with online/offline, ring, tags and filters.
 */
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { spawnAgent, type AgentProcess } from '../helpers/agent-process.js';
import { buildCli } from '../helpers/build-cli.js';
import { runCli, runIntoClosedPipe } from '../helpers/cli-run.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { stateReport } from '../helpers/hub-fixtures.js';
import { api, makeBundle, startTestHub } from '../helpers/hub-harness.js';
import { connectClient } from '../helpers/mqtt-auth.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

afterAll(cleanupTempDirs);

describe('operator CLI against a hub with authentication on', () => {
  const keys = makeKeys();
  let hub: Hub;
  let CLI = '';
  let skew = 0;
  let bundle: Awaited<ReturnType<typeof makeBundle>>;
  const clients: MqttClient[] = [];
  const agents: AgentProcess[] = [];
  const env = () => ({ ...process.env, FLEETCAST_TOKEN: '', FLEETCAST_TOKEN_FILE: join(hub.options.dataDir, 'admin.token'), FLEETCAST_HUB: hub.httpUrl });

  const fleetcast = (...args: string[]) => runCli(ROOT, CLI, args, env());

  /** A device that reports one state (as an agent's heartbeat would), with a credential enrolled through the CLI. */
  async function report(id: string, over: Parameters<typeof stateReport>[1]): Promise<void> {
    const enrolled = await fleetcast('device', 'enroll', id, '--json', '--rotate');
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const cred = JSON.parse(enrolled.stdout) as { mqttUsername: string; mqttPassword: string };
    const c = await connectClient(hub.mqttUrl, { clientId: id, username: cred.mqttUsername, password: cred.mqttPassword });
    clients.push(c);
    await c.publishAsync(topics.device(id, 'state'), encode(stateReport(id, { seq: 1, at: Date.now() + skew, ...over })), { qos: 1 });
    await waitFor(() => hub.store.getDevice(id), `${id} in the registry`, 30_000);
  }

  beforeAll(async () => {
    CLI = await buildCli(ROOT);
    hub = await startTestHub(keys, { insecureDemo: false }, { now: () => Date.now() + skew });
    bundle = await makeBundle([keys.keys.release], { name: 'churn', version: 1 });
    expect((await api(hub, 'POST', '/v1/bundles', readFileSync(bundle.path))).status).toBe(201);
  }, 240_000);
  afterAll(async () => {
    for (const a of agents) a.child.kill('SIGKILL');
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await hub?.close();
  });

  it('Enrolled_credential_is_the_agent_config: `device enroll --json` output, used as-is as --config, lets the compiled agent in', async () => {
    const enrolled = await fleetcast('device', 'enroll', 'op-agent', '--broker', hub.mqttUrl, '--json');
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const config = join(tempDir(), 'op-agent.json');
    writeFileSync(config, enrolled.stdout, { mode: 0o600 });
    expect(Object.keys(JSON.parse(enrolled.stdout) as object).sort()).toEqual(['brokerUrl', 'deviceId', 'mqttPassword', 'mqttUsername']);
    const agent = spawnAgent(join(ROOT, 'agent/dist/fleetcast-agent.js'), ['--config', config, '--data', tempDir(), '--root', join(keys.dir, 'root.json'), '--listen', `127.0.0.1:${await freePort()}`, '--quiet']);
    agents.push(agent);
    // The secure broker let it in and the hub took its state report: the credential and the config shape both worked.
    await waitFor(() => { if (agent.child.exitCode !== null) throw new Error(`agent exited: ${agent.io.stderr}`); return hub.store.getDevice('op-agent'); }, 'the agent to report to the hub', 60_000);
    agent.child.kill('SIGKILL');
    await agent.exit;

    // Enrolling again would cut the device off: refused unless --rotate, and nothing changes.
    const again = await fleetcast('device', 'enroll', 'op-agent', '--json');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error HUB_ERR_DEVICE_ENROLLED: .*op-agent/);
    const rotated = await fleetcast('device', 'enroll', 'op-agent', '--json', '--rotate');
    expect(rotated.code).toBe(0);
    expect((JSON.parse(rotated.stdout) as { mqttPassword: string }).mqttPassword).not.toBe((JSON.parse(enrolled.stdout) as { mqttPassword: string }).mqttPassword);
  }, 120_000);

  it('Bulk_enrollment_from_a_file: one 0600 agent config per id; all or nothing when one is already enrolled', async () => {
    const ids = join(tempDir(), 'ids.txt');
    writeFileSync(ids, 'bulk-1\n# the lab rack\nbulk-2\n\n');
    const out = join(tempDir(), 'creds');
    const r = await fleetcast('device', 'enroll', '--file', ids, '--out-dir', out);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['bulk-1.json', 'bulk-2.json']);
    for (const f of readdirSync(out)) expect(statSync(join(out, f)).mode & 0o777).toBe(0o600);
    const cred = JSON.parse(readFileSync(join(out, 'bulk-2.json'), 'utf8')) as { deviceId: string; mqttUsername: string; mqttPassword: string };
    expect(cred.deviceId).toBe('bulk-2');
    clients.push(await connectClient(hub.mqttUrl, { clientId: 'bulk-2', username: cred.mqttUsername, password: cred.mqttPassword }));

    writeFileSync(ids, 'bulk-3\nbulk-1\n');
    const refused = await fleetcast('device', 'enroll', '--file', ids, '--out-dir', join(tempDir(), 'creds2'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HUB_ERR_DEVICE_ENROLLED.*bulk-1/);
    // bulk-3 was not enrolled by the refused batch: a deploy to it alone is refused as unknown.
    expect((await fleetcast('deploy', 'churn@1', '--devices', 'bulk-3')).stderr).toMatch(/^error HUB_ERR_UNKNOWN_DEVICE: /);
    writeFileSync(ids, 'bulk-1\nnot a device id\n');
    expect((await fleetcast('device', 'enroll', '--file', ids, '--out-dir', out)).stderr).toMatch(/PROTO_ERR_INVALID_OPTION.*line 2/);
  }, 120_000);

  it('Deploy_to_a_mistyped_device_is_refused: HUB_ERR_UNKNOWN_DEVICE names the unknown ids and nothing is assigned, unless --allow-unknown', async () => {
    const typo = await fleetcast('deploy', 'churn@1', '--devices', 'op-agent,op-agnet');
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/^error HUB_ERR_UNKNOWN_DEVICE: .*: op-agnet; pass allowUnknown/);
    expect(hub.store.getAssignment('op-agent')).toBeUndefined();
    expect(hub.store.getAssignment('op-agnet')).toBeUndefined();
    // Enrolled but never connected counts as known.
    const enrolledOnly = await fleetcast('deploy', 'churn@1', '--devices', 'bulk-1', '--json');
    expect(enrolledOnly.code, enrolledOnly.stderr).toBe(0);
    const allowed = await fleetcast('deploy', 'churn@1', '--devices', 'op-agent,op-agnet', '--allow-unknown', '--json');
    expect(allowed.code, allowed.stderr).toBe(0);
    expect((JSON.parse(allowed.stdout) as { devices: string[] }).devices.sort()).toEqual(['op-agent', 'op-agnet']);

    const rings = join(tempDir(), 'rings.json');
    writeFileSync(rings, JSON.stringify({ rings: [{ name: 'lab', devices: ['op-agent', 'lab-typo'] }, { name: 'rest', percent: 100 }] }));
    const ro = await fleetcast('rollout', 'start', 'churn@1', '--rings', rings);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toMatch(/^error HUB_ERR_UNKNOWN_DEVICE: .*: lab-typo;/);
    expect((await api<{ rollouts: unknown[] }>(hub, 'GET', '/v1/rollouts')).body.rollouts).toEqual([]);
    const roOk = await fleetcast('rollout', 'start', 'churn@1', '--rings', rings, '--allow-unknown', '--json');
    expect(roOk.code, roOk.stderr).toBe(0);
    expect((await fleetcast('rollout', 'abort', (JSON.parse(roOk.stdout) as { id: string }).id)).code).toBe(0);
  }, 120_000);

  it('Devices_list_shows_online_ring_tags_and_filters: offline from lastSeen, ring of the assignment, tags, --state/--version/--tag, devices get', async () => {
    await report('op-old', { capabilities: { tags: ['lab', 'eu'] } });
    skew += 200_000; // past the default onlineWindowMs (180 s) on the hub's clock
    await report('op-new', { capabilities: { tags: ['eu'] }, active: { bundleId: bundle.bundleId, name: 'churn', version: 1 }, phase: 'committed' });
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['op-new'], ring: 'canary' })).status).toBe(200);

    const all = JSON.parse((await fleetcast('devices', 'list', '--json')).stdout) as { id: string; online: boolean; ring: string | null; tags: string[] }[];
    const by = new Map(all.map((d) => [d.id, d]));
    expect(by.get('op-old')).toMatchObject({ online: false, ring: null, tags: ['lab', 'eu'] });
    expect(by.get('op-new')).toMatchObject({ online: true, ring: 'canary', tags: ['eu'] });

    const ids = async (...filter: string[]) => {
      const r = await fleetcast('devices', 'list', ...filter);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]);
    };
    expect(await ids('--state', 'offline')).toContain('op-old');
    expect(await ids('--state', 'offline')).not.toContain('op-new');
    expect(await ids('--state', 'online')).toEqual(['op-new']);
    expect(await ids('--tag', 'lab')).toEqual(['op-old']);
    expect((await ids('--tag', 'eu')).sort()).toEqual(['op-new', 'op-old']);
    expect(await ids('--version', 'churn@1')).toEqual(['op-new']);
    expect((await fleetcast('devices', 'list', '--state', 'asleep')).code).toBe(2);

    const table = (await fleetcast('devices', 'list', '--state', 'online')).stdout.split('\n');
    expect(table[0]).toMatch(/^DEVICE\s+STATE\s+ACTIVE\s+PHASE\s+RING\s+TAGS\s+ASSIGNED\s+LAST ERROR\s+LAST SEEN$/);
    expect(table[1]).toMatch(/^op-new\s+online\s+churn@1\s+committed\s+canary\s+eu\s+churn@1 #\d+\s+-\s+/);

    const one = await fleetcast('devices', 'get', 'op-old');
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/^state\s+offline$/m);
    expect(one.stdout).toMatch(/^tags\s+lab,eu$/m);
    expect((await fleetcast('devices', 'get', 'nobody')).stderr).toMatch(/^error HUB_ERR_UNKNOWN_DEVICE: /);
  }, 120_000);

  it('Drift_report_without_reference_says_so: a bundle built without --reference is reported as not judged (exit 4), never as "no drift"', async () => {
    const r = await fleetcast('drift', 'report', 'churn@1');
    expect(r.code).toBe(4);
    expect(r.stdout).toContain('no reference profile: churn@1 was built without `bundle build --reference DATA`');
    expect(r.stdout).not.toContain('no drift');
    const json = await fleetcast('drift', 'report', 'churn@1', '--json');
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ hasReference: false, drift: false, rows: [] });
  }, 60_000);

  it('Token_label_in_decisions_and_expiry: a labelled token names its label in every decision; auditors resolve ids; it stops working when it expires', async () => {
    const made = await fleetcast('token', 'create', '--role', 'operator', '--label', 'alice', '--expires', '1h', '--json');
    expect(made.code, made.stderr).toBe(0);
    const alice = JSON.parse(made.stdout) as { id: string; token: string; label: string; expiresAt: number };
    expect(alice).toMatchObject({ label: 'alice' });
    const asAlice = (...args: string[]) => runCli(ROOT, CLI, args, { ...env(), FLEETCAST_TOKEN: alice.token });
    const started = await asAlice('rollout', 'start', 'churn@1', '--rings', 'all:100', '--reason', 'label test', '--json');
    expect(started.code, started.stderr).toBe(0);
    const id = (JSON.parse(started.stdout) as { id: string }).id;
    const hist = await asAlice('rollout', 'history', id);
    expect(hist.stdout).toContain(`operator:${alice.id} (alice)  label test`);
    expect((await asAlice('rollout', 'abort', id)).code).toBe(0);
    // An auditor resolves the id to the label (the admin-only token list is not needed).
    const auditor = JSON.parse((await fleetcast('token', 'create', '--role', 'auditor', '--label', 'audit-2026', '--json')).stdout) as { token: string };
    const dir = await runCli(ROOT, CLI, ['token', 'labels'], { ...env(), FLEETCAST_TOKEN: auditor.token });
    expect(dir.code, dir.stderr).toBe(0);
    expect(dir.stdout).toMatch(new RegExp(`^${alice.id}\\s+operator\\s+alice\\s+${new Date(alice.expiresAt).toISOString()}\\s+no$`, 'm'));
    expect((await runCli(ROOT, CLI, ['token', 'list'], { ...env(), FLEETCAST_TOKEN: auditor.token })).stderr).toMatch(/^error HUB_ERR_FORBIDDEN: /);

    skew += 2 * 3_600_000; // an hour past its expiry on the hub's clock
    const late = await asAlice('rollout', 'status');
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/^error HUB_ERR_UNAUTHENTICATED: .*expired/);
    expect((await fleetcast('token', 'create', '--role', 'operator', '--expires', '2020-01-01')).code).toBe(2);
    expect((await fleetcast('token', 'create', '--role', 'operator', '--label', 'two\nlines')).stderr).toMatch(/^error HUB_ERR_BAD_REQUEST: /);
  }, 120_000);

  it('Devices_list_into_a_closed_pipe: `fleetcast devices list | head -1` with the reader gone ends quietly (141, no stack trace)', async () => {
    const r = await runIntoClosedPipe(ROOT, CLI, ['devices', 'list'], env());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(141);
  }, 60_000);
});
