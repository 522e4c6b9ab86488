/**
 * The PostgreSQL Db (hub/db/db.ts): synchronous, like better-sqlite3, over a worker thread that owns
 * the connection (hub/db/pg-worker.ts). A statement posts its text and values to the worker and the
 * hub's thread waits (Atomics.wait on a shared word) until the worker has the rows, then takes them
 * with receiveMessageOnPort. The event loop is blocked for one loopback round trip per statement —
 * the price of keeping every multi-row change one synchronous transaction, in which nothing else can
 * interleave, on both engines (measured in the note of the PostgreSQL store).
 *
 * Statements are rewritten from SQLite's dialect once, at prepare (hub/db/pg-sql.ts), and run as
 * named prepared statements. A connection failure is HUB_ERR_STORE_UNAVAILABLE (HTTP 503).
 *
 * A worker that dies (an uncaught error, terminated) is noticed during the wait — by the DEAD word it
 * sets as it exits, or by its BEAT word falling silent (hub/db/pg-worker-words.ts) — and the statement
 * fails at once with HUB_ERR_STORE_UNAVAILABLE instead of blocking until its timeout; the next statement
 * starts a new worker, which connects as after an outage.
 */
import { createHash } from 'node:crypto';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { hubError } from '../errors.js';
import type { Db, RunResult, Stmt } from './db.js';
import { scriptToPostgres, toPostgres, type PgStatement } from './pg-sql.js';
import type { PgReply, PgRequest, PgWorkerData } from './pg-worker.js';
import { DEAD_AFTER_MS, WORD, WORDS } from './pg-worker-words.js';

const WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('../../hub/dist/db/pg-worker.js', import.meta.url) : new URL('./pg-worker.js', import.meta.url);

export interface PgDbOptions {
  /** Longest a statement may run on the server (statement_timeout) before it is cancelled. */
  statementTimeoutMs?: number;
  /** Longest a connection attempt may take (at start, and on each retry while PostgreSQL is away). */
  connectTimeoutMs?: number;
}

/** postgres://user:secret@host/db → postgres://user@host/db, for messages and logs. */
export function redactUrl(url: string): string {
  try { const u = new URL(url); u.password = ''; return u.toString(); } catch { return 'the --store URL'; }
}

function toBuffers(v: unknown): unknown {
  return v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
}

function rowsWithBuffers(rows: unknown[]): unknown[] {
  for (const r of rows as Record<string, unknown>[]) for (const k in r) r[k] = toBuffers(r[k]);
  return rows;
}

class PgStmt implements Stmt {
  #pluck = false;
  constructor(private readonly db: PgDb, private readonly st: PgStatement, private readonly name: string) {}

  #values(params: unknown[]): unknown[] {
    if (this.st.names) {
      const o = (params[0] ?? {}) as Record<string, unknown>;
      return this.st.names.map((n) => o[n] ?? null);
    }
    return params.map((p) => (p === undefined ? null : typeof p === 'boolean' ? (p ? 1 : 0) : p));
  }

  #query(params: unknown[]) {
    return this.db.query(this.st.text, this.#values(params), this.name);
  }

  pluck(on = true): Stmt { this.#pluck = on; return this; }

  run(...params: unknown[]): RunResult {
    const r = this.#query(params);
    return { changes: r.rowCount, lastInsertRowid: 0 };
  }

  get(...params: unknown[]): unknown {
    const r = this.#query(params);
    const row = r.rows[0] as Record<string, unknown> | undefined;
    if (row === undefined) return undefined;
    return this.#pluck ? row[r.fields[0]] : row;
  }

  all(...params: unknown[]): unknown[] {
    const r = this.#query(params);
    return this.#pluck ? (r.rows as Record<string, unknown>[]).map((row) => row[r.fields[0]]) : r.rows;
  }

  iterate(...params: unknown[]): IterableIterator<unknown> {
    return this.all(...params)[Symbol.iterator]();
  }
}

