/**
 * The agent's stable error codes. Devices report these codes (not prose) in
 * state reports and events; the predict API answers with them. Codes are never
 * reused: retire one by leaving it in place.
 */
import { errorFactory, type ErrorSpec } from '@fleetcast/protocol/errors.js';
import type { FailureClass } from './install-failures.js';

/** An agent code may name its failure class: what a failed install does next (agent/install-failures.ts). */
export interface AgentErrorSpec extends ErrorSpec { readonly failure?: FailureClass }

export const AGENT_ERRORS = {
  // Predict API: input validation and HTTP.
  AGENT_ERR_UNKNOWN_INPUT: { message: 'The request names an input the model does not have; use the input names listed by GET /v1/status', status: 400 },
  AGENT_ERR_MISSING_INPUT: { message: 'The request lacks an input the model needs; send every input listed by GET /v1/status', status: 400 },
  AGENT_ERR_INPUT_SHAPE: { message: 'An input has the wrong number of dimensions, a ragged or empty array, or a size that disagrees with the model or with another input; send a rectangular nested array of the documented shape', status: 400 },
  AGENT_ERR_INPUT_TYPE: { message: 'An input element has the wrong type for the model (integers for int inputs, numbers for float inputs, booleans for bool inputs); convert it before sending', status: 400 },
  AGENT_ERR_INPUT_NAN: { message: 'An input holds NaN or Infinity (or null, which is how JSON writes NaN) and the model does not allow it; impute or drop the value', status: 400 },
  AGENT_ERR_INPUT_RANGE: { message: 'An input value lies outside the limits the model was released with; check the sensor or the units', status: 400 },
  AGENT_ERR_BAD_JSON: { message: 'The request body is not valid UTF-8 JSON; send a JSON object', status: 400 },
  AGENT_ERR_BAD_REQUEST: { message: 'The request body must be a JSON object of the form {"inputs": {"NAME": nested array}}', status: 400 },
  AGENT_ERR_BODY_TOO_LARGE: { message: 'The request body is larger than the agent accepts (maxBodyBytes); send a smaller batch', status: 413 },
  AGENT_ERR_BATCH_TOO_LARGE: { message: 'The batch has more rows than the agent accepts (maxBatch); split it into smaller requests', status: 400 },
  AGENT_ERR_NOT_FOUND: { message: 'No such endpoint; the agent serves POST /v1/predict, GET /v1/status, GET / and the Open Inference Protocol under /v2 (see README, The agent\'s local API)', status: 404 },
  AGENT_ERR_METHOD: { message: 'This method is not allowed on this endpoint; see the Allow header', status: 405 },
  AGENT_ERR_INFERENCE: { message: 'The model failed to run on a request that passed validation; the log has the runtime message, and the manifest schema may be too loose for this model', status: 500 },
  AGENT_ERR_NO_MODEL: { message: 'No model is installed yet; wait for the hub to assign one (GET /v1/status shows progress)', status: 503 },

  // Assignment checks (hub-signed assignment + release-signed manifest).
  AGENT_ERR_ASSIGNMENT_INVALID: { message: 'An assign message or its assignment payload does not match the protocol schema; check the hub version', status: 400 },
  AGENT_ERR_ASSIGNMENT_SIGNATURE: { message: 'An assignment is not validly signed by a hub key listed in root.json; check the hub key and the provisioned root', status: 400, failure: 'security' },
  AGENT_ERR_ASSIGNMENT_WRONG_DEVICE: { message: 'An assignment names another device; the hub published it on the wrong topic', status: 400, failure: 'security' },
  AGENT_ERR_ASSIGNMENT_REPLAY: { message: 'An assignment counter is not above the last accepted one (a replayed or reordered assignment); the hub must issue a new counter', status: 409, failure: 'security' },
  AGENT_ERR_ASSIGNMENT_EXPIRED: { message: 'An assignment has expired; the hub must re-sign it (check the clocks of hub and device)', status: 400 },
  AGENT_ERR_ROOT_EXPIRED: { message: 'The provisioned root.json has expired, so no new assignment can be trusted; the installed model keeps serving. Provision a rotated root', status: 400 },
  AGENT_ERR_MANIFEST_SIGNATURE: { message: 'The bundle manifest is not signed by a threshold of release keys in root.json; rebuild and sign it with a listed release key', status: 400, failure: 'security' },
  AGENT_ERR_MANIFEST_INVALID: { message: 'The bundle manifest does not match the manifest schema or is inconsistent; rebuild the bundle', status: 400 },
  AGENT_ERR_MANIFEST_MISMATCH: { message: 'The assignment and the manifest disagree (bundle id is not the sha256 of the manifest, or name/version differ); the hub must publish the manifest it signed for', status: 400, failure: 'security' },
  AGENT_ERR_INCOMPATIBLE: { message: 'The bundle needs a runtime, element type or memory this agent does not have; build a bundle compatible with this device', status: 400 },

  // Install.
  AGENT_ERR_FETCH_TIMEOUT: { message: 'Bundle chunks stopped arriving and repeated requests did not help; check the hub and the broker, the install resumes on the next assignment delivery', status: 504, failure: 'transient' },
  AGENT_ERR_CHUNK_HASH: { message: 'Received bundle chunks did not match the hashes in the signed manifest; check the hub store for corruption', status: 502, failure: 'corrupt-chunks' },
  AGENT_ERR_PAYLOAD_HASH: { message: 'The assembled or decompressed payload does not match the signed manifest; the bundle was altered or corrupted', status: 502, failure: 'permanent' },
  AGENT_ERR_DECOMPRESS: { message: 'The payload could not be decompressed within the length the manifest declares; rebuild the bundle', status: 502, failure: 'permanent' },
  AGENT_ERR_MODEL_TOO_LARGE: { message: 'The model is larger than this agent accepts (maxRawModelBytes); raise the limit or ship a smaller model', status: 413 },
  AGENT_ERR_DISK_SPACE: { message: 'Not enough free disk space in the data folder to stage a bundle or to save the agent\'s state; the installed model keeps serving. Free some space', status: 507, failure: 'transient' },
  AGENT_ERR_MODEL_LOAD: { message: 'The runtime could not load the model, or its inputs/outputs differ from the manifest; check the model against the manifest schema', status: 500, failure: 'permanent' },
  AGENT_ERR_SMOKE_FAILED: { message: 'The model failed its smoke inference or golden cases on this device; the old model keeps serving', status: 500, failure: 'permanent' },
  AGENT_ERR_STATE_CORRUPT: { message: 'The agent state file could not be read; it was set aside and the agent started from an empty state', status: 500 },

  AGENT_ERR_DATA_DIR: { message: 'The agent data folder cannot be created or written; check the path, its owner and permissions, and the free space', status: 500 },
  AGENT_ERR_LISTEN: { message: 'The predict API cannot listen on the configured address (in use or not allowed); choose another --listen address', status: 500 },

  AGENT_ERR_INTERNAL: { message: 'An unexpected internal error happened in the agent; the log has the details. Please report it', status: 500, failure: 'transient' },

  // Resilience (install recovery, probation, load shedding).
  AGENT_ERR_BUSY: { message: 'The agent is already running as many predictions as it allows (maxConcurrentPredictions); retry after a short pause', status: 429 },
  AGENT_ERR_PROBATION_ERRORS: { message: 'A newly installed model failed too many predictions (errors or NaN/Infinity outputs) during its probation window; the agent rolled back to the previous model and refuses this bundle', status: 500, failure: 'permanent' },
  AGENT_ERR_PROBATION_LATENCY: { message: 'A newly installed model answered much slower than the previous one during its probation window; the agent rolled back to the previous model and refuses this bundle', status: 500, failure: 'permanent' },
  AGENT_ERR_CRASH_LOOP: { message: 'The agent restarted too many times while installing this bundle; it gave up on the bundle and serves the model it had', status: 500, failure: 'permanent' },
  AGENT_ERR_BUNDLE_REFUSED: { message: 'This bundle failed on this device before (hash, signature, golden cases or probation) and is not fetched again; assign a different bundle', status: 409 },
  AGENT_ERR_SLOT_DAMAGED: { message: 'An installed model file was missing, truncated or changed on disk (a power cut or a failing disk); the agent serves the other slot and reinstalls on the next assignment delivery', status: 500, failure: 'transient' },
  AGENT_ERR_RUNTIME: { message: 'The requested model runtime cannot be loaded on this device; use --runtime wasm or install the onnxruntime-node binaries', status: 500 },
  AGENT_ERR_CONFIG: { message: 'The agent configuration (config file, FLEETCAST_AGENT_* environment variables or flags) is invalid; fix the named key', status: 400 },
  AGENT_ERR_ROOT_UPDATE: { message: 'A root update from the hub was refused (not the next version, not cross-signed by the current root keys, too many versions at once, or expired); the device keeps its current root. Serve every root version in order, each signed by old and new root keys', status: 400 },
  AGENT_ERR_CHECKPOINT_INVALID: { message: 'A transparency-log checkpoint was not validly signed by a hub key of the current root (or is malformed); it was ignored and the last good one kept', status: 400 },
  AGENT_ERR_LOG_INCONSISTENT: { message: 'The hub\'s transparency log does not extend the history this device saw (smaller, different at the same size, or no valid consistency proof): the history may have been rewritten. The device keeps its checkpoint as evidence; investigate the hub', status: 409 },
  AGENT_ERR_FETCH_SLOW: { message: 'A bundle transfer stayed below the minimum rate (minTransferBytesPerSec over rateWindowMs) and was abandoned (slow-retrieval defence); check the link and the hub, then assign the bundle again', status: 504 },
  // Operator control from the hub (issue #5: debug raw sampling).
  AGENT_ERR_CONTROL_INVALID: { message: 'A control message (debug sampling) from the hub does not match the protocol schema or asks for more than a device allows (100 rows per window, 60 minutes); it was ignored. Check the hub version', status: 400 },
  AGENT_ERR_CONTROL_SIGNATURE: { message: 'A control message is not validly signed by a hub key of the trusted root; it was ignored. Check the hub key and the provisioned root', status: 400 },
  AGENT_ERR_CONTROL_WRONG_DEVICE: { message: 'A control message names another device; it was ignored (the hub published it on the wrong topic)', status: 400 },
  AGENT_ERR_CONTROL_EXPIRED: { message: 'A control message has expired; it was ignored. Turn debug sampling on again from the hub (check the clocks of hub and device)', status: 400 },
  AGENT_ERR_CONTROL_REPLAY: { message: 'A control message is older than the last one applied (a replayed or reordered message); it was ignored', status: 409 },
  // Local API hardening: who may call the predict API (cross-origin pages, DNS rebinding, tokens).
  AGENT_ERR_CONTENT_TYPE: { message: 'The request body has a Content-Type this endpoint does not take; send Content-Type: application/json (or application/octet-stream for the binary tensor extension of /v2 infer)', status: 415 },
  AGENT_ERR_HOST: { message: 'The Host header names neither localhost, an IP address, the listen address nor a name in allowedHosts, so the request was refused (this is how a DNS-rebinding web page would reach the agent); add the name to the agent option allowedHosts', status: 403 },
  AGENT_ERR_ORIGIN: { message: 'A cross-origin browser request (its Origin header is another site) was refused, so web pages cannot use the device\'s model; add the origin to the agent option allowedOrigins if that page must call the agent', status: 403 },
  AGENT_ERR_UNAUTHORIZED: { message: 'This endpoint needs the agent\'s API token (apiTokenFile); send Authorization: Bearer <token>', status: 401 },
  // Open Inference Protocol (KServe v2 / Triton HTTP).
  AGENT_ERR_MODEL_NOT_FOUND: { message: 'No such model or version is loaded on this agent; GET /v2/models/NAME with the name (and version) from GET /v1/status', status: 404 },
  AGENT_ERR_UNKNOWN_OUTPUT: { message: 'A requested output is not an output of the model; ask only for outputs listed by GET /v2/models/NAME', status: 400 },
  AGENT_ERR_BINARY_LAYOUT: { message: 'The binary tensor data does not add up: Inference-Header-Content-Length, the binary_data_size of each input and the body length must agree, and BYTES elements are 4-byte little-endian lengths followed by that many bytes', status: 400 },
  // Replay across a counter reset (a root that revoked a hub key resets the counter).
  AGENT_ERR_ASSIGNMENT_BEFORE_RESET: { message: 'An assignment was signed under a root older than the one at which this device reset its assignment counter (a hub key was revoked), so it may be a recorded message replayed into the emptied counter space; it was refused. The hub re-signs current assignments under its newest root when it starts with it', status: 409, failure: 'security' },
  // The MQTT connection (agent/broker-client.ts): the agent keeps retrying with a growing, jittered wait.
  AGENT_ERR_BROKER_AUTH: { message: 'The broker refused this device\'s MQTT login (unknown user, wrong or revoked password, or client id not the device id). The agent keeps retrying, slowly (loginRetryMs); enrol the device again and give it the new secret (mqttPassword, or the mqttPasswordFile it re-reads before every attempt)', status: 503 },
  AGENT_ERR_BROKER_UNREACHABLE: { message: 'The broker cannot be reached or dropped the connection (refused, timed out, TLS or network error). The agent keeps retrying with a growing, jittered wait (reconnectPeriodMs up to reconnectMaxMs) and serves its installed model meanwhile; check the broker URL, the network and the broker', status: 503 },
  // The agent's framed MQTT reads over TCP and TLS (agent/mqtt-framer.ts); reported as the detail of AGENT_ERR_BROKER_UNREACHABLE.
  AGENT_ERR_BROKER_BAD_PACKET: { message: 'The broker sent an MQTT packet whose remaining length is malformed (more than 4 bytes) or over 8 MiB and 512 bytes, more than any packet the hub sends (HUB_MAX_PACKET_BYTES, protocol/channel-limits.ts); the agent dropped the connection without allocating the packet and reconnects with its usual growing wait. Check the broker (a proxy or broker that corrupts the stream, or one configured with a larger max_packet_size) and what publishes to this device\'s topics', status: 502 },
  // Packages: prom-client is an optional dependency of @fleetcast/agent (README "Packages").
  AGENT_ERR_METRICS_UNAVAILABLE: { message: 'GET /metrics needs the optional dependency prom-client, which is not installed next to the agent (installed with --omit=optional?); install it (npm install prom-client in the agent\'s folder) and restart the agent to serve Prometheus metrics', status: 501 },
  // The inference thread (agent/runtime-worker.ts, option inferenceThread).
  AGENT_ERR_RUNTIME_LOST: { message: 'The inference thread ended (a crash inside onnxruntime, or out of memory) while this call was waiting on it; the next call starts a new thread and loads the model again. Retry the request; if it keeps happening, the log says why the thread ended', status: 503, failure: 'transient' },
} as const satisfies Readonly<Record<string, AgentErrorSpec>>;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;
export const agentError = errorFactory(AGENT_ERRORS);
