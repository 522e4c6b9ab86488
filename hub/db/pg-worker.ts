/**
 * The thread that owns the hub's PostgreSQL connection (hub/db/pg-db.ts is the other side). The hub's
 * thread posts one request at a time on its port and blocks on a shared word; this thread runs the
 * query on node-postgres, posts the answer and wakes it.
 *
 * A lost connection is re-made on the next request, and retried every second meanwhile (so the hub
 * recovers by itself when PostgreSQL returns). Lost inside a transaction, the server has rolled the
 * transaction back: every further statement of it fails until the hub's side ends it, so nothing of it
 * runs outside the transaction (half-written) on a new connection.
 */
import pg from 'pg';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { BEAT_MS, WORD } from './pg-worker-words.js';

export type PgRequest =
  | { id: number; op: 'connect' }
  | { id: number; op: 'close' }
  | { id: number; op: 'query'; text: string; values: unknown[]; name?: string; tx?: 'begin' | 'end' };

export type PgReply =
  | { id: number; ok: true; rows: unknown[]; rowCount: number; fields: string[] }
  | { id: number; ok: false; unavailable: boolean; message: string; code?: string };

export interface PgWorkerData { url: string; signal: SharedArrayBuffer; port: MessagePort; statementTimeoutMs: number; connectTimeoutMs: number; lostInTx: boolean }

// BIGINT (int8) and NUMERIC (what SUM and AVG of BIGINT give) come back as JS numbers, as SQLite's do;
// the hub's integers are millisecond times, counters and sizes, far below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));
pg.types.setTypeParser(1700, (v: string) => Number(v));

const data = workerData as PgWorkerData;
const signal = new Int32Array(data.signal);
const port = data.port;

let client: pg.Client | null = null;
let connecting: Promise<pg.Client> | null = null;
let inTx = false;
// A thread started after the previous one died inside a transaction: the server rolled that transaction
// back with the old connection, so its remaining statements must fail until the hub's side ends it.
let lostInTx = data.lostInTx;
let retry: NodeJS.Timeout | undefined;
let closing = false;

/** Errors that mean the connection (not the statement) failed: no SQLSTATE, or class 08 / 57P (shutdown). */
function lost(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  const severity = (e as { severity?: string }).severity;
  if (code && /^(08|57P)/.test(code)) return true;
  return severity === undefined;
}

function drop(c: pg.Client): void {
  if (client !== c) return;
  client = null;
  if (inTx) lostInTx = true;
  c.end().catch(() => {});
  scheduleRetry();
}

function scheduleRetry(): void {
  if (retry || closing) return;
  retry = setInterval(() => {
    if (client || connecting) return;
    connect().then(() => { clearInterval(retry); retry = undefined; }, () => { /* still down; next second */ });
  }, 1_000);
  retry.unref();
}

function connect(): Promise<pg.Client> {
  if (client) return Promise.resolve(client);
  connecting ??= (async () => {
    const c = new pg.Client({ connectionString: data.url, connectionTimeoutMillis: data.connectTimeoutMs, statement_timeout: data.statementTimeoutMs, application_name: 'fleetcast-hub' });
    c.on('error', () => drop(c));
    c.on('end', () => drop(c));
    try {
      await c.connect();
    } catch (e) {
      c.end().catch(() => {});
      throw e;
    }
    client = c;
    return c;
  })().finally(() => { connecting = null; });
  return connecting;
}

function reply(r: PgReply): void {
  port.postMessage(r);
  Atomics.store(signal, WORD.ANSWER, 1);
  Atomics.notify(signal, WORD.ANSWER);
}

function failure(id: number, e: unknown): PgReply {
  const err = e as { message?: string; code?: string };
  return { id, ok: false, unavailable: lost(e), message: err.message ?? String(e), ...(err.code ? { code: err.code } : {}) };
}

async function handle(m: PgRequest): Promise<PgReply> {
  if (m.op === 'close') {
    closing = true;
    if (retry) clearInterval(retry);
    const c = client;
    client = null;
    await c?.end().catch(() => {});
    return { id: m.id, ok: true, rows: [], rowCount: 0, fields: [] };
  }
  if (m.op === 'connect') {
    try { await connect(); return { id: m.id, ok: true, rows: [], rowCount: 0, fields: [] }; } catch (e) { scheduleRetry(); return failure(m.id, e); }
  }
  if (lostInTx) {
    if (m.tx !== 'end') return { id: m.id, ok: false, unavailable: true, message: 'the connection to PostgreSQL was lost inside a transaction, which the server rolled back' };
    lostInTx = false;
    inTx = false;
    return /^\s*ROLLBACK/i.test(m.text) ? { id: m.id, ok: true, rows: [], rowCount: 0, fields: [] } : { id: m.id, ok: false, unavailable: true, message: 'the connection to PostgreSQL was lost before COMMIT; the transaction was rolled back' };
  }
  let c: pg.Client;
  try { c = await connect(); } catch (e) { scheduleRetry(); return failure(m.id, e); }
  try {
    // Structured cloning turned Buffers into plain Uint8Arrays; node-postgres sends Buffers as bytea.
    const values = m.values.map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
    const r = await c.query(m.name ? { name: m.name, text: m.text, values } : { text: m.text, values });
    if (m.tx === 'begin') inTx = true;
    if (m.tx === 'end') inTx = false;
    const res = Array.isArray(r) ? r[r.length - 1] : r;
    return { id: m.id, ok: true, rows: res?.rows ?? [], rowCount: res?.rowCount ?? 0, fields: (res?.fields ?? []).map((f: { name: string }) => f.name) };
  } catch (e) {
    if (lost(e)) drop(c);
    if (m.tx === 'end') { inTx = false; lostInTx = false; }
    return failure(m.id, e);
  }
}

process.on('exit', () => {
  Atomics.store(signal, WORD.DEAD, 1);
  Atomics.store(signal, WORD.ANSWER, 1);
  Atomics.notify(signal, WORD.ANSWER);
});
setInterval(() => Atomics.add(signal, WORD.BEAT, 1), BEAT_MS).unref();
Atomics.add(signal, WORD.BEAT, 1);

// One request at a time: the hub's thread is blocked until it has the answer.
port.on('message', (m: PgRequest) => { void handle(m).then(reply, (e) => reply(failure(m.id, e))); });
parentPort?.on('message', () => {});
