/**
 * Agent options: one schema, validated once at start-up; unknown keys are
 * refused and named (a typo in a device config is visible, not ignored);
 * defaults live here only; the result is frozen.
 */
import { arr, bool, int, json, nullable, num, obj, optional, parseOptions, record, str, withDefault, type Infer } from '@fleetcast/protocol/schema.js';
import { LOG_FORMATS, LOG_LEVELS } from '@fleetcast/protocol/log-format.js';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';
import { TELEMETRY_DEFAULTS, telemetryOptionsSchema } from './telemetry/collector.js';

const MiB = 1024 * 1024;

export const agentOptionsSchema = obj({
  /** This device's id: its MQTT client id and topic segment (`fc/v1/dev/<deviceId>/…`); the hub enrolls it under this name. */
  deviceId: str({ pattern: DEVICE_ID_PATTERN }),
  /** mqtt://host:port (also mqtts://, ws://, wss://); null runs offline (serves the installed model only). */
  brokerUrl: withDefault(nullable(str({ min: 1, max: 2048, pattern: /^(mqtts?|tcp|tls|ssl|wss?):\/\/\S+$/ })), null),
  /** Data folder (mode 0700, owned by the agent user): state, staged and installed models, trust state. Created if missing. */
  dataDir: str({ min: 1, max: 4096 }),
  /** Path of the provisioned root.json (the trust anchor). */
  rootPath: str({ min: 1, max: 4096 }),
  /** "host:port" for the local predict API, or null for none (in-process use). */
  listen: withDefault(nullable(str({ pattern: /^[^\s:]+:[0-9]{1,5}$/ })), null),
  /** No new chunk for this long → ask again for the missing ones (then back off). */
  chunkTimeoutMs: withDefault(int({ min: 10, max: 3_600_000 }), 5_000),
  /** Requests without progress before the fetch fails with AGENT_ERR_FETCH_TIMEOUT. */
  maxFetchAttempts: withDefault(int({ min: 1, max: 1000 }), 8),
  /** Slow retrieval (TUF threat model, issue #6): a fetch that receives fewer bytes than this per second, averaged over rateWindowMs while connected, is abandoned (AGENT_ERR_FETCH_SLOW). 0 turns it off. */
  minTransferBytesPerSec: withDefault(int({ min: 0, max: 1024 * MiB }), 256),
  /** Window over which minTransferBytesPerSec is averaged. */
  rateWindowMs: withDefault(int({ min: 100, max: 3_600_000 }), 60_000),
  /** Upper bound of the exponential backoff between re-requests. */
  maxBackoffMs: withDefault(int({ min: 10, max: 3_600_000 }), 60_000),
  /** Jitter fraction applied to each backoff (0.2 = ±20%), to spread a fleet's retries. */
  backoffJitter: withDefault(num({ min: 0, max: 1 }), 0.2),
  /**
   * Host header names the local API answers besides localhost, IP addresses and the listen host
   * (DNS rebinding: a page on evil.example resolved to 127.0.0.1 still sends Host: evil.example).
   */
  allowedHosts: withDefault(arr(str({ min: 1, max: 253, pattern: /^[A-Za-z0-9.-]+$/ }), { max: 64 }), []),
  /** Browser origins (e.g. "http://kiosk.local:8080") allowed to call the local API cross-origin; none by default. */
  allowedOrigins: withDefault(arr(str({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s/]+$/ }), { max: 64 }), []),
  /** File holding a bearer token the predict endpoints require (never on argv, where `ps` shows it); unset = no token. */
  apiTokenFile: optional(str({ min: 1, max: 4096 })),
  /** Largest predict request body; bigger ones are answered 413 AGENT_ERR_BODY_TOO_LARGE. */
  maxBodyBytes: withDefault(int({ min: 256, max: 1024 * MiB }), MiB),
  /** Largest decompressed model this device accepts; a bigger bundle is refused before it is fetched (AGENT_ERR_MODEL_TOO_LARGE). */
  maxRawModelBytes: withDefault(int({ min: 1, max: 64 * 1024 * MiB }), 1024 * MiB),
  /** Most rows in one predict request (AGENT_ERR_BATCH_TOO_LARGE beyond). */
  maxBatch: withDefault(int({ min: 1, max: 1_000_000 }), 1024),
  /** Retained state report at least this often (0 = only on changes). */
  heartbeatMs: withDefault(int({ min: 0, max: 86_400_000 }), 60_000),
  /** Free-form facts the hub may target rollouts by (hardware, site, …). */
  capabilities: withDefault(record(json(), { maxKeys: 64 }), {}),
  /** MQTT credential of this device (from `fleetcast device enroll`); keep it in the config file (mode 0600), not on the command line. */
  mqttUsername: optional(str({ max: 1024 })),
  /** MQTT password paired with mqttUsername (from `fleetcast device enroll`). */
  mqttPassword: optional(str({ max: 4096 })),
  /** A file holding the MQTT password (systemd LoadCredential=, a secret mount), read again before every connection attempt: re-enrol the device, write the new secret there, and the agent logs in with it at its next attempt, no restart. Wins over mqttPassword. */
  mqttPasswordFile: optional(str({ min: 1, max: 4096 })),
  /** PEM file of the CA that signed the broker's certificate, for mqtts:// with a private or self-signed CA (issue #6). */
  mqttCaPath: optional(str({ min: 1, max: 4096 })),
  /** First wait after a lost or failed connection; each further failure doubles it (half of it jittered) up to reconnectMaxMs (agent/reconnect-backoff.ts). */
  reconnectPeriodMs: withDefault(int({ min: 10, max: 600_000 }), 1_000),
  /** Longest wait between reconnect attempts (the cap of the doubling). */
  reconnectMaxMs: withDefault(int({ min: 10, max: 3_600_000 }), 60_000),
  /** The same after a refused login (AGENT_ERR_BROKER_AUTH), slower: a wrong credential does not fix itself in a second. */
  loginRetryMs: withDefault(int({ min: 10, max: 3_600_000 }), 30_000),
  /** Longest wait between attempts after refused logins. */
  loginRetryMaxMs: withDefault(int({ min: 10, max: 86_400_000 }), 900_000),
  /** How long one MQTT connect attempt may take. */
  connectTimeoutMs: withDefault(int({ min: 100, max: 600_000 }), 10_000),
  /** MQTT keepalive, seconds: a ping when no acknowledgement or ping answer came for this long; the link is dropped when nothing at all (not even a chunk) came from the broker for about 1.5–2.5× this. */
  mqttKeepaliveSec: withDefault(int({ min: 1, max: 65_535 }), 60),
  /** Golden-case tolerance when the manifest gives none (absolute + relative). */
  goldenTolerance: withDefault(num({ min: 0 }), 1e-4),
  /** onnxruntime intra-op threads; small devices (and 1,000 simulated agents) want 1. */
  intraOpNumThreads: withDefault(int({ min: 0, max: 256 }), 1),
  /** "node" = onnxruntime-node, falling back to onnxruntime-web when the native binding cannot load; "wasm" = onnxruntime-web only. */
  runtime: withDefault(str({ enum: ['node', 'wasm'] as const }), 'node'),
  /**
   * With runtime "node": load, check, run and release models on threads of their own (the next model of a swap on the
   * thread that is not serving), so that a swap does not stall the predictions in flight, for a thread round trip per
   * prediction (about 0.1 ms on an idle core). false runs onnxruntime on the main thread.
   */
  inferenceThread: withDefault(bool(), true),
  /**
   * Linux: background work runs this much nicer than serving (agent/thread-priority.ts): libuv's threadpool threads
   * (the agent's file writes, fsyncs, signature checks) for good, and an inference thread while it holds no session
   * (loading and checking a swap's next model) if it may be raised back before it serves (CAP_SYS_NICE or
   * RLIMIT_NICE). A swap's work then takes only the cores the predictions leave. 0: off. Ignored elsewhere.
   */
  backgroundNice: withDefault(int({ min: 0, max: 19 }), 10),
  /** Predictions running at once; one more is answered 429 AGENT_ERR_BUSY (a bounded queue, not an unbounded one). */
  maxConcurrentPredictions: withDefault(int({ min: 1, max: 100_000 }), 64),
  /** Free space to leave in the data folder after staging a bundle (on top of what the bundle declares). */
  diskReserveBytes: withDefault(int({ min: 0 }), 16 * MiB),
  /**
   * Probation after a swap: the new model must serve this long without passing the limits below,
   * or the agent rolls back by itself. 0 commits at once (no probation).
   */
  probationMs: withDefault(int({ min: 0, max: 7 * 86_400_000 }), 0),
  /** Predictions needed before error rate and latency are judged (a single early failure is not a verdict). */
  probationMinRequests: withDefault(int({ min: 1, max: 1_000_000 }), 20),
  /** Share of failed predictions (runtime errors, NaN/Infinity outputs the manifest does not allow) that rolls back. */
  probationMaxErrorRate: withDefault(num({ min: 0, max: 1 }), 0.05),
  /** p95 latency of the new model over the previous model's that rolls back. */
  probationMaxLatencyRatio: withDefault(num({ min: 1 }), 3),
  /** Boots into the same unfinished install before the agent gives up on that bundle (AGENT_ERR_CRASH_LOOP). */
  maxInstallRecoveries: withDefault(int({ min: 1, max: 1000 }), 3),
  /** Least severe log level written (the daemon's log on stdout; `silent` writes none). */
  logLevel: withDefault(str({ enum: LOG_LEVELS }), 'info'),
  /** `json`: one JSON object per line (for journald and log shippers); `pretty`: one readable line each. Unset: pretty when stdout is a terminal, else json. */
  logFormat: optional(str({ enum: LOG_FORMATS })),
  /** Sampled telemetry: window, sampling rate, offline buffer, debug raw rows (agent/telemetry/collector.ts). */
  telemetry: withDefault(telemetryOptionsSchema, TELEMETRY_DEFAULTS),
});

type Parsed = Infer<typeof agentOptionsSchema>;
// withDefault keys come out optional in Infer; after parsing they are always present.
export type AgentOptions = Readonly<Required<Omit<Parsed, 'mqttUsername' | 'mqttPassword' | 'mqttPasswordFile' | 'mqttCaPath' | 'apiTokenFile' | 'logFormat'>> & Pick<Parsed, 'mqttUsername' | 'mqttPassword' | 'mqttPasswordFile' | 'mqttCaPath' | 'apiTokenFile' | 'logFormat'>>;
/** What callers pass: only the required keys, the rest defaulted. */
export type AgentOptionsInput = Partial<AgentOptions> & Pick<AgentOptions, 'deviceId' | 'dataDir' | 'rootPath'>;

export function parseAgentOptions(value: unknown): AgentOptions {
  return parseOptions(agentOptionsSchema, value, 'agent options') as AgentOptions;
}
