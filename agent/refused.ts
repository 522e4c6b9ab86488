/**
 * The per-device set of bundles that failed for reasons that do not go away
 * on a retry (the bytes are wrong, the model is wrong here, or it crashed the
 * agent: the codes of failure class `permanent`, install-failures.ts): such a
 * bundle is never fetched again, so a hub that keeps re-signing the assignment cannot make the device download and fail in a loop.
 */
import type { AgentState } from './state-store.js';

/** Bound on the set (the state schema allows 256): the oldest entry goes first. */
const MAX_REFUSED = 200;

export function refuse(s: AgentState, bundleId: string, code: string): void {
  const r = { ...s.refused };
  delete r[bundleId];
  r[bundleId] = code;
  const keys = Object.keys(r);
  for (let i = 0; i < keys.length - MAX_REFUSED; i++) delete r[keys[i]];
  s.refused = r;
}
