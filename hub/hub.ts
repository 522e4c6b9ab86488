/**
 * Starting and stopping a hub: options → keys → store → broker (embedded
 * unless brokerUrl) → MQTT link → assignments → HTTP API. Anything that fails
 * during start-up stops what was already started, and close() shuts every part
 * down in the reverse order.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { logOptions } from '@fleetcast/protocol/log-format.js';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { readKeyFile } from '@fleetcast/signing/keys.js';
import { loadRootText, type TrustedRoot } from '@fleetcast/signing/root.js';
import { describeChanges, tightenTree } from '@fleetcast/signing/private-files.js';
import type { KeyPair } from '@fleetcast/signing/ed25519.js';
import { buildApi, routeTable, type RouteAccess } from './api.js';
import { Assigner } from './assignments.js';
import { startBroker, type EmbeddedBroker } from './broker.js';
import { hubError } from './errors.js';
import { connectLink, type MqttLink } from './mqtt-link.js';
import { parseHubOptions, type HubOptions } from './options.js';
import { HubStore } from './store.js';
import { ChunkServer } from './transfer.js';
import { BundleGrants } from './transfer-grants.js';
import { installGuard } from './auth/guard.js';
import { registerTokenRoutes } from './auth/routes.js';
import { TokenStore } from './auth/tokens.js';
import { Rollouts } from './rollouts/rollouts.js';
import { ACTIVE_STATES, type RolloutRow } from './rollouts/rollout-store.js';
import { registerRolloutRoutes } from './rollouts/routes.js';
import { registerTranslogRoutes } from './translog/routes.js';
import { startTranslog, type TranslogService } from './translog/service.js';
import { answerProofRequest } from './translog/proof-requests.js';
import { DeviceEvents } from './events/device-events.js';
import { brokerSecurity } from './broker-security.js';
import { ReplayGuard } from './report-replay.js';
import { registerDriftRoutes } from './drift/routes.js';
import { registerDriftReader } from './rollouts/gate-inputs.js';
import { TelemetryService } from './telemetry/service.js';
import { DebugControl } from './debug/debug-control.js';
import { registerDebugRoutes } from './debug/routes.js';
import { HubMetrics } from './metrics/hub-metrics.js';
import { registerMetricsRoutes, startMetricsServer } from './metrics/routes.js';
import { registerEnrollRoutes } from './enroll-routes.js';
import { registerConsoleRoutes } from './console/routes.js';
import { LeaderDuties } from './cluster/duties.js';
import { installLeaderForwarding } from './cluster/forward.js';
import { LeaderLease } from './cluster/leader.js';
import { assertFence } from './cluster/fence.js';

export interface HubSeams {
  /** The clock for assignment times and registry timestamps. */
  now?: () => number;
  logger?: Logger;
}

export interface Hub {
  readonly httpUrl: string;
  readonly mqttUrl: string;
  readonly options: HubOptions;
  readonly store: HubStore;
  /** The embedded broker, when the hub runs one. */
  readonly broker: EmbeddedBroker | undefined;
  readonly link: MqttLink;
  readonly transfer: ChunkServer;
  readonly assigner: Assigner;
  /** Staged rollouts (issue #3); register gate inputs on `rollouts.inputs`. */
  readonly rollouts: Rollouts;
  /** API bearer tokens (issue #3). */
  readonly tokens: TokenStore;
  /** The transparency log (issue #6). */
  readonly translog: TranslogService;
  /** Telemetry ingest, drift reports and alerts (issue #5). */
  readonly telemetry: TelemetryService;
  /** Operator debug raw sampling per device (issue #5). */
  readonly debug: DebugControl;
  /** Device events: rate per device, claims, installs batched into the log (hub/events). */
  readonly events: DeviceEvents;
  /** Every API route with the access its registration declared (hub/auth/guard.ts). */
  routes(): RouteAccess[];
  /** Several hubs, one fleet (hub/cluster/): whether this hub leads and under which epoch; a hub alone always leads, under epoch 0. */
  readonly leadership: { readonly epoch: number | null; readonly lease: LeaderLease | undefined };
  /** Prometheus metrics (hub/metrics/), served on GET /metrics (auditor token) and, with metricsPort, at metricsUrl without one. */
  readonly metrics: HubMetrics;
  readonly metricsUrl: string | undefined;
  close(): Promise<void>;
}

