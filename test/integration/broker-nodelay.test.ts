/**
 * MQTT's control packets are small and each waits for an answer. With Nagle's
 * algorithm on (Node's default for sockets), a small write that follows one the
 * peer has not acknowledged yet waits for the peer's delayed ACK (~40 ms on
 * Linux): an agent's SUBSCRIBE right after its state report waited that long
 * for its SUBACK, and its chunk request as long again on its way from the
 * embedded broker to the hub, before any chunk was sent (~80 ms of a 230 ms
 * single-device rollout). Both ends turn it off: the embedded broker on every
 * accepted socket, the agent's client on every connection it makes.
 *
 * Node has no getter for TCP_NODELAY, so the real sockets' setNoDelay calls are
 * watched (a spy that still calls through), and matched to the connection by port.
 */
import { Socket } from 'node:net';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { connectMqtt } from '../../agent/broker-client.js';
import { startBroker, type EmbeddedBroker } from '../../hub/broker.js';
import { waitFor } from '../helpers/env.js';

let broker: EmbeddedBroker | null = null;

afterEach(async () => {
  vi.restoreAllMocks();
  await broker?.close();
  broker = null;
});

/** Sockets that had setNoDelay(true) called on them from now on. */
function watchNoDelay(): Set<Socket> {
  const on = new Set<Socket>();
  const real = Socket.prototype.setNoDelay;
  vi.spyOn(Socket.prototype, 'setNoDelay').mockImplementation(function (this: Socket, noDelay?: boolean) {
    if (noDelay !== false) on.add(this);
    return real.call(this, noDelay);
  });
  return on;
}

const portOf = (url: string) => Number(new URL(url).port);

describe('MQTT sockets without Nagle delay', () => {
  it('Broker_sockets_send_without_nagle_delay: the embedded broker turns Nagle off on each accepted connection', async () => {
    const on = watchNoDelay();
    broker = await startBroker({ host: '127.0.0.1', port: 0 });
    const c = await mqtt.connectAsync(broker.url, { clientId: 'plain', reconnectPeriod: 0 });
    try {
      const mine = (c.stream as Socket).localPort;
      // The broker's end of this connection: its local port is the broker's, its peer is the client.
      const serverEnd = [...on].filter((s) => s.localPort === portOf(broker!.url) && s.remotePort === mine);
      expect(serverEnd).toHaveLength(1);
    } finally {
      await c.endAsync();
    }
  });

  it('Agent_client_sends_without_nagle_delay: the agent turns Nagle off on its connection to the broker', async () => {
    broker = await startBroker({ host: '127.0.0.1', port: 0 });
    const on = watchNoDelay();
    const dev = connectMqtt({ url: broker.url, clientId: 'dev-nodelay', connectTimeoutMs: 10_000, reconnectPeriodMs: 100 });
    try {
      await waitFor(() => dev.connected || undefined, 'the agent to connect', 30_000);
      // The client's end: its peer is the broker's port.
      const clientEnd = [...on].filter((s) => s.remotePort === portOf(broker!.url));
      expect(clientEnd).toHaveLength(1);
    } finally {
      await dev.end();
    }
  });
});
