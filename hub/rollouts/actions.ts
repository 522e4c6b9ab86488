/**
 * The operator's rollout actions as one table (DESIGN "State machines and
 * permission rules are data"): the states each action is allowed from, the
 * state it leaves, the role it needs, and its handler. rollouts.ts runs it
 * (check the state, run the handler, set the state, in one transaction);
 * routes.ts registers one route per row with the row's role; the CLI's usage
 * lists the rows. An action from any other state is HUB_ERR_ROLLOUT_STATE,
 * naming the states it is allowed from.
 *
 * | action   | allowed from                                  | leaves               | role     |
 * |----------|-----------------------------------------------|----------------------|----------|
 * | pause    | running                                       | paused               | operator |
 * | resume   | paused                                        | running              | operator |
 * | promote  | running, paused (not in the last ring)        | (unchanged; next ring) | operator |
 * | abort    | running, paused, halted                       | aborted              | operator |
 * | rollback | running, paused, halted, aborted, completed   | rolling-back         | operator |
 *
 * rolling-back is the engine's cue: it assigns the previous bundle again, then
 * moves the rollout to rolled-back. Only this module's type imports and the
 * error table are loaded, so the CLI can read the table without the hub.
 */
import type { Role } from '../auth/tokens.js';
import { hubError } from '../errors.js';
import type { GateValues } from './gates.js';
import type { RolloutRow, RolloutState } from './rollout-store.js';

export const ROLLOUT_ACTION_NAMES = ['pause', 'resume', 'promote', 'abort', 'rollback'] as const;
export type RolloutActionName = (typeof ROLLOUT_ACTION_NAMES)[number];

/** What a handler may do, inside the action's transaction (rollouts.ts supplies it). */
export interface ActionContext {
  readonly rollout: RolloutRow;
  /** The current ring's name. */
  readonly ring: string;
  /** Record the operator's decision (the action is its kind; the operator's reason wins over `why`). */
  note(why: string): void;
  /** Move to the next ring, recorded as a promote decision. */
  promote(why: string, gates: GateValues | null): void;
}

export interface RolloutAction {
  /** The rollout states the action is allowed from. */
  readonly from: readonly RolloutState[];
  /** The state the action leaves the rollout in; null: the state stays (promote moves the ring). */
  readonly to: RolloutState | null;
  /** The least role that may call it (the route's config.access). */
  readonly access: Role;
  /** One line for the route's summary and the CLI's usage. */
  readonly summary: string;
  readonly handler: (c: ActionContext) => void;
}

export const ROLLOUT_ACTIONS: Readonly<Record<RolloutActionName, RolloutAction>> = Object.freeze({
  pause: {
    from: ['running'], to: 'paused', access: 'operator', summary: 'stop assigning; devices keep what they run',
    handler: (c) => c.note('paused by operator'),
  },
  resume: {
    from: ['paused'], to: 'running', access: 'operator', summary: 'assign again from where it paused',
    handler: (c) => c.note('resumed by operator'),
  },
  promote: {
    from: ['running', 'paused'], to: null, access: 'operator', summary: 'move to the next ring now, whatever the gates say (recorded with them)',
    handler: (c) => {
      const r = c.rollout;
      if (r.ring >= r.plan.rings.length - 1) throw hubError('HUB_ERR_ROLLOUT_STATE', `${c.ring} is the last ring; there is nothing to promote to`);
      const v = (r.gates[c.ring] ?? null) as GateValues | null;
      c.promote(v?.verdict === 'pass' ? 'gates passed; promoted by operator' : `promoted by operator with gates ${v?.verdict ?? 'not judged'}`, v);
    },
  },
  abort: {
    from: ['running', 'paused', 'halted'], to: 'aborted', access: 'operator', summary: 'stop for good; devices keep what they run',
    handler: (c) => c.note('aborted by operator; devices keep what they run'),
  },
  rollback: {
    from: ['running', 'paused', 'halted', 'aborted', 'completed'], to: 'rolling-back', access: 'operator', summary: 'assign the previous bundle again to every device the rollout reached',
    handler: (c) => c.note('rolled back by operator'),
  },
});

/** Refuse an action from a state the table does not allow it from, naming the states it is allowed from. */
export function checkActionAllowed(action: RolloutActionName, state: RolloutState): void {
  const { from } = ROLLOUT_ACTIONS[action];
  if (!from.includes(state)) {
    throw hubError('HUB_ERR_ROLLOUT_STATE', `cannot ${action} a rollout that is ${state}; ${action} is allowed from ${from.join(', ')}`, { action, state, allowed: [...from] });
  }
}
