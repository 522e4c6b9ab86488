/**
 * The stateless half of accepting an assignment (DESIGN "Trust: an agent
 * installs only when both verify against its root, agree with each other and
 * with the bytes, are fresh, and are not replays"). Freshness and replay need
 * the agent's state and live in the installer; everything here depends only
 * on the message, the root and this device.
 */
import { totalmem } from 'node:os';
import { bundleIdOf, manifestSteps, type VerifiedManifest } from '@fleetcast/bundles/verify.js';
import { PAYLOAD_TYPES } from '@fleetcast/protocol/envelope.js';
import { errorCode, isFleetcastError } from '@fleetcast/protocol/errors.js';
import { assignmentSchema, decodeAssignMessage, type Assignment, type AssignMessage } from '@fleetcast/protocol/messages.js';
import { parse } from '@fleetcast/protocol/schema.js';
import { envelopeSteps } from '@fleetcast/signing/envelope.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import { settleAsync, settleSync, type Verifying } from '@fleetcast/signing/verify-steps.js';
import { agentError } from './errors.js';
import type { VerifiedManifests } from './verified-manifests.js';
import { SUPPORTED_INPUT_TYPES } from './validate.js';

export interface CheckedAssignment { message: AssignMessage; assignment: Assignment; verified: VerifiedManifest }

export interface CheckContext {
  root: TrustedRoot;
  deviceId: string;
  /** e.g. "onnxruntime-node@1.30.0"; a manifest's compat.runtimes entry matches by prefix. */
  runtimeName: string;
  maxRawModelBytes: number;
  now: () => number;
  /** This device's hardware classes (capabilities.hardware, a string or a list); a bundle that lists compat.hardware must name one (issue #6, "wrong software"; the hub's rollout compat check reads the same field). */
  hardware?: readonly string[];
  /**
   * Verify the release-signed manifest against the root (default: bundles/verify.ts, its signatures off the event loop). A seam: the simulator's
   * agents receive the same manifest bytes and verify them once for all (simulator/shared-manifests.ts).
   */
  verifyManifest?: ManifestVerifier;
  /** Manifests verified before, by their exact signed bytes and root (verified-manifests.ts): a swap back does not parse the same manifest again. */
  manifests?: VerifiedManifests;
}

export type ManifestVerifier = (envelope: AssignMessage['manifest'], root: TrustedRoot) => VerifiedManifest;

const causeOf = (e: unknown) => ({ cause: errorCode(e) });
const why = (e: unknown) => (isFleetcastError(e) || e instanceof Error ? e.message : String(e));

export function checkAssignMessage(bytes: Uint8Array, ctx: CheckContext): CheckedAssignment {
  return settleSync(assignSteps(bytes, ctx));
}

/** checkAssignMessage with the signatures checked on libuv's threadpool: a swap's assignment does not stall the predictions in flight. */
export function checkAssignMessageAsync(bytes: Uint8Array, ctx: CheckContext): Promise<CheckedAssignment> {
  return settleAsync(assignSteps(bytes, ctx));
}

function* assignSteps(bytes: Uint8Array, ctx: CheckContext): Verifying<CheckedAssignment> {
  if (ctx.root.expires <= ctx.now()) throw agentError('AGENT_ERR_ROOT_EXPIRED', `root v${ctx.root.version} expired at ${new Date(ctx.root.expires).toISOString()}`);
  let message: AssignMessage;
  try {
    message = decodeAssignMessage(bytes);
  } catch (e) {
    throw agentError('AGENT_ERR_ASSIGNMENT_INVALID', why(e), causeOf(e));
  }

  // Signature first, parse after: only bytes the hub signed are ever interpreted.
  let payload: Buffer;
  try {
    payload = yield* envelopeSteps(message.assignment, PAYLOAD_TYPES.assignment, ctx.root.roles.hub, 'assignment');
  } catch (e) {
    throw agentError('AGENT_ERR_ASSIGNMENT_SIGNATURE', why(e), causeOf(e));
  }
  let assignment: Assignment;
  try {
    assignment = parse(assignmentSchema, JSON.parse(payload.toString('utf8')), { what: 'assignment' });
  } catch (e) {
    throw agentError('AGENT_ERR_ASSIGNMENT_INVALID', why(e), causeOf(e));
  }
  const ref = { counter: assignment.counter, bundleId: assignment.bundleId };
  if (assignment.deviceId !== ctx.deviceId) {
    throw agentError('AGENT_ERR_ASSIGNMENT_WRONG_DEVICE', `assignment is for ${assignment.deviceId}, this is ${ctx.deviceId}`, ref);
  }
  return { message, assignment, verified: yield* manifestCheckSteps(message, assignment, ctx) };
}