/** root.json and hub.key from keysDir; the hub key must be one root.json trusts for the hub role. */
export function loadHubKeys(keysDir: string, now: number): { root: TrustedRoot; hubKey: KeyPair } {
  try {
    const root = loadRootText(readFileSync(join(keysDir, 'root.json'), 'utf8'), { now });
    const hubKey = readKeyFile(join(keysDir, 'hub.key'));
    if (hubKey.role !== 'hub' || !root.roles.hub.keys.has(hubKey.keyid)) {
      throw hubError('HUB_ERR_KEYS', `hub.key (${hubKey.role} key ${hubKey.keyid.slice(0, 16)}…) is not a hub key of root v${root.version}; agents would refuse every assignment`);
    }
    return { root, hubKey };
  } catch (e) {
    if (isFleetcastError(e) && e.code === 'HUB_ERR_KEYS') throw e;
    const err = hubError('HUB_ERR_KEYS', `${keysDir}: ${(e as Error).message}`, isFleetcastError(e) ? { cause: e.code } : {});
    err.cause = e;
    throw err;
  }
}

/** The API's TLS certificate and key (PEM), read once at start-up; both or neither. */
function readHttpTls(options: HubOptions): { cert: Buffer; key: Buffer } | undefined {
  if ((options.httpTlsCert === undefined) !== (options.httpTlsKey === undefined)) {
    throw hubError('HUB_ERR_LISTEN', 'httpTlsCert and httpTlsKey go together: give both (PEM files) or neither');
  }
  if (options.httpTlsCert === undefined || options.httpTlsKey === undefined) return undefined;
  const read = (what: string, path: string) => {
    try { return readFileSync(path); } catch (e) { throw hubError('HUB_ERR_LISTEN', `cannot read the HTTP API's TLS ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`); }
  };
  const pair = { cert: read('certificate', options.httpTlsCert), key: read('key', options.httpTlsKey) };
  // Checked here, where the files can be named: node:https would otherwise throw OpenSSL's bare error from deep in the start.
  try { createSecureContext(pair); } catch (e) {
    throw hubError('HUB_ERR_LISTEN', `the HTTP API's TLS certificate ${options.httpTlsCert} and key ${options.httpTlsKey} are not a usable PEM certificate and matching private key: ${(e as Error).message}`);
  }
  return pair;
}

