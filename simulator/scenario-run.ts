/**
 * Run a scenario against a hub: start the groups, then on one clock drive
 * each group's traffic at its rate with its distributions and drift, apply
 * faults and actions at their (scaled) times, sample versions, phases,
 * connections and prediction outcomes every second, and at the end read the
 * rollouts' decisions and the drift report back from the hub and judge the
 * expectations. Everything recorded is in the returned RunRecord.
 */
import { errorCode } from '@fleetcast/protocol/errors.js';
import { judgeExpectations } from './expectations.js';
import { pollRolloutStates, readDecisions, readDrift, waitKnown } from './hub-readback.js';
import type { RunRecord, Sample } from './run-record.js';
import { runAction } from './scenario-actions.js';
import { startGroups, stopGroups, waitConnected, type Credential, type DeviceGroup, type HubApi } from './scenario-devices.js';
import { faultEvents, type Timed } from './scenario-faults.js';
import type { ScenarioFile } from './scenario-file.js';
import { scenarioGenerator, type FeatureDist, type Shift } from './scenarios.js';

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
    /** Predictions in flight, all groups: the run waits for them before stopping the devices (a prediction cut short is not a failure of the model). */
    let inflight = 0;
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
          inflight++;
          void a.predict(gen.body(a.options.deviceId, act.inputs, now())).then(
            () => { ok[g.spec.name]++; rec.totals.ok++; },
            (e) => { failed[g.spec.name]++; rec.totals.failed++; const c = errorCode(e); failures[c] = (failures[c] ?? 0) + 1; },
          ).finally(() => { running--; inflight--; });
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
    for (const end = Date.now() + 10_000; inflight > 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 20));
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
