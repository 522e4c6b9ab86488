/**
 * A scenario file (`fleetcast sim --scenario FILE`, YAML or JSON): device
 * groups, their traffic and drift, faults and actions on a timeline, and the
 * expectations that set the exit code. Validated with protocol/schema.ts, so
 * an unknown key is refused by its path instead of silently ignored; a typo in
 * a rehearsal must not turn into a rehearsal of something else.
 *
 * Every time in the file (at, for, duration, period) is in seconds and is
 * multiplied by `timeScale` (or --time-scale), so a scenario written in field
 * time can be replayed in tens of seconds.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { arr, bool, int, json, num, obj, optional, parse, record, str, union, type Infer } from '@fleetcast/protocol/schema.js';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';
import { simError } from './errors.js';

const name = str({ pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/ });
const seconds = num({ min: 0, max: 86_400 });
const modelRef = str({ pattern: /^[a-z0-9][a-z0-9._-]{0,63}@[1-9][0-9]{0,9}$/ });

/** normal {mean, std}, uniform {min, max}, categorical {weights}; the kind's own fields are checked after the schema. */
const distSchema = obj({
  kind: str({ enum: ['normal', 'uniform', 'categorical'] as const }),
  mean: optional(num()), std: optional(num({ min: 0 })),
  min: optional(num()), max: optional(num()),
  weights: optional(record(num({ min: 0 }), { maxKeys: 256 })),
  /** Share of values sent as missing (null), 0..1. */
  missing: optional(num({ min: 0, max: 1 })),
});

const groupSchema = obj({
  name,
  count: int({ min: 1, max: 20_000 }),
  /** Device ids are PREFIX-000 …; default the group's name. */
  idPrefix: optional(str({ pattern: /^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$/ })),
  /** capabilities.tags of every device (rollout rings can select by tag). */
  tags: optional(arr(str({ min: 1, max: 64 }), { max: 32 })),
  /** capabilities.hardware of every device, as the device would report it. */
  hardware: optional(record(json(), { maxKeys: 32 })),
  /** node = onnxruntime-node, web = onnxruntime-web (wasm). */
  runtime: optional(str({ enum: ['node', 'web'] as const })),
  /** fleetcast-agent options for every device of the group (validated by the agent's own schema). */
  agent: optional(record(json(), { maxKeys: 64 })),
});

const trafficSchema = obj({
  /** A group's name; omitted: every group. */
  group: optional(name),
  /** Predictions per second for the whole group. */
  rate: num({ min: 0, max: 100_000 }),
  /** Distribution per feature, named as in the bundle's reference profile (x[0], category[0], …). */
  features: optional(record(distSchema, { maxKeys: 1024 })),
});

const driftSchema = obj({
  group: optional(name),
  feature: str({ min: 1, max: 128 }),
  at: seconds,
  /** Added to the value (feature units). */
  mean: optional(num()),
  /** Deviation from the distribution's centre multiplied by this. */
  scale: optional(num({ min: 0 })),
  /** A category the reference never saw, sent this share of the time. */
  category: optional(obj({ value: union(str({ max: 64 }), num()), share: num({ min: 0, max: 1 }) })),
  /** Share of values sent as missing from then on (1 = the feature went missing). */
  missing: optional(num({ min: 0, max: 1 })),
});

