import { describe, expect, it } from 'vitest';
import { encode, type ChunkRequest, type DeviceEvent, type StateReport } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { createDispatcher } from '../../hub/mqtt-link.js';
import { silentLogger, stateReport } from '../helpers/hub-fixtures.js';

function recorder() {
  const seen = { state: [] as StateReport[], event: [] as DeviceEvent[], chunk: [] as ChunkRequest[] };
  const d = createDispatcher({
    state: (m) => { seen.state.push(m); },
    event: (m) => { seen.event.push(m); },
    'chunk-req': (m) => { if (m.chunks.includes(666)) throw new Error('handler bug'); seen.chunk.push(m); },
  }, silentLogger());
  return { d, seen };
}

describe('device message dispatcher', () => {
  it('routes each valid message to the handler of its type', async () => {
    const { d, seen } = recorder();
    await d.dispatch(topics.device('d1', 'state'), encode(stateReport('d1')));
    await d.dispatch(topics.device('d1', 'event'), encode({ v: 1, deviceId: 'd1', seq: 1, at: 1, kind: 'installed', code: 'X', bundleId: 'a'.repeat(64), counter: 1, detail: 'ok' }));
    await d.dispatch(topics.device('d1', 'chunk-req'), encode({ v: 1, deviceId: 'd1', bundleId: 'a'.repeat(64), chunks: [0, 1] }));
    expect([seen.state.length, seen.event.length, seen.chunk.length]).toEqual([1, 1, 1]);
    expect(d.stats).toEqual({ handled: { state: 1, event: 1, 'chunk-req': 1 }, rejected: {} });
  });

  it('counts bad messages by code and handles the valid one right after each', async () => {
    const { d, seen } = recorder();
    const good = () => d.dispatch(topics.device('d1', 'state'), encode(stateReport('d1')));
    const bad: [string, Buffer][] = [
      [topics.device('d1', 'state'), Buffer.from('{not json')],
      [topics.device('d1', 'state'), encode({ ...stateReport('d1'), phase: 'dancing' })],
      [topics.device('d1', 'state'), encode({ ...stateReport('d1'), extra: 1 })],
      [topics.device('d1', 'state'), encode({ ...stateReport('d1'), capabilities: { pad: 'x'.repeat(70_000) } })],
      [topics.device('d1', 'state'), encode(stateReport('d2'))],
      [topics.device('d1', 'chunk-req'), encode({ v: 1, deviceId: 'd1', bundleId: 'a'.repeat(64), chunks: [666] })],
      ['fc/v1/dev/d1/assign', encode({})],
      ['somewhere/else', encode({})],
    ];
    for (const [t, b] of bad) { await d.dispatch(t, b); await good(); }
    expect(seen.state).toHaveLength(bad.length);
    expect(d.stats.rejected).toEqual({
      PROTO_ERR_INVALID_JSON: 1,
      PROTO_ERR_INVALID_MESSAGE: 2,
      PROTO_ERR_MESSAGE_TOO_LARGE: 1,
      HUB_ERR_DEVICE_MISMATCH: 1,
      PROTO_ERR_INTERNAL: 1,
      HUB_ERR_BAD_MESSAGE: 1,
      PROTO_ERR_BAD_TOPIC: 1,
    });
  });

  it('ignores an empty payload (a cleared retained message)', async () => {
    const { d } = recorder();
    await d.dispatch(topics.device('d1', 'state'), Buffer.alloc(0));
    expect(d.stats).toEqual({ handled: {}, rejected: {} });
  });
});
