/**
 * Turning files on disk into a servable model: hash the model file, load a
 * session, check its inputs/outputs against the signed manifest, compile the
 * input validator, and run a smoke inference (plus the manifest's golden
 * cases) before the model is allowed near a request (DESIGN "Stage: load a
 * shadow session, run golden cases").
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { verifyManifestEnvelope } from '../bundles/verify.js';
import { parseEnvelope } from '../protocol/envelope.js';
import { isFleetcastError } from '../protocol/errors.js';
import type { Manifest, TensorSpec } from '../protocol/manifest.js';
import type { TrustedRoot } from '../signing/root.js';
import { agentError } from './errors.js';
import type { LoadedModel, ModelRuntime, TensorData } from './runtime.js';
import type { InstalledModel, StateStore } from './state-store.js';
import { compileValidator, type InputValidator } from './validate.js';

export interface ModelEntry {
  model: LoadedModel;
  info: InstalledModel;
  manifest: Manifest;
  validate: InputValidator;
}

export async function sha256File(path: string): Promise<{ sha256: string; length: number }> {
  const h = createHash('sha256');
  let length = 0;
  for await (const b of createReadStream(path)) { h.update(b as Buffer); length += (b as Buffer).length; }
  return { sha256: h.digest('hex'), length };
}

/** Load a session and check it is the model the manifest describes. Nothing leaks on failure. */
export async function openModel(runtime: ModelRuntime, path: string, manifest: Manifest, info: InstalledModel, maxBatch: number): Promise<ModelEntry> {
  const validate = compileValidator(manifest.inputs, { maxBatch });
  const model = await runtime.load(path, info.rawSha256);
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

/** Zeros (moved inside the limits) shaped by the schema, symbolic dims = 1: batch 1. */
export function smokeInputs(specs: readonly TensorSpec[]): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const s of specs) {
    const dims = s.shape.map((d) => (typeof d === 'number' ? d : 1));
    const value = (f: number): unknown => {
      if (s.type === 'bool') return false;
      if (s.type === 'string') return '';
      const lo = Array.isArray(s.min) ? s.min[f] : s.min;
      const hi = Array.isArray(s.max) ? s.max[f] : s.max;
      let v = 0;
      if (lo !== undefined && v < lo) v = lo;
      if (hi !== undefined && v > hi) v = hi;
      return s.type.startsWith('float') ? v : Math.ceil(v);
    };
    const build = (d: number): unknown => (d === dims.length ? value(0) : d === dims.length - 1
      ? Array.from({ length: dims[d] }, (_, f) => value(f))
      : Array.from({ length: dims[d] }, () => build(d + 1)));
    inputs[s.name] = dims.length === 0 ? value(0) : build(0);
  }
  return inputs;
}

function checkOutputs(specs: readonly TensorSpec[], out: Record<string, TensorData>, what: string): void {
  for (const s of specs) {
    const t = out[s.name];
    if (!t) throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: output ${s.name} missing`);
    if (t.dims.length !== s.shape.length || s.shape.some((d, i) => typeof d === 'number' && t.dims[i] !== d)) {
      throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: output ${s.name} has dims [${t.dims.join(', ')}], manifest says [${s.shape.join(', ')}]`);
    }
    if ((s.type === 'float32' || s.type === 'float64') && !s.allowNaN) {
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i])) throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: output ${s.name}[${i}] is ${d[i]}`);
    }
  }
}

/** One smoke inference and every golden case; throws AGENT_ERR_SMOKE_FAILED. */
export async function smokeTest(entry: ModelEntry, defaultTolerance: number): Promise<void> {
  const { manifest, model, validate } = entry;
  const run = async (inputs: unknown, what: string) => {
    try {
      return await model.run(validate(inputs).feeds);
    } catch (e) {
      throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: ${(e as Error).message}`);
    }
  };
  checkOutputs(manifest.outputs, await run(smokeInputs(manifest.inputs), 'smoke inference'), 'smoke inference');
  for (const [n, g] of (manifest.golden ?? []).entries()) {
    const what = `golden case ${n}`;
    const out = await run(g.inputs, what);
    const tol = g.tolerance ?? defaultTolerance;
    for (const [name, want] of Object.entries(g.outputs)) {
      const got = out[name];
      if (!got) throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: output ${name} missing`);
      if (got.dims.join(',') !== want.dims.join(',')) throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: ${name} dims [${got.dims.join(', ')}], expected [${want.dims.join(', ')}]`);
      const data = got.data as ArrayLike<number | bigint>;
      if (data.length !== want.data.length) throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: ${name} has ${data.length} values, expected ${want.data.length}`);
      for (let i = 0; i < want.data.length; i++) {
        const a = Number(data[i]);
        const b = want.data[i];
        // Absolute plus relative tolerance: CPU kernels differ in the last bits across builds.
        if (!(Math.abs(a - b) <= tol + tol * Math.abs(b))) throw agentError('AGENT_ERR_SMOKE_FAILED', `${what}: ${name}[${i}] = ${a}, expected ${b} ± ${tol}`);
      }
    }
  }
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
    const v = verifyManifestEnvelope(parseEnvelope(JSON.parse(await readFile(store.modelManifest(m.bundleId), 'utf8'))), ctx.root);
    if (v.bundleId !== m.bundleId) throw agentError('AGENT_ERR_MANIFEST_MISMATCH', 'stored manifest is not the installed bundle');
    manifest = v.manifest;
  } catch (e) {
    throw isFleetcastError(e) && e.code.startsWith('AGENT_') ? e : agentError('AGENT_ERR_MANIFEST_SIGNATURE', `stored manifest of ${m.bundleId.slice(0, 12)}…: ${(e as Error).message}`);
  }
  const h = await sha256File(store.modelFile(m.bundleId)).catch((e: Error) => { throw agentError('AGENT_ERR_PAYLOAD_HASH', e.message); });
  if (h.sha256 !== manifest.payload.rawSha256 || h.sha256 !== m.rawSha256) throw agentError('AGENT_ERR_PAYLOAD_HASH', `model file of ${m.bundleId.slice(0, 12)}… changed on disk`);
  const entry = await openModel(ctx.runtime, store.modelFile(m.bundleId), manifest, m, ctx.maxBatch);
  try {
    await smokeTest(entry, ctx.goldenTolerance);
  } catch (e) {
    await entry.model.release();
    throw e;
  }
  return entry;
}
