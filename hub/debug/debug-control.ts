/**
 * Operator-controlled debug raw sampling per device (issue #5): "Raw values
 * never leave the device unless an operator turns on debug sampling for that
 * device, which is rate-limited and shown in its status."
 *
 * Turning it on or off signs a control payload with the hub key (DSSE,
 * PAYLOAD_TYPES.control, protocol/control.ts) and publishes it RETAINED at
 * QoS 1 on the device's control topic, so a device that is offline picks it up
 * when it reconnects. Limits: at most `maxDevices` devices at once
 * (HUB_ERR_DEBUG_LIMIT, 429), at most 60 minutes and 100 rows per window.
 * Every change is stored first, then published; what the broker did not
 * acknowledge is retried by the sweeper. Every on/off/expiry is an audit entry
 * (debug_audit) and a log line.
 *
 * The sweeper wakes at the next deadline: it records sessions whose `until`
 * passed as expired (the device has switched itself off at that time) and
 * clears retained control messages that have expired (an empty retained
 * publish [MQTT-3.3.1-10]), so no stale message waits on the broker.
 */
import type { Logger } from 'pino';
import { DEBUG_LIMITS, type ControlMessage, type ControlPayload } from '@fleetcast/protocol/control.js';
import { PAYLOAD_TYPES } from '@fleetcast/protocol/envelope.js';
import { encode, PROTOCOL_VERSION } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { KeyPair } from '@fleetcast/signing/ed25519.js';
import { signEnvelope } from '@fleetcast/signing/envelope.js';
import { hubError } from '../errors.js';
import type { HubStore } from '../store.js';
import { DebugSessionStore, type AuditEntry, type DebugSessionRow } from './debug-store.js';

/** An off message stays retained at least this long (an offline device learns of it when it reconnects). */
const OFF_RETAIN_MS = 60_000;
/** The sweeper wakes at least this often (retries of unacknowledged publishes). */
const MAX_SLEEP_MS = 30_000;

export interface DebugState {
  deviceId: string;
  on: boolean;
  rowsPerWindow: number | null;
  startedAt: number | null;
  until: number | null;
  endedAt: number | null;
  actor: string | null;
  counter: number;
  /** The broker acknowledged the current control message. */
  delivered: boolean;
}

export interface DebugControlDeps {
  store: HubStore;
  hubKey: KeyPair;
  /** The hub's current root version, signed into every control message (devices that reset their counters at a newer root refuse older ones). */
  rootVersion?: number;
  /** Publish retained at QoS 1; resolves on the broker's PUBACK. */
  publish(topic: string, payload: Buffer): Promise<void>;
  now: () => number;
  logger: Logger;
  maxDevices: number;
  publishTimeoutMs: number;
}

export class DebugControl {
  readonly sessions: DebugSessionStore;
  readonly #d: DebugControlDeps;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #paused = false;
  #sweeping: Promise<void> | null = null;

  constructor(d: DebugControlDeps) {
    this.#d = d;
    // Read at each write: the hub sets HubStore.fence once it knows it is one of a cluster.
    this.sessions = new DebugSessionStore(d.store.db, (db, what) => d.store.fence?.(db, what));
  }

