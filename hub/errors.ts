/**
 * The hub's coded errors. Codes are stable and never reused (docs/errors.md is
 * generated from this table); `status` is what the HTTP API answers with.
 */
import { errorFactory, type ErrorTable } from '@fleetcast/protocol/errors.js';

export const HUB_ERRORS = {
  HUB_ERR_BAD_BUNDLE: { message: 'The uploaded body is not a valid fleetcast bundle (a ustar with manifest.json and model.onnx.zst whose hashes match the manifest); rebuild it with `fleetcast bundle build`', status: 400 },
  HUB_ERR_RELEASE_SIGNATURE: { message: 'The bundle manifest is not signed by a threshold of the release keys in the hub\'s root.json; sign it with a listed release key or rotate the root', status: 400 },
  HUB_ERR_DUPLICATE_VERSION: { message: 'A different bundle with this name and version is already published; versions are immutable, so build the new model with a higher --version', status: 409 },
  HUB_ERR_UNKNOWN_BUNDLE: { message: 'No published bundle has this id or name@version; publish it first with `fleetcast publish` or check `GET /v1/bundles`', status: 404 },
  HUB_ERR_UNKNOWN_DEVICE: { message: 'No device with this id has reported its state to the hub (or, for a deployment or rollout ring, holds an enrollment); check the id, wait until the device connects, or, to target devices not yet seen on purpose, pass allowUnknown: true (`fleetcast deploy|rollout start --allow-unknown`)', status: 404 },
  HUB_ERR_NO_TARGETS: { message: 'A deployment named no devices; pass `all: true` (with at least one device known to the hub) or a non-empty `devices` list, not both', status: 400 },
  HUB_ERR_BODY_TOO_LARGE: { message: 'The request body is larger than the hub accepts; send a smaller body or raise the hub\'s maxBundleBytes option', status: 413 },
  HUB_ERR_UNSUPPORTED_MEDIA_TYPE: { message: 'The request has the wrong Content-Type; send bundles as application/octet-stream and everything else as application/json', status: 415 },
  HUB_ERR_BAD_REQUEST: { message: 'The request does not match the documented shape; see GET /openapi.json', status: 400 },
  HUB_ERR_NO_ROUTE: { message: 'No API route has this method and path; see GET /openapi.json for the routes', status: 404 },
  HUB_ERR_DEVICE_MISMATCH: { message: 'A device message names a different deviceId than the topic it was published on; a device may only speak under fc/v1/dev/<its own id>/', status: 400 },
  HUB_ERR_BAD_MESSAGE: { message: 'An MQTT message on a fleetcast topic could not be handled; fix the sender to publish the documented message for that topic', status: 400 },
  HUB_ERR_CHUNK_OUT_OF_RANGE: { message: 'A chunk request asked for a chunk index the bundle does not have; request indices below the manifest\'s chunk count', status: 400 },
  HUB_ERR_BUNDLE_NOT_ASSIGNED: { message: 'A device asked for chunks of a bundle the hub has not assigned it (nor assigned it before, to roll back to); nothing was sent. Deploy the bundle to the device, or find out why it asks (a misconfigured or compromised device)', status: 403 },
  HUB_ERR_BROKER_UNREACHABLE: { message: 'The hub could not connect to the MQTT broker; check --broker (or the embedded broker\'s port) and that the broker is running', status: 503 },
  HUB_ERR_STORE: { message: 'The hub\'s data folder could not be read or written (hub.db or blobs/); check free space, permissions and that no other hub uses the same --data', status: 500 },
  HUB_ERR_LISTEN: { message: 'The hub could not listen on a port (HTTP API or embedded broker); choose another --http-port / --mqtt-port or stop the process that uses it; with TLS, give both the certificate and the key as readable PEM files', status: 500 },
  HUB_ERR_KEYS: { message: 'The hub could not load its keys: --keys must hold root.json and hub.key, and hub.key must be listed under the hub role of root.json', status: 500 },
  HUB_ERR_UNREACHABLE: { message: 'The CLI could not reach the hub; check --hub URL and that `fleetcast hub` is running', status: 503 },
  HUB_ERR_BAD_RESPONSE: { message: 'The hub answered with something that is not a fleetcast API response; check that --hub points at a fleetcast hub of a matching version', status: 502 },
  HUB_ERR_ROLLOUT_SPEC: { message: 'The rollout description is not valid (rings, gates, policy, window or rate); fix the named field and start the rollout again — nothing was changed', status: 400 },
  HUB_ERR_ROLLOUT_ACTIVE: { message: 'Another rollout of this model is still running or paused; wait for it, abort it, or start with --supersede to replace it (recorded as a decision)', status: 409 },
  HUB_ERR_UNKNOWN_ROLLOUT: { message: 'No rollout has this id; list them with `fleetcast rollout status`', status: 404 },
  HUB_ERR_ROLLOUT_STATE: { message: 'The rollout is not in a state that allows this action (e.g. resume of a running rollout, promote of a finished one); check `fleetcast rollout status ID`', status: 409 },
  HUB_ERR_UNAUTHENTICATED: { message: 'The request has no valid bearer token; set FLEETCAST_TOKEN_FILE (or FLEETCAST_TOKEN) for the CLI (the first admin token is in the hub data folder, file admin.token)', status: 401 },
  HUB_ERR_FORBIDDEN: { message: 'The token is valid but its role may not do this; admin manages tokens and keys, operator publishes and runs rollouts, auditor only reads', status: 403 },
  HUB_ERR_ROUTE_ACCESS: { message: 'An API route was registered without a valid config.access (public, auditor, operator or admin); the hub refuses to start rather than guess who may call it. Declare the access on the route', status: 500 },
  HUB_ERR_BAD_TELEMETRY: { message: 'A telemetry report does not fit the bundle it names (unknown feature, wrong kind, bins not over the reference edges, or inconsistent counts); the report was dropped: update the agent or rebuild the bundle reference', status: 400 },
  HUB_ERR_TELEMETRY_REPLAY: { message: 'A telemetry report repeats or goes back in its device\'s sequence (a replay or a reordered resend); it was dropped and counted', status: 409 },
  HUB_ERR_TELEMETRY_UNKNOWN_BUNDLE: { message: 'A telemetry report names a bundle the hub has not published; it was dropped (publish the bundle, or check the device runs a bundle from this hub)', status: 404 },
  HUB_ERR_DRIFT_WEBHOOK: { message: 'A drift alert could not be POSTed to the configured webhook (unreachable, timed out or answered non-2xx); the alert is still logged and recorded as an event', status: 502 },
  HUB_ERR_MQTT_AUTH: { message: 'An MQTT client was refused: unknown user name, wrong secret, or (for a device) a client id that is not its device id. Enroll the device with `fleetcast device enroll ID` and connect with client id = user name = device id', status: 401 },
  HUB_ERR_MQTT_FORBIDDEN: { message: 'An MQTT client tried to publish or subscribe outside its own topics (a device speaks only under fc/v1/dev/<its id>/ and reads only its own assignment, bundle chunks and trust topics); the publish was refused and the client disconnected', status: 403 },
  HUB_ERR_REPORT_REPLAY: { message: 'A device state report or event repeated or went back in its device\'s sequence (a replayed or reordered message); it was dropped and counted. A device whose agent state was reset must be re-enrolled', status: 409 },
  HUB_ERR_DEBUG_LIMIT: { message: 'Debug raw sampling is already on for as many devices as the hub allows at once (maxDebugDevices); turn it off for another device (DELETE /v1/devices/ID/debug, `fleetcast device debug ID --off`) or wait until a session ends', status: 429 },
  HUB_ERR_DEBUG_NOT_REQUESTED: { message: 'A device sent raw debug rows although no operator has debug sampling on for it (or more rows per window than the operator asked for); those rows were discarded and counted (the rest of its report was ingested). Check the device\'s telemetry.debugRowsPerWindow option', status: 409 },
  HUB_ERR_OVERLOADED: { message: 'The hub received device messages faster than it could handle them and its inbound queue (or a telemetry ingest worker\'s backlog) reached its bound; messages were shed and counted: telemetry when the whole queue was full, and any message but a state report when one device had more than its share (1/16 of the bound, or 1024 messages) waiting (state reports are coalesced: the latest per device is kept). A device shed for its share is flooding: look at its agent. Give the hub more CPU or ingest workers (telemetry.ingestWorkers), lower the agents\' report rate (telemetry.windowMs) or raise the hub option inboundQueueBytes', status: 503 },
  HUB_ERR_EVENT_RATE: { message: 'A device sent events faster than the hub accepts from one device (events.burst, then events.perMinute); the excess was dropped, not stored, and counted. Check the device for a fault loop, or raise the hub option events.perMinute', status: 429 },
  HUB_ERR_EVENT_CLAIM: { message: 'A device reported an event (such as an install) for a bundle the hub never assigned to it under that counter; it is kept as the device\'s unverified claim, shown apart (GET /v1/log/claims), and is never logged as an install. Check the device: it may run a model from elsewhere or be forging reports', status: 409 },
  HUB_ERR_DEVICE_ENROLLED: { message: 'A device in the enrollment already holds an active MQTT credential; re-enrolling replaces it and cuts the device off until its new secret is installed. Pass rotate: true (`fleetcast device enroll --rotate`) if that is meant, or leave those devices out', status: 409 },
  HUB_ERR_BROKER_FAULT: { message: 'The embedded MQTT broker threw an error it did not handle (a fault in aedes or the hub\'s hooks into it). The hub logged it, kept its API and store running, and restarted the broker on the same port; clients reconnect and the hub publishes its retained messages again. If it repeats, report the logged error and consider an external broker (--broker)', status: 500 },
} as const satisfies ErrorTable;

export type HubErrorCode = keyof typeof HUB_ERRORS;

export const hubError = errorFactory(HUB_ERRORS);
