/**
 * Persistent agent state, written so a power cut at any instant leaves either
 * the old or the new file (AgentStorage.writeAtomic: on disk a temp file,
 * fsync, rename, fsync of the folder; disk-storage.ts). The install state
 * machine persists each phase BEFORE doing its
 * work (DESIGN "Persist the state before doing its work"), so boot can decide
 * what to do from this file alone.
 *
 * Layout:
 *   dataDir/state.json
 *   dataDir/models/<bundleId>/{model.onnx, manifest.json}
 *   dataDir/staging/<bundleId>/payload.zst   (chunks written at their offsets; staging-file.ts)
 */
import { join } from 'node:path';
import { PHASES } from '@fleetcast/protocol/messages.js';
import { int, nullable, obj, optional, parse, record, sha256Hex, str, withDefault, type Infer } from '@fleetcast/protocol/schema.js';
import { diskStorage } from './disk-storage.js';
import { agentError } from './errors.js';
import { KeptFolderSlot } from './kept-folder.js';
import type { AgentStorage } from './storage.js';

// Moved to disk-storage.ts with the rest of the disk's write discipline; still exported from here for their callers.
export { atomicWrite, diskFull, fsyncDir, removeStaleTemps } from './disk-storage.js';

const installedSchema = obj({
  bundleId: sha256Hex(), name: str({ max: 64 }), version: int({ min: 1 }),
  rawSha256: sha256Hex(), installedAt: int({ min: 0 }),
});
export type InstalledModel = Infer<typeof installedSchema>;

const installSchema = obj({
  bundleId: sha256Hex(), counter: int({ min: 1 }), name: str({ max: 64 }), version: int({ min: 1 }),
  phase: str({ enum: PHASES }),
  startedAt: int({ min: 0 }), updatedAt: int({ min: 0 }),
  /** Error code when phase is "failed". */
  error: nullable(str({ max: 64 })),
  /** Boots that found this install unfinished; past maxInstallRecoveries the bundle is given up (crash loop). */
  recoveries: optional(int({ min: 0 })),
  /** Probation window end (ms) while phase is "probation". */
  probationUntil: optional(int({ min: 0 })),
});
export type InstallRecord = Infer<typeof installSchema>;

const assignmentRefSchema = obj({
  bundleId: sha256Hex(), counter: int({ min: 1 }), name: str({ max: 64 }), version: int({ min: 1 }),
  rolloutId: nullable(str({ max: 128 })), ring: nullable(str({ max: 64 })), acceptedAt: int({ min: 0 }),
});
export type AssignmentRef = Infer<typeof assignmentRefSchema>;

export const agentStateSchema = obj({
  v: int({ min: 1, max: 1 }),
  /** Highest assignment counter accepted; anything lower is a replay. */
  counter: int({ min: 0 }),
  /**
   * The root version at which the counter was last reset (a root that revoked a hub
   * key); 0 if never. Assignments signed under an older root are refused: they were
   * issued before the reset, and the emptied counter no longer tells them from new ones.
   */
  counterEpoch: withDefault(int({ min: 0 }), 0),
  assignment: nullable(assignmentRefSchema),
  active: nullable(installedSchema),
  previous: nullable(installedSchema),
  install: nullable(installSchema),
  lastError: nullable(obj({ code: str({ max: 64 }), at: int({ min: 0 }), bundleId: optional(sha256Hex()) })),
  /** Boots and saves are counted so a later recovery table can break crash loops. */
  boots: int({ min: 0 }),
  saves: int({ min: 0 }),
  /**
   * Bundles that failed here for a reason that will not change (hash, signature,
   * golden cases, probation, crash loop), with the code: never fetched again, so
   * the hub's assignment refresher cannot make the device loop. Bounded (oldest dropped).
   */
  refused: withDefault(record(str({ max: 64 }), { keyPattern: /^[0-9a-f]{64}$/, maxKeys: 256 }), {}),
});
export type AgentState = Infer<typeof agentStateSchema>;

export function emptyState(): AgentState {
  return { v: 1, counter: 0, counterEpoch: 0, assignment: null, active: null, previous: null, install: null, lastError: null, boots: 0, saves: 0, refused: {} };
}

export class StateStore {
  readonly dataDir: string;
  /** Where this agent keeps its files: the disk, or memory in the simulator (storage.ts). */
  readonly storage: AgentStorage;
  #state: AgentState;
  #chain: Promise<unknown> = Promise.resolve();
  /** dataDir kept open for the folder sync of every state write. */
  readonly #folder: KeptFolderSlot;
  /** Set when state.json was unreadable at open (it is moved aside, never deleted). */
  readonly corruptAside: string | null;

  private constructor(dataDir: string, storage: AgentStorage, state: AgentState, corruptAside: string | null) {
    this.dataDir = dataDir;
    this.storage = storage;
    this.#state = state;
    this.corruptAside = corruptAside;
    this.#folder = new KeptFolderSlot(storage, dataDir);
  }

  static async open(dataDir: string, now: () => number = Date.now, storage: AgentStorage = diskStorage): Promise<StateStore> {
    try {
      // Folders 0700 and files 0600 (signing/private-files.ts): a model may be the owner's secret, and state.json says what runs.
      await storage.makeDir(dataDir);
      await storage.makeDir(join(dataDir, 'models'));
      await storage.makeDir(join(dataDir, 'staging'));
    } catch (e) {
      throw agentError('AGENT_ERR_DATA_DIR', `${dataDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const file = join(dataDir, 'state.json');
    let state = emptyState();
    let aside: string | null = null;
    let text: string | null = null;
    try { text = await storage.readText(file); } catch (e) {
      throw agentError('AGENT_ERR_STATE_CORRUPT', `cannot read ${file}: ${(e as Error).message}`);
    }
    if (text !== null) {
      try {
        state = parse(agentStateSchema, JSON.parse(text), { what: 'agent state' }) as AgentState;
      } catch {
        aside = `${file}.corrupt-${now()}`;
        await storage.rename(file, aside);
        state = emptyState();
      }
    }
    return new StateStore(dataDir, storage, state, aside);
  }

  get state(): Readonly<AgentState> { return this.#state; }

  /** Apply `change` to a copy, persist it atomically, then make it current. Calls are serialised. */
  update(change: (draft: AgentState) => void): Promise<Readonly<AgentState>> {
    const run = async () => {
      const draft = structuredClone(this.#state);
      change(draft);
      draft.saves++;
      await this.storage.writeAtomic(join(this.dataDir, 'state.json'), JSON.stringify(draft, null, 1), await this.#folder.get());
      this.#state = draft;
      return draft;
    };
    const p = this.#chain.then(run, run);
    this.#chain = p.catch(() => {});
    return p;
  }

  /** Wait for the writes under way and close the kept folder (the agent's stop); a later write syncs as before. */
  async close(): Promise<void> {
    await this.#chain;
    await this.#folder.close();
  }

  modelDir(bundleId: string): string { return join(this.dataDir, 'models', bundleId); }
  modelFile(bundleId: string): string { return join(this.modelDir(bundleId), 'model.onnx'); }
  modelManifest(bundleId: string): string { return join(this.modelDir(bundleId), 'manifest.json'); }
  stagingDir(bundleId: string): string { return join(this.dataDir, 'staging', bundleId); }
  payloadFile(bundleId: string): string { return join(this.stagingDir(bundleId), 'payload.zst'); }
  stagingManifest(bundleId: string): string { return join(this.stagingDir(bundleId), 'manifest.json'); }

  async removeStaging(bundleId: string): Promise<void> {
    await this.storage.remove(this.stagingDir(bundleId));
  }
}
