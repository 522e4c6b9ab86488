/**
 * What the agent promises about its transfer and its predict API, checked on
 * the real system: hub/hub.ts with authentication on, the compiled agent
 * enrolled with its own credential file (test/helpers/real-fleet.ts).
 *
 * Chunks are corrupted and lost by a man in the middle inside the real broker
 * (aedes' authorizeForward, per device), after the broker's ACL let the hub's
 * publish through: devices cannot publish on chunk topics, and the hub's own
 * credential is fresh at each start, so the broker is where a test can stand.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll } from '../helpers/agent-process.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { expectServing, INPUT, RealFleet, status, stopAgent, type WireEvent } from '../helpers/real-fleet.js';

let fleet: RealFleet;

beforeAll(async () => { fleet = await RealFleet.start({ chunkExpectWaitMs: 0 }); }, 120_000);

afterAll(async () => {
  killAll();
  await fleet?.close();
  cleanupTempDirs();
});

/**
 * Chunks the device asked for after it had verified them. Which ones it had verified follows
 * from the wire alone, with no timing: it processes chunks in the order the broker forwards
 * them, so a progress report saying "have h" covers the first h distinct chunks forwarded
 * intact; its later requests (sent after that report, on the same connection) must not name
 * them. Re-asking for a chunk still missing, or delivered corrupt, is a legitimate retry.
 */
function refetchedVerified(log: WireEvent[], bundleId: string): number[] {
  const intactOrder: number[] = [];
  let verified = new Set<number>();
  const bad: number[] = [];
  for (const e of log) {
    if ('request' in e) {
      for (const i of e.request) if (verified.has(i)) bad.push(i);
    } else if ('progress' in e) {
      if (e.bundleId === bundleId) verified = new Set(intactOrder.slice(0, e.progress));
    } else if (e.bundleId === bundleId && e.intact && !intactOrder.includes(e.chunk)) intactOrder.push(e.chunk);
  }
  return bad;
}

describe('chunk transfer through the real hub and broker', () => {
  it('asks again for a chunk corrupted in transit and a chunk lost in transit, never for one it verified, and installs the signed bytes', async () => {
    const b = await fleet.publish(1, { chunkSize: 1024, model: { seed: 21, padFloats: 6000 } });
    const n = b.chunkHashes.length;
    expect(n).toBeGreaterThan(8);
    const corrupt = new Set([1, n - 2]);
    const lost = new Set([3, n - 1]);
    const device = 'real-chunks';
    const done = new Set<number>();
    fleet.tamper(device, (i, payload) => {
      if (done.has(i)) return undefined;
      if (corrupt.has(i)) { done.add(i); const p = Buffer.from(payload); p[p.length >> 1] ^= 0xff; return p; }
      if (lost.has(i)) { done.add(i); return null; }
      return undefined;
    });
    await fleet.deploy(b, [device]);
    const a = fleet.spawn(device, tempDir('fleetcast-real-chunks-'), { FLEETCAST_AGENT_CHUNK_TIMEOUT_MS: '3000' });
    await expectServing(await a.port(), b.bundleId, 'committed');
    await fleet.registrySays(device, b.bundleId, 'committed');
    fleet.tamper(device, null);

    // The broker really did deliver the two corrupt chunks and drop the two lost ones.
    const log = fleet.wire.get(device)!;
    const chunks = log.filter((e): e is Extract<WireEvent, { chunk: number }> => 'chunk' in e && e.bundleId === b.bundleId);
    expect(chunks.filter((e) => !e.intact && !e.dropped).map((e) => e.chunk).sort()).toEqual([...corrupt].sort());
    expect(chunks.filter((e) => e.dropped).map((e) => e.chunk).sort()).toEqual([...lost].sort());
    // Each was asked for again (it was missing, or failed its hash)…
    const requests = log.filter((e): e is { request: number[] } => 'request' in e).map((e) => e.request);
    const again = new Set(requests.slice(1).flat());
    for (const i of [...corrupt, ...lost]) expect(again.has(i), `chunk ${i} asked for again`).toBe(true);
    // …and no chunk that had reached it intact was.
    expect(log.some((e) => 'progress' in e && e.progress > 0), 'progress reports seen').toBe(true);
    expect(refetchedVerified(log, b.bundleId)).toEqual([]);
    expect((await stopAgent(a)).code).toBe(0);
  }, 120_000);
});

