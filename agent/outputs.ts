/**
 * Model outputs as JSON: `{dims, data}` with a flat row-major `data` array.
 * int64/uint64 become JSON numbers (the predict API contract); values beyond
 * ±2^53 lose precision there, which is the price of plain JSON clients.
 * NaN in a float output is written by JSON.stringify as null. float16 arrives
 * as raw half bits (no Float16Array in Node 20) and leaves as exact numbers.
 */
import { halfToFloat } from '@fleetcast/protocol/float16.js';
import type { TensorData } from './runtime.js';

export interface JsonTensor { dims: number[]; data: (number | string | boolean)[] }

export function toJsonTensor(t: TensorData): JsonTensor {
  const d = t.data;
  let data: (number | string | boolean)[];
  // Plain loops, not Array.from: Array.from walks a typed array through the iterator protocol, which
  // cost more than the rest of formatting a small output on every predict (bench telemetry-cost).
  if (Array.isArray(d)) data = d.slice();
  else if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
    data = new Array<number>(d.length);
    for (let i = 0; i < d.length; i++) data[i] = Number(d[i]);
  } else if (t.type === 'float16' && d instanceof Uint16Array) {
    data = new Array<number>(d.length);
    for (let i = 0; i < d.length; i++) data[i] = halfToFloat(d[i] as number);
  } else if (t.type === 'bool') {
    data = new Array<boolean>(d.length);
    for (let i = 0; i < d.length; i++) data[i] = d[i] !== 0;
  } else {
    data = new Array<number>(d.length);
    for (let i = 0; i < d.length; i++) data[i] = d[i];
  }
  return { dims: t.dims.slice(), data };
}

export function formatOutputs(out: Record<string, TensorData>): Record<string, JsonTensor> {
  const res: Record<string, JsonTensor> = {};
  for (const [name, t] of Object.entries(out)) res[name] = toJsonTensor(t);
  return res;
}
