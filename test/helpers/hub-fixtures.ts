/** Shared pieces for the hub suites: a silent logger, hand-made manifests, device clients and messages. */
import { createHash, randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import type { Manifest } from '../../protocol/manifest.js';
import type { StateReport } from '../../protocol/messages.js';

export const silentLogger = () => pino({ level: 'silent' });

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A schema-valid manifest describing `payload` as compressed bytes cut into `chunkSize` chunks. */
export function manifestFor(payload: Buffer, chunkSize = 1024, name = 'unit', version = 1): Manifest {
  const chunkHashes: string[] = [];
  for (let off = 0; off < payload.length; off += chunkSize) chunkHashes.push(sha(payload.subarray(off, off + chunkSize)));
  return {
    type: 'fleetcast.bundle/v1', name, version, createdAt: new Date(0).toISOString(),
    payload: { format: 'onnx', compression: 'zstd', compressedSha256: sha(payload), compressedLength: payload.length, rawSha256: sha(payload), rawLength: payload.length, chunkSize, chunkHashes },
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 2] }],
    compat: {},
  };
}

export const randomPayload = (n: number) => randomBytes(n);

/** A plain mqtt.js client standing in for a device (no agent needed). */
export async function connectDevice(url: string, id: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clientId: `dev-${id}-${randomBytes(3).toString('hex')}`, reconnectPeriod: 0, clean: true });
}

export function stateReport(deviceId: string, over: Partial<StateReport> = {}): StateReport {
  return {
    v: 1, deviceId, seq: 1, at: Date.now(), agentVersion: '0.1.0', runtime: 'onnxruntime-node',
    active: null, previous: null, phase: 'idle', target: null, progress: null, lastError: null, counter: 0, capabilities: {},
    ...over,
  };
}
