/**
 * Fencing: the second half of leader election (hub/cluster/leader.ts). A hub
 * that was deposed may not know it yet (a long GC pause, a stalled event loop),
 * so every single-writer write (assignment counters, transparency-log appends,
 * checkpoint signing, rollout state changes) checks, inside its own
 * transaction, that the epoch it leads under is still the current one.
 *
 * The check takes a SHARE lock on the leader row (`FOR SHARE`), and that is
 * what makes it hold until COMMIT: a takeover is an UPDATE of that row, so it
 * waits until every fenced transaction of the old epoch has committed or rolled
 * back, and the new leader reads their effects once it is elected. A plain read
 * of the epoch (no lock) would let a takeover commit between the check and the
 * old leader's commit, and the new leader could read a counter the old one was
 * about to raise: a counter issued twice.
 */
import type pg from 'pg';
import { hubError } from '../errors.js';

/** Portable (no parameters): works through the store's synchronous Db bridge and a pg client alike. */
export const FENCE_SQL = 'SELECT epoch::text AS epoch, holder FROM hub_leader WHERE id = 1 FOR SHARE';

/** Throws HUB_ERR_NOT_LEADER unless `row` (what FENCE_SQL returned) is the epoch `mine`. */
export function checkFence(row: { epoch: string | number } | undefined, mine: number | null, what: string): void {
  const current = row === undefined ? null : Number(row.epoch);
  if (mine === null || current !== mine) {
    throw hubError('HUB_ERR_NOT_LEADER', `${what} refused: this hub ${mine === null ? 'does not lead' : `leads under epoch ${mine}`}, the current epoch is ${current ?? 'none'}; nothing was written`, { epoch: mine, current });
  }
}

/**
 * What a single-writer write calls first inside its transaction (HubStore.fence, the log's, the rollout store's):
 * unset for a hub alone; for a hub of a cluster, assertFence with the epoch it leads under.
 */
export type Fence = (db: { prepare(sql: string): { get(...args: unknown[]): unknown } }, what: string) => void;

/** For a synchronous store (better-sqlite3-shaped Db): call first inside the transaction that writes. */
export function assertFence(db: { prepare(sql: string): { get(...args: unknown[]): unknown } }, mine: number | null, what: string): void {
  checkFence(db.prepare(FENCE_SQL).get() as { epoch: string } | undefined, mine, what);
}

/**
 * Run `write` in one transaction on `client` after the fence check: it commits only if this hub
 * still held `epoch` while it ran; otherwise nothing of it is kept (HUB_ERR_NOT_LEADER).
 */
export async function fencedTransaction<T>(client: pg.ClientBase, epoch: number | null, what: string, write: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const r = await client.query<{ epoch: string }>(FENCE_SQL);
    checkFence(r.rows[0], epoch, what);
    const out = await write(client);
    await client.query('COMMIT');
    return out;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}
