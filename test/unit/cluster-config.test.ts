/**
 * Cluster options the hub refuses at start, before it connects to anything (hub/hub.ts): a cluster without a
 * shared PostgreSQL store, and a leader lease kept in a database other than the store's. Every fenced write
 * reads the epoch from the store's own hub_leader row, so a lease elsewhere would refuse every single-writer write.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub } from '../../hub/hub.js';
import { initKeys } from '../../signing/keys.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(() => cleanupTempDirs());

let keysDir = '';
const base = () => ({ dataDir: tempDir(), keysDir, brokerUrl: 'mqtt://127.0.0.1:9', httpPort: 0 });

beforeAll(async () => { keysDir = tempDir(); await initKeys(keysDir); });

describe('cluster configuration', () => {
  it('a cluster without a PostgreSQL store is refused with HUB_ERR_CLUSTER_CONFIG', async () => {
    await expect(startHub({ ...base(), cluster: {} })).rejects.toMatchObject({ code: 'HUB_ERR_CLUSTER_CONFIG' });
  });

  it('Lease_outside_the_store_refused: cluster.url other than the store\'s database is refused with HUB_ERR_CLUSTER_CONFIG', async () => {
    const err = await startHub({ ...base(), storeUrl: 'postgres://fleetcast@127.0.0.1:9/fleet', cluster: { url: 'postgres://fleetcast@127.0.0.1:9/lease' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'HUB_ERR_CLUSTER_CONFIG' });
    expect((err as Error).message).toMatch(/cluster\.url must be the store's database/);
  });
});
