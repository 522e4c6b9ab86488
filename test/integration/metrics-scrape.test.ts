/**
 * /metrics scraped as Prometheus would, on the real system: a real hub with
 * authentication on (API tokens, MQTT credentials and ACLs: not the insecure
 * demo), a real agent (enrolled MQTT credentials, an API token, real
 * onnxruntime-node) that installed a signed bundle and served predictions.
 * Both expositions are parsed with parse-prometheus-text-format, and every
 * value asserted is one the test can count for itself: what the registry
 * shows, how many requests it made, which routes it called.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { needProgram } from '../helpers/programs.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../agent/agent.js';
import type { Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { http, waitInstalled } from '../helpers/agent-fixture.js';
import { buildCli } from '../helpers/build-cli.js';
import { startHubProcess } from '../helpers/hub-process.js';
import { parse, samples, value, type Family } from '../helpers/prometheus.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, makeBundle, startTestHub } from '../helpers/hub-harness.js';

const DEVICE = 'dev-metrics';
const AGENT_TOKEN = 'agent-token-0123456789abcdef';
let hub: Hub;
let agent: Agent;
let auditor: string;
let v1: string;
let keys: ReturnType<typeof makeKeys>;

beforeAll(async () => {
  keys = makeKeys();
  hub = await startTestHub(keys, { insecureDemo: false, metricsPort: 0, metricsHost: '127.0.0.1' });
  const t = await api<{ token: string }>(hub, 'POST', '/v1/tokens', { role: 'auditor', label: 'prometheus' });
  expect(t.status).toBe(201);
  auditor = t.body.token;
  const dir = tempDir('fleetcast-metrics-');
  const cred = new MqttCredentials(hub.store.db).enrollDevice(DEVICE);
  writeFileSync(join(dir, 'api.token'), `${AGENT_TOKEN}\n`, { mode: 0o600 });
  agent = createAgent({
    deviceId: DEVICE, dataDir: join(dir, 'agent'), rootPath: keys.rootPath, brokerUrl: hub.mqttUrl, listen: '127.0.0.1:0', heartbeatMs: 0,
    mqttUsername: cred.username, mqttPassword: cred.password, apiTokenFile: join(dir, 'api.token'),
    // One-second telemetry windows, every request sampled: the test sees reports within seconds.
    telemetry: { windowMs: 1_000, sampleRate: 1 },
  });
  await agent.start();
  await waitFor(() => hub.store.getDevice(DEVICE), 'the enrolled agent to register', 60_000);
  const b = await makeBundle([keys.keys.release], { name: 'churn', version: 1 });
  const pub = await api<{ bundleId: string }>(hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)));
  expect(pub.status).toBe(201);
  v1 = pub.body.bundleId;
  expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: [DEVICE] })).status).toBe(200);
  await waitInstalled(agent, v1);
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await hub?.close();
  cleanupTempDirs();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const agentPort = () => agent.address!.port;
async function scrapeAgent(): Promise<Map<string, Family>> {
  const r = await http(agentPort(), 'GET', '/metrics', undefined, bearer(AGENT_TOKEN));
  expect(r.status, String(r.json)).toBe(200);
  expect(String(r.headers['content-type'])).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(r.json as string);
}
async function scrapeHub(url = `${hub.httpUrl}/metrics`, headers: Record<string, string> = bearer(auditor)): Promise<Map<string, Family>> {
  const r = await fetch(url, { headers });
  const text = await r.text();
  expect(r.status, text.slice(0, 300)).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(text);
}

describe('agent /metrics', () => {
  it('counts the predictions the test made, failures by code, the latency histogram, the model, phase and install result', async () => {
    const before = await scrapeAgent();
    const n0 = value(before, 'fleetcast_agent_predictions_total');
    const lat0 = Number(samples(before, 'fleetcast_agent_predict_latency_seconds')[0]?.count ?? 0);
    const OK = 7;
    for (let i = 0; i < OK; i++) {
      const r = await http(agentPort(), 'POST', '/v1/predict', JSON.stringify({ inputs: { x: [[i, 1, 2, 3]] } }), bearer(AGENT_TOKEN));
      expect(r.status, JSON.stringify(r.json)).toBe(200);
    }
    const bad = await http(agentPort(), 'POST', '/v1/predict', JSON.stringify({ inputs: { x: [[1, 2, 3]] } }), bearer(AGENT_TOKEN));
    expect(bad.json.error.code).toBe('AGENT_ERR_INPUT_SHAPE');
    const badJson = await http(agentPort(), 'POST', '/v1/predict', '{"inputs":', bearer(AGENT_TOKEN));
    expect(badJson.json.error.code).toBe('AGENT_ERR_BAD_JSON');

    const m = await scrapeAgent();
    // The body that is not JSON never reached the predictor: it is an HTTP-level refusal, not a prediction.
    expect(value(m, 'fleetcast_agent_predictions_total') - n0).toBe(OK + 1);
    expect(value(m, 'fleetcast_agent_prediction_failures_total', { code: 'AGENT_ERR_INPUT_SHAPE' })).toBe(1);
    expect(samples(m, 'fleetcast_agent_prediction_failures_total').map((s) => s.labels!.code)).toEqual(['AGENT_ERR_INPUT_SHAPE']);
    // Only the requests the model ran are timed.
    const hist = samples(m, 'fleetcast_agent_predict_latency_seconds')[0];
    expect(Number(hist.count) - lat0).toBe(OK);
    expect(Number(hist.buckets!['+Inf'])).toBe(Number(hist.count));
    expect(Number(hist.sum)).toBeGreaterThan(0);
    const status = agent.status();
    expect(samples(m, 'fleetcast_agent_model_info')).toEqual([{ labels: { name: 'churn', version: '1', bundle_id: v1 }, value: '1' }]);
    expect(status.active!.bundleId).toBe(v1);
    expect(value(m, 'fleetcast_agent_install_phase', { phase: status.phase })).toBe(1);
    expect(samples(m, 'fleetcast_agent_install_phase').reduce((a, s) => a + Number(s.value), 0)).toBe(1);
    expect(samples(m, 'fleetcast_agent_last_install')).toEqual([{ labels: { result: 'installed', code: '', phase: 'committed', bundle_id: v1 }, value: '1' }]);
    expect(value(m, 'fleetcast_agent_broker_connected')).toBe(1);
    // Telemetry windows close every second, so sent is asserted against the hub below, not against a second read here.
    expect(m.has('fleetcast_agent_telemetry_reports_sent_total')).toBe(true);
    // Process metrics (prom-client collectDefaultMetrics).
    expect(value(m, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(m.has('nodejs_heap_size_used_bytes')).toBe(true);
  });

  it('needs the agent\'s API token and passes the Host and Origin checks', async () => {
    const none = await http(agentPort(), 'GET', '/metrics');
    expect(none.status).toBe(401);
    expect(none.json.error.code).toBe('AGENT_ERR_UNAUTHORIZED');
    const wrong = await http(agentPort(), 'GET', '/metrics', undefined, bearer('not-the-token-0123456789'));
    expect(wrong.status).toBe(401);
    const rebinding = await http(agentPort(), 'GET', '/metrics', undefined, { ...bearer(AGENT_TOKEN), host: 'evil.example' });
    expect(rebinding.json.error.code).toBe('AGENT_ERR_HOST');
    const crossSite = await http(agentPort(), 'GET', '/metrics', undefined, { ...bearer(AGENT_TOKEN), origin: 'https://evil.example' });
    expect(crossSite.json.error.code).toBe('AGENT_ERR_ORIGIN');
  });
});

describe('hub /metrics', () => {
  it('needs an auditor token on the API; the metrics listener serves /metrics alone without one', async () => {
    const none = await fetch(`${hub.httpUrl}/metrics`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_UNAUTHENTICATED');
    expect(hub.routes().find((r) => r.method === 'GET' && r.url === '/metrics')?.access).toBe('auditor');
    expect(hub.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:[0-9]+\/metrics$/);
    const open = await scrapeHub(hub.metricsUrl!, {});
    expect(open.has('fleetcast_hub_devices')).toBe(true);
    const other = await fetch(hub.metricsUrl!.replace(/\/metrics$/, '/v1/devices'));
    expect(other.status).toBe(404);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_NO_ROUTE');
  });

  it('devices by phase and version equal the registry; online devices, assignments, MQTT traffic, queues and events are reported', async () => {
    // The registry has the agent's committed report of v1 once it shows it active.
    await waitFor(async () => (await api<{ devices: { id: string; phase: string; active: { bundleId: string } | null }[] }>(hub, 'GET', '/v1/devices')).body.devices.some((d) => d.active?.bundleId === v1 && d.phase === 'committed'), 'the registry to show v1 committed');
    const registry = (await api<{ devices: { id: string; phase: string; active: { name: string; version: number } | null }[] }>(hub, 'GET', '/v1/devices')).body.devices;
    const m = await scrapeHub();
    const want = new Map<string, number>();
    for (const d of registry) { const k = `${d.phase}/${d.active?.name ?? 'none'}/${d.active?.version ?? 'none'}`; want.set(k, (want.get(k) ?? 0) + 1); }
    const got = new Map(samples(m, 'fleetcast_hub_devices').filter((s) => Number(s.value) > 0).map((s) => [`${s.labels!.phase}/${s.labels!.model}/${s.labels!.version}`, Number(s.value)]));
    expect(got).toEqual(want);
    expect(got.get('committed/churn/1')).toBe(1);
    expect(value(m, 'fleetcast_hub_devices_online')).toBe(registry.length);
    expect(value(m, 'fleetcast_hub_assignments_sent_total')).toBeGreaterThanOrEqual(1);
    expect(value(m, 'fleetcast_hub_mqtt_messages_published_total', { channel: 'assign' })).toBe(value(m, 'fleetcast_hub_assignments_sent_total'));
    // The agent fetched v1 in chunks, reported its state and its install.
    expect(value(m, 'fleetcast_hub_mqtt_messages_published_total', { channel: 'chunk' })).toBeGreaterThanOrEqual(1);
    expect(value(m, 'fleetcast_hub_mqtt_messages_received_total', { channel: 'state' })).toBe(hub.link.stats.handled.state);
    expect(value(m, 'fleetcast_hub_mqtt_messages_received_total', { channel: 'chunk-req' })).toBeGreaterThanOrEqual(1);
    expect(value(m, 'fleetcast_hub_device_events_stored_total')).toBe(hub.events.stats.stored);
    expect(hub.events.stats.stored).toBeGreaterThanOrEqual(1);
    expect(value(m, 'fleetcast_hub_inbound_queue_peak_bytes')).toBeGreaterThan(0);
    expect(m.has('fleetcast_hub_ingest_backlog_bytes') && m.has('fleetcast_hub_chunk_requests_pending') && m.has('fleetcast_hub_telemetry_reports_shed_total')).toBe(true);
    expect(value(m, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
  });

  it('the telemetry reports the agent counts as sent are the reports the hub counts as ingested', async () => {
    // The first test's predictions fall in some window; each closed window with requests is one report.
    const both = await waitFor(async () => {
      const a = value(await scrapeAgent(), 'fleetcast_agent_telemetry_reports_sent_total');
      await hub.telemetry.settle();
      const h = value(await scrapeHub(), 'fleetcast_hub_telemetry_reports_ingested_total');
      return a >= 1 && a === h ? { a, h } : null;
    }, 'the hub to ingest every report the agent sent', 60_000, 200);
    expect(both.h).toBe(both.a);
    const m = await scrapeHub();
    expect(value(m, 'fleetcast_hub_mqtt_messages_received_total', { channel: 'telemetry' })).toBeGreaterThanOrEqual(both.a);
    expect(value(m, 'fleetcast_hub_telemetry_reports_shed_total')).toBe(0);
    // Connected all along: nothing waited long enough in the offline buffer to be dropped.
    expect(value(await scrapeAgent(), 'fleetcast_agent_telemetry_reports_dropped_total')).toBe(0);
  }, 90_000);

  it('API latency is labelled by the matched route pattern, never by the raw URL', async () => {
    const before = await scrapeHub();
    const count = (mm: Map<string, Family>, route: string, status: string) => value(mm, 'fleetcast_hub_http_request_duration_seconds_count', { method: 'GET', route, status_code: status });
    expect((await api(hub, 'GET', `/v1/devices/${DEVICE}`, undefined, auditor)).status).toBe(200);
    expect((await api(hub, 'GET', `/v1/devices/${DEVICE}`, undefined, auditor)).status).toBe(200);
    expect((await api(hub, 'GET', '/v1/devices/no-such-device-42', undefined, auditor)).status).toBe(404);
    expect((await api(hub, 'GET', '/v1/no-such-route-42', undefined, auditor)).status).toBe(404);
    const m = await scrapeHub();
    expect(count(m, '/v1/devices/:id', '200') - count(before, '/v1/devices/:id', '200')).toBe(2);
    expect(count(m, '/v1/devices/:id', '404') - count(before, '/v1/devices/:id', '404')).toBe(1);
    expect(count(m, '(unmatched)', '404') - count(before, '(unmatched)', '404')).toBeGreaterThanOrEqual(1);
    const routes = new Set(samples(m, 'fleetcast_hub_http_request_duration_seconds_bucket').map((s) => s.labels!.route));
    expect(routes.has('/v1/devices/:id')).toBe(true);
    expect([...routes].filter((r) => r.includes(DEVICE) || r.includes('42'))).toEqual([]);
    for (const r of routes) expect(r === '(unmatched)' || hub.routes().some((x) => x.url === r), r).toBe(true);
  });

  it('rollouts by state and, per running ring, each gate\'s value and threshold', async () => {
    const b2 = await makeBundle([keys.keys.release], { name: 'churn', version: 2, model: { seed: 8 } });
    expect((await api(hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b2.path)))).status).toBe(201);
    // Waits on 1000 requests and an hour of soak: the rollout stays running while the test reads it.
    const spec = { rings: [{ name: 'all', percent: 100 }], gates: { minRequests: 1000, soak: '1h', minDevices: 1 } };
    const r = await api<{ id: string }>(hub, 'POST', '/v1/rollouts', { name: 'churn', version: 2, spec });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const id = r.body.id;
    const judged = await waitFor(() => { const s = hub.rollouts.status(id); const g = s.rings[0].gates as { installed: number; requests: number } | null; return g && g.installed === 1 ? s : null; }, 'the ring to be judged with its device installed', 60_000);
    expect(judged.state).toBe('running');
    const m = await scrapeHub();
    expect(value(m, 'fleetcast_hub_rollouts', { state: 'running' })).toBe(1);
    expect(value(m, 'fleetcast_hub_rollouts', { state: 'aborted' })).toBe(0);
    const at = (name: string, gate: string) => value(m, name, { rollout: id, ring: 'all', gate });
    expect(at('fleetcast_hub_rollout_gate_threshold', 'minRequests')).toBe(1000);
    expect(at('fleetcast_hub_rollout_gate_threshold', 'soak')).toBe(3600);
    expect(at('fleetcast_hub_rollout_gate_threshold', 'minDevices')).toBe(1);
    expect(at('fleetcast_hub_rollout_gate_threshold', 'installSuccess')).toBe(0.95);
    expect(at('fleetcast_hub_rollout_gate_value', 'minDevices')).toBe(1);
    expect(at('fleetcast_hub_rollout_gate_value', 'installSuccess')).toBe(1);
    expect(at('fleetcast_hub_rollout_gate_value', 'minRequests')).toBe((hub.rollouts.status(id).rings[0].gates as { requests: number }).requests);
    expect(value(m, 'fleetcast_hub_rollout_ring_verdict', { rollout: id, ring: 'all', verdict: 'wait' })).toBe(1);
  }, 90_000);
});

describe('the compiled hub (fleetcast hub --metrics-port)', () => {
  it('prints the metrics listener, which serves /metrics without a token while the API still wants one', async () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const cli = await buildCli(root);
    const p = await startHubProcess(root, cli, ['--data', tempDir('fleetcast-metrics-cli-'), '--keys', makeKeys().dir, '--mqtt-port', '0', '--http-port', '0', '--metrics-port', '0', '--metrics-host', '127.0.0.1', '--log-level', 'warn']);
    try {
      const url = /metrics (http:\/\/127\.0\.0\.1:[0-9]+\/metrics) \(no token\)/.exec(p.out())?.[1];
      expect(url, p.out()).toBeDefined();
      const open = await scrapeHub(url!, {});
      expect(samples(open, 'fleetcast_hub_rollouts').length).toBeGreaterThan(0);
      expect(value(open, 'fleetcast_hub_devices_online')).toBe(0);
      expect((await fetch(`${p.httpUrl}/metrics`)).status).toBe(401);
      const admin = readFileSync(p.tokenFile, 'utf8').trim();
      expect((await fetch(`${p.httpUrl}/metrics`, { headers: bearer(admin) })).status).toBe(200);
    } finally {
      await p.stop();
    }
  }, 180_000);
});

// openssl makes the test certificate; absent → skipped with the run's summary, a failure under CI.
const OPENSSL = needProgram('openssl', 'openssl');

describe.skipIf(!OPENSSL)('the metrics listener with API TLS', () => {
  it('serves https with the API\'s certificate', async () => {
    const dir = tempDir('fleetcast-metrics-tls-');
    const cert = join(dir, 'api.crt');
    const key = join(dir, 'api.key');
    execFileSync(OPENSSL!, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=fleetcast metrics test',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const tlsHub = await startTestHub(makeKeys(), { insecureDemo: false, httpTlsCert: cert, httpTlsKey: key, metricsPort: 0, metricsHost: '127.0.0.1' });
    try {
      expect(tlsHub.metricsUrl).toMatch(/^https:\/\/127\.0\.0\.1:[0-9]+\/metrics$/);
      const got = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(tlsHub.metricsUrl!, { ca: readFileSync(cert) }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => { body += d.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(got.status).toBe(200);
      expect(value(parse(got.body), 'fleetcast_hub_devices_online')).toBe(0);
    } finally {
      await tlsHub.close();
    }
  }, 60_000);
});
