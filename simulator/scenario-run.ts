/**
 * Run a scenario against a hub: start the groups, then on one clock drive
 * each group's traffic at its rate with its distributions and drift, apply
 * faults and actions at their (scaled) times, sample versions, phases,
 * connections and prediction outcomes every second, and at the end read the
 * rollouts' decisions and the drift report back from the hub and judge the
 * expectations. Everything recorded is in the returned RunRecord.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { errorCode } from '../protocol/errors.js';
import { simError } from './errors.js';
import { judgeExpectations } from './expectations.js';
import type { ActionSpec, FaultSpec, ScenarioFile } from './scenario-file.js';
import { startGroups, stopGroups, waitConnected, type Credential, type DeviceGroup, type HubApi } from './scenario-devices.js';
import { scenarioGenerator, type FeatureDist, type Shift } from './scenarios.js';
import type { DriftRecord, FaultBand, RolloutRecord, RunRecord, Sample } from './run-record.js';

export interface RunOptions {
  scenario: ScenarioFile;
  /** Label of the scenario (its file name). */
  source: string;
  api: HubApi;
  brokerUrl: string;
  rootPath: string;
  dataDir: string;
  /** Folder of publish actions' bundle files, and of relative rings files. */
  bundleDir: string;
  scenarioDir: string;
  credentials: Map<string, Credential> | null;
  timeScale?: number;
  /** Resolves (or aborts) to end the run early: Ctrl-C. */
  signal?: AbortSignal;
  onSample?: (s: Sample, r: RunRecord) => void;
  onEvent?: (text: string) => void;
  /** Connection check at start (ms). */
  connectTimeoutMs?: number;
}

const SAMPLE_MS = 1_000;
const TICK_MS = 50;
/** Predictions one group may have in flight; a rate above what the CPU serves is capped, not queued without bound. */
const MAX_INFLIGHT = 64;

type Timed = { at: number; run: () => Promise<void> | void };

