/**
 * The Open Inference Protocol (KServe v2 / Triton HTTP) on the wire: the
 * inference request as JSON, or as a JSON header followed by raw tensor bytes
 * (binary tensor data extension), and the response in the same two forms.
 * Clauses cited: KServe docs/predict-api/v2/required_api.md ("Inference",
 * "Tensor Data", "Tensor Data Types") and Triton
 * docs/protocol/extension_binary_data.md (quoted where they decide something).
 * Only the wire format is here; validation is validate-flat.ts, the predict
 * path is the agent's.
 */
import { agentError } from './errors.js';
import type { TensorData } from './runtime.js';
import { DATATYPE_OF, type FlatInput } from './validate-flat.js';
import { toJsonTensor } from './outputs.js';

/** The model a v2 URL names must be the one serving (and the version, when the URL gives one); else 404. */
export function checkModel(serving: { name: string; version: number }, name: string, version: string | undefined): void {
  if (serving.name !== name || (version !== undefined && version !== String(serving.version))) {
    throw agentError('AGENT_ERR_MODEL_NOT_FOUND', `${name.slice(0, 100)}${version !== undefined ? ` version ${version.slice(0, 20)}` : ''}; this agent serves ${serving.name} version ${serving.version}`);
  }
}

export interface RequestedOutput { name: string; binary: boolean | null }

export interface InferRequest {
  id?: string;
  inputs: FlatInput[];
  /** Outputs asked for, in order; null = all of the model's, in model order. */
  outputs: RequestedOutput[] | null;
  /** "binary_data_output": every output binary unless its own "binary_data" says otherwise. */
  binaryOutputs: boolean;
}

const MAX_TENSORS = 256;
const MAX_RANK = 16;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (why: string, details: Record<string, unknown> = {}) => agentError('AGENT_ERR_BAD_REQUEST', why, details);

function parameters(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isObject(v)) throw bad(`${where}: "parameters" must be an object`);
  return v;
}

function optionalBool(v: unknown, what: string): boolean | null {
  if (v === undefined) return null;
  if (typeof v !== 'boolean') throw bad(`"${what}" must be true or false`);
  return v;
}

/**
 * `headerLength` is the Inference-Header-Content-Length header, or null when
 * absent (the whole body is JSON). "If any binary data is present in the
 * request … the Inference-Header-Content-Length header must be provided to give
 * the length of the JSON object" (extension_binary_data.md).
 */
export function parseInferRequest(body: Buffer, headerLength: string | undefined): InferRequest {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    const n = /^[0-9]{1,15}$/.test(headerLength.trim()) ? Number(headerLength) : Number.NaN;
    if (!(n <= body.length)) throw agentError('AGENT_ERR_BINARY_LAYOUT', `Inference-Header-Content-Length ${JSON.stringify(headerLength.slice(0, 30))} is not a length within the ${body.length}-byte body`);
    jsonEnd = n;
  }
  let doc: unknown;
  try { doc = JSON.parse(body.subarray(0, jsonEnd).toString('utf8')); } catch (e) {
    throw agentError('AGENT_ERR_BAD_JSON', (e as Error).message.slice(0, 200));
  }
  if (!isObject(doc)) throw bad('the inference request must be a JSON object with "inputs"');
  const req: InferRequest = { inputs: [], outputs: null, binaryOutputs: false };
  if (doc.id !== undefined) {
    if (typeof doc.id !== 'string' || doc.id.length > 256) throw bad('"id" must be a string of at most 256 characters');
    req.id = doc.id;
  }
  req.binaryOutputs = optionalBool(parameters(doc.parameters, 'request').binary_data_output, 'binary_data_output') ?? false;

  const inputs = doc.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > MAX_TENSORS) throw bad(`"inputs" must be a non-empty array of at most ${MAX_TENSORS} tensors`);
  // "the binary tensor data [follows the JSON] in the same order as the order of the input … tensors
  // are specified in the JSON" (extension_binary_data.md): sizes are consumed in input order.
  let at = jsonEnd;
  for (let k = 0; k < inputs.length; k++) {
    const t: unknown = inputs[k];
    if (!isObject(t) || typeof t.name !== 'string' || t.name.length === 0 || t.name.length > 256) throw bad(`inputs[${k}] must be an object with a "name"`);
    const name = t.name;
    if (typeof t.datatype !== 'string') throw bad(`input ${name.slice(0, 100)} needs a "datatype" such as "FP32"`, { input: name.slice(0, 100) });
    const shape = t.shape;
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${name.slice(0, 100)} needs "shape": an array of at most ${MAX_RANK} non-negative integers`, { input: name.slice(0, 100) });
    }
    const p = parameters(t.parameters, `input ${name.slice(0, 100)}`);
    const input: FlatInput = { name, datatype: t.datatype, shape: shape as number[] };
    if (p.binary_data_size !== undefined) {
      const size = p.binary_data_size;
      if (!Number.isSafeInteger(size) || (size as number) < 0) throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name.slice(0, 100)}: binary_data_size must be a non-negative integer`, { input: name.slice(0, 100) });
      if (headerLength === undefined) throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name.slice(0, 100)} has binary_data_size but the request has no Inference-Header-Content-Length header`, { input: name.slice(0, 100) });
      if (t.data !== undefined) throw bad(`input ${name.slice(0, 100)} has both "data" and binary_data_size`, { input: name.slice(0, 100) });
      if (at + (size as number) > body.length) throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name.slice(0, 100)}: binary_data_size ${size} goes past the end of the body (${body.length - at} bytes left)`, { input: name.slice(0, 100) });
      input.bytes = body.subarray(at, at + (size as number));
      at += size as number;
    } else {
      input.data = t.data;
    }
    req.inputs.push(input);
  }
  if (at !== body.length) throw agentError('AGENT_ERR_BINARY_LAYOUT', `${body.length - at} bytes after the JSON header are not claimed by any input's binary_data_size`);

  if (doc.outputs !== undefined) {
    if (!Array.isArray(doc.outputs) || doc.outputs.length > MAX_TENSORS) throw bad(`"outputs" must be an array of at most ${MAX_TENSORS} entries`);
    req.outputs = doc.outputs.map((o: unknown, k) => {
      if (!isObject(o) || typeof o.name !== 'string') throw bad(`outputs[${k}] must be an object with a "name"`);
      return { name: o.name, binary: optionalBool(parameters(o.parameters, `output ${o.name.slice(0, 100)}`).binary_data, 'binary_data') };
    });
  }
  return req;
}