export const FAULT_KINDS = ['network-loss', 'broker-restart', 'tampered-chunks', 'nan-outputs', 'slow-link', 'flapping-link', 'clock-skew', 'power-loss', 'disk-full'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const faultSchema = obj({
  kind: str({ enum: FAULT_KINDS }),
  /** The group it hits; omitted: every group (a broker restart always hits every device). */
  group: optional(name),
  at: seconds,
  /** How long it lasts; omitted: to the end of the run. */
  for: optional(seconds),
  /** slow-link: bytes per second each way, per device connection. */
  bytesPerSecond: optional(int({ min: 1, max: 1e9 })),
  /** flapping-link: the link is down for half of each period. */
  period: optional(num({ min: 0.05, max: 3600 })),
  /** clock-skew: seconds the devices' clocks are ahead (negative: behind); not scaled. */
  skewSeconds: optional(num({ min: -1e8, max: 1e8 })),
});

const actionSchema = obj({
  at: seconds,
  /** Upload a bundle file (relative to --bundles DIR, default the scenario's folder). */
  publish: optional(str({ min: 1, max: 512 })),
  /** Assign NAME@VERSION to every device, or to one group's devices. */
  deploy: optional(obj({ model: modelRef, group: optional(name) })),
  /** Start a staged rollout; `id` names it for expectations. `rings`: a rollout file (JSON/YAML, relative to the scenario) or its content. */
  rollout: optional(obj({ id: name, model: modelRef, rings: union(str({ min: 1, max: 512 }), record(json())), autoPromote: optional(bool()) })),
});

const expectSchema = obj({
  /** Shown in the summary and the report; default a description of the check. */
  label: optional(str({ max: 200 })),
  /** A rollout action's id: its final state must be `state`, or it must have halted in ring `haltedIn`. */
  rollout: optional(name),
  state: optional(str({ enum: ['running', 'paused', 'halted', 'rolling-back', 'rolled-back', 'aborted', 'completed', 'superseded'] as const })),
  haltedIn: optional(name),
  /** Drift on `feature` of `model` flagged (by the hub's report) in exactly these rings. */
  drift: optional(obj({ model: modelRef, feature: str({ min: 1, max: 128 }), flaggedIn: arr(name, { min: 1, max: 32 }), only: optional(bool()) })),
  /** No prediction failed on any device outside these groups. */
  noFailuresOutside: optional(arr(name, { max: 64 })),
  /** Every device (of `group` when given) serves this model at the end (also the group of `refused`). */
  allOn: optional(modelRef),
  group: optional(name),
  /** At least this many predictions succeeded. */
  minPredictions: optional(int({ min: 0 })),
  /** A device of `group` (any when omitted) refused an install or assignment with this code. */
  refused: optional(str({ pattern: /^[A-Z]+_ERR_[A-Z0-9_]+$/ })),
});

export const scenarioSchema = obj({
  name: optional(str({ max: 120 })),
  description: optional(str({ max: 2000 })),
  /** Every time in the file is multiplied by this (--time-scale wins). */
  timeScale: optional(num({ min: 0.001, max: 1000 })),
  /** Run length in seconds (scaled). */
  duration: seconds,
  seed: optional(int({ min: 0 })),
  groups: arr(groupSchema, { min: 1, max: 64 }),
  traffic: optional(arr(trafficSchema, { max: 64 })),
  drift: optional(arr(driftSchema, { max: 256 })),
  faults: optional(arr(faultSchema, { max: 256 })),
  actions: optional(arr(actionSchema, { max: 256 })),
  expect: optional(arr(expectSchema, { max: 64 })),
});

export type ScenarioFile = Infer<typeof scenarioSchema>;
export type GroupSpec = Infer<typeof groupSchema>;
export type FaultSpec = Infer<typeof faultSchema>;
export type ActionSpec = Infer<typeof actionSchema>;
export type ExpectSpec = Infer<typeof expectSchema>;
export type DistSpec = Infer<typeof distSchema>;

const invalid = (problem: string) => simError('SIM_ERR_SCENARIO_INVALID', problem);

/** Checks the schema cannot express: references between sections, one thing per action, fields per kind. */
function crossCheck(s: ScenarioFile): void {
  const groups = new Set<string>();
  const prefixes = new Set<string>();
  s.groups.forEach((g, i) => {
    if (groups.has(g.name)) throw invalid(`groups[${i}].name ${g.name} is used twice`);
    groups.add(g.name);
    const p = g.idPrefix ?? g.name;
    if (prefixes.has(p)) throw invalid(`groups[${i}] id prefix ${p} is used twice (device ids must be unique)`);
    if (!DEVICE_ID_PATTERN.test(`${p}-0`)) throw invalid(`groups[${i}] id prefix ${p} does not make valid device ids`);
    prefixes.add(p);
  });
  const group = (g: string | undefined, where: string) => { if (g !== undefined && !groups.has(g)) throw invalid(`${where}.group ${g} is not a group (${[...groups].join(', ')})`); };
  s.traffic?.forEach((t, i) => {
    group(t.group, `traffic[${i}]`);
    for (const [f, d] of Object.entries(t.features ?? {})) {
      const at = `traffic[${i}].features.${f}`;
      if (d.kind === 'normal' && (d.mean === undefined || d.std === undefined)) throw invalid(`${at}: a normal distribution needs mean and std`);
      if (d.kind === 'uniform' && (d.min === undefined || d.max === undefined || d.min > d.max)) throw invalid(`${at}: a uniform distribution needs min ≤ max`);
      if (d.kind === 'categorical' && (!d.weights || Object.values(d.weights).every((w) => w === 0))) throw invalid(`${at}: a categorical distribution needs weights, one above 0`);
    }
  });
  s.drift?.forEach((d, i) => {
    group(d.group, `drift[${i}]`);
    if (d.mean === undefined && d.scale === undefined && d.category === undefined && d.missing === undefined) throw invalid(`drift[${i}] changes nothing: give mean, scale, category or missing`);
  });
  s.faults?.forEach((f, i) => {
    group(f.group, `faults[${i}]`);
    if (f.kind === 'slow-link' && f.bytesPerSecond === undefined) throw invalid(`faults[${i}]: slow-link needs bytesPerSecond`);
    if (f.kind === 'flapping-link' && f.period === undefined) throw invalid(`faults[${i}]: flapping-link needs period (seconds)`);
    if (f.kind === 'clock-skew' && f.skewSeconds === undefined) throw invalid(`faults[${i}]: clock-skew needs skewSeconds`);
    if (f.kind === 'broker-restart' && f.group !== undefined) throw invalid(`faults[${i}]: a broker restart hits every device; remove group`);
  });
  const rollouts = new Set<string>();
  s.actions?.forEach((a, i) => {
    const n = [a.publish, a.deploy, a.rollout].filter((x) => x !== undefined).length;
    if (n !== 1) throw invalid(`actions[${i}] must do exactly one of publish, deploy, rollout (it does ${n})`);
    group(a.deploy?.group, `actions[${i}].deploy`);
    if (a.rollout) { if (rollouts.has(a.rollout.id)) throw invalid(`actions[${i}].rollout.id ${a.rollout.id} is used twice`); rollouts.add(a.rollout.id); }
  });
  s.expect?.forEach((e, i) => {
    const n = [e.rollout, e.drift, e.noFailuresOutside, e.allOn, e.minPredictions, e.refused].filter((x) => x !== undefined).length;
    if (n !== 1) throw invalid(`expect[${i}] must check exactly one of rollout, drift, noFailuresOutside, allOn, minPredictions, refused (it has ${n})`);
    if (e.rollout !== undefined) {
      if (!rollouts.has(e.rollout)) throw invalid(`expect[${i}].rollout ${e.rollout} is no rollout action's id`);
      if ((e.state === undefined) === (e.haltedIn === undefined)) throw invalid(`expect[${i}] needs state or haltedIn (one of them)`);
    } else if (e.state !== undefined || e.haltedIn !== undefined) throw invalid(`expect[${i}]: state and haltedIn go with rollout`);
    if (e.group !== undefined && e.allOn === undefined && e.refused === undefined) throw invalid(`expect[${i}].group goes with allOn or refused`);
    group(e.group, `expect[${i}]`);
    e.noFailuresOutside?.forEach((g) => group(g, `expect[${i}].noFailuresOutside`));
  });
}

/** Validate a parsed scenario (throws SIM_ERR_SCENARIO_INVALID naming every path at fault). */
export function validateScenario(value: unknown): ScenarioFile {
  const s = parse(scenarioSchema, value, { code: 'SIM_ERR_SCENARIO_INVALID', unknownCode: 'SIM_ERR_SCENARIO_INVALID', what: 'scenario', status: 400 });
  crossCheck(s);
  return s;
}

export function parseScenarioText(text: string, file: string): ScenarioFile {
  let value: unknown;
  try { value = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text); } catch (e) {
    throw simError('SIM_ERR_SCENARIO_READ', `${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  return validateScenario(value);
}

export function readScenarioFile(file: string): ScenarioFile {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch (e) { throw simError('SIM_ERR_SCENARIO_READ', `${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  return parseScenarioText(text, file);
}