export async function runScenario(o: RunOptions): Promise<RunRecord> {
  const s = o.scenario;
  const scale = o.timeScale ?? s.timeScale ?? 1;
  const ms = (sec: number) => Math.round(sec * scale * 1000);
  const say = o.onEvent ?? (() => {});
  const groups = await startGroups({ scenario: s, brokerUrl: o.brokerUrl, rootPath: o.rootPath, dataDir: o.dataDir, credentials: o.credentials });
  const rec: RunRecord = {
    scenario: s.name ?? o.source, startedAt: Date.now(), durationMs: ms(s.duration), timeScale: scale, interrupted: false,
    groups: groups.map((g) => ({ name: g.spec.name, count: g.spec.count, first: g.ids[0], last: g.ids[g.ids.length - 1], runtime: g.spec.runtime ?? 'node', tags: g.spec.tags ?? [] })),
    samples: [], installs: [], installFailures: [], faults: [], brokerOutages: [], actions: [], rollouts: [], drift: [],
    totals: { ok: 0, failed: 0, failuresByGroup: {} }, links: {}, expectations: [],
  };
  const timers: NodeJS.Timeout[] = [];
  try {
    await waitConnected(groups, o.connectTimeoutMs ?? 10_000);
    await waitKnown(o.api, groups, say);
    const t0 = Date.now();
    rec.startedAt = t0;
    const now = () => Date.now() - t0;
    watchInstalls(groups, rec, now);

    // Traffic: per group, a generator of its distributions with its drift shifts on the run's clock.
    const ok: Record<string, number> = {};
    const failed: Record<string, number> = {};
    let driving = true;
    const inflight: Promise<void>[] = [];
    for (const g of groups) {
      ok[g.spec.name] = 0; failed[g.spec.name] = 0; rec.totals.failuresByGroup[g.spec.name] = {};
      const traffic = (s.traffic ?? []).filter((t) => t.group === undefined || t.group === g.spec.name);
      const rate = traffic.reduce((a, t) => a + t.rate, 0);
      if (rate === 0) continue;
      const features: Record<string, FeatureDist> = {};
      const shifts: Shift[] = [];
      for (const t of traffic) {
        for (const [f, d] of Object.entries(t.features ?? {})) {
          features[f] = d.kind === 'normal' ? { kind: 'normal', mean: d.mean!, std: d.std! } : d.kind === 'uniform' ? { kind: 'uniform', min: d.min!, max: d.max! } : { kind: 'categorical', weights: d.weights! };
          if (d.missing) shifts.push({ feature: f, devices: 'all', at: 0, missing: d.missing });
        }
      }
      for (const d of s.drift ?? []) {
        if (d.group !== undefined && d.group !== g.spec.name) continue;
        shifts.push({
          feature: d.feature, devices: 'all', at: ms(d.at),
          ...(d.mean !== undefined ? { mean: d.mean } : {}), ...(d.scale !== undefined ? { scale: d.scale } : {}),
          ...(d.category ? { category: d.category } : {}), ...(d.missing !== undefined ? { missing: d.missing } : {}),
        });
      }
      const gen = scenarioGenerator({ features, shifts }, (s.seed ?? 1) + rec.groups.findIndex((x) => x.name === g.spec.name));
      const failures = rec.totals.failuresByGroup[g.spec.name];
      let credit = 0;
      let next = 0;
      let running = 0;
      const tick = setInterval(() => {
        if (!driving) return;
        credit = Math.min(credit + (rate * TICK_MS) / 1000, MAX_INFLIGHT);
        while (credit >= 1 && running < MAX_INFLIGHT) {
          credit--;
          // Round-robin over devices that serve a model: a device with none is not asked (as a local app would get 503).
          let a = null;
          for (let k = 0; k < g.fleet.agents.length && !a; k++) {
            const c = g.fleet.agents[next++ % g.fleet.agents.length];
            if (c.served()) a = c;
          }
          if (!a) break;
          const act = a.status().active!;
          running++;
          const p = a.predict(gen.body(a.options.deviceId, act.inputs, now())).then(
            () => { ok[g.spec.name]++; rec.totals.ok++; },
            (e) => { failed[g.spec.name]++; rec.totals.failed++; const c = errorCode(e); failures[c] = (failures[c] ?? 0) + 1; },
          ).finally(() => { running--; });
          inflight.push(p);
          if (inflight.length > 4 * MAX_INFLIGHT) inflight.splice(0, inflight.length - MAX_INFLIGHT * 4);
        }
      }, TICK_MS);
      timers.push(tick);
    }

    // Faults and actions on the scaled clock; actions run one after another in time order.
    const active = new Set<string>();
    const timeline: Timed[] = [];
    for (const f of s.faults ?? []) timeline.push(...faultEvents(f, groups, ms, rec, active, now, say));
    let chain: Promise<void> = Promise.resolve();
    for (const a of [...(s.actions ?? [])].sort((x, y) => x.at - y.at)) {
      timeline.push({ at: ms(a.at), run: () => { chain = chain.then(() => runAction(a, o, groups, rec, now, say)); } });
    }
    for (const ev of timeline) timers.push(setTimeout(() => { void ev.run(); }, ev.at));

    // Samples until the end (or Ctrl-C).
    const ended = new Promise<void>((resolve) => {
      const end = setTimeout(resolve, rec.durationMs);
      timers.push(end);
      o.signal?.addEventListener('abort', () => { rec.interrupted = true; resolve(); }, { once: true });
    });
    let last = Date.now();
    let outage: { from: number; to: number } | null = null;
    const sample = () => {
      const t = now();
      const smp: Sample = { t, versions: {}, phases: {}, connected: 0, total: 0, ok: { ...ok }, failed: { ...failed }, dt: (Date.now() - last) / 1000, faults: [...active] };
      last = Date.now();
      for (const k of Object.keys(ok)) { ok[k] = 0; failed[k] = 0; }
      for (const g of groups) {
        const v: Record<string, number> = {};
        for (const a of g.fleet.agents) {
          const st = a.status();
          const key = st.active ? `${st.active.name}@${st.active.version}` : 'none';
          v[key] = (v[key] ?? 0) + 1;
          smp.phases[st.phase] = (smp.phases[st.phase] ?? 0) + 1;
          smp.total++;
          if (st.connected) smp.connected++;
        }
        smp.versions[g.spec.name] = v;
      }
      // The broker gone (a crashed hub, a restart): not one device connected. The live view and the report show the span.
      if (smp.connected === 0 && !outage) { outage = { from: t, to: t }; rec.brokerOutages.push(outage); say(`broker: 0 of ${smp.total} devices connected`); }
      else if (smp.connected === 0 && outage) outage.to = t;
      else if (outage) { outage.to = t; outage = null; say(`broker: devices reconnected (${smp.connected} of ${smp.total})`); }
      rec.samples.push(smp);
      o.onSample?.(smp, rec);
    };
    const sampler = setInterval(sample, SAMPLE_MS);
    timers.push(sampler);
    const pollRollouts = setInterval(() => { void pollRolloutStates(o.api, rec, now); }, SAMPLE_MS);
    timers.push(pollRollouts);
    await ended;
    for (const t of timers) { clearInterval(t); clearTimeout(t); }
    driving = false;
    sample();
    // An action still running (a publish under load) finishes before the verdicts read the hub.
    await Promise.race([chain, new Promise((r) => setTimeout(r, 10_000))]);
    await Promise.allSettled(inflight);
    for (const f of rec.faults) f.to = Math.min(f.to, now());
    await pollRolloutStates(o.api, rec, now);
    await readDecisions(o.api, rec, t0);
    rec.drift = await readDrift(o.api, s, rec, t0);
    for (const g of groups) if (g.proxy) rec.links[g.spec.name] = { connections: g.proxy.stats.connections, refused: g.proxy.stats.refused, tampered: g.proxy.stats.tampered };
    rec.expectations = judgeExpectations(s, rec, groups);
    return rec;
  } finally {
    for (const t of timers) { clearInterval(t); clearTimeout(t); }
    await stopGroups(groups);
  }
}