export class PgDb implements Db {
  readonly engine = 'postgres' as const;
  readonly url: string;
  #worker!: Worker;
  #port!: MessagePort;
  #signal!: Int32Array;
  /** False once the worker is known dead: the next statement starts another. */
  #alive = false;
  #opts: Required<PgDbOptions>;
  #next = 0;
  #depth = 0;
  #open = true;
  #waitMs: number;
  #keys = new Map<string, string[]>();
  #stmts = new Map<string, { st: PgStatement; name: string }>();

  private constructor(url: string, o: Required<PgDbOptions>) {
    this.url = url;
    this.#opts = o;
    this.#spawn();
    // A statement never waits longer than the server would let it run, plus a connection attempt.
    this.#waitMs = o.statementTimeoutMs + o.connectTimeoutMs + 5_000;
  }

  /** A new worker thread with its own port and shared words (a dead one's may hold a late DEAD). */
  #spawn(): void {
    const sab = new SharedArrayBuffer(WORDS * 4);
    this.#signal = new Int32Array(sab);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    // Dead inside a transaction: the server rolled it back, so the new worker refuses the rest of it.
    const data: PgWorkerData = { url: this.url, signal: sab, port: port2, statementTimeoutMs: this.#opts.statementTimeoutMs, connectTimeoutMs: this.#opts.connectTimeoutMs, lostInTx: this.#depth > 0 };
    this.#worker = new Worker(WORKER_URL, { workerData: data, transferList: [port2] });
    this.#worker.on('error', () => { /* noticed by the waiting thread through the DEAD word */ });
    this.#worker.unref();
    this.#alive = true;
  }

