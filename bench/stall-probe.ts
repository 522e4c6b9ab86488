/**
 * A fine stall probe for the event loop it runs on: a 1 ms timer chain, each turn's lateness past its
 * 1 ms is a stall of that loop. Unlike monitorEventLoopDelay, whose histogram cannot be split after the
 * fact, each stall over `minMs` is kept with its time (nowMs clock) so that it can be sorted into the
 * benchmark's periods. Its own cost (a timer turn per ms) is the same in every period.
 */
import { nowMs } from './lib.js';

export interface Stall { at: number; ms: number }

export function startStallProbe(minMs = 1): { stop(): Stall[] } {
  const stalls: Stall[] = [];
  let last = nowMs();
  let timer: NodeJS.Timeout | null = null;
  const turn = () => {
    const now = nowMs();
    const late = now - last - 1;
    if (late > minMs) stalls.push({ at: last + 1, ms: late });
    last = now;
    timer = setTimeout(turn, 1);
  };
  timer = setTimeout(turn, 1);
  return { stop() { if (timer) clearTimeout(timer); return stalls; } };
}
