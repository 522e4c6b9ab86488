/**
 * Describe an ONNX model's interface (inputs, outputs, default-domain opset)
 * from its protobuf bytes, for the bundle manifest. Only the interface is
 * decoded (ModelInfoProto skips weights by length), so large models are cheap.
 */
import { ELEMENT_TYPES, type ElementType, type TensorSpec } from '@fleetcast/protocol/manifest.js';
import { bundleError } from '@fleetcast/bundles/errors.js';
import { ModelInfoProto, ONNX_ELEMENT_TYPES } from './onnx-proto.js';

export interface ModelInfo { inputs: TensorSpec[]; outputs: TensorSpec[]; opset: number }

interface Dim { dim_value?: unknown; dim_param?: string }
interface ValueInfo { name?: string; type?: { tensor_type?: { elem_type?: number; shape?: { dim?: Dim[] } } } }
interface DecodedModel {
  opset_import?: { domain?: string; version?: unknown }[];
  graph?: { initializer?: { name?: string }[]; sparse_initializer?: { values?: { name?: string } }[]; input?: ValueInfo[]; output?: ValueInfo[] };
}

/** int64 fields arrive as numbers or as Long objects (protobufjs with long.js). */
function toSafeInt(v: unknown, what: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'object' && v !== null && 'toNumber' in v ? (v as { toNumber(): number }).toNumber() : Number.NaN;
  if (!Number.isSafeInteger(n)) throw bundleError('BUNDLE_ERR_BAD_MODEL', `${what} is not a safe integer`);
  return n;
}

function tensorSpec(vi: ValueInfo, role: 'input' | 'output'): TensorSpec {
  const name = vi.name ?? '';
  if (!name) throw bundleError('BUNDLE_ERR_BAD_MODEL', `a graph ${role} has no name`);
  const t = vi.type?.tensor_type;
  // Sequence, map, optional and sparse types are outside the manifest's tensor schema.
  if (!t) throw bundleError('BUNDLE_ERR_BAD_MODEL', `${role} "${name}" is not a dense tensor; fleetcast bundles carry tensor inputs and outputs only`);
  const type = ONNX_ELEMENT_TYPES[t.elem_type ?? 0] as ElementType | undefined;
  if (!type || !ELEMENT_TYPES.includes(type)) throw bundleError('BUNDLE_ERR_BAD_MODEL', `${role} "${name}" has element type ${t.elem_type ?? 'UNDEFINED'}, which fleetcast does not support (use one of ${ELEMENT_TYPES.join(', ')})`);
  // A tensor type without a shape has unknown rank; the manifest cannot describe it.
  if (!t.shape) throw bundleError('BUNDLE_ERR_BAD_MODEL', `${role} "${name}" has no shape (unknown rank); export the model with static ranks`);
  const shape = (t.shape.dim ?? []).map((d, axis) => {
    if (d.dim_value !== undefined && d.dim_value !== null) return toSafeInt(d.dim_value, `${role} "${name}" dimension ${axis}`);
    if (d.dim_param) return d.dim_param.slice(0, 64);
    // An unnamed dynamic dimension: give it a name unique to this tensor and axis,
    // so it is never mistaken for a dimension shared with another input.
    return `${name.slice(0, 48)}:${axis}`;
  });
  return { name, type, shape };
}

export function readModelInfo(bytes: Uint8Array): ModelInfo {
  let m: DecodedModel;
  try {
    m = ModelInfoProto.toObject(ModelInfoProto.decode(bytes)) as DecodedModel;
  } catch (e) {
    throw bundleError('BUNDLE_ERR_BAD_MODEL', `not an ONNX protobuf: ${(e as Error).message}`);
  }
  const g = m.graph;
  if (!g) throw bundleError('BUNDLE_ERR_BAD_MODEL', 'no graph found (is this an ONNX model file?)');
  // Default domain is "" or "ai.onnx" (onnx.proto OperatorSetIdProto.domain).
  const def = (m.opset_import ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!def) throw bundleError('BUNDLE_ERR_BAD_MODEL', 'the model imports no default-domain (ai.onnx) opset');
  const opset = toSafeInt(def.version, 'opset version');
  if (opset < 1) throw bundleError('BUNDLE_ERR_BAD_MODEL', `opset version ${opset} is not valid`);
  // Since IR version 4, initializers may also be listed as graph inputs (as defaults);
  // callers do not feed them, so they are not model inputs (onnx IR.md "Graphs").
  const inits = new Set<string>();
  for (const t of g.initializer ?? []) if (t.name) inits.add(t.name);
  for (const t of g.sparse_initializer ?? []) if (t.values?.name) inits.add(t.values.name);
  const inputs = (g.input ?? []).filter((vi) => !inits.has(vi.name ?? '')).map((vi) => tensorSpec(vi, 'input'));
  const outputs = (g.output ?? []).map((vi) => tensorSpec(vi, 'output'));
  if (inputs.length === 0) throw bundleError('BUNDLE_ERR_BAD_MODEL', 'the graph has no inputs that are not initializers');
  if (outputs.length === 0) throw bundleError('BUNDLE_ERR_BAD_MODEL', 'the graph has no outputs');
  for (const list of [inputs, outputs]) {
    const seen = new Set<string>();
    for (const t of list) {
      if (seen.has(t.name)) throw bundleError('BUNDLE_ERR_BAD_MODEL', `tensor name "${t.name}" appears twice`);
      seen.add(t.name);
    }
  }
  return { inputs, outputs, opset };
}
