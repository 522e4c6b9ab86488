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
 */
import { createHash } from 'node:crypto';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { hubError } from '../errors.js';
import type { Db, RunResult, Stmt } from './db.js';
import { scriptToPostgres, toPostgres, type PgStatement } from './pg-sql.js';
import type { PgReply, PgRequest, PgWorkerData } from './pg-worker.js';

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
  #worker: Worker;
  #port: MessagePort;
  #signal: Int32Array;
  #next = 0;
  #depth = 0;
  #open = true;
  #waitMs: number;
  #keys = new Map<string, string[]>();
  #stmts = new Map<string, { st: PgStatement; name: string }>();

  private constructor(url: string, o: Required<PgDbOptions>) {
    this.url = url;
    const sab = new SharedArrayBuffer(4);
    this.#signal = new Int32Array(sab);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    const data: PgWorkerData = { url, signal: sab, port: port2, statementTimeoutMs: o.statementTimeoutMs, connectTimeoutMs: o.connectTimeoutMs };
    this.#worker = new Worker(WORKER_URL, { workerData: data, transferList: [port2] });
    this.#worker.unref();
    // A statement never waits longer than the server would let it run, plus a connection attempt.
    this.#waitMs = o.statementTimeoutMs + o.connectTimeoutMs + 5_000;
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
    void this.#worker.terminate();
    this.#port.close();
  }

  #call(req: PgRequest): PgReply {
    if (!this.#open) throw hubError('HUB_ERR_STORE', 'the PostgreSQL store is closed');
    const id = ++this.#next;
    this.#port.postMessage({ ...req, id });
    const end = Date.now() + this.#waitMs;
    for (;;) {
      // Cleared before the port is read: the worker posts its answer before it raises the word, so an
      // answer that lands after this read also wakes the wait below (no lost wake-up).
      Atomics.store(this.#signal, 0, 0);
      for (let m = receiveMessageOnPort(this.#port); m; m = receiveMessageOnPort(this.#port)) {
        const r = m.message as PgReply;
        // An answer to a request that timed out earlier is dropped: only this id answers this call.
        if (r.id === id) return r;
      }
      const left = end - Date.now();
      if (left <= 0) return { id, ok: false, unavailable: true, message: `no answer from PostgreSQL within ${this.#waitMs} ms` };
      Atomics.wait(this.#signal, 0, 0, left);
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
    try { this.#call({ id: 0, op: 'close' }); } catch { /* closing anyway */ }
    this.#stop();
  }
}
