/**
 * The atomic swap (DESIGN "Swap: atomic pointer switch; in-flight requests
 * finish on the old session"). Each installed model sits in a slot with an
 * in-flight count; `acquire` pins the current slot, `swap` repoints new
 * requests at the next slot at once, and the old slot's model is released
 * when its last request lets go. JavaScript runs one callback at a time, so
 * the pointer switch itself needs no lock.
 */
export interface Releasable { release(): Promise<void> }

interface Slot<E extends { model: Releasable }> {
  entry: E;
  inflight: number;
  retired: boolean;
  drained: Promise<void>;
  resolveDrained: () => void;
}

export interface Lease<E> { entry: E; release: () => void }

export class ActiveModel<E extends { model: Releasable }> {
  #current: Slot<E> | null = null;
  #onReleaseError: (e: unknown) => void;

  constructor(opts: { onReleaseError?: (e: unknown) => void } = {}) {
    this.#onReleaseError = opts.onReleaseError ?? (() => {});
  }

  get current(): E | null { return this.#current?.entry ?? null; }
  get inflight(): number { return this.#current?.inflight ?? 0; }

  /** Pin the current model for one request; null when nothing is installed. */
  acquire(): Lease<E> | null {
    const slot = this.#current;
    if (!slot) return null;
    slot.inflight++;
    let done = false;
    return {
      entry: slot.entry,
      release: () => {
        if (done) return;
        done = true;
        slot.inflight--;
        this.#maybeFree(slot);
      },
    };
  }

  /**
   * New requests go to `next` from now on. Resolves once the previous model has
   * drained and been released (callers may ignore it; tests await it).
   */
  swap(next: E | null): Promise<void> {
    const old = this.#current;
    this.#current = next ? makeSlot(next) : null;
    if (!old) return Promise.resolve();
    old.retired = true;
    this.#maybeFree(old);
    return old.drained;
  }

  /** Stop serving and release the current model once it drains. */
  close(): Promise<void> {
    return this.swap(null);
  }

  #maybeFree(slot: Slot<E>): void {
    if (!slot.retired || slot.inflight > 0) return;
    slot.retired = false; // free once
    // On a turn of its own: disposing a session is synchronous native work, and the last lease
    // is let go from a request's completion, or the swap from the install's commit step.
    setImmediate(() => { slot.entry.model.release().catch(this.#onReleaseError).finally(slot.resolveDrained); });
  }
}

function makeSlot<E extends { model: Releasable }>(entry: E): Slot<E> {
  let resolveDrained!: () => void;
  const drained = new Promise<void>((r) => { resolveDrained = r; });
  return { entry, inflight: 0, retired: false, drained, resolveDrained };
}
