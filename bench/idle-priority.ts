/**
 * Stand-ins for other machines (the hub process, the operator's deploy thread) run at SCHED_IDLE in the
 * agent benchmarks: they get a core only when the device's own threads leave one idle. Nice 15 was not
 * enough: a niced thread that wakes still competes for a core by its (small) weight and, woken with
 * sleeper credit, preempts the agent's threads; at the start of every swap the hub's main thread (signing,
 * publishing the assignment) and the deploy thread (its HTTP call) took ~5 ms of CPU in the first 15 ms
 * while the agent's main thread waited for a core. SCHED_IDLE needs no privilege (a thread may always
 * lower its own policy); where chrt or the policy is missing (not Linux) they fall back to nice 15.
 */
import { spawnSync } from 'node:child_process';
import { setPriority } from 'node:os';

let chrt: boolean | undefined;
/** Whether util-linux's chrt runs here (checked once); FLEETCAST_BENCH_STAND_INS=nice keeps nice 15, to compare. */
function haveChrt(): boolean {
  chrt ??= process.env.FLEETCAST_BENCH_STAND_INS !== 'nice' && spawnSync('chrt', ['--version'], { stdio: 'ignore' }).status === 0;
  return chrt;
}

/**
 * The command and arguments that start `argv` at SCHED_IDLE (through `chrt -i 0`, so that every thread the
 * process starts inherits the policy from its first instruction), and whether it did.
 */
export function idleCommand(argv: [string, ...string[]]): { command: string; args: string[]; idle: boolean } {
  return haveChrt() ? { command: 'chrt', args: ['-i', '0', ...argv], idle: true } : { command: argv[0], args: argv.slice(1), idle: false };
}

/** Niceness 15 for a process started without chrt: the fallback of idleCommand. */
export function niceFallback(pid: number): void {
  try { setPriority(pid, 15); } catch { /* not permitted: measure as is */ }
}

/** Moves one thread (Linux thread id) to SCHED_IDLE, or nice 15 where that fails. Returns the policy it got. */
export function makeThreadIdle(tid: number): 'idle' | 'nice' | 'none' {
  if (haveChrt() && spawnSync('chrt', ['-i', '-p', '0', String(tid)], { stdio: 'ignore' }).status === 0) return 'idle';
  try { setPriority(tid, 15); return 'nice'; } catch { return 'none'; }
}
