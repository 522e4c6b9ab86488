/**
 * `fleetcast rollout …`: start, status, watch, history, pause, resume, promote,
 * abort, rollback. Every action goes through the hub's API (with
 * FLEETCAST_TOKEN); the rollout file (--rings) is JSON or YAML, or an inline list
 * `canary:1,early:10,broad:100`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { ROLLOUT_ACTION_NAMES, ROLLOUT_ACTIONS, type RolloutActionName } from '@fleetcast/hub/rollouts/actions.js';
import type { DecisionRecord } from '@fleetcast/hub/rollouts/decisions.js';
import type { RolloutStatus } from '@fleetcast/hub/rollouts/rollouts.js';
import { parseRolloutText } from '@fleetcast/hub/rollouts/spec.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { renderHistory, renderStatus, renderSummaryLines, TERMINAL } from '../rollout-view.js';

/** One usage line per row of the hub's action table: what it does, from which states, the role it needs. */
function actionLines(): string {
  const w = Math.max(...ROLLOUT_ACTION_NAMES.map((a) => a.length));
  return ROLLOUT_ACTION_NAMES.map((a) => {
    const r = ROLLOUT_ACTIONS[a];
    return `         ${a.padEnd(w)}  ${r.summary} (from ${r.from.join(', ')}${r.to ? ` → ${r.to}` : ''}; ${r.access})`;
  }).join('\n');
}

export const USAGE = `fleetcast rollout start NAME@VERSION [--rings FILE|canary:1,early:10,broad:100] [--auto-promote] [--window CRON] [--rate N/min] [--supersede] [--reason TEXT] [--allow-unknown]
       fleetcast rollout status [ID] [--json]     (no ID: one line per rollout)
       fleetcast rollout watch [ID] [--interval MS]
       fleetcast rollout history ID [--json]
       fleetcast rollout ${ROLLOUT_ACTION_NAMES.join('|')} ID [--reason TEXT]
${actionLines()}
  common: --hub URL (or FLEETCAST_HUB)  token: FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN (never a flag)`;

const bad = (problem: string) => new FleetcastError('PROTO_ERR_INVALID_OPTION', `${problem}\nusage: ${USAGE}`, 2);

/** --rings: a JSON rollout file, or an inline ring list. */
export function ringsArg(v: string): unknown {
  if (existsSync(v)) return parseRolloutText(readFileSync(v, 'utf8'), v);
  if (/^[A-Za-z0-9][A-Za-z0-9._-]*:[0-9.]+(,[A-Za-z0-9][A-Za-z0-9._-]*:[0-9.]+)*$/.test(v)) {
    return { rings: v.split(',').map((p) => { const [name, percent] = p.split(':'); return { name, percent: Number(percent) }; }) };
  }
  throw bad(`--rings ${JSON.stringify(v)} is neither a file nor a list like canary:1,early:10,broad:100`);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, {
    hub: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' }, rings: { type: 'string' }, 'auto-promote': { type: 'boolean' },
    window: { type: 'string' }, rate: { type: 'string' }, supersede: { type: 'boolean' }, 'allow-unknown': { type: 'boolean' }, reason: { type: 'string' }, interval: { type: 'string' },
  }, USAGE);
  const [sub, arg, ...extra] = positionals;
  if (!sub) throw bad('give a subcommand');
  if (extra.length) throw bad(`unexpected ${JSON.stringify(extra[0])}`);
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  const out = (s: string) => process.stdout.write(s);

  // The hub's action table names the actions: every row is a subcommand.
  if ((ROLLOUT_ACTION_NAMES as readonly string[]).includes(sub)) {
    const action = sub as RolloutActionName;
    if (!arg) throw bad(`${action} needs a rollout ID`);
    const s = await client.rolloutAction<RolloutStatus>(arg, action, values.reason);
    out(values.json ? JSON.stringify(s) + '\n' : renderStatus(s));
    return 0;
  }
  switch (sub) {
    case 'start': {
      const m = /^([a-z0-9][a-z0-9._-]{0,63})@([1-9][0-9]{0,15})$/.exec(arg ?? '');
      if (!m) throw bad(`${JSON.stringify(arg ?? '')} is not NAME@VERSION (e.g. churn@3)`);
      const body: Record<string, unknown> = { name: m[1], version: Number(m[2]) };
      if (values.rings !== undefined) body.spec = ringsArg(values.rings);
      if (values['auto-promote']) body.autoPromote = true;
      if (values.window !== undefined) body.window = values.window;
      if (values.rate !== undefined) body.rate = values.rate;
      if (values.supersede) body.supersede = true;
      if (values['allow-unknown']) body.allowUnknown = true;
      if (values.reason !== undefined) body.reason = values.reason;
      const s = await client.startRollout<RolloutStatus>(body);
      out(values.json ? JSON.stringify(s) + '\n' : `started rollout ${s.id}\n${renderStatus(s)}`);
      return 0;
    }
    case 'status': {
      if (arg) { const s = await client.rollout<RolloutStatus>(arg); out(values.json ? JSON.stringify(s) + '\n' : renderStatus(s)); return 0; }
      const { rollouts } = await client.rollouts<{ rollouts: RolloutStatus[] }>();
      if (values.json) { out(JSON.stringify(rollouts) + '\n'); return 0; }
      out(rollouts.length ? renderSummaryLines(rollouts) : 'no rollouts yet\n');
      return 0;
    }
    case 'history': {
      if (!arg) throw bad('history needs a rollout ID');
      const h = await client.rolloutHistory<{ decisions: DecisionRecord[] }>(arg);
      out(values.json ? JSON.stringify(h.decisions) + '\n' : renderHistory(h.decisions));
      return 0;
    }
    case 'watch': return watch(client, arg, Number(values.interval ?? 1000));
    default: throw bad(`unknown subcommand ${JSON.stringify(sub)}`);
  }
}

/**
 * Live view: on a TTY the block is redrawn in place (cursor up + clear); on a
 * pipe only changes are printed, one block each. Ends when the rollout is
 * finished (exit 0 if completed, 1 otherwise).
 */
async function watch(client: ReturnType<typeof hubUrlFrom>, id: string | undefined, everyMs: number): Promise<number> {
  if (!Number.isFinite(everyMs) || everyMs < 50) throw bad('--interval must be a number of milliseconds ≥ 50');
  if (!id) {
    const { rollouts } = await client.rollouts<{ rollouts: RolloutStatus[] }>();
    const live = rollouts.find((r) => r.state === 'running' || r.state === 'paused' || r.state === 'rolling-back');
    if (!live) throw bad('no running rollout; give an ID');
    id = live.id;
  }
  const tty = process.stdout.isTTY === true;
  let drawn = 0;
  let last = '';
  for (;;) {
    const s = await client.rollout<RolloutStatus>(id);
    const text = renderStatus(s);
    if (tty) {
      if (drawn) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
      process.stdout.write(text);
      drawn = text.split('\n').length - 1;
    } else if (text !== last) {
      process.stdout.write(text);
    }
    last = text;
    if (TERMINAL.has(s.state)) return s.state === 'completed' ? 0 : 1;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
