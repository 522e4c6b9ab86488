/**
 * Operator control from the hub (issue #5: "Raw values never leave the device
 * unless an operator turns on debug sampling for that device, which is
 * rate-limited and shown in its status"). A control message arrives retained on
 * fc/v1/dev/<id>/control; it is applied only when it is
 *
 * - signed by a hub key of the trusted root (the same check as assignments,
 *   signing/envelope.ts verifyForRole, payload type PAYLOAD_TYPES.control),
 * - for this device, not expired, and not older than the last one applied (its
 *   counter; the same counter again is the retained copy re-delivered on
 *   reconnect and is applied again, idempotently),
 * - within the protocol's hard limits (≤ 100 rows per window, ≤ 60 minutes).
 *
 * Then `collector.setDebug(rows, until)`: the collector switches debug off by
 * itself at `until`, so a hub that goes away cannot leave raw sampling on.
 * A refused message changes nothing and is reported as a coded `security`
 * event; nothing here throws at its caller.
 *
 * The last applied counter is kept in dataDir/control.json, so a replayed older
 * message is refused after a restart too.
 */
import { join } from 'node:path';
import { controlPayloadSchema, decodeControlMessage, DEBUG_LIMITS, type ControlPayload } from '@fleetcast/protocol/control.js';
import { PAYLOAD_TYPES } from '@fleetcast/protocol/envelope.js';
import { errorCode, isFleetcastError } from '@fleetcast/protocol/errors.js';
import { parse } from '@fleetcast/protocol/schema.js';
import { verifyForRole } from '@fleetcast/signing/envelope.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import { agentError } from './errors.js';
import { diskStorage } from './disk-storage.js';
import type { AgentStorage } from './storage.js';

const why = (e: unknown) => (isFleetcastError(e) || e instanceof Error ? e.message : String(e));

export interface ControlCheck {
  root: TrustedRoot; deviceId: string; now: number; lastCounter: number;
  /** The root version at which this device last reset its counters (0: never); a message signed under an older root is a replay. */
  counterEpoch?: number;
}

/** The stateless checks, in the order that interprets only bytes the hub signed. Throws AGENT_ERR_CONTROL_*. */
export function checkControlMessage(bytes: Uint8Array, ctx: ControlCheck): ControlPayload {
  let env;
  try { env = decodeControlMessage(bytes).control; } catch (e) { throw agentError('AGENT_ERR_CONTROL_INVALID', why(e), { cause: errorCode(e) }); }
  let body: Buffer;
  try {
    body = verifyForRole(ctx.root, 'hub', env, PAYLOAD_TYPES.control, 'control message');
  } catch (e) {
    throw agentError('AGENT_ERR_CONTROL_SIGNATURE', why(e), { cause: errorCode(e) });
  }
  let p: ControlPayload;
  try { p = parse(controlPayloadSchema, JSON.parse(body.toString('utf8')), { what: 'control payload' }); } catch (e) {
    throw agentError('AGENT_ERR_CONTROL_INVALID', why(e), { cause: errorCode(e) });
  }
  const ref = { counter: p.counter };
  if (p.deviceId !== ctx.deviceId) throw agentError('AGENT_ERR_CONTROL_WRONG_DEVICE', `it is for ${p.deviceId}, this is ${ctx.deviceId}`, ref);
  if (p.expiresAt <= ctx.now) throw agentError('AGENT_ERR_CONTROL_EXPIRED', `expired at ${new Date(p.expiresAt).toISOString()}`, ref);
  if (p.counter < ctx.lastCounter) throw agentError('AGENT_ERR_CONTROL_REPLAY', `counter ${p.counter}, last applied ${ctx.lastCounter}`, ref);
  // After a reset the counter is 0 again: only the root it was signed under tells an old message from a new one.
  if ((p.rootVersion ?? 0) < (ctx.counterEpoch ?? 0)) throw agentError('AGENT_ERR_CONTROL_REPLAY', `signed under root v${p.rootVersion ?? '(none)'}, before this device reset its counters at root v${ctx.counterEpoch}`, ref);
  if (p.debug && p.debug.until - p.issuedAt > DEBUG_LIMITS.maxMinutes * 60_000) {
    throw agentError('AGENT_ERR_CONTROL_INVALID', `debug sampling for ${Math.round((p.debug.until - p.issuedAt) / 60_000)} minutes; a device allows at most ${DEBUG_LIMITS.maxMinutes}`, ref);
  }
  return p;
}