export interface EncodedResponse { body: Buffer; headers: Record<string, string | number> }

/** Raw little-endian bytes of one tensor; BYTES as 4-byte LE length + UTF-8 bytes per element. */
function tensorBytes(t: TensorData): Buffer {
  const d = t.data;
  if (Array.isArray(d)) {
    const parts: Buffer[] = [];
    for (const s of d) {
      const b = Buffer.from(String(s), 'utf8');
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32LE(b.length, 0);
      parts.push(len, b);
    }
    return Buffer.concat(parts);
  }
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * The inference response: `{model_name, model_version, id?, outputs: [{name, shape, datatype, data |
 * parameters.binary_data_size}]}`, with binary outputs after the JSON and
 * Inference-Header-Content-Length giving the JSON's length (extension_binary_data.md, "Binary Tensor
 * Response").
 */
export function encodeInferResponse(model: { name: string; version: number }, req: InferRequest, outputNames: readonly string[], out: Record<string, TensorData>): EncodedResponse {
  const wanted = req.outputs ?? outputNames.map((name) => ({ name, binary: null }));
  const json: Record<string, unknown>[] = [];
  const binary: Buffer[] = [];
  for (const w of wanted) {
    const t = out[w.name];
    if (!t) throw agentError('AGENT_ERR_UNKNOWN_OUTPUT', `output ${JSON.stringify(w.name.slice(0, 100))}; the model has ${outputNames.join(', ')}`, { output: w.name.slice(0, 100) });
    const o: Record<string, unknown> = { name: w.name, datatype: DATATYPE_OF[t.type] ?? t.type, shape: [...t.dims] };
    if (w.binary ?? req.binaryOutputs) {
      const b = tensorBytes(t);
      o.parameters = { binary_data_size: b.length };
      binary.push(b);
    } else {
      o.data = toJsonTensor(t).data;
    }
    json.push(o);
  }
  const head = Buffer.from(JSON.stringify({ model_name: model.name, model_version: String(model.version), ...(req.id !== undefined ? { id: req.id } : {}), outputs: json }));
  if (binary.length === 0) return { body: head, headers: { 'content-type': 'application/json; charset=utf-8' } };
  return { body: Buffer.concat([head, ...binary]), headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': head.length } };
}

/** Model metadata (required_api.md "Model Metadata"): -1 stands for a dynamic dimension. */
export function modelMetadata(m: { name: string; version: number; inputs: readonly { name: string; type: keyof typeof DATATYPE_OF; shape: readonly (number | string)[] }[]; outputs: readonly { name: string; type: keyof typeof DATATYPE_OF; shape: readonly (number | string)[] }[] }): unknown {
  const tensor = (t: (typeof m.inputs)[number]) => ({ name: t.name, datatype: DATATYPE_OF[t.type], shape: t.shape.map((d) => (typeof d === 'number' ? d : -1)) });
  return { name: m.name, versions: [String(m.version)], platform: 'onnxruntime_onnx', inputs: m.inputs.map(tensor), outputs: m.outputs.map(tensor) };
}
