/**
 * Label values the metrics derive themselves: the outbound channel of a topic
 * (a bounded set, whatever the topic), and the agent's last install outcome
 * and phase (one series each, replaced, never accumulated).
 */
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../agent/agent-metrics.js';
import { publishChannel } from '../../hub/metrics/hub-metrics.js';
import { topics } from '../../protocol/topics.js';
import { METRICS_CONTENT_TYPE } from '../../protocol/metrics-exposition.js';
import type { Phase } from '../../protocol/messages.js';
import { parse } from '../helpers/prometheus.js';

const family = async (m: AgentMetrics, name: string) => parse(await m.text()).get(name)!.metrics;

describe('outbound channel labels', () => {
  it('names each topic kind the hub publishes, and "other" for anything else', () => {
    const bundle = 'a'.repeat(64);
    expect(publishChannel(topics.assign('dev-1'))).toBe('assign');
    expect(publishChannel(topics.chunk(bundle, 7))).toBe('chunk');
    expect(publishChannel(topics.proof('dev-1'))).toBe('proof');
    expect(publishChannel(topics.control('dev-1'))).toBe('control');
    expect(publishChannel(topics.trustRoots())).toBe('roots');
    expect(publishChannel(topics.trustCheckpoint())).toBe('checkpoint');
    expect(publishChannel(topics.device('dev-1', 'state'))).toBe('state');
    for (const t of ['', 'x', 'fc/v1/dev/dev-1/nope', `fc/v1/bundle/${bundle}/chunk/x`, 'fc/v1/dev/dev 1/assign', '#']) expect(publishChannel(t), t).toBe('other');
  });
});

describe('exposition', () => {
  it('is served with prom-client\'s text-format content type (a literal, so serving it does not load prom-client)', () => {
    expect(METRICS_CONTENT_TYPE).toBe(client.Registry.PROMETHEUS_CONTENT_TYPE);
  });
});

describe('agent install metrics', () => {
  it('keeps one last-install series: installed, then rejected with its code and phase, replacing it', async () => {
    let phase: Phase = 'idle';
    const m = new AgentMetrics({ model: () => null, phase: () => phase, telemetry: () => null, connected: () => false });
    expect(await family(m, 'fleetcast_agent_last_install')).toEqual([]);
    expect(await family(m, 'fleetcast_agent_model_info')).toEqual([]);
    m.installed('b1', 1_000);
    phase = 'committed';
    expect(await family(m, 'fleetcast_agent_last_install')).toEqual([{ labels: { result: 'installed', code: '', phase: 'committed', bundle_id: 'b1' }, value: '1' }]);
    m.rejected({ bundleId: 'b2', code: 'AGENT_ERR_GOLDEN_MISMATCH', phase: 'staging' }, 2_000);
    phase = 'rolled-back';
    expect(await family(m, 'fleetcast_agent_last_install')).toEqual([{ labels: { result: 'rejected', code: 'AGENT_ERR_GOLDEN_MISMATCH', phase: 'staging', bundle_id: 'b2' }, value: '1' }]);
    expect(await family(m, 'fleetcast_agent_last_install_timestamp_seconds')).toEqual([{ value: '2' }]);
    const phases = await family(m, 'fleetcast_agent_install_phase');
    expect(phases.filter((p) => p.value === '1').map((p) => p.labels!.phase)).toEqual(['rolled-back']);
    expect(phases.length).toBeGreaterThan(5);
  });
});
