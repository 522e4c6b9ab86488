/**
 * What telemetry summarises for one model version, compiled from its signed
 * manifest: the features (edges from the reference profile, so the agent's
 * counts and the hub's merge and comparison use the same bins; no edges
 * without a reference) and the output columns. Agent and hub both call this,
 * so they agree on names and edges. Naming follows bundle-build/reference.ts.
 */
import { frameOf, type Frame } from './feature-summary.js';
import type { Manifest, TensorSpec } from './manifest.js';
import { parseReference, type Reference } from './telemetry.js';

/**
 * `frame`: the reference's centre and scale, so agents sketch standardised
 * values (feature-summary.ts Frame); `categories`: the reference's categories,
 * which agents count by name whatever their number (others count as new).
 */
export interface PlannedFeature { name: string; input: string; index: number; width: number; kind: 'numeric' | 'categorical'; edges: readonly number[]; frame?: Frame; categories?: readonly string[] }
export interface PlannedOutput { name: string; output: string; index: number; edges: readonly number[]; frame?: Frame }
export interface TelemetryPlan { bundleId: string; features: PlannedFeature[]; outputs: PlannedOutput[]; reference: Reference | null }

/** Without a reference, inputs wider than this are not summarised (an image is not 150,000 features). */
const MAX_UNPROFILED_WIDTH = 64;

function widthOf(t: TensorSpec): number | undefined {
  if (t.shape.length === 1) return 1;
  if (t.shape.length !== 2) return undefined;
  return t.features?.length ?? (typeof t.shape[1] === 'number' ? t.shape[1] : undefined);
}

export function compilePlan(bundleId: string, manifest: Manifest): TelemetryPlan {
  let reference: Reference | null = null;
  // A bad reference is the release team's mistake; the model still serves and reports unbinned summaries.
  if (manifest.reference !== undefined) { try { reference = parseReference(manifest.reference); } catch { reference = null; } }
  const widths = new Map(manifest.inputs.map((t) => [t.name, widthOf(t)]));
  const features: PlannedFeature[] = [];
  if (reference) {
    for (const f of reference.features) {
      const width = widths.get(f.input);
      if (width === undefined || f.index >= width) continue;
      const frame = f.kind === 'numeric' ? frameOf(f.profile) : undefined;
      features.push({
        name: f.name, input: f.input, index: f.index, width, kind: f.kind, edges: f.kind === 'numeric' ? f.profile.edges : [],
        ...(frame ? { frame } : {}), ...(f.kind === 'categorical' ? { categories: Object.keys(f.categories.counts) } : {}),
      });
    }
  } else {
    for (const t of manifest.inputs) {
      const w = widthOf(t);
      if (w === undefined || w > MAX_UNPROFILED_WIDTH) continue;
      const kind = t.type.startsWith('float') ? 'numeric' : 'categorical';
      for (let i = 0; i < w; i++) features.push({ name: t.features?.[i] ?? (t.shape.length === 1 ? t.name : `${t.name}[${i}]`), input: t.name, index: i, width: w, kind, edges: [] });
    }
  }
  const outputs: PlannedOutput[] = [];
  const refOut = new Map((reference?.outputs ?? []).map((o) => [o.name, o]));
  for (const t of manifest.outputs) {
    if (!t.type.startsWith('float')) continue;
    const w = t.shape.length === 2 && typeof t.shape[1] === 'number' ? t.shape[1] : t.shape.length === 1 ? 1 : undefined;
    if (w === undefined || w > 256) continue;
    for (let i = 0; i < w; i++) {
      const name = t.features?.[i] ?? (t.shape.length === 1 ? t.name : `${t.name}[${i}]`);
      const frame = frameOf(refOut.get(name)?.profile);
      outputs.push({ name, output: t.name, index: i, edges: refOut.get(name)?.profile.edges ?? [], ...(frame ? { frame } : {}) });
    }
  }
  return { bundleId, features, outputs, reference };
}
