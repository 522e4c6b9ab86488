/** Start real hubs on loopback for the integration suites, and build real bundles for them. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp, type MlpOptions } from '../../bundle-build/onnx-build.js';
import type { KeyPair } from '../../signing/ed25519.js';
import { engineOf } from '../../hub/db/db.js';
import { startHub, type Hub } from '../../hub/hub.js';
import type { HubOptionsInput } from '../../hub/options.js';
import { makeKeys, tempDir } from './env.js';
import { silentLogger } from './hub-fixtures.js';

export type TestKeys = ReturnType<typeof makeKeys>;

export async function startTestHub(keys: TestKeys, over: Partial<HubOptionsInput> = {}, seams: { now?: () => number } = {}): Promise<Hub> {
  const dataDir = over.dataDir ?? tempDir('fleetcast-hub-');
  const store = over.storeUrl === undefined ? await storeFromEnv(dataDir) : {};
  return startHub({ dataDir, keysDir: keys.dir, mqttPort: 0, httpPort: 0, mqttClientId: `hub-${process.pid}-${Math.random().toString(16).slice(2, 8)}`, insecureDemo: true, ...store, ...over }, { logger: silentLogger(), ...seams });
}

/** The database each data folder's hub got under FLEETCAST_TEST_PG: a hub restarted on the same folder finds its data again. */
const databaseOf = new Map<string, string>();

/**
 * FLEETCAST_TEST_PG=postgres://USER@HOST:PORT/DB runs any suite's hubs on PostgreSQL instead of SQLite: each
 * hub gets a fresh database on that server (the same suites, parameterised by engine, not copied), but a
 * hub started again on a data folder given before gets that folder's database, as it would find its hub.db.
 */
async function storeFromEnv(dataDir: string): Promise<{ storeUrl?: string }> {
  const admin = process.env.FLEETCAST_TEST_PG;
  if (!admin) return {};
  const known = databaseOf.get(dataDir);
  if (known) return { storeUrl: known };
  const name = `fc_${process.pid}_${Math.random().toString(16).slice(2, 10)}`;
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try { await c.query(`CREATE DATABASE ${name}`); } finally { await c.end(); }
  const u = new URL(admin);
  u.pathname = `/${name}`;
  databaseOf.set(dataDir, u.toString());
  return { storeUrl: u.toString() };
}

export async function makeBundle(releaseKeys: KeyPair[], o: { name?: string; version?: number; chunkSize?: number; model?: MlpOptions } = {}) {
  const out = join(tempDir('fleetcast-bundle-'), `${o.name ?? 'churn'}-${o.version ?? 1}.fcb`);
  // A NaN model is the deliberately bad bundle of gate tests: the devices, not the build, must refuse it.
  return buildBundle({ model: buildMlp(o.model ?? { seed: 7 }), name: o.name ?? 'churn', version: o.version ?? 1, releaseKeys, out, ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}), smokeCheck: !o.model?.nanOutput });
}

/** The bundle ids whose bytes the hub keeps: files in dataDir/blobs on SQLite, bundle_blobs rows on PostgreSQL. */
export function storedBlobs(hub: Hub): string[] {
  if (engineOf(hub.store.db) === 'postgres') return hub.store.db.prepare('SELECT bundle_id FROM bundle_blobs ORDER BY bundle_id').pluck().all() as string[];
  return readdirSync(join(hub.options.dataDir, 'blobs')).map((f) => f.replace(/\.zst$/, '')).sort();
}

/** A stored bundle's compressed payload, read back chunk by chunk as the hub serves it (either engine). */
export async function storedBlob(hub: Hub, bundleId: string): Promise<Buffer> {
  const { chunkSize, compressedLength } = hub.store.getBundle(bundleId)!.manifest.payload;
  const reader = await hub.store.blobs.open(bundleId);
  try {
    const parts: Buffer[] = [];
    for (let i = 0; i * chunkSize < compressedLength; i++) parts.push(await reader.read(i, i * chunkSize, Math.min(compressedLength, (i + 1) * chunkSize)));
    return Buffer.concat(parts);
  } finally { await reader.close(); }
}

/** The hub's first admin token (written to <dataDir>/admin.token on first start, issue #3). */
export function adminToken(hub: Hub): string {
  return readFileSync(join(hub.options.dataDir, 'admin.token'), 'utf8').trim();
}

/** Call the hub's API; with the hub's admin token unless `token` is given (null: none). */
export async function api<T = Record<string, unknown>>(hub: Hub, method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: T }> {
  const auth: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token ?? adminToken(hub)}` };
  const init: RequestInit = { method, headers: auth };
  if (body instanceof Uint8Array) { init.body = body as unknown as BodyInit; init.headers = { ...auth, 'content-type': 'application/octet-stream' }; }
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers = { ...auth, 'content-type': 'application/json' }; }
  const res = await fetch(`${hub.httpUrl}${path}`, init);
  return { status: res.status, body: (await res.json()) as T };
}

/** Collect what a device client receives, by topic. */
export function collect(client: MqttClient): Map<string, Buffer[]> {
  const got = new Map<string, Buffer[]>();
  client.on('message', (topic, payload) => { got.set(topic, [...(got.get(topic) ?? []), Buffer.from(payload)]); });
  return got;
}
