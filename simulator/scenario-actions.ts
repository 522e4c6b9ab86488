/**
 * A scenario's actions (publish, deploy, start a rollout) through the hub's
 * API; a failure is recorded with the hub's code and the run goes on, so the
 * report shows what followed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { errorCode } from '@fleetcast/protocol/errors.js';
import { simError } from './errors.js';
import type { RolloutRecord, RunRecord } from './run-record.js';
import type { DeviceGroup, HubApi } from './scenario-devices.js';
import type { ActionSpec } from './scenario-file.js';

export interface ActionContext { api: HubApi; bundleDir: string; scenarioDir: string }

export const splitModel = (m: string) => { const [name, v] = m.split('@'); return { name, version: Number(v) }; };

export async function runAction(a: ActionSpec, o: ActionContext, groups: DeviceGroup[], rec: RunRecord, now: () => number, say: (s: string) => void): Promise<void> {
  const t = now();
  let what = '';
  try {
    if (a.publish !== undefined) {
      const file = isAbsolute(a.publish) ? a.publish : join(o.bundleDir, a.publish);
      what = `publish ${a.publish}`;
      if (!existsSync(file)) throw simError('SIM_ERR_BUNDLE_MISSING', file);
      const r = await o.api.publish(file);
      what = `publish ${r.name}@${r.version}`;
    } else if (a.deploy) {
      const m = splitModel(a.deploy.model);
      what = `deploy ${a.deploy.model}${a.deploy.group ? ` to ${a.deploy.group}` : ''}`;
      // The simulated devices by id (the group's, or every group's), not `all`: the hub's `all` is the devices it has heard from,
      // and a device whose link is down at that moment is still one of the rehearsal's.
      const ids = groups.filter((x) => !a.deploy!.group || x.spec.name === a.deploy!.group).flatMap((x) => x.ids);
      await o.api.deploy({ ...m, devices: ids });
    } else if (a.rollout) {
      const r = a.rollout;
      what = `rollout ${r.id}: ${r.model}`;
      const rr: RolloutRecord = { id: r.id, hubId: null, model: r.model, states: [], decisions: [], final: null };
      rec.rollouts.push(rr);
      const spec = typeof r.rings === 'string' ? readRings(r.rings, o.scenarioDir) : r.rings;
      const started = await o.api.startRollout<{ id: string }>({ ...splitModel(r.model), spec, autoPromote: r.autoPromote ?? true, reason: `fleetcast sim ${rec.scenario}` });
      rr.hubId = started.id;
    }
    rec.actions.push({ t, what, ok: true });
    say(`action: ${what}`);
  } catch (e) {
    const err = e instanceof Error && errorCode(e).startsWith('SIM_ERR_') ? e : simError('SIM_ERR_ACTION_FAILED', `${what}: ${errorCode(e)} ${(e as Error).message}`);
    rec.actions.push({ t, what, ok: false, error: `${errorCode(err)}: ${err.message}` });
    say(`action failed: ${what}: ${errorCode(err)}: ${err.message}`);
  }
}

function readRings(file: string, dir: string): unknown {
  const path = isAbsolute(file) ? file : join(dir, file);
  try { const text = readFileSync(path, 'utf8'); return /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text); } catch (e) {
    throw simError('SIM_ERR_SCENARIO_READ', `rings file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