  #buried(): void {
    this.#alive = false;
    void this.#worker.terminate();
    this.#port.close();
  }

  /** Test seam: stop the worker thread as a crash would, without telling this side; resolves once it is gone. */
  async terminateWorkerForTest(): Promise<void> {
    await this.#worker.terminate();
  }

  /** Connect (blocking); HUB_ERR_STORE_UNAVAILABLE when PostgreSQL cannot be reached. */
  static connect(url: string, o: PgDbOptions = {}): PgDb {
    const db = new PgDb(url, { statementTimeoutMs: o.statementTimeoutMs ?? 30_000, connectTimeoutMs: o.connectTimeoutMs ?? 5_000 });
    const r = db.#call({ id: 0, op: 'connect' });
    if (!r.ok) {
      db.#stop();
      throw hubError('HUB_ERR_STORE_UNAVAILABLE', `cannot connect to PostgreSQL at ${redactUrl(url)}: ${r.message}`);
    }
    return db;
  }

  get open(): boolean { return this.#open; }
  get inTransaction(): boolean { return this.#depth > 0; }

  #stop(): void {
    this.#open = false;
    this.#buried();
  }

  #call(req: PgRequest): PgReply {
    if (!this.#open) throw hubError('HUB_ERR_STORE', 'the PostgreSQL store is closed');
    // A worker that exited while nothing waited on it has left its DEAD word set.
    if (this.#alive && Atomics.load(this.#signal, WORD.DEAD) !== 0) this.#buried();
    if (!this.#alive) this.#spawn();
    const id = ++this.#next;
    this.#port.postMessage({ ...req, id });
    const end = Date.now() + this.#waitMs;
    let beat = Atomics.load(this.#signal, WORD.BEAT);
    let beatAt = Date.now();
    for (;;) {
      // Cleared before the port is read: the worker posts its answer before it raises the word, so an
      // answer that lands after this read also wakes the wait below (no lost wake-up).
      Atomics.store(this.#signal, WORD.ANSWER, 0);
      for (let m = receiveMessageOnPort(this.#port); m; m = receiveMessageOnPort(this.#port)) {
        const r = m.message as PgReply;
        // An answer to a request that timed out earlier is dropped: only this id answers this call.
        if (r.id === id) return r;
      }
      const now = Date.now();
      const b = Atomics.load(this.#signal, WORD.BEAT);
      if (b !== beat) { beat = b; beatAt = now; }
      // Silence counts only once the worker has beaten: a worker still starting on a loaded machine has the full wait.
      const dead = Atomics.load(this.#signal, WORD.DEAD) !== 0 ? 'the PostgreSQL worker thread exited'
        : b > 0 && now - beatAt > DEAD_AFTER_MS ? `the PostgreSQL worker thread stopped responding for ${DEAD_AFTER_MS} ms` : undefined;
      if (dead) {
        this.#buried();
        return { id, ok: false, unavailable: true, message: `${dead}; the next statement starts a new one` };
      }
      const left = end - now;
      if (left <= 0) return { id, ok: false, unavailable: true, message: `no answer from PostgreSQL within ${this.#waitMs} ms` };
      // In slices, to look at DEAD and BEAT between them.
      Atomics.wait(this.#signal, WORD.ANSWER, 0, Math.min(left, 1_000));
    }
  }

  /** Run one statement (already in PostgreSQL's dialect); throws the coded errors. */
  query(text: string, values: unknown[], name?: string, tx?: 'begin' | 'end'): { rows: unknown[]; rowCount: number; fields: string[] } {
    const r = this.#call({ id: 0, op: 'query', text, values, ...(name ? { name } : {}), ...(tx ? { tx } : {}) });
    if (r.ok) return { rows: rowsWithBuffers(r.rows), rowCount: r.rowCount, fields: r.fields };
    if (r.unavailable) throw hubError('HUB_ERR_STORE_UNAVAILABLE', `PostgreSQL at ${redactUrl(this.url)} is unreachable: ${r.message}`);
    const err = new Error(r.message) as Error & { code?: string };
    if (r.code) err.code = r.code;
    throw err;
  }

  #primaryKey(table: string): string[] {
    let k = this.#keys.get(table);
    if (!k) {
      k = (this.query(`SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`, [table]).rows as { name: string }[]).map((r) => r.name);
      if (k.length === 0) throw new Error(`INSERT OR REPLACE into ${table}, which has no primary key`);
      this.#keys.set(table, k);
    }
    return k;
  }

  prepare(sql: string): Stmt {
    let t = this.#stmts.get(sql);
    if (!t) {
      const st = toPostgres(sql, (table) => this.#primaryKey(table));
      t = { st, name: `fc_${createHash('sha1').update(st.text).digest('hex').slice(0, 20)}` };
      this.#stmts.set(sql, t);
    }
    // A new object per prepare (pluck() sets a flag on it), sharing the translation.
    return new PgStmt(this, t.st, t.name);
  }

  exec(sql: string): this {
    this.query(scriptToPostgres(sql), []);
    return this;
  }

  transaction<T>(fn: (...args: any[]) => T): (...args: any[]) => T {
    const db = this;
    return function (this: unknown, ...args: unknown[]): T {
      const depth = db.#depth;
      if (depth === 0) db.query('BEGIN', [], undefined, 'begin');
      else db.query(`SAVEPOINT fc_${depth}`, []);
      db.#depth++;
      let result: T;
      try {
        result = fn.apply(this, args);
      } catch (e) {
        db.#depth--;
        try {
          if (depth === 0) db.query('ROLLBACK', [], undefined, 'end');
          else db.query(`ROLLBACK TO SAVEPOINT fc_${depth}`, []);
        } catch { /* the first error is the one to report */ }
        throw e;
      }
      db.#depth--;
      if (depth === 0) db.query('COMMIT', [], undefined, 'end');
      else db.query(`RELEASE SAVEPOINT fc_${depth}`, []);
      return result;
    };
  }

  pragma(source: string, options: { simple?: boolean } = {}): unknown {
    // data_version: changes when any connection commits (callers poll it to notice other writers).
    if (/^\s*data_version\s*$/i.test(source)) {
      const n = (this.query('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()', []).rows[0] as { n: number }).n;
      return options.simple ? n : [{ data_version: n }];
    }
    // SQLite's tuning pragmas (journal_mode, synchronous, busy_timeout…) have no meaning here.
    return options.simple ? undefined : [];
  }

  close(): void {
    if (!this.#open) return;
    if (this.#alive) try { this.#call({ id: 0, op: 'close' }); } catch { /* closing anyway */ }
    this.#stop();
  }
}
