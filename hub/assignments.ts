/**
 * Hub assignments (DESIGN.md "Trust"): for each target device the hub signs,
 * online, "run this bundle", with a strictly increasing per-device counter and
 * a short expiry, and publishes it RETAINED at QoS 1 on the device's assign
 * topic together with the release-signed manifest it names. A device that
 * connects later gets it from the broker.
 *
 * Retained assignments must not expire while a device is offline, so a
 * refresher re-signs (with a new counter) every current assignment past half
 * its TTL, and the hub republishes all current ones when it starts (an embedded
 * broker loses its retained messages when it stops).
 */
import type { Logger } from 'pino';
import { PAYLOAD_TYPES, type Envelope } from '@fleetcast/protocol/envelope.js';
import { encode, PROTOCOL_VERSION, type Assignment, type AssignMessage } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { KeyPair } from '@fleetcast/signing/ed25519.js';
import { signEnvelope } from '@fleetcast/signing/envelope.js';
import { hubError } from './errors.js';
import { logDeployment, requireLog, type LogAppender } from './translog/hooks.js';
import type { AssignmentRecord, BundleRecord, HubStore } from './store.js';

/** Assignments signed per transaction (well under a second of pure-JS Ed25519). */
const SIGN_BATCH = 256;

export interface AssignerOptions {
  store: HubStore;
  /** Every deployment is appended here before anything is signed (required: see hub/translog/hooks.ts). */
  log: LogAppender;
  hubKey: KeyPair;
  /** The version of the hub's current root, signed into every assignment (agents that reset their counter at a newer root refuse older ones). */
  rootVersion: number;
  ttlMs: number;
  /** How long to wait for the broker's PUBACK before reporting HUB_ERR_BROKER_UNREACHABLE. */
  publishTimeoutMs: number;
  /** Publish retained at QoS 1; resolves on the broker's PUBACK. */
  publish(topic: string, payload: Buffer): Promise<void>;
  now: () => number;
  logger: Logger;
  /** Told which devices were just assigned a bundle, before the publishes (the chunk server expects their requests). */
  onAssigning?(bundleId: string, deviceIds: readonly string[]): void;
}

export interface DeployResult {
  bundleId: string;
  devices: string[];
  counters: Record<string, number>;
}

export class Assigner {
  private readonly o: AssignerOptions;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<number> | undefined;
  /** Devices whose current assignment is stored but whose publish failed; retried at each refresh. */
  private readonly unpublished = new Set<string>();

  constructor(o: AssignerOptions) {
    requireLog(o.log, 'the assigner');
    this.o = o;
  }