/** One HTTP/1.1 exchange per call on a raw keep-alive socket (so the test decides when bytes are sent). */
class RawHttp {
  readonly #s: Socket;
  #buf = Buffer.alloc(0);
  #waiting: (() => void) | null = null;
  private constructor(s: Socket) {
    this.#s = s;
    s.on('data', (d: Buffer) => { this.#buf = Buffer.concat([this.#buf, d]); this.#waiting?.(); });
  }
  static open(port: number): Promise<RawHttp> {
    return new Promise((resolve, reject) => { const s = connect(port, '127.0.0.1', () => resolve(new RawHttp(s))); s.once('error', reject); });
  }
  /** Write a request; resolves once the bytes are handed to the kernel. */
  send(method: string, path: string, body = ''): Promise<void> {
    const head = `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
    return new Promise((resolve, reject) => this.#s.write(head + body, (e) => (e ? reject(e) : resolve())));
  }
  async reply(): Promise<{ status: number; json: any }> {
    for (;;) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = this.#buf.subarray(0, end).toString('latin1');
        const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (this.#buf.length >= end + 4 + len) {
          const body = this.#buf.subarray(end + 4, end + 4 + len).toString('utf8');
          this.#buf = this.#buf.subarray(end + 4 + len);
          return { status: Number(head.split(' ')[1]), json: JSON.parse(body) };
        }
      }
      await new Promise<void>((r) => { this.#waiting = r; });
      this.#waiting = null;
    }
  }
  close(): void { this.#s.destroy(); }
}

describe('bounded predict queue of the compiled agent', () => {
  it('answers exactly the requests beyond maxConcurrentPredictions with 429 AGENT_ERR_BUSY', async () => {
    const LIMIT = 2;
    const SENT = 8;
    const b = await fleet.publish(2, { model: { seed: 22 } });
    const device = 'real-busy';
    await fleet.deploy(b, [device]);
    const a = fleet.spawn(device, tempDir('fleetcast-real-busy-'), { FLEETCAST_AGENT_MAX_CONCURRENT_PREDICTIONS: String(LIMIT) });
    const port = await a.port();
    await expectServing(port, b.bundleId, 'committed');
    const conns = await Promise.all(Array.from({ length: SENT }, () => RawHttp.open(port)));
    // Each connection accepted and idle on keep-alive before the burst.
    for (const c of conns) { await c.send('GET', '/v1/status'); expect((await c.reply()).status).toBe(200); }
    const busyBefore = (await status(port)).predictions.busy;
    // Stopped, the agent cannot answer any request before all of them are in its sockets: on
    // SIGCONT one event-loop turn reads them all, and onnxruntime-node runs each inference from
    // setImmediate, after that turn, so LIMIT predictions are running when the rest arrive.
    a.child.kill('SIGSTOP');
    try {
      await Promise.all(conns.map((c) => c.send('POST', '/v1/predict', INPUT)));
    } finally {
      a.child.kill('SIGCONT');
    }
    const replies = await Promise.all(conns.map((c) => c.reply()));
    for (const c of conns) c.close();
    const ok = replies.filter((r) => r.status === 200);
    const busy = replies.filter((r) => r.status === 429);
    expect(ok.length).toBe(LIMIT);
    expect(busy.length).toBe(SENT - LIMIT);
    for (const r of ok) expect(r.json.model.bundleId).toBe(b.bundleId);
    for (const r of busy) expect(r.json.error.code).toBe('AGENT_ERR_BUSY');
    const s = await status(port);
    expect(s.predictions.busy - busyBefore).toBe(SENT - LIMIT);
    expect(s.predictions.running).toBe(0);
    // Below the limit again, it serves.
    await expectServing(port, b.bundleId, 'committed');
    expect((await stopAgent(a)).code).toBe(0);
  }, 120_000);
});
