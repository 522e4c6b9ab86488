/**
 * Give the event loop back for one turn: resolves from the check phase, after
 * the I/O callbacks that were already waiting (incoming predict requests) have
 * run. The install path awaits it between its blocking steps (session creation,
 * each smoke inference, the release of the old session), so that no request
 * waits behind two of them in a row: a promise chain of steps that each finish
 * at once would otherwise run as one long task, and requests that arrived
 * meanwhile would wait for all of it.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
