/**
 * What the agent does on boot with whatever the last run left on disk (DESIGN
 * "on boot, decide from a recovery table; unknown state → rollback check;
 * count state saves to break crash loops"). Mender tests its client the same
 * way: kill it in each state and check the table's answer.
 *
 * | persisted install phase          | serves                 | then                                              |
 * |----------------------------------|------------------------|---------------------------------------------------|
 * | none, idle, committed,           | active (else previous) | nothing                                           |
 * |   rolled-back                    |                        |                                                   |
 * | failed                           | active (else previous) | nothing, unless the failure was transient (fetch  |
 * |                                  |                        | timeout, disk space): resume as for fetching      |
 * | fetching, verifying              | active (unchanged)     | resume when the retained assignment is delivered  |
 * |                                  |                        | (hash-valid staged chunks are kept)               |
 * | staging, swapping                | active (unchanged: the | resume as above (a hash-valid unpacked model is   |
 * |                                  | pointer moves after)   | reused); count a recovery                         |
 * | probation                        | the new model          | a fresh probation window; count a recovery        |
 * | (recoveries ≥ max, staging..)    | active / previous      | give up: AGENT_ERR_CRASH_LOOP, bundle refused,    |
 * |                                  |                        | probation rolls back to the previous slot         |
 * | corrupt or unknown state file    | rollback check: the    | AGENT_ERR_STATE_CORRUPT reported                  |
 * |                                  | newest verified model  |                                                   |
 * | a slot whose files fail the boot | the other slot         | AGENT_ERR_SLOT_DAMAGED on the install record, so  |
 * |   check (truncated, zero-length) |                        | the next delivery reinstalls it                   |
 *
 * Only phases where the bundle's bytes run in native code (staging: load and
 * golden cases; swapping; probation) count towards the crash loop: a fetch is
 * interrupted by power and network, not by the bundle.
 */
import { verifyManifestEnvelope } from '@fleetcast/bundles/verify.js';
import { parseEnvelope } from '@fleetcast/protocol/envelope.js';
import { errorCode } from '@fleetcast/protocol/errors.js';
import type { Phase } from '@fleetcast/protocol/messages.js';
import { openInstalledModel, type InstalledContext, type ModelEntry } from './model-loader.js';
import { refuse } from './refused.js';
import type { AgentState, InstalledModel, StateStore } from './state-store.js';

/** One row of the recovery table above, as data: boot code reads `countsRecovery`, the crash suites iterate the rows. */
export interface RecoveryRule {
  /** What the restarted agent serves at once. */
  serves: 'active' | 'new';
  /** What it does next. */
  then: 'nothing' | 'resume' | 'resume-if-transient' | 'probation-again';
  /** The bundle's bytes ran in native code in this phase: the boot counts towards the crash loop. */
  countsRecovery: boolean;
  /**
   * Where the crash suites SIGKILL the agent in this phase (FLEETCAST_TEST_PAUSE_AT values,
   * agent/test-pause.ts; `idle` is a kill with no install under way). A new phase or kill
   * point without a crash test fails test/crash/real-hub-crash.test.ts.
   */
  killPoints: readonly string[];
}

export const RECOVERY_TABLE: Readonly<Record<Phase, RecoveryRule>> = Object.freeze({
  idle: { serves: 'active', then: 'nothing', countsRecovery: false, killPoints: ['idle'] },
  fetching: { serves: 'active', then: 'resume', countsRecovery: false, killPoints: ['fetching', 'fetching:mid-transfer'] },
  verifying: { serves: 'active', then: 'resume', countsRecovery: false, killPoints: ['verifying'] },
  staging: { serves: 'active', then: 'resume', countsRecovery: true, killPoints: ['staging', 'staging:mid-unpack'] },
  swapping: { serves: 'active', then: 'resume', countsRecovery: true, killPoints: ['swapping', 'swapping:switched'] },
  probation: { serves: 'new', then: 'probation-again', countsRecovery: true, killPoints: ['probation'] },
  committed: { serves: 'active', then: 'nothing', countsRecovery: false, killPoints: ['committed'] },
  'rolled-back': { serves: 'active', then: 'nothing', countsRecovery: false, killPoints: ['rolled-back'] },
  failed: { serves: 'active', then: 'resume-if-transient', countsRecovery: false, killPoints: ['failed'] },
});

export interface BootNote { code: string; bundleId?: string; kind: 'stage-failed' | 'rolled-back' }
export interface BootResult { entry: ModelEntry | null; notes: BootNote[]; resumeProbation: boolean }