export async function startHub(input: unknown, seams: HubSeams = {}): Promise<Hub> {
  const options = parseHubOptions(input);
  const now = seams.now ?? Date.now;
  const logger = seams.logger ?? pino(logOptions('fleetcast-hub', options.logLevel));
  const { root, hubKey } = loadHubKeys(options.keysDir, now());
  const stops: (() => Promise<void> | void)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) {
      try { await stop(); } catch (e) { logger.error({ err: e }, 'error while stopping the hub'); }
    }
    stops.length = 0;
  };
  const httpTls = readHttpTls(options);
  const cluster = options.cluster;
  // Shared subscriptions and one retained copy of each assignment for every hub need a broker they all reach.
  if (cluster && !options.brokerUrl) throw hubError('HUB_ERR_CLUSTER_CONFIG', 'cluster needs brokerUrl (--broker): the hubs of a cluster share one external MQTT 5 broker, not each an embedded one');
  // Hubs that do not share one store would each hold part of the fleet: refused rather than silently split.
  const leaseUrl = cluster?.url ?? options.storeUrl;
  if (cluster && !options.storeUrl) throw hubError('HUB_ERR_CLUSTER_CONFIG', 'cluster needs storeUrl (--store postgres://…): the hubs of a cluster share one PostgreSQL store, which also holds the leader lease');
  // Every fenced write reads the epoch from the store's own hub_leader row, in its transaction: a lease kept in
  // another database would leave that row empty and refuse every single-writer write.
  if (cluster?.url !== undefined && cluster.url !== options.storeUrl) throw hubError('HUB_ERR_CLUSTER_CONFIG', 'cluster.url must be the store\'s database (storeUrl): the single-writer writes check the leader lease in their own transaction, so it cannot live elsewhere; leave cluster.url unset');
  // The leader-only work (DESIGN.md "Scale-out"): started once elected, stopped the moment this hub is deposed.
  // A hub alone is elected once, at start, under epoch 0.
  const duties = new LeaderDuties(logger);
  try {
    // A data folder made by an older hub (or by a service manager) may be readable by other users: tighten it, and say so.
    const loosened = tightenTree(options.dataDir);
    const said = describeChanges(loosened);
    if (said) logger.warn({ dataDir: options.dataDir, count: loosened.length }, said);
    const store = HubStore.open(options.dataDir, { url: options.storeUrl });
    stops.push(() => store.close());
    // Transparency log (issue #6): roots and known bundles are logged before anything can change.
    // A hub of a cluster checks, in each single-writer transaction, that it still leads under the epoch its duties run under.
    if (cluster) store.fence = (db, what) => assertFence(db, duties.epoch, what);
    const translog = startTranslog({ store, hubKey, root, keysDir: options.keysDir, now, logger, deferCatchUp: cluster !== undefined });
    if (cluster) duties.add({ name: 'log roots and bundles', start: () => translog.catchUp(), stop: () => {} });
    stops.push(() => translog.close());
    // Device events: rate-limited per device, checked against assignments, installs logged in batches.
    const events = new DeviceEvents({ store, log: translog.log, options: options.events, now, logger });
    stops.push(() => events.close());
    // A hub of a cluster ingests in delta mode (at least one ingest worker): each flush adds what came since the last
    // one to the stored cells inside its transaction. Inline ingest keeps whole cells, read once, and writes them
    // back whole, so two hubs writing one cell would each erase the other's reports (found by the failover test).
    const telemetryOptions = cluster ? { ...options.telemetry, ingestWorkers: Math.max(1, options.telemetry.ingestWorkers) } : options.telemetry;
    const telemetry = new TelemetryService({ store, options: telemetryOptions, logger, now });
    stops.push(() => telemetry.close());

    let broker: EmbeddedBroker | undefined;
    // MQTT access control and TLS (issue #6): secure unless insecureDemo.
    // A device is sent, and may subscribe to, only the chunks of bundles it is (or was just before) assigned.
    const grants = new BundleGrants(store.db, store);
    const security = brokerSecurity(options, store, logger, (deviceId, bundleId) => grants.mayFetch(deviceId, bundleId));
    const replay = new ReplayGuard(store, logger); // issue #6: replayed state reports and events are dropped
    if (!options.brokerUrl) {
      broker = await startBroker({ host: options.mqttHost ?? options.host, port: options.mqttPort, logger, drainTimeoutMs: options.brokerDrainTimeoutMs, ...security.brokerOptions });
      stops.push(() => broker!.close());
    }
    const mqttUrl = options.brokerUrl ?? broker!.url;

    // The link is created after the chunk server, which publishes through it.
    let link: MqttLink | undefined;
    let metrics: HubMetrics | undefined;
    const publish = (topic: string, payload: Buffer, retain: boolean) => {
      if (!link) return Promise.reject(hubError('HUB_ERR_BROKER_UNREACHABLE', 'not connected yet'));
      return link.publish(topic, payload, { qos: 1, retain }).then(
        () => { metrics?.published(topic, true); },
        (e: unknown) => { metrics?.published(topic, false); throw e; },
      );
    };
    const transfer = new ChunkServer({
      quietMs: options.chunkQuietMs,
      maxWaitMs: options.chunkMaxWaitMs,
      maxInflight: options.maxInflightChunkPublishes,
      expectWaitMs: options.chunkExpectWaitMs,
      expectMaxWaitMs: options.chunkExpectMaxWaitMs,
      republishMs: options.chunkRepublishMs,
      lookup: (id) => store.chunkSource(id),
      mayFetch: (deviceId, bundleId) => grants.mayFetch(deviceId, bundleId),
      publish: (t, p) => publish(t, p, false),
      logger,
      // Not the hub's clock: the chunk server's waits are compared with its own timers (real time), and a
      // hub clock that is set (tests, a clock step) would hold a flush for as long as it does not move.
    });

    link = await connectLink({
      url: mqttUrl,
      maxQueuedBytes: options.inboundQueueBytes,
      clientId: options.mqttClientId,
      connectTimeoutMs: options.brokerConnectTimeoutMs,
      logger,
      ...(cluster ? { shareGroup: cluster.shareGroup } : {}),
      ...security.linkOptions,
      handlers: {
        state(r) {
          if (!replay.fresh('state', r)) return;
          store.recordState(r, now());
          if (r.counter > 0) store.noteReportedCounter(r.deviceId, r.counter);
        },
        event(e) { if (replay.fresh('event', e)) events.accept(e); },
        'chunk-req'(r) { transfer.request(r); },
        telemetry(payload, deviceId) { telemetry.handleMessage(deviceId, payload); },
        'proof-req'(r) { return answerProofRequest(translog.log, r, (t, p) => publish(t, p, false)); },
      },
    });
    const theLink = link;
    stops.push(() => theLink.close());
    metrics = new HubMetrics({
      store, link: theLink, telemetry, transfer, events, now, onlineWindowMs: options.onlineWindowMs,
      // Read only at scrape time, once the API listens: rollouts exists by then.
      activeRollouts: (): RolloutRow[] => rollouts.store.inStates(ACTIVE_STATES),
    });
    const theMetrics: HubMetrics = metrics;
    // Reports refused in an ingest worker are counted with the link's other refusals.
    telemetry.onRefused = (code, n) => { theLink.stats.rejected[code] = (theLink.stats.rejected[code] ?? 0) + n; };
    // Stopped before the link: its last publishes still need it.
    stops.push(() => transfer.close());

    const assigner = new Assigner({
      store, log: translog.log, hubKey, rootVersion: root.version, ttlMs: options.assignmentTtlMs, publishTimeoutMs: options.assignmentPublishTimeoutMs, now, logger,
      publish: (t, p) => publish(t, p, true).then(() => theMetrics.assignmentSent()),
      onAssigning: (bundleId, deviceIds) => { grants.record(bundleId, deviceIds); transfer.expect(bundleId, deviceIds); },
    });
    stops.push(() => assigner.close());
    duties.add({
      name: 'assignments',
      async start() {
        // An embedded broker forgot its retained messages when it stopped; give every device its
        // current assignment again, re-signed first if it is past half its lifetime.
        // A slow broker does not stop the start: what is not acknowledged is retried by the refresher.
        await assigner.refreshDue().catch((e: unknown) => logger.warn({ err: e }, 'refreshing assignments at start-up failed'));
        // A new root (keys rotated) takes effect here: devices that reset their counter at it refuse assignments signed under an older one.
        await assigner.resignOlderRoot().catch((e: unknown) => logger.warn({ err: e }, 're-signing assignments under the new root failed'));
        await assigner.republishAll().catch((e: unknown) => logger.warn({ err: e }, 'republishing assignments at start-up failed'));
        assigner.startRefresher(options.refreshIntervalMs);
      },
      stop: () => assigner.stopRefresher(),
    }, {
      name: 'log checkpoints',
      start: () => translog.startPublishing((t, p) => publish(t, p, true)).catch((e: unknown) => logger.warn({ err: e }, 'publishing the root chain and checkpoint failed')),
      stop: () => translog.stopPublishing(),
    });
    // Issue #5: debug sampling control messages (retained; republished here for a broker that forgot them).
    const debug = new DebugControl({ store, hubKey, rootVersion: root.version, now, logger, maxDevices: options.maxDebugDevices, publishTimeoutMs: options.assignmentPublishTimeoutMs, publish: (t, p) => publish(t, p, true) });
    stops.push(() => debug.close());
    duties.add({
      name: 'debug control',
      start: () => debug.start().catch((e: unknown) => logger.warn({ err: e }, 'republishing debug control messages failed; the sweeper retries')),
      stop: () => debug.pause(),
    });

    // A broker restarted after a fault (hub/broker.ts) has forgotten every retained message: once the
    // link is back, publish again what start-up published (assignments, trust roots and checkpoint, debug control).
    const republishRetained = () => {
      assigner.republishAll().catch((e: unknown) => logger.warn({ err: e }, 'republishing assignments after a broker restart failed; the refresher retries'));
      translog.startPublishing((t, p) => publish(t, p, true)).catch((e: unknown) => logger.warn({ err: e }, 'republishing the root chain and checkpoint after a broker restart failed'));
      debug.start().catch((e: unknown) => logger.warn({ err: e }, 'republishing debug control messages after a broker restart failed; the sweeper retries'));
    };
    if (broker) stops.push(broker.onRestart(() => { theLink.client.once('connect', republishRetained); }));
    // A hub of a cluster cannot hear the external broker restart, only its link reconnect: the leader publishes
    // again what a broker without persistence forgot (republishing what it kept changes nothing on the devices).
    if (cluster) theLink.client.on('connect', () => { if (duties.epoch !== null) republishRetained(); });

    const api = buildApi({
      options, store, root, assigner, log: translog.log, logger, now,
      ...(httpTls ? { tls: httpTls } : {}),
      debugOf: () => debug.activeMap(),
      health: () => ({
        ok: theLink.client.connected,
        broker: { url: mqttUrl, embedded: broker !== undefined, connected: theLink.client.connected, ...(broker ? { ...broker.faults } : {}) },
        messages: theLink.stats,
        transfer: { ...transfer.stats, pending: transfer.pendingCount() },
      }),
    });
    stops.push(() => api.close());
    // Operator control plane (issue #3): bearer tokens on every route but health and OpenAPI, then rollouts.
    const tokens = new TokenStore(store.db);
    const tokenFile = tokens.bootstrap(options.dataDir, now());
    if (tokenFile) logger.warn({ tokenFile }, 'first start: wrote an admin API token (mode 0600); use it to create operator and auditor tokens');
    installGuard(api, tokens, now);
    registerTokenRoutes(api, tokens, now);
    const rollouts: Rollouts = new Rollouts({ store, assigner, now, logger, settleOnStart: cluster !== undefined });
    stops.push(() => rollouts.close());
    registerRolloutRoutes(api, rollouts);
    registerMetricsRoutes(api, theMetrics);
    duties.add({ name: 'rollout engine', start: () => rollouts.engine.start(options.rolloutTickMs), stop: () => { void rollouts.engine.close(); } });
    registerTranslogRoutes(api as never, { log: translog.log, events, roots: () => translog.roots });
    duties.add({ name: 'install batches', start: () => events.start(), stop: () => events.stop() });
    registerDriftRoutes(api as never, { telemetry, store, now });
    registerDebugRoutes(api as never, { control: debug, rows: telemetry.debugRows });
    registerEnrollRoutes(api as never, { store });
    registerConsoleRoutes(api as never);
    registerDriftReader(rollouts.inputs, telemetry.reader);
    let lease: LeaderLease | undefined;
    // After the guard, so a follower authenticates the caller before forwarding (the leader checks again).
    if (cluster) installLeaderForwarding(api as never, { isLeader: () => duties.epoch !== null, leader: () => lease!.current(), logger });
    if (!cluster) await duties.elected(0);
    telemetry.start();
    const httpHost = options.httpHost ?? options.host;
    try {
      await api.listen({ host: httpHost, port: options.httpPort });
    } catch (e) {
      throw hubError('HUB_ERR_LISTEN', `HTTP API cannot listen on ${httpHost}:${options.httpPort}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const port = (api.server.address() as { port: number }).port;
    let metricsUrl: string | undefined;
    if (options.metricsPort !== undefined) {
      const m = await startMetricsServer({ host: options.metricsHost ?? options.host, port: options.metricsPort, metrics: theMetrics, logger, ...(httpTls ? { tls: httpTls } : {}) });
      stops.push(() => m.close());
      metricsUrl = m.url;
    }
    const httpUrl = `${httpTls ? 'https' : 'http'}://${httpHost.includes(':') ? `[${httpHost}]` : httpHost}:${port}`;
    if (cluster) {
      lease = new LeaderLease({
        url: leaseUrl!, advertiseUrl: cluster.advertiseUrl ?? httpUrl, leaseMs: cluster.leaseMs, renewMs: cluster.renewMs, logger,
        onElected: (epoch) => { void duties.elected(epoch); },
        onDeposed: () => duties.deposed(),
      });
      const theLease = lease;
      // Pushed last, so stopped first: the duties stop and the lease is released before anything they use closes.
      stops.push(() => theLease.close());
      await theLease.start();
    }
    logger.info({ httpUrl, mqttUrl, metricsUrl, embeddedBroker: broker !== undefined }, 'hub started');

    let closing: Promise<void> | undefined;
    return {
      httpUrl, mqttUrl, options, store, broker, link: theLink, transfer, assigner, rollouts, tokens, translog, telemetry, debug, events,
      leadership: { get epoch() { return duties.epoch; }, lease },
      routes: () => routeTable(api),
      metrics: theMetrics, metricsUrl,
      close() {
        closing ??= stopAll().then(() => logger.info('hub stopped'));
        return closing;
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
