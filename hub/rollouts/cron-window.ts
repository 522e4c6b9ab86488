/**
 * Maintenance windows as cron expressions: a minute is inside the window when
 * the expression matches it (`* 2-4 * * *` = every minute from 02:00 to 04:59,
 * UTC). node-cron validates the syntax (the CLI's and API's check); the match is
 * evaluated here against the hub's injectable clock, so tests control time and
 * no timer is scheduled per rollout. Fields: [second] minute hour day-of-month
 * month day-of-week, with `*`, lists, ranges and steps; month and weekday names.
 */
import cron from 'node-cron';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface Field { min: number; max: number; names?: string[]; nameBase?: number }
const FIELDS: Field[] = [
  { min: 0, max: 59 }, // minute
  { min: 0, max: 23 }, // hour
  { min: 1, max: 31 }, // day of month
  { min: 1, max: 12, names: MONTHS, nameBase: 1 },
  { min: 0, max: 7, names: DAYS, nameBase: 0 }, // 0 and 7 are Sunday
];

export function validCron(expr: string): boolean {
  try { return cron.validate(expr) && compile(expr) !== null; } catch { return false; }
}

function value(tok: string, f: Field): number {
  const i = f.names?.indexOf(tok.toLowerCase().slice(0, 3)) ?? -1;
  if (i >= 0 && /^[a-z]+$/i.test(tok)) return i + (f.nameBase ?? 0);
  if (!/^[0-9]+$/.test(tok)) throw new Error(`bad value ${tok}`);
  return Number(tok);
}

function field(text: string, f: Field): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`bad step ${stepText}`);
    let lo: number; let hi: number;
    if (range === '*') { lo = f.min; hi = f.max; } else if (range.includes('-')) {
      const [a, b] = range.split('-');
      lo = value(a, f); hi = value(b, f);
    } else { lo = value(range, f); hi = stepText === undefined ? lo : f.max; }
    if (lo < f.min || hi > f.max || lo > hi) throw new Error(`out of range ${part}`);
    for (let x = lo; x <= hi; x += step) out.add(x);
  }
  return out;
}

type Compiled = Set<number>[];

function compile(expr: string): Compiled | null {
  const parts = expr.trim().split(/\s+/);
  if (parts.length === 6) parts.shift(); // seconds: a window is judged per minute
  if (parts.length !== 5) return null;
  const c = parts.map((p, i) => field(p, FIELDS[i]));
  if (c[4].has(7)) c[4].add(0);
  return c;
}

const cache = new Map<string, Compiled | null>();

/** Is the minute holding `atMs` inside the window? (UTC; null window = always.) */
export function insideWindow(expr: string | null, atMs: number): boolean {
  if (expr === null) return true;
  let c = cache.get(expr);
  if (c === undefined) { try { c = compile(expr); } catch { c = null; } cache.set(expr, c); }
  if (!c) return false;
  const d = new Date(atMs);
  const [mi, h, dom, mon, dow] = c;
  // Vixie cron: when both day fields are restricted, either may match.
  const domAll = dom.size === 31; const dowAll = dow.size >= 7;
  const dayOk = domAll || dowAll ? dom.has(d.getUTCDate()) && dow.has(d.getUTCDay()) : dom.has(d.getUTCDate()) || dow.has(d.getUTCDay());
  return mi.has(d.getUTCMinutes()) && h.has(d.getUTCHours()) && mon.has(d.getUTCMonth() + 1) && dayOk;
}
