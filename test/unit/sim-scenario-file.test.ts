/**
 * Scenario files (simulator/scenario-file.ts): every shipped example parses;
 * an unknown key is refused by its path; references between sections (a
 * group, a rollout id) and per-kind fields are checked before anything
 * starts; YAML and JSON read the same. The live view names a broker that
 * went away instead of showing a fleet that silently serves nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCode } from '../../protocol/errors.js';
import { liveLine, liveScreen, summary } from '../../simulator/live-view.js';
import type { RunRecord, Sample } from '../../simulator/run-record.js';
import { parseScenarioText, readScenarioFile, validateScenario } from '../../simulator/scenario-file.js';
import { REPO } from '../helpers/build-cli.js';

const EXAMPLES = join(REPO, 'examples/scenarios');
const base = { duration: 5, groups: [{ name: 'lab', count: 2 }] };

function refusal(value: unknown): string {
  try { validateScenario(value); } catch (e) { return `${errorCode(e)}: ${(e as Error).message}`; }
  return 'accepted';
}

describe('scenario files', () => {
  for (const f of readdirSync(EXAMPLES).filter((x) => /\.yaml$/.test(x) && !x.startsWith('rings-'))) {
    it(`example ${f} is a valid scenario`, () => {
      const s = readScenarioFile(join(EXAMPLES, f));
      expect(s.expect?.length).toBeGreaterThan(0);
    });
  }

  it("README's scenario reference (Rehearsing a rollout) is a valid scenario", () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const block = /```yaml\n(name: my-rehearsal[\s\S]*?)```/.exec(readme);
    expect(block, 'the yaml block starting with name: my-rehearsal').not.toBeNull();
    const s = parseScenarioText(block![1], 'README.yaml');
    expect(s.faults?.map((f) => f.kind).sort()).toEqual(['broker-restart', 'clock-skew', 'disk-full', 'flapping-link', 'nan-outputs', 'network-loss', 'power-loss', 'slow-link', 'tampered-chunks']);
  });

  it('YAML and JSON read the same', () => {
    const yaml = readFileSync(join(EXAMPLES, 'demo.yaml'), 'utf8');
    const a = parseScenarioText(yaml, 'demo.yaml');
    expect(parseScenarioText(JSON.stringify(a), 'demo.json')).toEqual(a);
  });

  it('refuses unknown keys by their path', () => {
    expect(refusal({ ...base, groups: [{ name: 'lab', count: 2, colour: 'red' }] })).toMatch(/^SIM_ERR_SCENARIO_INVALID: .*groups\[0\]\.colour is not a known key/);
    expect(refusal({ ...base, faults: [{ kind: 'network-loss', at: 1, duration: 3 }] })).toMatch(/faults\[0\]\.duration is not a known key/);
    expect(refusal({ ...base, extra: 1 })).toMatch(/extra is not a known key/);
  });

  it('refuses what the schema cannot see: unknown groups and rollouts, a fault without its parameter, an action doing two things', () => {
    expect(refusal({ ...base, traffic: [{ group: 'nope', rate: 1 }] })).toMatch(/traffic\[0\]\.group nope is not a group/);
    expect(refusal({ ...base, faults: [{ kind: 'slow-link', at: 0 }] })).toMatch(/slow-link needs bytesPerSecond/);
    expect(refusal({ ...base, faults: [{ kind: 'broker-restart', group: 'lab', at: 0 }] })).toMatch(/broker restart hits every device/);
    expect(refusal({ ...base, actions: [{ at: 0, publish: 'a.fcb', deploy: { model: 'm@1' } }] })).toMatch(/exactly one of publish, deploy, rollout/);
    expect(refusal({ ...base, expect: [{ rollout: 'r9', state: 'completed' }] })).toMatch(/r9 is no rollout action's id/);
    expect(refusal({ ...base, drift: [{ feature: 'x[0]', at: 0 }] })).toMatch(/drift\[0\] changes nothing/);
    expect(refusal({ ...base, groups: [{ name: 'a', count: 1, idPrefix: 'dev' }, { name: 'b', count: 1, idPrefix: 'dev' }] })).toMatch(/id prefix dev is used twice/);
    expect(refusal({ ...base, traffic: [{ rate: 1, features: { x: { kind: 'normal', mean: 0 } } }] })).toMatch(/normal distribution needs mean and std/);
  });

  it('disk-full: a fault for a group from a time (for: optional); its unknown keys and a misspelt kind are refused by name', () => {
    const s = validateScenario({ ...base, faults: [{ kind: 'disk-full', group: 'lab', at: 1, for: 2 }, { kind: 'disk-full', at: 3 }] });
    expect(s.faults).toEqual([{ kind: 'disk-full', group: 'lab', at: 1, for: 2 }, { kind: 'disk-full', at: 3 }]);
    expect(refusal({ ...base, faults: [{ kind: 'disk-full', group: 'lab', at: 1, freeBytes: 0 }] })).toMatch(/^SIM_ERR_SCENARIO_INVALID: .*faults\[0\]\.freeBytes is not a known key/);
    expect(refusal({ ...base, faults: [{ kind: 'diskFull', group: 'lab', at: 1 }] })).toMatch(/faults\[0\]\.kind must be one of .*disk-full/);
    expect(refusal({ ...base, faults: [{ kind: 'disk-full', group: 'nope', at: 1 }] })).toMatch(/faults\[0\]\.group nope is not a group/);
    expect(refusal({ ...base, faults: [{ kind: 'disk-full', group: 'lab' }] })).toMatch(/faults\[0\]\.at/);
  });

  it('a file that is not YAML is SIM_ERR_SCENARIO_READ naming it', () => {
    expect(() => parseScenarioText('groups: [unclosed', 'bad.yaml')).toThrow(/bad\.yaml/);
    try { parseScenarioText('groups: [unclosed', 'bad.yaml'); } catch (e) { expect(errorCode(e)).toBe('SIM_ERR_SCENARIO_READ'); }
  });
});

describe('live view', () => {
  const rec = { scenario: 's', durationMs: 10_000, installs: [], installFailures: [], rollouts: [], totals: { ok: 5, failed: 1, failuresByGroup: { lab: { AGENT_ERR_INFERENCE: 1 } } }, brokerOutages: [{ from: 2000, to: 4000 }], actions: [], expectations: [{ label: 'x', met: false, detail: 'y' }], links: {}, samples: [] } as unknown as RunRecord;
  const gone: Sample = { t: 3000, versions: { lab: { 'm@1': 3 } }, phases: { committed: 3 }, connected: 0, total: 3, ok: { lab: 4 }, failed: { lab: 0 }, dt: 1, faults: ['network-loss lab'] };

  it('says BROKER GONE when no device is connected, on a terminal and in quiet lines', () => {
    expect(liveLine(gone, rec)).toMatch(/connected 0\/3 BROKER GONE.*faults: network-loss lab/);
    const screen = liveScreen(gone, rec);
    expect(screen).toMatch(/0\/3 devices connected.*BROKER GONE/);
    expect(screen).toMatch(/versions\s+m@1: 3/);
    expect(screen).toMatch(/phases\s+committed: 3/);
    expect(liveLine({ ...gone, connected: 3 }, rec)).not.toMatch(/BROKER GONE/);
  });

  it('the summary lists failures, outages and each verdict', () => {
    const s = summary(rec);
    expect(s).toMatch(/failures in lab: \{"AGENT_ERR_INFERENCE":1\}/);
    expect(s).toMatch(/broker gone \(no device connected\) from 2 s to 4 s/);
    expect(s).toMatch(/NOT MET\s+x: y/);
  });
});
