/**
 * The second ModelRuntime: onnxruntime-web's WebAssembly backend, run inside
 * Node. Used when the native onnxruntime-node binding cannot load on a device
 * (another libc, an architecture without prebuilt binaries) or when asked for
 * with `--runtime wasm`. Its Node entry (package.json exports "node" →
 * dist/ort.node.min.mjs) finds its .wasm file next to itself, so nothing needs
 * pointing. Single-threaded: the threaded build would need worker threads
 * and SharedArrayBuffer for no gain on a one-request-at-a-time device.
 */
import { readFile } from 'node:fs/promises';
import type { ElementType } from '@fleetcast/protocol/manifest.js';
import { agentError } from './errors.js';
import type { ModelRuntime, TensorArray, TensorData } from './runtime.js';

type OrtWeb = typeof import('onnxruntime-web');

let ortPromise: Promise<OrtWeb> | null = null;

async function loadOrtWeb(): Promise<OrtWeb> {
  ortPromise ??= import('onnxruntime-web').then((m) => {
    const ort = ((m as { default?: OrtWeb }).default ?? m) as OrtWeb;
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = 'error';
    return ort;
  });
  return ortPromise;
}

export async function createWebRuntime(): Promise<ModelRuntime> {
  let ort: OrtWeb;
  try {
    ort = await loadOrtWeb();
  } catch (e) {
    ortPromise = null;
    throw agentError('AGENT_ERR_RUNTIME', `onnxruntime-web: ${(e as Error).message}`);
  }
  return {
    name: `onnxruntime-web@${ort.env.versions.web ?? 'unknown'}`,
    async load(source) {
      let session: import('onnxruntime-web').InferenceSession;
      try {
        const bytes = typeof source === 'string' ? await readFile(source) : source;
        session = await ort.InferenceSession.create(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
          executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3,
        });
      } catch (e) {
        throw agentError('AGENT_ERR_MODEL_LOAD', `${typeof source === 'string' ? source : `a model of ${source.length} bytes`}: ${(e as Error).message}`);
      }
      let released = false;
      return {
        inputNames: [...session.inputNames],
        outputNames: [...session.outputNames],
        async run(feeds) {
          const f: Record<string, import('onnxruntime-web').Tensor> = {};
          for (const [name, t] of Object.entries(feeds)) f[name] = new ort.Tensor(t.type as never, t.data as never, t.dims);
          const out = await session.run(f);
          const res: Record<string, TensorData> = {};
          for (const [name, t] of Object.entries(out)) res[name] = { type: t.type as ElementType, dims: [...t.dims], data: t.data as TensorArray };
          return res;
        },
        async release() {
          if (released) return;
          released = true;
          await session.release();
        },
      };
    },
  };
}