/** Apply the recovery table to the persisted state (before anything is loaded). */
export async function applyRecoveryTable(store: StateStore, maxRecoveries: number, now: () => number): Promise<BootNote[]> {
  const inst = store.state.install;
  if (!inst || !RECOVERY_TABLE[inst.phase].countsRecovery) return [];
  const recoveries = (inst.recoveries ?? 0) + 1;
  if (recoveries <= maxRecoveries) {
    await store.update((s) => { s.install = { ...s.install!, recoveries }; });
    return [];
  }
  const code = 'AGENT_ERR_CRASH_LOOP';
  const wasProbation = inst.phase === 'probation';
  await store.update((s) => {
    if (wasProbation && s.active?.bundleId === inst.bundleId && s.previous) {
      s.active = s.previous;
      s.previous = null;
    }
    refuse(s, inst.bundleId, code);
    s.install = { ...s.install!, recoveries, phase: wasProbation ? 'rolled-back' : 'failed', error: code, updatedAt: now() };
    s.lastError = { code, at: now(), bundleId: inst.bundleId };
  });
  return [{ code, bundleId: inst.bundleId, kind: wasProbation ? 'rolled-back' : 'stage-failed' }];
}

/**
 * Serve the active slot, else the previous one. A slot that fails its boot
 * check is dropped from the state (never served half-written); if it is the
 * bundle the hub assigns, the install record is marked for reinstall.
 */
export async function openServable(store: StateStore, ctx: InstalledContext, now: () => number): Promise<BootResult> {
  const notes: BootNote[] = [];
  const st = store.state;
  let entry: ModelEntry | null = null;
  const damaged: InstalledModel[] = [];
  for (const m of [st.active, st.previous]) {
    if (!m || entry) continue;
    try {
      entry = await openInstalledModel(ctx, m);
    } catch (e) {
      damaged.push(m);
      notes.push({ code: errorCode(e), bundleId: m.bundleId, kind: 'stage-failed' });
    }
  }
  if (damaged.length) {
    const served = entry?.info ?? null;
    await store.update((s) => {
      const gone = new Set(damaged.map((d) => d.bundleId));
      if (s.active && gone.has(s.active.bundleId)) { s.active = served; if (served && s.previous?.bundleId === served.bundleId) s.previous = null; }
      if (s.previous && gone.has(s.previous.bundleId)) s.previous = null;
      const a = s.assignment;
      if (a && gone.has(a.bundleId)) {
        s.install = { bundleId: a.bundleId, counter: a.counter, name: a.name, version: a.version, phase: 'failed', startedAt: now(), updatedAt: now(), error: 'AGENT_ERR_SLOT_DAMAGED' };
      }
      s.lastError = { code: notes[0].code, at: now(), bundleId: damaged[0].bundleId };
    });
    for (const d of damaged) await store.storage.remove(store.modelDir(d.bundleId)).catch(() => {});
  }
  const inst = store.state.install;
  const resumeProbation = entry !== null && inst?.phase === 'probation' && inst.bundleId === entry.info.bundleId;
  return { entry, notes, resumeProbation };
}

/**
 * Rollback check after the state file was unreadable: the pointers are lost,
 * so look at what is on disk. Every unpacked model whose stored manifest still
 * verifies against the root and whose file has the signed hash is a candidate;
 * the highest version is served and becomes the active slot.
 */
export async function rollbackCheck(store: StateStore, ctx: InstalledContext, now: () => number): Promise<ModelEntry | null> {
  const found: { m: InstalledModel; version: number }[] = [];
  for (const name of await store.storage.list(`${store.dataDir}/models`)) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    try {
      const v = verifyManifestEnvelope(parseEnvelope(JSON.parse((await store.storage.readText(store.modelManifest(name))) ?? 'null')), ctx.root);
      if (v.bundleId !== name) continue;
      const man = v.manifest;
      found.push({ m: { bundleId: name, name: man.name, version: man.version, rawSha256: man.payload.rawSha256, installedAt: now() }, version: man.version });
    } catch {
      // Not a verifiable model: not a candidate.
    }
  }
  found.sort((a, b) => b.version - a.version);
  for (const { m } of found) {
    try {
      const entry = await openInstalledModel(ctx, m);
      await store.update((s: AgentState) => { s.active = m; });
      return entry;
    } catch {
      // Damaged too: try the next one.
    }
  }
  return null;
}
