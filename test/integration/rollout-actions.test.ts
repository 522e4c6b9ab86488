/**
 * The rollout action table (hub/rollouts/actions.ts) against the real API of
 * a hub with authentication on (API tokens, MQTT credentials: not the
 * insecure demo) and one enrolled real agent: every action from every rollout
 * state. The allowed ones answer 200 with the table's resulting state and
 * record the decision; the others answer 409 HUB_ERR_ROLLOUT_STATE naming the
 * states the action is allowed from, and change nothing. Each action needs
 * its row's role: an auditor is refused.
 *
 * Each rollout is started through the API with a maintenance window that is
 * closed for the whole test (twelve hours away), so the engine assigns
 * nothing; the states the API cannot reach at will (halted, completed, …) are
 * written into the rollout row before the call, as the engine would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../agent/agent.js';
import type { Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { ROLLOUT_ACTION_NAMES, ROLLOUT_ACTIONS } from '../../hub/rollouts/actions.js';
import { ROLLOUT_STATES, type RolloutState } from '../../hub/rollouts/rollout-store.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, makeBundle, startTestHub } from '../helpers/hub-harness.js';

const DEVICE = 'dev-actions-1';
let hub: Hub;
let agent: Agent;
let operator: string;
let auditor: string;

type Status = { id: string; state: string; ring: string; ringIndex: number; error?: { code: string; message: string; details?: { allowed?: string[]; state?: string } } };
type History = { decisions: { kind: string; actor: string }[] };

beforeAll(async () => {
  const keys = makeKeys();
  hub = await startTestHub(keys, { insecureDemo: false, rolloutTickMs: 3_600_000 });
  const token = async (role: string) => {
    const t = await api<{ token: string }>(hub, 'POST', '/v1/tokens', { role, label: `actions-${role}` });
    expect(t.status).toBe(201);
    return t.body.token;
  };
  operator = await token('operator');
  auditor = await token('auditor');
  // A rollout needs a device in the registry: one real agent, enrolled, logged in with its credential.
  const dir = tempDir('fleetcast-actions-');
  const cred = new MqttCredentials(hub.store.db).enrollDevice(DEVICE);
  agent = createAgent({ deviceId: DEVICE, dataDir: join(dir, 'agent'), rootPath: keys.rootPath, brokerUrl: hub.mqttUrl, listen: '127.0.0.1:0', heartbeatMs: 0, mqttUsername: cred.username, mqttPassword: cred.password });
  await agent.start();
  await waitFor(() => hub.store.getDevice(DEVICE), 'the enrolled agent to register', 60_000);
  const b = await makeBundle([keys.keys.release], { name: 'churn', version: 1 });
  expect((await api(hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)), operator)).status).toBe(201);
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await hub?.close();
  cleanupTempDirs();
});

/** A fresh two-ring rollout of churn@1 put into `state`; the window stays closed, so the engine leaves it there. */
async function rolloutIn(state: RolloutState): Promise<string> {
  const closedHour = (new Date().getUTCHours() + 12) % 24;
  const r = await api<Status>(hub, 'POST', '/v1/rollouts', {
    name: 'churn', version: 1, supersede: true, window: `* ${closedHour} * * *`,
    spec: { rings: [{ name: 'canary', devices: [DEVICE] }, { name: 'rest', percent: 100 }] },
  }, operator);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  if (state !== 'running') hub.rollouts.store.update(r.body.id, { state }, Date.now());
  return r.body.id;
}

describe('rollout action table against the API', () => {
  it('rollout_actions_from_every_state: allowed actions move the rollout as the table says, the others are refused naming the allowed states', async () => {
    let allowed = 0;
    let refused = 0;
    for (const state of ROLLOUT_STATES) {
      for (const action of ROLLOUT_ACTION_NAMES) {
        const row = ROLLOUT_ACTIONS[action];
        const id = await rolloutIn(state);
        const before = (await api<History>(hub, 'GET', `/v1/rollouts/${id}/history`, undefined, auditor)).body.decisions.length;
        const r = await api<Status>(hub, 'POST', `/v1/rollouts/${id}/${action}`, { reason: `table: ${action} from ${state}` }, operator);
        const what = `${action} from ${state}: ${JSON.stringify(r.body)}`;
        const after = await api<Status>(hub, 'GET', `/v1/rollouts/${id}`, undefined, auditor);
        const decisions = (await api<History>(hub, 'GET', `/v1/rollouts/${id}/history`, undefined, auditor)).body.decisions;
        if (row.from.includes(state)) {
          allowed++;
          expect(r.status, what).toBe(200);
          if (row.to === 'rolling-back') {
            // The engine's cue: it re-assigns the previous bundle (nothing was reached here), then rolled-back.
            expect(['rolling-back', 'rolled-back'], what).toContain(r.body.state);
          } else {
            expect(r.body.state, what).toBe(row.to ?? state);
            expect(after.body.state, what).toBe(row.to ?? state);
          }
          if (action === 'promote') expect(r.body.ring, what).toBe('rest');
          expect(decisions.length, what).toBeGreaterThan(before);
          expect(decisions.find((d) => d.kind === action), what).toMatchObject({ actor: expect.stringMatching(/^operator:/) });
        } else {
          refused++;
          expect(r.status, what).toBe(409);
          expect(r.body.error?.code, what).toBe('HUB_ERR_ROLLOUT_STATE');
          // The refusal names the states the action is allowed from, in the message and as data.
          expect(r.body.error?.message, what).toContain(`${action} is allowed from ${row.from.join(', ')}`);
          expect(r.body.error?.details, what).toMatchObject({ state, allowed: [...row.from] });
          // And changes nothing.
          expect(after.body.state, what).toBe(state);
          expect(after.body.ring, what).toBe('canary');
          expect(decisions.length, what).toBe(before);
        }
      }
    }
    // Both kinds happened (the table is neither all-allowed nor all-refused).
    expect(allowed).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  }, 120_000);

  it('rollout_actions_last_ring_promote: promote in the last ring is refused and says there is no next ring', async () => {
    const id = await rolloutIn('running');
    expect((await api<Status>(hub, 'POST', `/v1/rollouts/${id}/promote`, {}, operator)).status).toBe(200);
    const r = await api<Status>(hub, 'POST', `/v1/rollouts/${id}/promote`, {}, operator);
    expect(r.status).toBe(409);
    expect(r.body.error).toMatchObject({ code: 'HUB_ERR_ROLLOUT_STATE', message: expect.stringContaining('rest is the last ring') });
  }, 60_000);

  it('rollout_actions_need_their_role: an auditor is refused every action, whatever the state', async () => {
    const id = await rolloutIn('running');
    for (const action of ROLLOUT_ACTION_NAMES) {
      expect(ROLLOUT_ACTIONS[action].access).not.toBe('auditor');
      const r = await api<Status>(hub, 'POST', `/v1/rollouts/${id}/${action}`, {}, auditor);
      expect(r.status, action).toBe(403);
      expect(r.body.error?.code, action).toBe('HUB_ERR_FORBIDDEN');
    }
    expect((await api<Status>(hub, 'GET', `/v1/rollouts/${id}`, undefined, auditor)).body.state).toBe('running');
  }, 60_000);
});
