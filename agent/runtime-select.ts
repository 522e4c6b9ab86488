/**
 * Choosing the model runtime at start-up: onnxruntime-node by default, loaded
 * lazily so that a device whose native binding does not load (wrong libc or
 * architecture, missing .so) falls back to onnxruntime-web (wasm) instead of
 * failing to start; `runtime: "wasm"` asks for the wasm one directly. The
 * chosen runtime's name is in every state report and in GET /v1/status.
 */
import { agentError } from './errors.js';
import type { ModelRuntime } from './runtime.js';

/** `inferenceThread` (default true): onnxruntime-node's sessions live on a thread of their own (agent/runtime-worker.ts). */
export interface RuntimeChoice { runtime: 'node' | 'wasm'; intraOpNumThreads: number; inferenceThread?: boolean; backgroundNice?: number }

export async function createRuntime(o: RuntimeChoice, onFallback: (reason: string) => void = () => {}): Promise<ModelRuntime> {
  if (o.runtime === 'node') {
    try {
      // Test hook: behave as if the native binding were missing (the fallback cannot be provoked otherwise on a machine that has it).
      if (process.env.FLEETCAST_TEST_NO_NATIVE_RUNTIME === '1') throw new Error('native runtime disabled by FLEETCAST_TEST_NO_NATIVE_RUNTIME');
      if (o.inferenceThread !== false) {
        const { createWorkerRuntime } = await import('./runtime-worker.js');
        return await createWorkerRuntime({ intraOpNumThreads: o.intraOpNumThreads, backgroundNice: o.backgroundNice });
      }
      const { createOrtRuntime } = await import('./runtime.js');
      return createOrtRuntime({ intraOpNumThreads: o.intraOpNumThreads });
    } catch (e) {
      onFallback((e as Error).message);
    }
  }
  try {
    const { createWebRuntime } = await import('./runtime-web.js');
    return await createWebRuntime();
  } catch (e) {
    throw agentError('AGENT_ERR_RUNTIME', (e as Error).message);
  }
}
