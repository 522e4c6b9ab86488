/**
 * The log's entries and the installs devices reported name device ids and
 * deployment targets: reading them needs an auditor token (or higher); the
 * signed checkpoints and proofs stay public. `fleetcast audit export` reads
 * them with the caller's token, from FLEETCAST_TOKEN_FILE like every other
 * command.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as auditCli from '../../cli/commands/audit.js';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';
import { runCommand } from '../helpers/trust-fixture.js';

let hub: Hub;
let auditor: string;
beforeAll(async () => {
  hub = await startTestHub(makeKeys(), { insecureDemo: false });
  auditor = (await api<{ token: string }>(hub, 'POST', '/v1/tokens', { role: 'auditor' })).body.token;
}, 120_000);
afterAll(async () => { await hub?.close(); cleanupTempDirs(); });

describe('reading the transparency log', () => {
  it('Log_entries_and_installs_need_a_token: no token → 401 HUB_ERR_UNAUTHENTICATED; auditor, operator, admin may read', async () => {
    const operator = (await api<{ token: string }>(hub, 'POST', '/v1/tokens', { role: 'operator' })).body.token;
    for (const path of ['/v1/log/entries?start=0&end=1', '/v1/log/installs']) {
      expect(await api(hub, 'GET', path, undefined, null), path).toMatchObject({ status: 401, body: { error: { code: 'HUB_ERR_UNAUTHENTICATED' } } });
      for (const t of [auditor, operator, undefined]) expect((await api(hub, 'GET', path, undefined, t)).status, path).toBe(200);
    }
    // A signed checkpoint alone (and the proofs) stay public.
    for (const path of ['/v1/log/checkpoint', '/v1/log/checkpoints', '/v1/log/proof/consistency?from=1', '/v1/log/roots']) {
      expect((await api(hub, 'GET', path, undefined, null)).status, path).toBe(200);
    }
  });

  it('fleetcast audit export needs a token, and takes it from FLEETCAST_TOKEN_FILE', async () => {
    const saved = { file: process.env.FLEETCAST_TOKEN_FILE, token: process.env.FLEETCAST_TOKEN };
    delete process.env.FLEETCAST_TOKEN;
    delete process.env.FLEETCAST_TOKEN_FILE;
    try {
      await expect(runCommand(auditCli, ['export', '--hub', hub.httpUrl, '--out', tempDir('fleetcast-audit-')])).rejects.toMatchObject({ code: 'HUB_ERR_UNAUTHENTICATED' });
      const file = join(tempDir('fleetcast-tok-'), 'auditor.token');
      writeFileSync(file, `${auditor}\n`, { mode: 0o600 });
      process.env.FLEETCAST_TOKEN_FILE = file;
      const r = await runCommand(auditCli, ['export', '--hub', hub.httpUrl, '--out', tempDir('fleetcast-audit-')]);
      expect(r.status).toBe(0);
      expect(r.out).toMatch(/^exported 1 log entries/);
    } finally {
      for (const [k, v] of [['FLEETCAST_TOKEN_FILE', saved.file], ['FLEETCAST_TOKEN', saved.token]] as const) {
        if (v === undefined) delete process.env[k]; else process.env[k] = v;
      }
    }
  });
});
