/**
 * Background work below serving on the CPU (agent/thread-priority.ts, Linux): an inference thread runs nicer while it
 * holds no session (it is loading and checking a swap's next model, or has released its last one) and is back at its
 * own nice before it serves; libuv's threadpool (the agent's file writes, fsyncs, signature checks) runs nicer for
 * good, by the agent that owns its process (not by the simulator's agents sharing one). Where the process may not raise a thread back (no CAP_SYS_NICE, RLIMIT_NICE too low), nothing is lowered.
 * Nice values are read from the kernel (getpriority per thread id), never timed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../agent/agent.js';
import { createOrtRuntime } from '../../agent/runtime.js';
import { parseAgentOptions } from '../../agent/options.js';
import { createWorkerRuntime, type WorkerModelRuntime } from '../../agent/runtime-worker.js';
import { lowerPoolThreads, mayRestoreNice, poolSize, poolThreadIds } from '../../agent/thread-priority.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { fixture, type Fixture } from '../helpers/agent-fixture.js';
import { distFile } from '../helpers/build-cli.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { needProgram } from '../helpers/programs.js';

const runtimes: WorkerModelRuntime[] = [];
const agents: Agent[] = [];
let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => {
  for (const rt of runtimes) await rt.close();
  for (const a of agents) await a.stop();
  await fx?.close();
  cleanupTempDirs();
});

function modelFile(seed: number): { path: string; sha: string } {
  const bytes = buildMlp({ seed });
  const path = join(tempDir('fleetcast-thread-priority-'), 'model.onnx');
  writeFileSync(path, bytes);
  return { path, sha: createHash('sha256').update(bytes).digest('hex') };
}

const linux = process.platform === 'linux';

describe.skipIf(!linux)('background threads below serving (Linux)', () => {
  it('Loading_thread_runs_below_serving_until_it_serves: nicer while it holds no session, back before it serves, nicer again once its last session is released', async () => {
    const base = getPriority(0);
    // Where the thread could not be raised back before serving, it must never be lowered.
    const low = mayRestoreNice(base) ? Math.min(19, base + 10) : base;
    const rt = await createWorkerRuntime({ intraOpNumThreads: 1, backgroundNice: 10 });
    runtimes.push(rt);
    const [t0] = rt.threadIds;
    expect(t0).toBeGreaterThan(0);
    expect(getPriority(t0)).toBe(low); // started, holding nothing yet
    const v1 = modelFile(31);
    const v2 = modelFile(32);
    const a = await rt.load(v1.path, v1.sha);
    expect(getPriority(t0)).toBe(base); // serves at the agent's own nice
    const b = await rt.load(v2.path, v2.sha); // the swap's next model, on the other thread
    const t1 = rt.threadIds[1];
    expect(t1).toBeGreaterThan(0);
    expect(t1).not.toBe(t0);
    expect(getPriority(t1)).toBe(base); // loaded: ready to serve
    await a.release(); // the old model drained: its thread holds nothing
    expect(getPriority(t0)).toBe(low);
    expect(getPriority(t1)).toBe(base);
    const c = await rt.load(v1.path, v1.sha); // the next swap loads there, and it serves at the agent's nice
    expect(getPriority(t0)).toBe(base);
    expect(Object.keys(await c.run({ x: { type: 'float32', dims: [1, 4], data: new Float32Array(4) } }))).toEqual(['y']);
    await b.release();
    await c.release();
    expect([getPriority(t0), getPriority(t1)]).toEqual([low, low]);
  });

  it('Session_threads_serve_at_the_agents_nice: with intraOpNumThreads 2, the threads onnxruntime makes for a session (they run its predictions) are not left at the loading thread\'s lowered nice', async () => {
    const base = getPriority(0);
    const rt = await createWorkerRuntime({ intraOpNumThreads: 2, backgroundNice: 10 });
    runtimes.push(rt);
    const before = new Set(readdirSync('/proc/self/task').map(Number));
    const v1 = modelFile(34);
    const a = await rt.load(v1.path, v1.sha);
    // Threads made while the model loaded: the session's intra-op pool (made by the inference thread).
    const made = readdirSync('/proc/self/task').map(Number).filter((t) => !before.has(t));
    expect(made.length).toBeGreaterThan(0);
    expect(made.map((t) => getPriority(t))).toEqual(made.map(() => base));
    expect(getPriority(rt.threadIds[0])).toBe(base);
    await a.release();
  });

  it('Background_nice_0_changes_no_thread: an inference thread with backgroundNice 0 keeps the agent\'s nice at every step', async () => {
    const base = getPriority(0);
    const rt = await createWorkerRuntime({ intraOpNumThreads: 1, backgroundNice: 0 });
    runtimes.push(rt);
    const [t0] = rt.threadIds;
    expect(getPriority(t0)).toBe(base);
    const v1 = modelFile(33);
    const a = await rt.load(v1.path, v1.sha);
    expect(getPriority(t0)).toBe(base);
    await a.release();
    expect(getPriority(t0)).toBe(base);
    expect(await lowerPoolThreads(0)).toEqual([]);
  });

  it('Pool_threads_found_by_id: every libuv threadpool thread of this process is found, not the calling thread', async () => {
    const pool = await poolThreadIds();
    // libuv starts the whole pool at its first use: UV_THREADPOOL_SIZE threads (4 by default).
    expect(pool).toHaveLength(Number(process.env.UV_THREADPOOL_SIZE) || 4);
    for (const tid of pool) {
      expect(tid).not.toBe(process.pid);
      expect(existsSync(`/proc/self/task/${tid}`)).toBe(true); // threads of this process
    }
  });

  // In a process of its own: the pool is lowered once per process. One pool thread is held in an open() of a FIFO that
  // has no writer yet, so it cannot answer the first look; the FIFO's writer comes once lowerPoolThreads has returned.
  const MKFIFO = needProgram('mkfifo', 'coreutils');
  it.skipIf(!MKFIFO)('Busy_pool_thread_lowered_later: a threadpool thread busy through the first look (UV_THREADPOOL_SIZE 3) is lowered once it is free', () => {
    const fifo = join(tempDir('fleetcast-pool-fifo-'), 'fifo');
    execFileSync(MKFIFO!, [fifo]);
    const script = `
      import { open } from 'node:fs';
      import { getPriority } from 'node:os';
      import { lowerPoolThreads, poolThreadIds } from ${JSON.stringify(distFile('agent/thread-priority.js'))};
      const fifo = ${JSON.stringify(fifo)};
      await poolThreadIds(); // the whole pool started
      open(fifo, 'r', () => {}); // one pool thread waits here for a writer
      const first = await lowerPoolThreads(10);
      open(fifo, 'w', () => {}); // now it is free
      const low = Math.min(19, getPriority(0) + 10);
      let nices = [];
      for (let i = 0; i < 300; i++) { // up to 30 s
        nices = (await poolThreadIds()).map((t) => getPriority(t));
        if (nices.length === 3 && nices.every((n) => n === low)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(JSON.stringify({ first: first.length, nices, low }));
      process.exit(0);`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, UV_THREADPOOL_SIZE: '3' }, encoding: 'utf8', timeout: 50_000 })) as { first: number; nices: number[]; low: number };
    expect(out.first).toBe(2); // the busy one did not answer the first look
    expect(out.nices).toEqual([out.low, out.low, out.low]);
  }, 60_000);

  const UNSHARE = needProgram('unshare', 'util-linux');
  it.skipIf(!UNSHARE || process.getuid?.() !== 0)('Pool_ids_not_taken_from_another_pid_namespace: under unshare --pid without its own /proc, the pool\'s ids (the outer namespace\'s) are not used', () => {
    const script = `
      import { readlinkSync } from 'node:fs';
      import { poolThreadIds } from ${JSON.stringify(distFile('agent/thread-priority.js'))};
      console.log(JSON.stringify({ pid: process.pid, proc: readlinkSync('/proc/self'), pool: await poolThreadIds() }));`;
    const out = JSON.parse(execFileSync(UNSHARE!, ['--pid', '--fork', process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 50_000 })) as { pid: number; proc: string; pool: number[] };
    expect(String(out.pid)).not.toBe(out.proc); // the setting: /proc is the outer namespace's
    expect(out.pool).toEqual([]);
  }, 60_000);

  // Root of a user namespace of its own (a rootless container): CAP_SYS_NICE in CapEff, but the kernel checks it in the
  // initial namespace, so a thread raised there could not come back. Skipped where user namespaces cannot be made.
  const USERNS = !!UNSHARE && spawnSync(UNSHARE, ['--user', '--map-root-user', 'true']).status === 0;
  it.skipIf(!USERNS)('Userns_root_serves_at_its_nice: as root of its own user namespace (CAP_SYS_NICE shown, not usable), the inference thread serves at the agent\'s nice', () => {
    const model = modelFile(35);
    const script = `
      import { getPriority } from 'node:os';
      import { createWorkerRuntime } from ${JSON.stringify(distFile('agent/runtime-worker.js'))};
      const rt = await createWorkerRuntime({ intraOpNumThreads: 1, backgroundNice: 10 });
      const m = await rt.load(${JSON.stringify(model.path)}, ${JSON.stringify(model.sha)});
      console.log(JSON.stringify({ base: getPriority(0), serving: getPriority(rt.threadIds[0]) }));
      await m.release();
      await rt.close();`;
    // A file, not -e: the inference thread (a Worker) would inherit --input-type and fail to start.
    const file = join(tempDir('fleetcast-userns-'), 'serve.mjs');
    writeFileSync(file, script);
    const out = JSON.parse(execFileSync(UNSHARE!, ['--user', '--map-root-user', process.execPath, file], { encoding: 'utf8', timeout: 50_000 })) as { base: number; serving: number };
    expect(out.serving).toBe(out.base);
  }, 60_000);

  it('Pool_size_read_as_libuv_reads_it: UV_THREADPOOL_SIZE unset 4, 0 or not a number 1, capped at 1024', () => {
    expect([undefined, '6', '0', 'x', '3000', '-2'].map((v) => poolSize(v === undefined ? {} : { UV_THREADPOOL_SIZE: v }))).toEqual([4, 6, 1, 1, 1024, 1024]);
  });

  // These two run in this order: the pool is lowered once per process.
  it('Agent_sharing_its_process_leaves_the_pool_alone: an agent given its runtime (the simulator\'s many agents in one process) does not change the pool\'s nice', async () => {
    const base = getPriority(0);
    const a = createAgent({ deviceId: 'p1', dataDir: tempDir(), rootPath: fx.keys.rootPath, backgroundNice: 7 }, { runtime: createOrtRuntime({ intraOpNumThreads: 1 }) });
    agents.push(a);
    await a.start();
    for (const tid of await poolThreadIds()) expect(getPriority(tid)).toBe(base);
  });

  it('Pool_threads_run_below_serving: the agent that made its own runtime (the daemon) makes every threadpool thread backgroundNice nicer at start, once per process; the calling thread keeps its nice', async () => {
    const base = getPriority(0);
    const a = createAgent({ deviceId: 'p2', dataDir: tempDir(), rootPath: fx.keys.rootPath, backgroundNice: 7 });
    agents.push(a);
    await a.start();
    const pool = await poolThreadIds();
    for (const tid of pool) expect(getPriority(tid)).toBe(Math.min(19, base + 7));
    expect(getPriority(0)).toBe(base);
    // A second agent of the same process (another nice) finds the pool done: the first one's threads, unchanged.
    const b = createAgent({ deviceId: 'p3', dataDir: tempDir(), rootPath: fx.keys.rootPath, backgroundNice: 3 });
    agents.push(b);
    await b.start();
    expect([...await lowerPoolThreads(3)].sort()).toEqual([...pool].sort());
    for (const tid of pool) expect(getPriority(tid)).toBe(Math.min(19, base + 7));
  });
});

describe('backgroundNice option', () => {
  it('defaults to 10; 0 turns it off; a nice beyond 19 is refused', () => {
    const o = { deviceId: 'd1', dataDir: '/tmp/x', rootPath: '/tmp/root.json' };
    expect(parseAgentOptions(o).backgroundNice).toBe(10);
    expect(parseAgentOptions({ ...o, backgroundNice: 0 }).backgroundNice).toBe(0);
    expect(() => parseAgentOptions({ ...o, backgroundNice: 20 })).toThrow(/backgroundNice/);
  });
});
