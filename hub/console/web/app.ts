/**
 * The console's entry: sign-in, the hash router, and live updates.
 *
 * Live updates are polling, not server-sent events: each page re-reads what it
 * shows every few seconds through the same authenticated API, so there is no
 * second, long-lived channel to authenticate and bound per client, and a hub
 * behind a plain HTTP proxy needs nothing special. Polling pauses while the tab
 * is hidden or a confirmation is open, and a page that fails keeps its last
 * figures with the error in the status line.
 */
import { api, ApiError, token, type Who } from './api.js';
import { fill, h } from './dom.js';
import { auditPage } from './audit.js';
import { bundlePage, bundlesPage } from './bundles.js';
import { devicePage, fleetPage } from './fleet.js';
import { driftPage } from './drift.js';
import { rolloutPage, rolloutsPage } from './rollouts.js';

export interface Ctx {
  who: Who;
  /** Ask the operator to confirm; resolves to the reason typed (possibly empty), or null when cancelled. */
  confirm(text: string, ok: string): Promise<string | null>;
  /** Set the status line. */
  say(text: string, error?: boolean): void;
}

/** A page mounts its controls once and returns how to re-read its data (called now and on every poll). */
export type Page = (root: HTMLElement, ctx: Ctx, args: string[]) => (() => Promise<void>) | Promise<() => Promise<void>>;

const ROUTES: Record<string, Page> = {
  fleet: fleetPage, devices: devicePage, rollouts: rolloutsPage, rollout: rolloutPage, drift: driftPage, bundles: bundlesPage, bundle: bundlePage, audit: auditPage,
};
const NAV_OF: Record<string, string> = { devices: 'fleet', rollout: 'rollouts', bundle: 'bundles' };
export const POLL_MS = 3000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function say(text: string, error = false): void {
  const s = $('status');
  s.textContent = text;
  s.className = error ? 'error' : '';
}

function confirmDialog(text: string, ok: string): Promise<string | null> {
  const d = $<HTMLDialogElement>('confirm');
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  const reason = $<HTMLInputElement>('confirm-reason');
  reason.value = '';
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok' ? reason.value.trim() : null), { once: true });
    d.showModal();
  });
}

let generation = 0;
let timer: number | undefined;

async function show(who: Who): Promise<void> {
  const gen = ++generation;
  if (timer !== undefined) clearTimeout(timer);
  const [name, ...args] = (location.hash.replace(/^#\/?/, '') || 'fleet').split('/').map(decodeURIComponent);
  const page = ROUTES[name] ?? fleetPage;
  const nav = NAV_OF[name] ?? (ROUTES[name] ? name : 'fleet');
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#/${nav}`) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const main = $('main');
  fill(main);
  const ctx: Ctx = { who, confirm: confirmDialog, say };
  let update: () => Promise<void>;
  try {
    update = await page(main, ctx, args);
  } catch (e) { report(e); return; }
  const tick = async () => {
    if (gen !== generation) return;
    const busy = document.hidden || $<HTMLDialogElement>('confirm').open;
    if (!busy) {
      try { await update(); say(`Updated ${new Date().toLocaleTimeString()}`); } catch (e) { report(e); }
    }
    if (gen === generation) timer = window.setTimeout(() => void tick(), POLL_MS);
  };
  await tick();
}

function report(e: unknown): void {
  if (e instanceof ApiError && e.status === 401) { signOut(`${e.code}: ${e.message}`); return; }
  say(e instanceof ApiError ? `${e.code}: ${e.message}` : String((e as Error)?.message ?? e), true);
}

function signOut(why = ''): void {
  token.clear();
  generation++;
  if (timer !== undefined) clearTimeout(timer);
  fill($('main'));
  $('nav').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = why;
  $<HTMLInputElement>('token').focus();
}

async function signIn(): Promise<void> {
  let who: Who;
  try {
    who = await api.get<Who>('/v1/whoami');
  } catch (e) {
    signOut(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
    return;
  }
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('sign-out').hidden = false;
  fill($('who'), `${who.label ?? who.id} · `, h('strong', { id: 'role' }, who.role));
  window.onhashchange = () => { void show(who); };
  await show(who);
  // Keyboard users land on the navigation (the sign-in button they pressed is gone).
  document.querySelector<HTMLElement>('#nav a[aria-current="page"]')?.focus();
}

function boot(): void {
  $('sign-in').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $<HTMLInputElement>('token').value.trim();
    $<HTMLInputElement>('token').value = '';
    if (!t) return;
    token.set(t);
    void signIn();
  });
  $('sign-out').addEventListener('click', () => signOut());
  if (token.get()) void signIn(); else signOut();
}

boot();
