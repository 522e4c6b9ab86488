/**
 * A throwaway PostgreSQL server for the tests of the PostgreSQL store and of several hubs sharing one:
 * `initdb` into a temporary folder, `pg_ctl start` on a free loopback port with its unix socket in that
 * folder too (never /var/run/postgresql, which a test machine may lack or share), trust authentication
 * for 127.0.0.1 only. When the tests run as root (CI containers) both programs run as the `postgres`
 * account through `runuser`, because initdb refuses to run as root; the folder is chowned to it.
 *
 * The server is found with needProgram: absent on a bare machine → `hasPostgres` is false and the
 * importing file's tests skip with the run's summary; under CI (FLEETCAST_REQUIRE_PROGRAMS) they fail.
 *
 * stop() is a clean shutdown (pg_ctl stop -m fast), kill() a crash (SIGKILL to the postmaster and all
 * its children at once, as a power cut or OOM kill would do), restart() starts it again on the same port and
 * data folder after either; close() stops it and deletes the folder. Servers a test forgot to close are
 * killed when the test process exits.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './env.js';
import { findProgram, needProgram } from './programs.js';

const INITDB = needProgram('initdb', 'postgresql');
const PG_CTL = INITDB ? findProgram('pg_ctl') : undefined;
/** True when initdb and pg_ctl are installed; false → the importing file's PostgreSQL tests skip. */
export const hasPostgres = INITDB !== undefined && PG_CTL !== undefined;

export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:PORT/fleetcast — the database made at start. */
  url: string;
  port: number;
  /** The folder holding the cluster (data/), its socket and its log. */
  dir: string;
  /** A URL for a new, empty database on this server (for a test that wants a fresh schema). */
  newDatabase(name?: string): Promise<string>;
  /** Clean shutdown: pg_ctl stop -m fast (open connections are closed by the server). */
  stop(): Promise<void>;
  /** Crash: SIGKILL to the postmaster and every backend; waits until they are gone. */
  kill(): Promise<void>;
  /** The same SIGKILL, sent synchronously (from inside a synchronous store call) without waiting; call kill() after to settle. */
  killNow(): void;
  /** Start again on the same port and data after stop() or kill() (stops first when running). */
  restart(): Promise<void>;
  /** Whether the postmaster is running (by its pid file and a signal 0). */
  running(): boolean;
  /** Stop and delete the folder. */
  close(): Promise<void>;
}

const live = new Set<{ pid: () => number | undefined; dir: string }>();
let exitHook = false;

function asRoot(): boolean { return process.getuid?.() === 0; }

/** Run a PostgreSQL program, as the postgres account when we are root (initdb and postgres refuse root). */
function run(program: string, args: string[], timeoutMs = 120_000): { status: number | null; out: string } {
  let cmd = program;
  let argv = args;
  if (asRoot()) {
    const runuser = findProgram('runuser');
    if (!runuser) throw new Error('running as root, PostgreSQL refuses root and runuser (util-linux) is absent to run it as the postgres account');
    cmd = runuser;
    argv = ['-u', 'postgres', '--', program, ...args];
  }
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch { return undefined; }
}

/** Running, and not a zombie: a killed postmaster is reparented to PID 1, which in a container may never reap it. */
function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try { process.kill(pid, 0); } catch { return false; }
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return true; }
}

/** The postmaster's children (backends, checkpointer…): each runs in a session of its own, so no group kill reaches them. */
function children(pid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try { entries = readdirSync('/proc'); } catch { return out; }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // Field 4 (after the parenthesised name, which may hold spaces) is the parent's pid.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** A crash: SIGKILL to the postmaster and every process it started, at once. */
function killGroup(pid: number): void {
  for (const p of [pid, ...children(pid)]) {
    try { process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
  }
}

function hookExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const s of live) {
      const pid = s.pid();
      if (pid !== undefined) killGroup(pid);
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
}

async function query(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
}

/** Initialise and start a PostgreSQL cluster in a temporary folder; `database` is created in it. */
export async function startPostgres(o: { database?: string } = {}): Promise<TestPostgres> {
  if (!INITDB || !PG_CTL) throw new Error('PostgreSQL (initdb, pg_ctl) is not installed: apt-get install -y postgresql');
  const dir = mkdtempSync(join(tmpdir(), 'fleetcast-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'postgres.log');
  if (asRoot()) {
    const { uid, gid } = postgresAccount();
    chownSync(dir, uid, gid);
  }
  const port = await freePort();
  const database = o.database ?? 'fleetcast';
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  // fsync off: a test's server holds nothing worth keeping past a machine crash, and it is much faster.
  const init = run(INITDB, ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--locale=C']);
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}):\n${init.out}`);
  let next = 0;
  const rec = { pid: () => postmasterPid(data), dir };
  live.add(rec);
  hookExit();

  async function start(): Promise<void> {
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`;
    const r = run(PG_CTL!, ['-D', data, '-l', log, '-o', opts, '-w', '-t', '60', 'start']);
    if (r.status !== 0) {
      let tail = '';
      try { tail = readFileSync(log, 'utf8').split('\n').slice(-20).join('\n'); } catch { /* no log yet */ }
      throw new Error(`pg_ctl start failed (${r.status}):\n${r.out}\n${tail}`);
    }
    await waitFor(async () => { await query(url('postgres'), 'SELECT 1'); return true; }, 'PostgreSQL accepting connections', 60_000, 100);
  }

  async function stop(): Promise<void> {
    if (!alive(postmasterPid(data))) return;
    const r = run(PG_CTL!, ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
    if (r.status !== 0 && alive(postmasterPid(data))) throw new Error(`pg_ctl stop failed (${r.status}):\n${r.out}`);
  }

  async function kill(): Promise<void> {
    const pid = postmasterPid(data);
    if (pid === undefined) return;
    const all = [pid, ...children(pid)];
    killGroup(pid);
    // Restart needs every backend gone (they hold the shared memory the new postmaster checks).
    await waitFor(() => all.every((p) => !alive(p)), 'the killed postmaster and its children to exit', 30_000, 50);
    // Its lock files stay behind; as the pid may be a zombie, the next postmaster would think it still runs.
    for (const f of [join(data, 'postmaster.pid'), join(dir, `.s.PGSQL.${port}.lock`), join(dir, `.s.PGSQL.${port}`)]) rmSync(f, { force: true });
  }

  await start();
  await query(url('postgres'), `CREATE DATABASE ${database}`);

  return {
    url: url(database),
    port,
    dir,
    async newDatabase(name?: string) {
      const db = name ?? `fleetcast_${process.pid}_${++next}`;
      await query(url('postgres'), `CREATE DATABASE ${db}`);
      return url(db);
    },
    stop,
    kill,
    killNow() { const pid = postmasterPid(data); if (pid !== undefined) killGroup(pid); },
    async restart() { await stop(); await start(); },
    running: () => alive(postmasterPid(data)),
    async close() {
      try { await stop(); } catch { const pid = postmasterPid(data); if (pid !== undefined) killGroup(pid); }
      live.delete(rec);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresAccount(): { uid: number; gid: number } {
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  const uid = Number(r.stdout.trim());
  const gid = Number(g.stdout.trim());
  if (r.status !== 0 || !Number.isInteger(uid)) throw new Error('running as root, but there is no postgres account to run PostgreSQL as (the postgresql package creates it)');
  return { uid, gid };
}
