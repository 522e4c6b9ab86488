/** Shared set-up for the agent's integration tests: keys, a real broker, the hub double, agents on temp dirs. */
import { request, Agent as HttpAgent } from 'node:http';
import { createAgent, type Agent, type AgentSeams } from '../../agent/agent.js';
import type { AgentOptionsInput } from '../../agent/options.js';
import { startBroker, type TestBroker, type TestBrokerOptions } from './agent-broker.js';
import { TestHub } from './agent-test-hub.js';
import { makeKeys, tempDir, waitFor } from './env.js';

export interface Fixture {
  keys: ReturnType<typeof makeKeys>;
  broker: TestBroker;
  hub: TestHub;
  agents: Agent[];
  newAgent(deviceId: string, extra?: Partial<AgentOptionsInput>, seams?: AgentSeams): Agent;
  close(): Promise<void>;
}

export async function fixture(brokerOptions: TestBrokerOptions = {}): Promise<Fixture> {
  const keys = makeKeys();
  const broker = await startBroker(undefined, brokerOptions);
  const hub = await TestHub.start(broker.url, keys);
  const agents: Agent[] = [];
  return {
    keys, broker, hub, agents,
    newAgent(deviceId, extra = {}, seams = {}) {
      const a = createAgent({
        deviceId, brokerUrl: broker.url, dataDir: tempDir('fleetcast-agent-data-'), rootPath: keys.rootPath,
        chunkTimeoutMs: 500, heartbeatMs: 0, reconnectPeriodMs: 100, ...extra,
      }, seams);
      agents.push(a);
      return a;
    },
    async close() {
      for (const a of agents) await a.stop();
      try { await hub.stop(); } finally { await broker.close(); }
    },
  };
}

/** Serving `bundleId`, the install committed (state persisted) and the installer idle. */
export async function waitInstalled(agent: Agent, bundleId: string): Promise<void> {
  await waitFor(() => {
    const s = agent.status();
    return s.active?.bundleId === bundleId && s.phase === 'committed';
  }, `agent ${agent.options.deviceId} to serve ${bundleId.slice(0, 12)}…`);
  // Post-commit housekeeping (staging clean-up) finishes before the installer goes idle.
  await agent.idle();
}

export interface HttpReply { status: number; headers: Record<string, string | string[] | undefined>; json: any }

const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 64 });

/**
 * One HTTP request on a keep-alive pool. Resolves on the response even when the
 * server closes the connection while the client still writes a refused body.
 */
export function http(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string | number> = {}, opts: { chunked?: boolean } = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request({ host: '127.0.0.1', port, method, path, agent: keepAlive, headers: {
      ...(body !== undefined && !opts.chunked ? { 'content-length': Buffer.byteLength(body) } : {}),
      'content-type': 'application/json', ...headers,
    } }, (res) => {
      answered = true;
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json: unknown = null;
        try { json = text ? JSON.parse(text) : null; } catch { json = text; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
      res.on('error', (e) => reject(e));
    });
    req.on('error', (e) => { if (!answered) reject(e); });
    if (body !== undefined) {
      if (opts.chunked) {
        const b = Buffer.from(body);
        for (let i = 0; i < b.length; i += 65536) req.write(b.subarray(i, i + 65536));
      } else req.write(body);
    }
    req.end();
  });
}
