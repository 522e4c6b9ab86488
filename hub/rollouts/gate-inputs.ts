/**
 * What the rollout gates read from other parts of the hub (issue #3 ↔ #5).
 * The drift gate asks a DriftReader; until one is registered the gate exists
 * and reads what is there: nothing (value null, n 0), which never fails it.
 * The health gates (error rate, p95 latency, requests served) read a
 * HealthReader; the default one reads the optional `health` window that agents
 * put in their state reports (protocol/messages.ts). Telemetry may register a
 * better one later.
 */

/** Largest drift score of a bundle's features on a ring since a time. */
export interface DriftReading {
  /** null: no data (or too little to judge). */
  value: number | null;
  /** Samples behind the value. */
  n: number;
  /** The feature that drifted most, when known. */
  feature?: string;
}

export interface DriftReader {
  maxDrift(bundleId: string, ring: string, sinceMs: number): DriftReading;
}

/** Health of one device serving one bundle, as the device counted it. */
export interface DeviceHealth {
  deviceId: string;
  bundleId: string;
  requests: number;
  /** Failed predictions, and predictions whose outputs held NaN/Infinity where the manifest does not allow them. */
  errors: number;
  /** p95 predict latency (ms) over the device's recent window; null without requests. */
  p95Ms: number | null;
}

export interface HealthReader {
  /** Latest health of each listed device for `bundleId` (devices without data are left out). */
  health(bundleId: string, deviceIds: readonly string[]): DeviceHealth[];
}

/** Pluggable inputs; the engine asks `gateInputs.drift` on every evaluation, so a late registration takes effect. */
export interface GateInputs {
  drift: DriftReader | null;
  health: HealthReader | null;
}

export const NO_DRIFT: DriftReader = { maxDrift: () => ({ value: null, n: 0 }) };

export function createGateInputs(): GateInputs {
  return { drift: null, health: null };
}

/** Register a drift reader on a running hub's gate inputs (returns a function that unregisters it). */
export function registerDriftReader(inputs: GateInputs, reader: DriftReader): () => void {
  inputs.drift = reader;
  return () => { if (inputs.drift === reader) inputs.drift = null; };
}