/**
 * Until the hub has heard from every simulated device (its first state report), or 15 s: a rollout's percent
 * rings are cut from the devices the hub knows, and a fault at time 0 must not hide a device from them.
 */
async function waitKnown(api: HubApi, groups: DeviceGroup[], say: (s: string) => void): Promise<void> {
  const want = new Set(groups.flatMap((g) => g.ids));
  const end = Date.now() + 15_000;
  let known = 0;
  for (;;) {
    try {
      const { devices } = await api.get<{ devices: { id: string }[] }>('/v1/devices');
      known = devices.filter((d) => want.has(d.id)).length;
    } catch { /* without the API (no --hub) nothing can be checked */ return; }
    if (known === want.size) return;
    if (Date.now() > end) { say(`the hub knows ${known} of ${want.size} devices after 15 s; starting anyway`); return; }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Install durations from each device's own phase reports: first phase past idle for a target → its commit. */
function watchInstalls(groups: DeviceGroup[], rec: RunRecord, now: () => number): void {
  for (const g of groups) {
    g.fleet.agents.forEach((a, i) => {
      const started = new Map<string, number>();
      a.on('state', (r) => {
        if (r.target && r.phase !== 'idle' && !started.has(r.target.bundleId)) started.set(r.target.bundleId, now());
      });
      a.on('installed', (m) => {
        const t = now();
        rec.installs.push({ t, deviceId: g.ids[i], group: g.spec.name, model: `${m.name}@${m.version}`, ms: t - (started.get(m.bundleId) ?? t) });
        started.delete(m.bundleId);
      });
      a.on('rejected', (r) => { rec.installFailures.push({ t: now(), deviceId: g.ids[i], group: g.spec.name, code: r.code }); });
    });
  }
}

function faultEvents(f: FaultSpec, groups: DeviceGroup[], ms: (s: number) => number, rec: RunRecord, active: Set<string>, now: () => number, say: (s: string) => void): Timed[] {
  const hit = groups.filter((g) => f.kind === 'broker-restart' || f.group === undefined || g.spec.name === f.group);
  const label = `${f.kind}${f.group ? ` ${f.group}` : ''}`;
  const from = ms(f.at);
  const to = f.for === undefined ? Infinity : from + ms(f.for);
  let flap: NodeJS.Timeout | null = null;
  const band: FaultBand = { kind: f.kind, group: f.group ?? null, from, to: Number.isFinite(to) ? to : ms(86_400) };
  const set = (on: boolean) => {
    if (f.kind === 'power-loss') { void powerLoss(hit, on, band, say); return; }
    for (const g of hit) {
      switch (f.kind) {
        case 'network-loss': case 'broker-restart': g.proxy!.setDown(on); break;
        case 'slow-link': g.proxy!.setRate(on ? f.bytesPerSecond! : null); break;
        case 'tampered-chunks': g.proxy!.setTamper(on); break;
        case 'nan-outputs': g.nan!.on = on; break;
        case 'clock-skew': g.skew!.ms = on ? f.skewSeconds! * 1000 : 0; break;
        case 'flapping-link': {
          if (flap) { clearInterval(flap); flap = null; }
          g.proxy!.setDown(false);
          if (on) { let down = false; flap = setInterval(() => { down = !down; for (const h of hit) h.proxy!.setDown(down); }, ms(f.period!) / 2); }
          break;
        }
      }
    }
  };
  const out: Timed[] = [{ at: from, run: () => { set(true); active.add(label); band.from = now(); rec.faults.push(band); say(`fault: ${label} begins`); } }];
  if (Number.isFinite(to)) out.push({ at: to, run: () => { set(false); active.delete(label); band.to = now(); say(`fault: ${label} ends`); } });
  return out;
}

/**
 * Power loss: every agent of the group stops where it is (an install in flight is abandoned, memory is
 * lost) and, when the power returns, starts again from its own data folder: the recovery table decides
 * from the persisted phase. (An abrupt kill of a real agent process is what test/crash covers.)
 */
async function powerLoss(groups: DeviceGroup[], off: boolean, band: FaultBand, say: (s: string) => void): Promise<void> {
  const agents = groups.flatMap((g) => g.fleet.agents);
  if (off) {
    band.phases = {};
    for (const a of agents) { const p = a.status().phase; band.phases[p] = (band.phases[p] ?? 0) + 1; }
    say(`power lost on ${agents.length} devices in phases ${JSON.stringify(band.phases)}`);
    await Promise.all(agents.map((a) => a.stop()));
  } else {
    await Promise.all(agents.map((a) => a.start().catch((e) => say(`a device did not start again after the power loss: ${errorCode(e)} ${(e as Error).message}`))));
  }
}

const splitModel = (m: string) => { const [name, v] = m.split('@'); return { name, version: Number(v) }; };

async function runAction(a: ActionSpec, o: RunOptions, groups: DeviceGroup[], rec: RunRecord, now: () => number, say: (s: string) => void): Promise<void> {
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

async function pollRolloutStates(api: HubApi, rec: RunRecord, now: () => number): Promise<void> {
  await Promise.all(rec.rollouts.filter((r) => r.hubId).map(async (r) => {
    try {
      const s = await api.rollout<{ state: string; ring: string }>(r.hubId!);
      const prev = r.states[r.states.length - 1];
      if (!prev || prev.state !== s.state || prev.ring !== s.ring) r.states.push({ t: now(), state: s.state, ring: s.ring });
      r.final = { state: s.state, ring: s.ring };
    } catch { /* the hub may be gone for a moment: the next poll tries again, the report shows the gap */ }
  }));
}

async function readDecisions(api: HubApi, rec: RunRecord, t0: number): Promise<void> {
  for (const r of rec.rollouts) {
    if (!r.hubId) continue;
    try {
      const h = await api.rolloutHistory<{ decisions: { at: number; kind: string; ring: string | null; reason: string }[] }>(r.hubId);
      r.decisions = h.decisions.map((d) => ({ t: d.at - t0, kind: d.kind, ring: d.ring, reason: d.reason }));
    } catch { /* left empty: the report says no decisions were read */ }
  }
}

/** The hub's drift report (and alert events) of every model a drift expectation or a rollout names, over the run. */
async function readDrift(api: HubApi, s: ScenarioFile, rec: RunRecord, t0: number): Promise<DriftRecord[]> {
  const models = new Set<string>([...(s.expect ?? []).flatMap((e) => (e.drift ? [e.drift.model] : [])), ...rec.rollouts.map((r) => r.model)]);
  const out: DriftRecord[] = [];
  for (const model of models) {
    const { name, version } = splitModel(model);
    const d: DriftRecord = { model, flagged: [], events: [] };
    try {
      const rep = await api.get<{ bundleId: string; rows: { ring: string; feature: string; verdict: string; psi: number | null; newCategories: string[]; missingRate: number }[] }>(`/v1/drift/${name}/${version}?since=${t0}`);
      d.flagged = rep.rows.filter((r) => r.verdict === 'drift').map((r) => ({ ring: r.ring, feature: r.feature, psi: r.psi, newCategories: r.newCategories, missingRate: r.missingRate }));
      const ev = await api.get<{ events: { at: number; ring: string; feature: string; metric: string; value: number; state: string }[] }>(`/v1/drift-events?bundleId=${rep.bundleId}`);
      d.events = ev.events.filter((e) => e.at >= t0).map((e) => ({ t: e.at - t0, text: `${e.state} ${e.feature} in ${e.ring} (${e.metric} ${e.value.toFixed(3)})` })).reverse();
    } catch (e) { d.error = `${errorCode(e)}: ${(e as Error).message}`; }
    out.push(d);
  }
  return out;
}
