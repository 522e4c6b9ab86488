/**
 * One folder kept open for the syncs of the atomic writes into it (storage.keepFolder): the state file's
 * folder (dataDir) and the trust checkpoint's (trust/) are written on every swap, and opening and closing
 * the folder for each sync was two more trips through libuv's threadpool while predictions are served.
 * Opened on the first write; after close() each write opens the folder for its own sync again, as before.
 */
import type { AgentStorage, KeptFolder } from './storage.js';

export class KeptFolderSlot {
  #folder: Promise<KeptFolder | undefined> | null = null;
  #closed = false;

  constructor(private readonly storage: AgentStorage, private readonly dir: string) {}

  /** The kept folder, or undefined (closed, a medium without folders, or it could not be opened: out of descriptors). */
  async get(): Promise<KeptFolder | undefined> {
    if (this.#closed || !this.storage.keepFolder) return undefined;
    this.#folder ??= this.storage.keepFolder(this.dir).catch(() => undefined);
    return this.#folder;
  }

  /** Close it; call once the writes that use it are done. */
  async close(): Promise<void> {
    this.#closed = true;
    const f = await this.#folder;
    this.#folder = null;
    await f?.close().catch(() => {});
  }
}
