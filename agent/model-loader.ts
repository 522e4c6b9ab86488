/**
 * Turning files on disk into a servable model: hash the model file, load a
 * session, check its inputs/outputs against the signed manifest, compile the
 * input validator, and run a smoke inference (plus the manifest's golden
 * cases) before the model is allowed near a request (DESIGN "Stage: load a
 * shadow session, run golden cases").
 */
import { verifyManifestEnvelope } from '@fleetcast/bundles/verify.js';
import { parseEnvelope } from '@fleetcast/protocol/envelope.js';
import { errorCode, isFleetcastError } from '@fleetcast/protocol/errors.js';
import { runSmoke, type SmokeRun } from '@fleetcast/bundles/smoke.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import { agentError } from './errors.js';
import type { LoadedModel, ModelRuntime } from './runtime.js';
import type { InstalledModel, StateStore } from './state-store.js';
import { compileValidator, type InputValidator } from './validate.js';
import { nextTurn } from './next-turn.js';

export interface ModelEntry {
  model: LoadedModel;
  info: InstalledModel;
  manifest: Manifest;
  validate: InputValidator;
}

export { sha256File } from './disk-storage.js';

/** Load a session (from a file path, or the model's bytes) and check it is the model the manifest describes. Nothing leaks on failure. */
export async function openModel(runtime: ModelRuntime, source: string | Uint8Array, manifest: Manifest, info: InstalledModel, maxBatch: number): Promise<ModelEntry> {
  const validate = compileValidator(manifest.inputs, { maxBatch });
  // Session creation is one synchronous native call on this loop (onnxruntime-node's
  // loadModel): it starts on a turn of its own, not chained after the state write that
  // preceded it, and hands the loop back before the checks and the smoke runs.
  await nextTurn();
  const model = await runtime.load(source, info.rawSha256);
  await nextTurn();
  try {
    const want = manifest.inputs.map((i) => i.name).sort();
    const got = [...model.inputNames].sort();
    if (want.join('\0') !== got.join('\0')) throw agentError('AGENT_ERR_MODEL_LOAD', `model inputs [${got.join(', ')}] differ from the manifest's [${want.join(', ')}]`);
    const missing = manifest.outputs.filter((o) => !model.outputNames.includes(o.name)).map((o) => o.name);
    if (missing.length) throw agentError('AGENT_ERR_MODEL_LOAD', `model lacks the manifest's outputs ${missing.join(', ')}`);
  } catch (e) {
    await model.release();
    throw e;
  }
  return { model, info, manifest, validate };
}

/**
 * The smoke check (bundles/smoke.ts, shared with `bundle build`): the golden
 * cases, or one synthetic input, through this device's validator and session.
 * Throws AGENT_ERR_SMOKE_FAILED, or AGENT_ERR_RUNTIME_LOST when the inference thread ended meanwhile.
 */
export async function smokeTest(entry: ModelEntry, defaultTolerance: number): Promise<void> {
  const { manifest, model, validate } = entry;
  // A lost inference thread says nothing about the model: it keeps its own (transient) code rather than
  // becoming AGENT_ERR_SMOKE_FAILED, which refuses the bundle on this device for good.
  let lost: Error | null = null;
  const run: SmokeRun = async (inputs) => {
    // One inference per turn: the golden cases do not run back to back while requests wait.
    await nextTurn();
    return model.run(validate(inputs).feeds).catch((e: unknown) => { if (errorCode(e) === 'AGENT_ERR_RUNTIME_LOST') lost = e as Error; throw e; });
  };
  await runSmoke(manifest, run, defaultTolerance, (detail) => lost ?? agentError('AGENT_ERR_SMOKE_FAILED', detail));
}

export interface InstalledContext { store: StateStore; root: TrustedRoot; runtime: ModelRuntime; maxBatch: number; goldenTolerance: number }

/**
 * Boot: an installed model is served again only if its stored manifest still
 * verifies against the root and its file still has the signed raw sha256 (a
 * disk that flipped a bit, or a hand-edited file, must not be served).
 */
export async function openInstalledModel(ctx: InstalledContext, m: InstalledModel): Promise<ModelEntry> {
  const { store } = ctx;
  let manifest: Manifest;
  try {
    const text = await store.storage.readText(store.modelManifest(m.bundleId));
    if (text === null) throw agentError('AGENT_ERR_MANIFEST_SIGNATURE', `stored manifest of ${m.bundleId.slice(0, 12)}… is missing`);
    const v = verifyManifestEnvelope(parseEnvelope(JSON.parse(text)), ctx.root);
    if (v.bundleId !== m.bundleId) throw agentError('AGENT_ERR_MANIFEST_MISMATCH', 'stored manifest is not the installed bundle');
    manifest = v.manifest;
  } catch (e) {
    throw isFleetcastError(e) && e.code.startsWith('AGENT_') ? e : agentError('AGENT_ERR_MANIFEST_SIGNATURE', `stored manifest of ${m.bundleId.slice(0, 12)}…: ${(e as Error).message}`);
  }
  const h = await store.storage.hash(store.modelFile(m.bundleId)).catch((e: Error) => { throw agentError('AGENT_ERR_PAYLOAD_HASH', e.message); });
  if (h.sha256 !== manifest.payload.rawSha256 || h.sha256 !== m.rawSha256) throw agentError('AGENT_ERR_PAYLOAD_HASH', `model file of ${m.bundleId.slice(0, 12)}… changed on disk`);
  const entry = await openModel(ctx.runtime, await store.storage.modelSource(store.modelFile(m.bundleId)), manifest, m, ctx.maxBatch);
  try {
    await smokeTest(entry, ctx.goldenTolerance);
  } catch (e) {
    await entry.model.release();
    throw e;
  }
  return entry;
}
