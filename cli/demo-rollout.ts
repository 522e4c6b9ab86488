/**
 * The demo's staged rollout (issue #3): canary 2% → early 20% → broad 100%,
 * auto-promoted when each ring's gates pass on the agents' own health reports
 * (install success, error rate, p95 against the previous version, requests
 * served) after a short soak. Prints each ring as it fills and the decisions.
 */
import type { RolloutStatus } from '@fleetcast/hub/rollouts/rollouts.js';
import type { DecisionRecord } from '@fleetcast/hub/rollouts/decisions.js';
import type { HubClient } from './hub-client.js';
import { renderHistory } from './rollout-view.js';

export const DEMO_ROLLOUT_SPEC = {
  rings: [{ name: 'canary', percent: 2 }, { name: 'early', percent: 20 }, { name: 'broad', percent: 100 }],
  // p95 of a 1-device canary over a few hundred predictions on a busy laptop is noisy: the demo allows 5×, the default is 2×.
  gates: { soak: '2s', minRequests: 20, maxLatencyRatio: 5 },
};

export async function demoRollout(api: HubClient, name: string, version: number, say: (s: string) => void, timeoutMs = 45_000): Promise<RolloutStatus> {
  const started = await api.startRollout<RolloutStatus>({ name, version, autoPromote: true, spec: DEMO_ROLLOUT_SPEC, reason: 'demo' });
  say(`  rollout ${started.id} of ${name}@${version}: ${started.rings.map((r) => `${r.name} ${r.devices}`).join(' → ')} devices, gates on live health, soak 2 s`);
  const end = Date.now() + timeoutMs;
  const shown = new Set<string>();
  for (;;) {
    const s = await api.rollout<RolloutStatus>(started.id);
    for (const r of s.rings) {
      const g = r.gates as { verdict?: string; requests?: number; errorRate?: number | null; p95Ms?: number | null; latencyRatio?: number | null } | null;
      if (g?.verdict === 'pass' && !shown.has(r.name)) {
        shown.add(r.name);
        say(`    ${r.name.padEnd(6)} ${r.counts.installed}/${r.devices} installed, ${g.requests} predictions, error rate ${((g.errorRate ?? 0) * 100).toFixed(1)}%, p95 ${g.p95Ms?.toFixed(2) ?? '-'} ms (×${g.latencyRatio?.toFixed(2) ?? '-'} of v${version - 1}): gates passed`);
      }
    }
    if (s.state === 'completed') {
      const h = await api.rolloutHistory<{ decisions: DecisionRecord[] }>(s.id);
      say(renderHistory(h.decisions).trimEnd().replace(/^/gm, '    '));
      return s;
    }
    if (s.state !== 'running' || Date.now() > end) throw new Error(`demo: rollout ${s.id} is ${s.state}${Date.now() > end ? ' (timed out)' : ''}: ${JSON.stringify(s.rings.map((r) => r.gates))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
