/**
 * Watch an agent's chunk traffic from inside its broker connection (the
 * `connect` seam around the real MQTT client): which chunks it has received
 * with a valid hash, and what it had when it sent each chunk request. Fetch
 * tests assert invariants that hold however many legitimate timeout retries a
 * loaded machine causes: a request never asks for a chunk the agent already
 * had (nothing staged is fetched again), rather than an exact request list.
 */
import type { AgentOptions } from '../../agent/options.js';
import { connectMqtt, type BrokerClient } from '../../agent/broker-client.js';
import { verifyChunk } from '../../bundles/verify.js';
import type { Manifest } from '../../protocol/manifest.js';
import { decodeChunkRequest } from '../../protocol/messages.js';
import { parseTopic } from '../../protocol/topics.js';

export interface SentRequest { bundleId: string; chunks: number[]; had: number[] }

export interface ChunkWatch {
  /** Pass as the agent's seams (or spread into them). */
  connect: (o: AgentOptions) => BrokerClient;
  /** Every chunk request the agent sent, with the chunks it held at that moment. */
  readonly sent: SentRequest[];
  /** Requests that asked for a chunk the agent already held, as readable lines (empty when none). */
  refetched(): string[];
}

function topicOf(topic: string): ReturnType<typeof parseTopic> | undefined {
  try { return parseTopic(topic); } catch { return undefined; }
}

export function chunkWatch(manifestOf: (bundleId: string) => Manifest | undefined): ChunkWatch {
  const have = new Map<string, Set<number>>();
  const sent: SentRequest[] = [];
  const connect = (o: AgentOptions): BrokerClient => {
    const real = connectMqtt({ url: o.brokerUrl!, clientId: o.deviceId, reconnectPeriodMs: o.reconnectPeriodMs, connectTimeoutMs: o.connectTimeoutMs });
    return {
      get connected() { return real.connected; },
      subscribe: (f) => real.subscribe(f),
      unsubscribe: (f) => real.unsubscribe(f),
      onConnect: (h) => real.onConnect(h),
      onDisconnect: (h) => real.onDisconnect(h),
      end: () => real.end(),
      publish(topic, payload, opts) {
        const t = topicOf(topic);
        if (t?.kind === 'device' && t.channel === 'chunk-req') {
          const r = decodeChunkRequest(payload);
          sent.push({ bundleId: r.bundleId, chunks: [...r.chunks], had: [...(have.get(r.bundleId) ?? [])].sort((a, b) => a - b) });
        }
        return real.publish(topic, payload, opts);
      },
      onMessage(h) {
        real.onMessage((topic, payload) => {
          h(topic, payload);
          // Recorded after the agent handled it (synchronously), so this set never runs ahead of the agent's own.
          const t = topicOf(topic);
          const m = t?.kind === 'chunk' ? manifestOf(t.bundleId) : undefined;
          if (t?.kind === 'chunk' && m && verifyChunk(m, t.index, payload)) {
            const s = have.get(t.bundleId) ?? new Set<number>();
            s.add(t.index);
            have.set(t.bundleId, s);
          }
        });
      },
    };
  };
  return {
    connect,
    sent,
    refetched: () => sent.flatMap((r) => {
      const again = r.chunks.filter((c) => r.had.includes(c));
      return again.length ? [`${r.bundleId.slice(0, 12)}: asked again for ${again.join(', ')} it already had`] : [];
    }),
  };
}
