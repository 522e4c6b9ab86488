/**
 * A certificate or key file (HTTP API or embedded broker) that is not usable
 * PEM stops the hub at start-up with a coded error naming the files
 * (HUB_ERR_LISTEN), as an unreadable one does, not with OpenSSL's bare error
 * (which the CLI prints as PROTO_ERR_INTERNAL with a stack trace).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';
import { startTestHub } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

/** Start a secure hub with a non-PEM certificate and key under the given option names; the error it fails with. */
async function startWithBadPem(certOption: 'httpTlsCert' | 'mqttTlsCert', keyOption: 'httpTlsKey' | 'mqttTlsKey') {
  const dir = tempDir('fleetcast-bad-pem-');
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  writeFileSync(cert, 'not a certificate\n');
  writeFileSync(key, 'not a key\n');
  const e = await startTestHub(makeKeys(), { insecureDemo: false, [certOption]: cert, [keyOption]: key })
    .then(async (hub) => { await hub.close(); return null; }, (err: unknown) => err as { code?: string; message: string });
  return { e, cert };
}

describe('TLS files that are not PEM', () => {
  it('Bad_tls_pem_is_coded: the HTTP API\'s certificate and key stop the start with HUB_ERR_LISTEN naming them', async () => {
    const { e, cert } = await startWithBadPem('httpTlsCert', 'httpTlsKey');
    expect(e?.code).toBe('HUB_ERR_LISTEN');
    expect(e?.message).toContain(cert);
  }, 60_000);

  it('Bad_mqtt_tls_pem_is_coded: the same for the embedded broker\'s certificate and key', async () => {
    const { e, cert } = await startWithBadPem('mqttTlsCert', 'mqttTlsKey');
    expect(e?.code).toBe('HUB_ERR_LISTEN');
    expect(e?.message).toContain(cert);
  }, 60_000);
});
