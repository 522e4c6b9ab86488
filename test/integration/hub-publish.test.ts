import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBundleFile } from '../../bundles/read.js';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, makeKeys } from '../helpers/env.js';
import { adminToken, api, makeBundle, startTestHub, storedBlob, storedBlobs, type TestKeys } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

type ErrorBody = { error: { code: string; message: string; details?: Record<string, unknown> } };

describe('publishing bundles to the hub', () => {
  let keys: TestKeys;
  let hub: Hub;
  beforeAll(async () => {
    keys = makeKeys();
    hub = await startTestHub(keys, { maxBundleBytes: 256 * 1024 });
  });
  afterAll(async () => { await hub?.close(); });

  /** Nothing was stored: no rows, no blobs, no temp files. */
  function expectNothingStored() {
    expect(hub.store.listBundles()).toEqual([]);
    expect(storedBlobs(hub)).toEqual([]);
    expect(readdirSync(join(hub.options.dataDir, 'tmp'))).toEqual([]);
  }

  it('refuses a tampered payload with HUB_ERR_BAD_BUNDLE and stores nothing', async () => {
    const b = await makeBundle([keys.keys.release]);
    const file = readFileSync(b.path);
    const { payloadOffset, payloadLength } = await readBundleFile(b.path);
    file[payloadOffset + Math.floor(payloadLength / 2)] ^= 0x01;
    const r = await api<ErrorBody>(hub, 'POST', '/v1/bundles', file);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('HUB_ERR_BAD_BUNDLE');
    expect(r.body.error.details?.cause).toMatch(/^BUNDLE_ERR_/);
    expectNothingStored();
  });

  it('refuses a manifest signed by a key root.json does not list, with HUB_ERR_RELEASE_SIGNATURE', async () => {
    const stranger = makeKeys();
    const b = await makeBundle([stranger.keys.release]);
    const r = await api<ErrorBody>(hub, 'POST', '/v1/bundles', readFileSync(b.path));
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'HUB_ERR_RELEASE_SIGNATURE', details: { cause: 'SIGN_ERR_UNKNOWN_KEY' } });
    // The hub key is trusted, but not for releases: still refused.
    const byHub = await makeBundle([keys.keys.hub]);
    expect((await api<ErrorBody>(hub, 'POST', '/v1/bundles', readFileSync(byHub.path))).body.error.code).toBe('HUB_ERR_RELEASE_SIGNATURE');
    expectNothingStored();
  });

  it('refuses a body that is not a bundle, and an empty body, with HUB_ERR_BAD_BUNDLE', async () => {
    for (const body of [Buffer.from('this is not a tar archive, just text'.repeat(40)), Buffer.alloc(0)]) {
      const r = await api<ErrorBody>(hub, 'POST', '/v1/bundles', body);
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('HUB_ERR_BAD_BUNDLE');
    }
    expectNothingStored();
  });

  it('refuses a body over maxBundleBytes with 413 HUB_ERR_BODY_TOO_LARGE, declared or streamed', async () => {
    const big = await makeBundle([keys.keys.release], { model: { seed: 1, padFloats: 100_000 } });
    const bytes = readFileSync(big.path);
    expect(bytes.length).toBeGreaterThan(256 * 1024);
    const r = await api<ErrorBody>(hub, 'POST', '/v1/bundles', bytes);
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('HUB_ERR_BODY_TOO_LARGE');
    // Without a Content-Length (chunked), the limit is enforced while streaming.
    const stream = new ReadableStream({ start(c) { for (let o = 0; o < bytes.length; o += 65_536) c.enqueue(bytes.subarray(o, o + 65_536)); c.close(); } });
    const res = await fetch(`${hub.httpUrl}/v1/bundles`, { method: 'POST', body: stream, headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${adminToken(hub)}` }, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as ErrorBody).error.code).toBe('HUB_ERR_BODY_TOO_LARGE');
    expectNothingStored();
  });

  it('refuses a JSON body on the bundle route with 415', async () => {
    const r = await api<ErrorBody>(hub, 'POST', '/v1/bundles', { not: 'a bundle' });
    expect(r.status).toBe(415);
    expect(r.body.error.code).toBe('HUB_ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('accepts a good bundle, stores its payload under the bundle id, and answers the same for the same bytes', async () => {
    const b = await makeBundle([keys.keys.release], { chunkSize: 4096 });
    const bytes = readFileSync(b.path);
    const first = await api(hub, 'POST', '/v1/bundles', bytes);
    expect(first).toEqual({ status: 201, body: { bundleId: b.bundleId, name: 'churn', version: 1, created: true } });
    const parsed = await readBundleFile(b.path);
    expect(b.bundleId).toBe(createHash('sha256').update(Buffer.from(parsed.envelope.payload, 'base64')).digest('hex'));
    const blob = await storedBlob(hub, b.bundleId);
    expect(blob.equals(bytes.subarray(parsed.payloadOffset, parsed.payloadOffset + parsed.payloadLength))).toBe(true);
    expect(createHash('sha256').update(blob).digest('hex')).toBe(b.manifest.payload.compressedSha256);
    const again = await api(hub, 'POST', '/v1/bundles', bytes);
    expect(again).toEqual({ status: 200, body: { bundleId: b.bundleId, name: 'churn', version: 1, created: false } });
    const list = await api<{ bundles: { bundleId: string; chunkCount: number }[] }>(hub, 'GET', '/v1/bundles');
    expect(list.body.bundles).toEqual([expect.objectContaining({ bundleId: b.bundleId, chunkCount: b.manifest.payload.chunkHashes.length })]);
    const one = await api<{ manifest: unknown; envelope: unknown }>(hub, 'GET', `/v1/bundles/${b.bundleId}`);
    expect(one.body.manifest).toEqual(b.manifest);
    expect(one.body.envelope).toEqual(parsed.envelope);
  });

  it('refuses another bundle under a published name@version with 409 HUB_ERR_DUPLICATE_VERSION', async () => {
    const other = await makeBundle([keys.keys.release], { model: { seed: 99 } });
    const r = await api<ErrorBody>(hub, 'POST', '/v1/bundles', readFileSync(other.path));
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('HUB_ERR_DUPLICATE_VERSION');
    expect(hub.store.listBundles()).toHaveLength(1);
    expect(storedBlobs(hub)).toEqual([hub.store.listBundles()[0].id]);
  });

  it('answers unknown ids, routes and bad JSON bodies with coded errors, and documents its routes', async () => {
    expect((await api<ErrorBody>(hub, 'GET', `/v1/bundles/${'0'.repeat(64)}`)).body.error.code).toBe('HUB_ERR_UNKNOWN_BUNDLE');
    expect((await api<ErrorBody>(hub, 'GET', '/v1/bundles/nothex')).body.error.code).toBe('HUB_ERR_BAD_REQUEST');
    expect((await api<ErrorBody>(hub, 'GET', '/v1/devices/nobody')).body.error.code).toBe('HUB_ERR_UNKNOWN_DEVICE');
    expect((await api<ErrorBody>(hub, 'GET', '/v2/nothing'))).toMatchObject({ status: 404, body: { error: { code: 'HUB_ERR_NO_ROUTE' } } });
    const bad = await api<ErrorBody>(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, all: true, colour: 'red' });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'HUB_ERR_BAD_REQUEST' } } });
    const res = await fetch(`${hub.httpUrl}/v1/deployments`, { method: 'POST', body: '{"name":', headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken(hub)}` } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as ErrorBody).error.code).toBe('HUB_ERR_BAD_REQUEST');
    // ~1.6 MB of JSON, over the 1 MiB default maxJsonBytes.
    const huge = await api<ErrorBody>(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: Array.from({ length: 30_000 }, (_, i) => `device-${i}-${'x'.repeat(40)}`) });
    expect(huge).toMatchObject({ status: 413, body: { error: { code: 'HUB_ERR_BODY_TOO_LARGE' } } });
    const doc = await api<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(hub, 'GET', '/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    // Other rooms add their routes (rollouts, tokens, log, drift); these are the spine's.
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/bundles', '/v1/bundles/{id}', '/v1/deployments', '/v1/devices', '/v1/devices/{id}', '/v1/health']));
    expect(doc.body.paths['/v1/deployments'].post).toMatchObject({ requestBody: { content: { 'application/json': { schema: { required: ['name', 'version'] } } } } });
    const health = await api<{ ok: boolean; bundles: number }>(hub, 'GET', '/v1/health');
    expect(health.body).toMatchObject({ ok: true, bundles: 1 });
  });
});
