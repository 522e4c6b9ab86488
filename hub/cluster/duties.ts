/**
 * The leader-only work of a hub (DESIGN.md "Scale-out"): the rollout engine,
 * assignment issue and refresh, transparency-log appends and checkpoint
 * publishing, the install batches that become log leaves, debug control.
 * One table of duties, started in order when the hub is elected and stopped in
 * reverse order, synchronously, the moment it is deposed: no timer of a duty
 * fires after onDeposed returns. (A write already under way when that happens
 * is refused by the epoch check in its transaction: hub/cluster/fence.ts.)
 *
 * A hub that runs alone (no cluster) is elected once, at start, and never deposed.
 */
import type { Logger } from 'pino';

export interface Duty {
  readonly name: string;
  /** Start the work; may await (republishing retained messages). Errors are logged, the others still start. */
  start(epoch: number): void | Promise<void>;
  /** Stop at once: clear timers, stop taking new work. Must not await. */
  stop(): void;
}

export class LeaderDuties {
  readonly #duties: Duty[] = [];
  #epoch: number | null = null;
  #started: Duty[] = [];

  constructor(private readonly logger: Logger) {}

  add(...d: Duty[]): void { this.#duties.push(...d); }

  /** The epoch the duties run under, or null while they are stopped. */
  get epoch(): number | null { return this.#epoch; }

  /** Start every duty in order; stops early if deposed meanwhile (a duty's start awaited). */
  async elected(epoch: number): Promise<void> {
    this.#epoch = epoch;
    for (const d of this.#duties) {
      if (this.#epoch !== epoch) return;
      this.#started.push(d);
      try {
        await d.start(epoch);
      } catch (e) {
        this.logger.warn({ err: e, duty: d.name, epoch }, 'a leader duty failed to start; it retries on its own schedule');
      }
    }
  }

  /** Stop every started duty, newest first, synchronously. */
  deposed(): void {
    this.#epoch = null;
    for (const d of this.#started.splice(0).reverse()) {
      try { d.stop(); } catch (e) { this.logger.error({ err: e, duty: d.name }, 'a leader duty failed to stop'); }
    }
  }
}