  /**
   * Sign and store one assignment per device, then publish them. Devices go in
   * batches, each one transaction, with the event loop free between batches:
   * an Ed25519 signature costs milliseconds in pure JS, and a deploy to a large
   * fleet must not stall the MQTT keepalive or the API. Each device's counter and
   * assignment are always written together.
   */
  async assign(bundle: BundleRecord, deviceIds: readonly string[], meta: { rolloutId?: string | null; ring?: string | null; actor?: string } = {}): Promise<DeployResult> {
    const targets = [...new Set(deviceIds)];
    if (targets.length === 0) throw hubError('HUB_ERR_NO_TARGETS');
    const rolloutId = meta.rolloutId ?? null;
    const ring = meta.ring ?? null;
    // Logged before anything is signed: no device can be assigned what the transparency log does not show (issue #6).
    logDeployment(this.o.log, bundle, targets, { rolloutId, ring, ...(meta.actor ? { actor: meta.actor } : {}) }, this.o.now());
    this.o.onAssigning?.(bundle.id, targets);
    const counters: Record<string, number> = {};
    let failure: unknown;
    for (let i = 0; i < targets.length; i += SIGN_BATCH) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      const recs = this.o.store.issueAssignments(
        targets.slice(i, i + SIGN_BATCH).map((deviceId) => ({ deviceId, bundleId: bundle.id, rolloutId, ring })),
        (deviceId, counter) => this.sign(bundle, deviceId, counter, rolloutId, ring),
      );
      for (const r of recs) counters[r.deviceId] = r.counter;
      // Stored already; a publish failure is retried later, so keep assigning the rest.
      try { await this.publishAll(recs); } catch (e) { failure ??= e; }
    }
    if (failure) throw failure;
    return { bundleId: bundle.id, devices: targets, counters };
  }

  /** Re-sign, with new counters, every assignment at or past half its TTL. Returns how many. */
  refreshDue(): Promise<number> {
    // One refresh at a time; a timer tick during a slow one joins it.
    this.refreshing ??= this.refreshOnce().finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  /** Publish every current assignment again (the broker may have lost its retained copies). */
  async republishAll(): Promise<number> {
    const all = this.o.store.listAssignments();
    await this.publishAll(all);
    return all.length;
  }

  startRefresher(everyMs: number): void {
    this.stopRefresher();
    this.timer = setInterval(() => {
      this.refreshDue().catch((e: unknown) => this.o.logger.error({ err: e }, 'assignment refresh failed; retrying at the next tick'));
    }, everyMs);
    this.timer.unref();
  }

  stopRefresher(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async close(): Promise<void> {
    this.stopRefresher();
    await this.refreshing;
  }

  /**
   * Re-sign, with new counters, every assignment signed under an older root than the
   * hub's current one: a device that reset its counter at that root (a hub key was
   * revoked) refuses them. Called at start-up, where a new root takes effect.
   */
  resignOlderRoot(): Promise<number> {
    const older = this.o.store.listAssignments().filter((a) => signedRootVersion(a.envelope) < this.o.rootVersion);
    if (older.length === 0) return Promise.resolve(0);
    this.refreshing ??= this.refreshOnce(older).finally(() => { this.refreshing = undefined; });
    return this.refreshing;
  }

  private async refreshOnce(list?: AssignmentRecord[]): Promise<number> {
    const due = list ?? this.o.store.assignmentsDueForRefresh(this.o.now());
    const resigned = new Set<string>();
    for (let i = 0; i < due.length; i += SIGN_BATCH) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      // Read again, with no await before the issue below: a deployment or rollback made while an earlier batch
      // waited for its PUBACKs has replaced the assignment read at the start, and must not be undone by re-issuing that.
      const batch = due.slice(i, i + SIGN_BATCH).filter((a) => this.o.store.getAssignment(a.deviceId)?.counter === a.counter);
      const byDevice = new Map(batch.map((a) => [a.deviceId, a]));
      const recs: AssignmentRecord[] = [];
      // Bundles are never deleted; a missing one means a damaged store, and its reader has said so.
      for (const bundleId of new Set(batch.map((a) => a.bundleId))) {
        const bundle = this.o.store.getBundle(bundleId);
        if (!bundle) continue;
        recs.push(...this.o.store.issueAssignments(
          batch.filter((a) => a.bundleId === bundleId).map((a) => ({ deviceId: a.deviceId, bundleId, rolloutId: a.rolloutId, ring: a.ring })),
          (deviceId, counter) => { const prev = byDevice.get(deviceId)!; return this.sign(bundle, deviceId, counter, prev.rolloutId, prev.ring); },
        ));
      }
      for (const r of recs) resigned.add(r.deviceId);
      await this.publishAll(recs);
    }
    const retry = [...this.unpublished].filter((d) => !resigned.has(d)).map((d) => this.o.store.getAssignment(d)).filter((a) => a !== undefined);
    if (retry.length > 0) await this.publishAll(retry);
    if (resigned.size > 0) this.o.logger.info({ count: resigned.size }, 're-signed assignments past half their TTL');
    return resigned.size;
  }

  private sign(bundle: BundleRecord, deviceId: string, counter: number, rolloutId: string | null, ring: string | null) {
    const issuedAt = this.o.now();
    const expiresAt = issuedAt + this.o.ttlMs;
    const payload: Assignment = {
      type: 'fleetcast.assignment/v1', deviceId, bundleId: bundle.id, name: bundle.name, version: bundle.version,
      rolloutId, ring, counter, issuedAt, expiresAt, rootVersion: this.o.rootVersion,
    };
    return { envelope: signEnvelope(PAYLOAD_TYPES.assignment, encode(payload), [this.o.hubKey]), issuedAt, expiresAt };
  }

  /**
   * Publish retained, SIGN_BATCH at a time so that a fleet-wide republish keeps
   * a bounded number of messages (each carries the manifest) in memory.
   * Stored first, published after: a failed publish is retried by the refresher.
   */
  private async publishAll(recs: readonly AssignmentRecord[]): Promise<void> {
    let failed = 0;
    let cause: unknown;
    for (let i = 0; i < recs.length; i += SIGN_BATCH) {
      const batch = recs.slice(i, i + SIGN_BATCH);
      const results = await Promise.allSettled(batch.map(async (r) => {
        const bundle = this.o.store.getBundle(r.bundleId);
        if (!bundle) throw hubError('HUB_ERR_UNKNOWN_BUNDLE', r.bundleId);
        const msg: AssignMessage = { v: PROTOCOL_VERSION, assignment: r.envelope, manifest: bundle.envelope };
        await withTimeout(this.o.publish(topics.assign(r.deviceId), encode(msg)), this.o.publishTimeoutMs);
        this.unpublished.delete(r.deviceId);
      }));
      results.forEach((x, j) => {
        if (x.status === 'fulfilled') return;
        failed++;
        cause ??= x.reason;
        this.unpublished.add(batch[j].deviceId);
      });
    }
    if (failed > 0) {
      const err = hubError('HUB_ERR_BROKER_UNREACHABLE', `${failed} of ${recs.length} assignment(s) are signed and stored but not yet acknowledged by the broker; the hub keeps retrying`);
      err.cause = cause;
      throw err;
    }
  }
}

/** mqtt.js queues QoS 1 publishes while offline; an API call must not wait for the broker forever. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no PUBACK within ${ms} ms`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** The root version an assignment envelope was signed under (0 for hubs that did not say). */
function signedRootVersion(env: Envelope): number {
  try {
    const v = (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { rootVersion?: unknown }).rootVersion;
    return typeof v === 'number' ? v : 0;
  } catch { return 0; }
}
