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

/** Resolves after the reporter's end-of-turn publish (setImmediate callbacks run in order). */
const turnEnd = () => new Promise<void>((resolve) => setImmediate(resolve));

const body: ReportBody = { active: null, previous: null, phase: 'idle', target: null, progress: null, lastError: null, counter: 0 };

describe('agent reporter', () => {
  it('publishes schema-valid retained state and events; offline it keeps the latest state and queued events for the next connection', async () => {
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
    await turnEnd();
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

/**
 * The hub drops an event whose seq is not above the highest it has seen from the device
 * (hub/report-replay.ts), so an event sent while older ones still wait in the offline queue
 * loses them: on the real hub the boot notes queued before the first connection (a slot that
 * failed its boot check, a corrupt state file) were overtaken by the resumed install's
 * 'fetch-started', sent once the assign subscription was acknowledged and before the
 * reporter's onConnect flush (test/crash/real-hub-power-loss.test.ts saw it).
 */
describe('agent reporter event order', () => {
  it('an event raised while connected but before the queued ones were flushed waits behind them: seqs reach the broker in order', () => {
    const client = fakeClient();
    const r = new Reporter({
      deviceId: 'dev-o', client, now: () => 1000, agentVersion: '0.1.0', runtime: 'onnxruntime-node',
      capabilities: {}, heartbeatMs: 0, seqBase: 5_000_000_000, snapshot: () => body,
    });
    r.event('stage-failed', { code: 'AGENT_ERR_PAYLOAD_HASH', bundleId: 'b'.repeat(64) });
    // Connected: the agent is still subscribing, the retained assignment already started an install.
    client.connected = true;
    r.event('fetch-started', { bundleId: 'b'.repeat(64), counter: 3 });
    r.onConnect();
    r.event('installed', { bundleId: 'b'.repeat(64), counter: 3 });
    const events = client.sent.filter((s) => s.topic.endsWith('/event')).map((s) => decodeDeviceEvent(s.payload));
    expect(events.map((e) => e.kind)).toEqual(['stage-failed', 'fetch-started', 'installed']);
    expect(events.map((e) => e.seq)).toEqual([5_000_000_000, 5_000_000_001, 5_000_000_002]);
  });
});

/**
 * An install passes several phases in one event-loop turn (verifying -> staging, swapping -> committed
 * with the state in memory): each report was published, and the hub parsed, validated and wrote each,
 * although the retained report it keeps is the latest. At 10,000 simulated devices that was ~6 state
 * publishes per device per install.
 */
describe('agent reporter coalescing', () => {
  const phases = (client: ReturnType<typeof fakeClient>) => client.sent.map((s) => (s.topic.endsWith('/state') ? `state:${decodeStateReport(s.payload).phase}` : `event:${decodeDeviceEvent(s.payload).kind}`));
  const make = (client: ReturnType<typeof fakeClient>, phase: () => ReportBody['phase'], seen: string[] = []) => new Reporter({
    deviceId: 'dev-c', client, now: () => 1000, agentVersion: '0.1.0', runtime: 'onnxruntime-node',
    capabilities: {}, heartbeatMs: 0, seqBase: 7_000_000_000, snapshot: () => ({ ...body, phase: phase() }),
    onState: (s) => seen.push(s.phase),
  });

  it('state reports made in one turn are published once, the latest with its own seq; local listeners still see each', async () => {
    const client = fakeClient();
    client.connected = true;
    let phase: ReportBody['phase'] = 'verifying';
    const seen: string[] = [];
    const r = make(client, () => phase, seen);
    const first = r.report();
    phase = 'staging';
    const second = r.report();
    expect(client.sent).toEqual([]);
    await turnEnd();
    expect(phases(client)).toEqual(['state:staging']);
    const st = decodeStateReport(client.sent[0].payload);
    expect(st.seq).toBe(second.seq);
    expect(st.seq).toBeGreaterThan(first.seq);
    expect(seen).toEqual(['verifying', 'staging']);
    // A report of a later turn is published again, its seq still above.
    phase = 'swapping';
    r.report();
    await turnEnd();
    expect(phases(client)).toEqual(['state:staging', 'state:swapping']);
    expect(decodeStateReport(client.sent[1].payload).seq).toBeGreaterThan(st.seq);
  });

  it('a pending state report goes out before a later event: the order across channels is the order they were made', async () => {
    const client = fakeClient();
    client.connected = true;
    let phase: ReportBody['phase'] = 'swapping';
    const r = make(client, () => phase);
    r.report();
    phase = 'committed';
    r.report();
    r.event('installed', { bundleId: 'c'.repeat(64), counter: 4 });
    phase = 'idle';
    r.report();
    await turnEnd();
    expect(phases(client)).toEqual(['state:committed', 'event:installed', 'state:idle']);
  });

  it('stop() sends the pending report at once, and a report after stop() goes out at once', () => {
    const client = fakeClient();
    client.connected = true;
    let phase: ReportBody['phase'] = 'fetching';
    const r = make(client, () => phase);
    r.report();
    r.stop();
    expect(phases(client)).toEqual(['state:fetching']);
    phase = 'failed';
    r.report();
    expect(phases(client)).toEqual(['state:fetching', 'state:failed']);
  });

  it('a report made while connected but not yet sent when the connection drops waits for the next connection', async () => {
    const client = fakeClient();
    client.connected = true;
    let phase: ReportBody['phase'] = 'fetching';
    const r = make(client, () => phase);
    r.report();
    client.connected = false;
    await turnEnd();
    expect(client.sent).toEqual([]);
    expect(r.dirty).toBe(true);
    client.connected = true;
    phase = 'verifying';
    r.onConnect();
    expect(phases(client)).toEqual(['state:verifying']);
    await turnEnd();
    expect(phases(client)).toEqual(['state:verifying']);
  });
});
