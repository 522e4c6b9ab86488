/**
 * Model outputs as JSON: `{dims, data}` with a flat row-major `data` array.
 * int64/uint64 become JSON numbers (the predict API contract); values beyond
 * ±2^53 lose precision there, which is the price of plain JSON clients.
 * NaN in a float output is written by JSON.stringify as null.
 */
import type { TensorData } from './runtime.js';

export interface JsonTensor { dims: number[]; data: (number | string | boolean)[] }

export function toJsonTensor(t: TensorData): JsonTensor {
  const d = t.data;
  let data: (number | string | boolean)[];
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) data = Array.from(d, Number);
  else if (t.type === 'bool') data = Array.from(d as Uint8Array, (x) => x !== 0);
  else if (Array.isArray(d)) data = d.slice();
  else data = Array.from(d as ArrayLike<number>);
  return { dims: [...t.dims], data };
}

export function formatOutputs(out: Record<string, TensorData>): Record<string, JsonTensor> {
  const res: Record<string, JsonTensor> = {};
  for (const [name, t] of Object.entries(out)) res[name] = toJsonTensor(t);
  return res;
}
