/**
 * The hub's options: one schema, validated once at start-up, unknown keys
 * refused and named, defaults in this one place, then frozen (DESIGN.md
 * "Conventions"). The CLI maps its flags onto these keys and nothing else.
 */
import { bool, int, obj, optional, parseOptions, str, withDefault, type Infer } from '@fleetcast/protocol/schema.js';
import { LOG_LEVELS } from '@fleetcast/protocol/log-format.js';
import { EVENT_DEFAULTS, eventOptionsSchema, type EventOptions } from './events/options.js';
import { clusterOptionsSchema, type ClusterOptions } from './cluster/options.js';
import { TELEMETRY_DEFAULTS, telemetryOptionsSchema, type TelemetryOptions } from './telemetry/options.js';

const port = (def: number) => withDefault(int({ min: 0, max: 65_535 }), def);
// At most 2^31 - 1 ms (24.8 days): Node's timers (ours, aedes's drain timeout) turn a longer delay into 1 ms.
const ms = (def: number, min = 0) => withDefault(int({ min, max: 2_147_483_647 }), def);

// One list of levels for hub and agent (protocol/log-format.ts: the shared log line).
export { LOG_LEVELS };

export const hubOptionsSchema = obj({
  /** Holds hub.db (SQLite, WAL) and blobs/<bundleId>.zst. Created if missing. */
  dataDir: str({ min: 1, max: 4096 }),
  /** Holds root.json and hub.key. The hub never reads release.key: releases are signed offline. */
  keysDir: str({ min: 1, max: 4096 }),
  /** Interface for the HTTP API and the embedded broker; loopback unless the operator opens it. */
  host: withDefault(str({ min: 1, max: 255 }), '127.0.0.1'),
  /**
   * Interface for the HTTP API alone, and for the embedded broker alone (each defaults to `host`): devices need
   * the broker, only operators need the API, so opening the broker to a device network need not expose the API.
   */
  httpHost: optional(str({ min: 1, max: 255 })),
  /** Interface of the embedded broker (devices connect here); defaults to `host`. Separate from httpHost so opening the broker to devices does not open the API. */
  mqttHost: optional(str({ min: 1, max: 255 })),
  /** Serve the HTTP API over TLS (https://) with this PEM certificate (chain) and key; both or neither. */
  httpTlsCert: optional(str({ min: 1, max: 4096 })),
  /** The PEM private key of httpTlsCert (a file the hub's user alone may read). */
  httpTlsKey: optional(str({ min: 1, max: 4096 })),
  /** Embedded broker port; 0 lets the OS pick a free one (tests). Ignored with brokerUrl. */
  mqttPort: port(1883),
  /** HTTP API and dashboard port; 0 lets the OS pick a free one (tests). */
  httpPort: port(8080),
  /**
   * A listener of its own for GET /metrics alone, WITHOUT a token (on the API, /metrics needs an auditor token):
   * for a Prometheus on a monitoring network. Off unless metricsPort is given; metricsHost defaults to `host`.
   */
  metricsHost: optional(str({ min: 1, max: 255 })),
  /** Port of the token-free /metrics listener (see metricsHost); unset = no such listener. */
  metricsPort: optional(int({ min: 0, max: 65_535 })),
  /**
   * A device is online (`fleetcast devices list`, GET /v1/devices, /metrics) while its last message is at most this old:
   * three of the agent's default heartbeats (heartbeatMs, 60 s), so one lost or late heartbeat does not flap it.
   */
  onlineWindowMs: ms(180_000, 1_000),
  /**
   * Where the hub keeps its state: absent → the SQLite file dataDir/hub.db (the embedded default);
   * postgres://USER@HOST:PORT/DB → that PostgreSQL database, which several hubs may share. No password
   * in the URL (it would be on argv): PostgreSQL's PGPASSWORD or ~/.pgpass supply one.
   */
  storeUrl: optional(str({ pattern: /^postgres(ql)?:\/\/[^\s:@/]+@[^\s/]+\/[A-Za-z0-9_-]+(\?[^\s]*)?$/, max: 1024 })),
  /** An external broker (mqtt://host:port); then no embedded broker is started. */
  brokerUrl: optional(str({ pattern: /^mqtts?:\/\/[^\s/]+(:[0-9]{1,5})?\/?$/, max: 512 })),
  /** MQTT client id of the hub; a fixed id with a persistent session keeps device events queued while the hub restarts. */
  mqttClientId: withDefault(str({ pattern: /^[A-Za-z0-9._-]{1,64}$/ }), 'fleetcast-hub'),
  /** How long the broker may take to accept the hub's connection at start-up. */
  brokerConnectTimeoutMs: ms(10_000, 100),
  /** Lifetime of a signed assignment; the refresher re-signs at half of it so retained ones never go stale. */
  assignmentTtlMs: ms(24 * 3_600_000, 1_000),
  /** How long a deploy waits for the broker to acknowledge an assignment before answering HUB_ERR_BROKER_UNREACHABLE (it stays stored and is retried). */
  assignmentPublishTimeoutMs: ms(15_000, 10),
  /** How often the refresher looks for assignments past half their TTL (and retries unacknowledged ones). */
  refreshIntervalMs: ms(60_000, 10),
  /** Chunk requests for a bundle are coalesced until none arrive for this long… */
  chunkQuietMs: ms(30),
  /** …or this long after the first pending one, whichever comes first (docs/architecture.md "Transfer"). */
  chunkMaxWaitMs: ms(300),
  /**
   * After a deploy, the first flush of a bundle waits for requests from the devices just assigned it until
   * none of them has asked for this long, or goes out at once when all of them have: one flush for all of
   * them beats one per quiet gap (each gap would re-send every chunk to everyone already subscribed)…
   */
  chunkExpectWaitMs: ms(3_000),
  /**
   * …and at most this long after the deploy: a large fleet's requests arrive over seconds (10,000 assignments
   * signed, published and verified). Keep it well below the agents' fetch give-up (maxFetchAttempts retries).
   */
  chunkExpectMaxWaitMs: ms(30_000),
  /**
   * Least time between two flushes of the same bundle's chunks: requests arriving meanwhile wait for one flush
   * instead of each scattered wave re-sending every chunk to every subscribed device. Keep it below the agents'
   * chunkTimeoutMs (5 s by default), or a held request turns into a retry.
   */
  chunkRepublishMs: ms(1_000),
  /**
   * Embedded broker: how long a device's socket may stay full (the device not reading what the broker writes)
   * before the broker disconnects it, so that a frozen device cannot hold up delivery to the others for ever
   * (aedes' drainTimeout). A device on a slow link receiving a bundle fills its socket for as long as the
   * queued chunks take to cross the link; at 0 the broker never disconnects for it.
   */
  brokerDrainTimeoutMs: ms(60_000),
  /** Chunk publishes awaiting the broker's PUBACK at once: bounds memory to this × chunkSize. */
  maxInflightChunkPublishes: withDefault(int({ min: 1, max: 1024 }), 8),
  /** Largest bundle upload accepted (bytes); bigger bodies get HUB_ERR_BODY_TOO_LARGE (413). */
  maxBundleBytes: withDefault(int({ min: 1024, max: 16 * 1024 ** 3 }), 1024 ** 3),
  /** Largest JSON request body (bytes). */
  maxJsonBytes: withDefault(int({ min: 1024, max: 64 * 1024 * 1024 }), 1024 * 1024),
  /** Least severe log level written (the hub's JSON log, same line shape as the agent's). */
  logLevel: withDefault(str({ enum: LOG_LEVELS }), 'info'),
  /** Issue #6: let any client connect to the embedded broker with no credential and no ACL. Demos only; secure by default. */
  insecureDemo: withDefault(bool(), false),
  /** Issue #6: serve the embedded broker over TLS (mqtts://) with this PEM certificate and key. */
  mqttTlsCert: optional(str({ min: 1, max: 4096 })),
  /** PEM private key paired with mqttTlsCert. */
  mqttTlsKey: optional(str({ min: 1, max: 4096 })),
  /** Issue #6: the hub's credential on an external broker (the embedded one issues its own). */
  mqttUsername: optional(str({ min: 1, max: 1024 })),
  /** Password paired with mqttUsername. */
  mqttPassword: optional(str({ min: 1, max: 4096 })),
  /** Issue #6: PEM CA file to trust for an external mqtts:// broker. */
  mqttCa: optional(str({ min: 1, max: 4096 })),
  /** How often the rollout engine re-judges rings and assigns (its clock is the hub's `now`; this is only the polling period). */
  rolloutTickMs: ms(1_000, 10),
  /** Issue #5: at most this many devices in operator debug raw sampling at once (HUB_ERR_DEBUG_LIMIT beyond). */
  maxDebugDevices: withDefault(int({ min: 1, max: 1_000 }), 10),
  /** Bytes of device messages waiting to be handled beyond which telemetry is shed, counted as HUB_ERR_OVERLOADED (hub/mqtt-link.ts). */
  inboundQueueBytes: withDefault(int({ min: 1024 * 1024, max: 4 * 1024 ** 3 }), 64 * 1024 * 1024),
  /** Telemetry ingest, roll-up, retention and drift thresholds (hub/telemetry/options.ts). */
  telemetry: withDefault(telemetryOptionsSchema, TELEMETRY_DEFAULTS),
  /** Device events: rate per device, retention, batching of installs into the log (hub/events/options.ts). */
  events: withDefault(eventOptionsSchema, EVENT_DEFAULTS),
  /** Several hubs, one fleet: the leader lease in PostgreSQL and the shared subscription group (hub/cluster/options.ts). Needs storeUrl and brokerUrl. Unset: this hub runs alone. */
  cluster: optional(clusterOptionsSchema),
});

export type HubOptionsInput = Partial<Omit<Infer<typeof hubOptionsSchema>, 'telemetry' | 'events' | 'cluster'>> & { dataDir: string; keysDir: string; telemetry?: Partial<TelemetryOptions>; events?: Partial<EventOptions>; cluster?: Partial<ClusterOptions> };
type Parsed = Infer<typeof hubOptionsSchema>;
// withDefault keys always hold a value after parsing (protocol/schema.ts types them as optional).
type OptionalKeys = 'storeUrl' | 'cluster' | 'brokerUrl' | 'mqttTlsCert' | 'mqttTlsKey' | 'mqttUsername' | 'mqttPassword' | 'mqttCa' | 'httpHost' | 'mqttHost' | 'httpTlsCert' | 'httpTlsKey' | 'metricsHost' | 'metricsPort';
export type HubOptions = Readonly<Required<Omit<Parsed, OptionalKeys>> & Pick<Parsed, OptionalKeys>>;

/** Throws PROTO_ERR_UNKNOWN_OPTION / PROTO_ERR_INVALID_OPTION naming every bad key. */
export function parseHubOptions(input: unknown): HubOptions {
  return parseOptions(hubOptionsSchema, input, 'hub options') as HubOptions;
}
