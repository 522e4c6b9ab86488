import { describe, expect, it } from 'vitest';
import type { BrokerClient } from '../../agent/broker-client.js';
import { Reporter, type ReportBody } from '../../agent/reporter.js';
import { decodeDeviceEvent, decodeStateReport } from '../../protocol/messages.js';

/** A seam fake for the broker connection: this test is about what the reporter sends and when. */
function fakeClient() {
  const sent: { topic: string; payload: Buffer; retain: boolean }[] = [];
  const c = {
    connected: false,
    sent,
    async subscribe() {}, async unsubscribe() {},
    async publish(topic: string, payload: Buffer, opts: { retain?: boolean } = {}) { sent.push({ topic, payload, retain: opts.retain === true }); },
    onMessage() {}, onConnect() {}, onDisconnect() {}, async end() {},
  };
  return c satisfies BrokerClient & { sent: unknown };
}

const body: ReportBody = { active: null, previous: null, phase: 'idle', target: null, progress: null, lastError: null, counter: 0 };

describe('agent reporter', () => {
  it('publishes schema-valid retained state and events; offline it keeps the latest state and queued events for the next connection', () => {
    const client = fakeClient();
    let phase: ReportBody['phase'] = 'idle';
    const r = new Reporter({
      deviceId: 'dev-r', client, now: () => 1000, agentVersion: '0.1.0', runtime: 'onnxruntime-node@1.30.0',
      capabilities: { hw: 'test' }, heartbeatMs: 0, seqBase: 3_000_000_000, snapshot: () => ({ ...body, phase }),
    });
    r.report();
    r.event('fetch-started', { bundleId: 'a'.repeat(64), counter: 2 });
    expect(client.sent).toEqual([]);
    expect(r.dirty).toBe(true);

    client.connected = true;
    phase = 'fetching';
    r.onConnect();
    expect(client.sent.map((s) => [s.topic, s.retain])).toEqual([['fc/v1/dev/dev-r/event', false], ['fc/v1/dev/dev-r/state', true]]);
    const ev = decodeDeviceEvent(client.sent[0].payload);
    expect(ev).toMatchObject({ kind: 'fetch-started', counter: 2, deviceId: 'dev-r' });
    const st = decodeStateReport(client.sent[1].payload);
    expect(st).toMatchObject({ phase: 'fetching', capabilities: { hw: 'test' }, runtime: 'onnxruntime-node@1.30.0' });
    // Sequence numbers start above every earlier boot's and only grow.
    expect(st.seq).toBeGreaterThan(3_000_000_000);
    r.report();
    expect(decodeStateReport(client.sent[2].payload).seq).toBe(st.seq + 1);
    const long = r.event('security', { code: 'AGENT_ERR_ASSIGNMENT_SIGNATURE', detail: 'x'.repeat(5000) });
    expect(long.detail).toHaveLength(1024);
    expect(() => decodeDeviceEvent(client.sent[3].payload)).not.toThrow();
  });

  it('drops the oldest events beyond the offline bound', () => {
    const client = fakeClient();
    const r = new Reporter({ deviceId: 'dev-q', client, now: () => 1, agentVersion: 'v', runtime: 'r', capabilities: {}, heartbeatMs: 0, seqBase: 0, snapshot: () => body });
    for (let i = 0; i < 150; i++) r.event('assignment-rejected', { code: `AGENT_ERR_X${i}` });
    client.connected = true;
    r.onConnect();
    const events = client.sent.filter((s) => s.topic.endsWith('/event')).map((s) => decodeDeviceEvent(s.payload).code);
    expect(events).toHaveLength(100);
    expect(events[0]).toBe('AGENT_ERR_X50');
  });
});
