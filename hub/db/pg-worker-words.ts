/**
 * The words of the buffer the PostgreSQL worker thread (hub/db/pg-worker.ts) shares with the hub's
 * thread (hub/db/pg-db.ts), in a module of their own: importing pg-worker.ts would run the worker.
 *
 * ANSWER is raised with each answer; DEAD is set as the worker exits (an uncaught error, process.exit)
 * so the waiting hub thread knows at once; BEAT counts while the worker's event loop turns, so a worker
 * stopped without running any more JS (terminate, a fatal error in the thread) is noticed too.
 */
export const WORD = { ANSWER: 0, DEAD: 1, BEAT: 2 } as const;
export const WORDS = 3;
/** How often BEAT moves. */
export const BEAT_MS = 250;
/**
 * Silence of BEAT after which the hub thread declares the worker dead: many beats, so a worker that is
 * merely slow on a loaded machine is not replaced, yet far below a statement's wait (40 s by default).
 */
export const DEAD_AFTER_MS = 10_000;
