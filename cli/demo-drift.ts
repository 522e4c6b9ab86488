/**
 * The demo's drift act: both bundles carry a signed reference profile of the
 * data the simulated devices send; once v2 starts rolling out, the devices'
 * `x[2]` narrows (scale ×0.4) and a category the reference never saw (9) shows
 * up in 30 % of requests. The demo ends with the hub's drift report.
 */
import type { Row } from '@fleetcast/bundle-build/reference.js';
import type { Hub } from '@fleetcast/hub/hub.js';
import { formatDriftReport } from '@fleetcast/hub/drift/format.js';
import { scenarioGenerator, type Scenario, type Shift } from '@fleetcast/simulator/scenarios.js';

export const DEMO_TELEMETRY = { windowMs: 1000, sampleRate: 0.5 };
const FEATURES = 8;

const scenario = (shifts: Shift[]): Scenario => ({
  features: {
    ...Object.fromEntries(Array.from({ length: FEATURES }, (_, i) => [`x[${i}]`, { kind: 'uniform', min: -8, max: 8 } as const])),
    'category[0]': { kind: 'categorical', weights: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [String(i), 1])) },
  },
  shifts,
});

export function demoReference(rows = 4000): Row[] {
  const g = scenarioGenerator(scenario([]), 99);
  return Array.from({ length: rows }, () => ({
    ...Object.fromEntries(Array.from({ length: FEATURES }, (_, i) => [`x[${i}]`, g.value('reference', `x[${i}]`, 0)])),
    'category[0]': g.value('reference', 'category[0]', 0, true),
  }));
}

export function demoDrift() {
  const shifts: Shift[] = [];
  const gen = scenarioGenerator(scenario(shifts), 7);
  return {
    inputsFor: (deviceId: string, inputs: Parameters<typeof gen.body>[1]) => gen.body(deviceId, inputs, Date.now()),
    /** From now on every device's x[2] narrows and category 9 appears. */
    shift(): void {
      const at = Date.now();
      shifts.push({ feature: 'x[2]', devices: 'all', at, scale: 0.4 }, { feature: 'category[0]', devices: 'all', at, category: { value: 9, share: 0.3 } });
    },
  };
}

/** Wait for the agents' open windows to be reported and ingested, then the report of `bundleId` since `since`. */
export async function demoDriftReport(hub: Hub, bundleId: string, since: number): Promise<string> {
  const before = hub.telemetry.ingest.stats.accepted;
  const end = Date.now() + DEMO_TELEMETRY.windowMs * 3;
  // Every agent closes its window within windowMs; wait for at least one more window's reports.
  while (Date.now() < end && hub.telemetry.ingest.stats.accepted < before + 1) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, DEMO_TELEMETRY.windowMs + 200));
  return formatDriftReport(hub.telemetry.report({ bundleId, since }), { limit: 12 });
}