  /** Turn debug sampling on (or change it) for one device that has reported to the hub. */
  async turnOn(deviceId: string, rowsPerWindow: number, minutes: number, actor: string): Promise<DebugState> {
    if (!Number.isInteger(rowsPerWindow) || rowsPerWindow < 1 || rowsPerWindow > DEBUG_LIMITS.maxRowsPerWindow) throw hubError('HUB_ERR_BAD_REQUEST', `rowsPerWindow must be 1…${DEBUG_LIMITS.maxRowsPerWindow}, got ${rowsPerWindow}`);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > DEBUG_LIMITS.maxMinutes) throw hubError('HUB_ERR_BAD_REQUEST', `minutes must be 1…${DEBUG_LIMITS.maxMinutes}, got ${minutes}`);
    if (!this.#d.store.getDevice(deviceId)) throw hubError('HUB_ERR_UNKNOWN_DEVICE', deviceId);
    this.#expireDue(); // a session past its `until` is recorded as expired before anything replaces it
    const now = this.#d.now();
    const until = now + minutes * 60_000;
    const prev = this.sessions.get(deviceId);
    const next = this.#signed(deviceId, prev, now, until, { rowsPerWindow, until });
    this.sessions.write({ ...next, rowsPerWindow, startedAt: now, until, endedAt: null, actor }, { at: now, deviceId, action: 'on', actor, rowsPerWindow, until, counter: next.counter }, () => {
      // Checked inside the transaction that writes: two concurrent requests cannot both take the last place.
      const others = this.sessions.active(now).filter((s) => s.deviceId !== deviceId);
      if (others.length >= this.#d.maxDevices) throw hubError('HUB_ERR_DEBUG_LIMIT', `${others.length} devices are in debug sampling (${others.slice(0, 5).map((s) => s.deviceId).join(', ')}${others.length > 5 ? ', …' : ''}), limit ${this.#d.maxDevices}`);
    });
    this.#d.logger.info({ deviceId, rowsPerWindow, until, actor, counter: next.counter }, 'debug sampling on');
    await this.#deliver(deviceId);
    return this.state(deviceId);
  }

  /** Turn debug sampling off for a device (idempotent: a device not in debug is told again that it is off). */
  async turnOff(deviceId: string, actor: string): Promise<DebugState> {
    this.#expireDue();
    const prev = this.sessions.get(deviceId);
    if (!prev && !this.#d.store.getDevice(deviceId)) throw hubError('HUB_ERR_UNKNOWN_DEVICE', deviceId);
    const now = this.#d.now();
    const wasOn = prev !== undefined && isOn(prev, now);
    // Retained until the session it ends would have ended anyway (after that a device is off by itself).
    const expiresAt = Math.max(now + OFF_RETAIN_MS, prev?.until ?? 0);
    const next = this.#signed(deviceId, prev, now, expiresAt, null);
    this.sessions.write({ ...next, rowsPerWindow: prev?.rowsPerWindow ?? null, startedAt: prev?.startedAt ?? null, until: prev?.until ?? null, endedAt: wasOn ? now : (prev?.endedAt ?? null), actor },
      { at: now, deviceId, action: 'off', actor, rowsPerWindow: null, until: null, counter: next.counter });
    this.#d.logger.info({ deviceId, actor, counter: next.counter, wasOn }, 'debug sampling off');
    await this.#deliver(deviceId);
    return this.state(deviceId);
  }

  state(deviceId: string): DebugState {
    this.#expireDue();
    const s = this.sessions.get(deviceId);
    const now = this.#d.now();
    if (!s) return { deviceId, on: false, rowsPerWindow: null, startedAt: null, until: null, endedAt: null, actor: null, counter: 0, delivered: false };
    return { deviceId, on: isOn(s, now), rowsPerWindow: s.rowsPerWindow, startedAt: s.startedAt, until: s.until, endedAt: s.endedAt, actor: s.actor, counter: s.counter, delivered: s.published };
  }

  /** Devices in debug now, for the device listing. */
  activeMap(): Map<string, { rowsPerWindow: number; until: number }> {
    this.#expireDue();
    return new Map(this.sessions.active(this.#d.now()).map((s) => [s.deviceId, { rowsPerWindow: s.rowsPerWindow!, until: s.until! }]));
  }

  audit(deviceId: string, limit?: number): AuditEntry[] { this.#expireDue(); return this.sessions.audit(deviceId, limit); }

  /** Publish every retained control message again (an embedded broker forgot them when it stopped), then keep sweeping. */
  async start(): Promise<void> {
    this.#paused = false;
    this.#resignOlderRoot();
    for (const s of this.sessions.retained()) this.sessions.db.prepare('UPDATE debug_sessions SET published = 0 WHERE device_id = ?').run(s.deviceId);
    await this.sweep();
  }

  /** Stop sweeping (this hub lost the cluster's leadership); start() resumes. */
  pause(): void {
    this.#paused = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#sweeping;
  }

  /** Record expiries, clear expired retained messages, retry unacknowledged ones; then sleep until the next deadline. */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweepOnce().finally(() => { this.#sweeping = null; this.#arm(); });
    return this.#sweeping;
  }

  async #sweepOnce(): Promise<void> {
    this.#expireDue();
    for (const { deviceId } of this.sessions.retained()) {
      if (this.#closed || this.#paused) return;
      // Read again: a turnOn/turnOff while this loop awaited a publish may have replaced the message,
      // and clearing must never hit the new one (the read and the send below are one synchronous step).
      const s = this.sessions.get(deviceId);
      if (!s?.envelope || s.cleared) continue;
      try {
        if (s.expiresAt !== null && s.expiresAt <= this.#d.now()) {
          await this.#publish(s.deviceId, Buffer.alloc(0));
          this.sessions.mark(s.deviceId, s.counter, 'cleared');
        } else if (!s.published) {
          await this.#deliver(s.deviceId);
        }
      } catch (e) {
        this.#d.logger.warn({ err: e, deviceId: s.deviceId }, 'debug control publish failed; retrying at the next sweep');
      }
    }
  }

  #expireDue(): void {
    for (const s of this.sessions.expired(this.#d.now())) {
      if (this.sessions.expire(s)) this.#d.logger.info({ deviceId: s.deviceId, until: s.until, counter: s.counter }, 'debug sampling expired');
    }
  }

  #arm(): void {
    if (this.#closed || this.#paused) return;
    if (this.#timer) clearTimeout(this.#timer);
    const now = this.#d.now();
    let next = now + MAX_SLEEP_MS;
    for (const s of this.sessions.retained()) {
      if (s.expiresAt !== null) next = Math.min(next, s.expiresAt);
      if (s.until !== null && s.endedAt === null && s.until > now) next = Math.min(next, s.until);
    }
    this.#timer = setTimeout(() => { void this.sweep(); }, Math.max(10, next - now + 5));
    this.#timer.unref();
  }

  /**
   * A new root takes effect at start (as for assignments, Assigner.resignOlderRoot): a device that
   * reset its counters at it refuses a control message signed under an older root, or by a hub key
   * the root revoked. A retained "off" still in force is signed again with the next counter, so an
   * operator's "off" reaches a device that takes the new root first (it would otherwise sample raw
   * rows until the old `until`). An "on" stays as it was signed: sampling switched on before the
   * rotation must be switched on again (README, Trust), consent does not carry across a revocation.
   */
  #resignOlderRoot(): void {
    const now = this.#d.now();
    for (const s of this.sessions.retained()) {
      if (!s.envelope || s.cleared || (s.expiresAt !== null && s.expiresAt <= now)) continue;
      let p: ControlPayload;
      try { p = JSON.parse(Buffer.from(s.envelope.payload, 'base64').toString('utf8')) as ControlPayload; } catch { continue; }
      const sameKey = s.envelope.signatures.every((g) => g.keyid === this.#d.hubKey.keyid);
      if (p.debug !== null || (sameKey && (p.rootVersion ?? 0) >= (this.#d.rootVersion ?? 0))) continue;
      const next = this.#signed(s.deviceId, s, now, p.expiresAt, p.debug);
      this.sessions.resign(s.deviceId, next.counter, next.envelope!);
      this.#d.logger.info({ deviceId: s.deviceId, counter: next.counter, rootVersion: this.#d.rootVersion }, 'debug control "off" re-signed under the current root and hub key');
    }
  }

  /** Sign the next control message: counter max(last + 1, now), never below what the device may hold. */
  #signed(deviceId: string, prev: DebugSessionRow | undefined, now: number, expiresAt: number, debug: ControlPayload['debug']): Omit<DebugSessionRow, 'rowsPerWindow' | 'startedAt' | 'until' | 'endedAt' | 'actor'> {
    const counter = Math.max((prev?.counter ?? 0) + 1, now);
    const payload: ControlPayload = { type: 'fleetcast.control/v1', deviceId, counter, issuedAt: now, expiresAt, debug, ...(this.#d.rootVersion ? { rootVersion: this.#d.rootVersion } : {}) };
    const envelope = signEnvelope(PAYLOAD_TYPES.control, encode(payload), [this.#d.hubKey]);
    return { deviceId, counter, envelope, expiresAt, published: false, cleared: false };
  }

  /** Publish the stored control message; HUB_ERR_BROKER_UNREACHABLE when the broker does not acknowledge (the sweeper retries). */
  async #deliver(deviceId: string): Promise<void> {
    const s = this.sessions.get(deviceId);
    if (!s?.envelope) return;
    const msg: ControlMessage = { v: PROTOCOL_VERSION, control: s.envelope };
    try {
      await this.#publish(deviceId, encode(msg));
    } catch (e) {
      this.#arm();
      const err = hubError('HUB_ERR_BROKER_UNREACHABLE', `the debug control message for ${deviceId} is stored but the broker has not acknowledged it; the hub keeps retrying`);
      err.cause = e;
      throw err;
    }
    this.sessions.mark(deviceId, s.counter, 'published');
    this.#arm();
  }

  #publish(deviceId: string, payload: Buffer): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no PUBACK within ${this.#d.publishTimeoutMs} ms`)), this.#d.publishTimeoutMs); });
    return Promise.race([this.#d.publish(topics.control(deviceId), payload), t]).finally(() => clearTimeout(timer));
  }
}

function isOn(s: DebugSessionRow, now: number): boolean {
  return s.rowsPerWindow !== null && s.endedAt === null && s.until !== null && s.until > now;
}