export interface DeviceControlDeps {
  dataDir: string;
  /** Where dataDir is kept (default the disk). */
  storage?: AgentStorage;
  deviceId: string;
  now: () => number;
  root(): TrustedRoot;
  /** The root version of the last counter reset (agent state counterEpoch). */
  counterEpoch?(): number;
  /** Apply debug sampling: rows per window until `until`, or 0 = off. */
  setDebug(rowsPerWindow: number, until: number | null): void;
  /** A coded refusal for the hub (event kind "security") and the log. */
  onRefused(code: string, detail: string, counter?: number): void;
  onApplied?(p: ControlPayload): void;
}

export interface ControlStatus { counter: number; issuedAt: number | null; lastRefused: { code: string; at: number } | null }

export class DeviceControl {
  readonly #d: DeviceControlDeps;
  readonly #file: string;
  #counter = 0;
  #issuedAt: number | null = null;
  #lastRefused: { code: string; at: number } | null = null;
  #writes: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(d: DeviceControlDeps) { this.#d = d; this.#file = join(d.dataDir, 'control.json'); }

  static async open(d: DeviceControlDeps): Promise<DeviceControl> {
    const c = new DeviceControl(d);
    try {
      const saved = JSON.parse((await (d.storage ?? diskStorage).readText(c.#file)) ?? '{}') as { counter?: unknown };
      if (typeof saved.counter === 'number' && Number.isSafeInteger(saved.counter) && saved.counter > 0) c.#counter = saved.counter;
    } catch { /* none yet, or unreadable: start from 0 (control messages expire within an hour anyway) */ }
    return c;
  }

  /** One message from the control topic. An empty payload is the hub clearing the retained copy: nothing to do. */
  handle(bytes: Uint8Array): void {
    if (this.#closed || bytes.length === 0) return;
    let p: ControlPayload;
    try {
      p = checkControlMessage(bytes, { root: this.#d.root(), deviceId: this.#d.deviceId, now: this.#d.now(), lastCounter: this.#counter, counterEpoch: this.#d.counterEpoch?.() ?? 0 });
    } catch (e) {
      const code = errorCode(e);
      this.#lastRefused = { code, at: this.#d.now() };
      this.#d.onRefused(code, why(e), isFleetcastError(e) && typeof e.details.counter === 'number' ? e.details.counter : undefined);
      return;
    }
    this.#d.setDebug(p.debug?.rowsPerWindow ?? 0, p.debug?.until ?? null);
    this.#issuedAt = p.issuedAt;
    if (p.counter > this.#counter) {
      this.#counter = p.counter;
      const body = JSON.stringify({ counter: p.counter });
      this.#writes = this.#writes.then(() => (this.#closed ? undefined : (this.#d.storage ?? diskStorage).writeAtomic(this.#file, body))).catch(() => { /* kept in memory; the next message writes again */ });
    }
    this.#d.onApplied?.(p);
  }

  /** A new root dropped hub keys: a counter pushed ahead by a revoked key must not lock the device out (as for assignments, agent/trust.ts). */
  reset(): void { this.#counter = 0; }

  status(): ControlStatus { return { counter: this.#counter, issuedAt: this.#issuedAt, lastRefused: this.#lastRefused }; }

  /** No write into dataDir after this. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#writes;
  }
}
