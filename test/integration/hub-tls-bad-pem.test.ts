/**
 * A certificate or key file (HTTP API or embedded broker) that is not usable PEM stops the hub at start-up
 * with a coded error naming the files (HUB_ERR_LISTEN), as an unreadable one
 * does, not with OpenSSL's bare error (which the CLI prints as
 * PROTO_ERR_INTERNAL with a stack trace).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';
import { startTestHub } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

describe('HTTP API TLS files', () => {
  it('Bad_tls_pem_is_coded: a certificate and key that are not PEM stop the start with HUB_ERR_LISTEN naming them', async () => {
    const dir = tempDir('fleetcast-bad-pem-');
    const cert = join(dir, 'api.crt');
    const key = join(dir, 'api.key');
    writeFileSync(cert, 'not a certificate\n');
    writeFileSync(key, 'not a key\n');
    const started = startTestHub(makeKeys(), { insecureDemo: false, httpTlsCert: cert, httpTlsKey: key });
    const e = await started.then(async (hub) => { await hub.close(); return null; }, (err: unknown) => err as { code?: string; message: string });
    expect(e).not.toBeNull();
    expect(e!.code).toBe('HUB_ERR_LISTEN');
    expect(e!.message).toContain(cert);
  }, 60_000);

  it('Bad_mqtt_tls_pem_is_coded: the same for the embedded broker\'s certificate and key', async () => {
    const dir = tempDir('fleetcast-bad-pem-');
    const cert = join(dir, 'mqtt.crt');
    const key = join(dir, 'mqtt.key');
    writeFileSync(cert, 'not a certificate\n');
    writeFileSync(key, 'not a key\n');
    const e = await startTestHub(makeKeys(), { insecureDemo: false, mqttTlsCert: cert, mqttTlsKey: key })
      .then(async (hub) => { await hub.close(); return null; }, (err: unknown) => err as { code?: string; message: string });
    expect(e).not.toBeNull();
    expect(e!.code).toBe('HUB_ERR_LISTEN');
    expect(e!.message).toContain(cert);
  }, 60_000);
});