/** The release-signed manifest, and its agreement with the hub's assignment and with this device. */
function* manifestCheckSteps(message: AssignMessage, assignment: Assignment, ctx: CheckContext): Verifying<VerifiedManifest> {
  const ref = { counter: assignment.counter, bundleId: assignment.bundleId };
  let verified: VerifiedManifest;
  try {
    if (ctx.verifyManifest) verified = ctx.verifyManifest(message.manifest, ctx.root);
    else {
      const known = ctx.manifests?.get(message.manifest, ctx.root);
      verified = known ?? (yield* manifestSteps(message.manifest, ctx.root));
      if (!known) ctx.manifests?.set(message.manifest, ctx.root, verified);
    }
  } catch (e) {
    const code = errorCode(e);
    throw agentError(code.startsWith('SIGN_ERR_') ? 'AGENT_ERR_MANIFEST_SIGNATURE' : 'AGENT_ERR_MANIFEST_INVALID', why(e), { ...ref, cause: code });
  }
  const { manifest } = verified;
  // The bundle id is recomputed from the exact signed bytes, never taken from a field.
  const bundleId = bundleIdOf(verified.manifestBytes);
  if (bundleId !== assignment.bundleId || verified.bundleId !== bundleId) {
    throw agentError('AGENT_ERR_MANIFEST_MISMATCH', `assignment names bundle ${assignment.bundleId.slice(0, 12)}…, the manifest is ${bundleId.slice(0, 12)}…`, ref);
  }
  if (manifest.name !== assignment.name || manifest.version !== assignment.version) {
    throw agentError('AGENT_ERR_MANIFEST_MISMATCH', `assignment says ${assignment.name} v${assignment.version}, manifest says ${manifest.name} v${manifest.version}`, ref);
  }
  if (manifest.payload.rawLength > ctx.maxRawModelBytes) {
    throw agentError('AGENT_ERR_MODEL_TOO_LARGE', `${manifest.payload.rawLength} bytes, limit ${ctx.maxRawModelBytes}`, ref);
  }
  const runtimes = manifest.compat.runtimes ?? [];
  if (runtimes.length > 0 && !runtimes.some((r) => ctx.runtimeName.startsWith(r))) {
    throw agentError('AGENT_ERR_INCOMPATIBLE', `bundle runs on ${runtimes.join(', ')}; this agent has ${ctx.runtimeName}`, ref);
  }
  const hw = manifest.compat.hardware ?? [];
  if (hw.length > 0 && !hw.some((h) => ctx.hardware?.includes(h))) {
    throw agentError('AGENT_ERR_INCOMPATIBLE', `bundle is for hardware ${hw.join(', ')}; this device is ${ctx.hardware?.length ? ctx.hardware.join(', ') : 'unspecified (set capabilities.hardware)'}`, ref);
  }
  const needMB = manifest.compat.minMemoryMB;
  if (needMB !== undefined && needMB > totalmem() / (1024 * 1024)) {
    throw agentError('AGENT_ERR_INCOMPATIBLE', `bundle needs ${needMB} MB of memory`, ref);
  }
  const unsupported = manifest.inputs.filter((i) => !SUPPORTED_INPUT_TYPES.includes(i.type));
  if (unsupported.length) {
    throw agentError('AGENT_ERR_INCOMPATIBLE', `input types ${unsupported.map((i) => `${i.name}:${i.type}`).join(', ')} are not supported`, ref);
  }
  return verified;
}
