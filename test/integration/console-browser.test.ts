/**
 * The web console in headless Chromium against the real system: hub/hub.ts with
 * authentication on, three compiled agents enrolled with their own credentials
 * (test/helpers/real-fleet.ts), bundles with a signed reference profile, a
 * staged rollout, and telemetry from real predictions.
 *
 * An operator signs in with a token, sees each page with real data, pauses and
 * then rolls back the rollout through the console, and the device follows back
 * to its previous version. An auditor's token sees no action buttons, and a
 * POST forced from its page is refused by the API. No page logs a console
 * error or breaks the Content-Security-Policy. A screenshot of each page is
 * saved (FLEETCAST_CONSOLE_SCREENSHOTS names the folder, else a temp folder;
 * docs/console/ holds the ones README shows).
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { CONSOLE_CSP } from '../../hub/console/routes.js';
import { killAll } from '../helpers/agent-process.js';
import { http } from '../helpers/agent-fixture.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { needProgram } from '../helpers/programs.js';
import { RealFleet, status, type RealAgent } from '../helpers/real-fleet.js';
import { referenceRows } from '../helpers/telemetry-fleet.js';

const CHROMIUM = needProgram('chromium', 'chromium');
const FEATURES = ['x[0]', 'x[1]', 'x[2]', 'x[3]'];
const IDS = ['dev-a', 'dev-b', 'dev-c'];

let fleet: RealFleet;
let browser: Browser;
const agents: RealAgent[] = [];
const ids = { v1: '', v2: '', rollout: '' };
const tokens = { operator: '', auditor: '' };
let shots: string;
const problems: string[] = [];

async function publish(version: number): Promise<string> {
  const b = await buildBundle({
    model: buildMlp({ features: 4, seed: version }), name: 'churn', version, releaseKeys: [fleet.keys.keys.release],
    out: join(tempDir('fleetcast-console-bundle-'), `churn-${version}.fcb`), reference: referenceRows(FEATURES, 2000, 3),
  });
  const r = await api<{ bundleId: string }>(fleet.hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)), fleet.token);
  if (r.status !== 201) throw new Error(`publish v${version}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.bundleId;
}

async function predictions(a: RealAgent, n: number): Promise<void> {
  const port = await a.port();
  for (let i = 0; i < n; i++) {
    const x = [0, 1, 2, 3].map((k) => Math.sin(i * 7 + k) * 2 + 0.5);
    const r = await http(port, 'POST', '/v1/predict', JSON.stringify({ inputs: { x: [x] } }));
    if (r.status !== 200) throw new Error(`predict on ${a.deviceId}: ${r.status} ${JSON.stringify(r.json)}`);
  }
}

async function token(role: string, label: string): Promise<string> {
  const r = await api<{ token: string }>(fleet.hub, 'POST', '/v1/tokens', { role, label }, fleet.token);
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  return r.body.token;
}

/** A page signed in with `tok`, recording console errors, page errors and CSP violations into `problems`. */
async function signedIn(tok: string): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${fleet.hub.httpUrl}/`);
  await page.getByLabel('API token').fill(tok);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#role').waitFor();
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  const file = join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  expect(readFileSync(file).subarray(1, 4).toString()).toBe('PNG');
  expect(statSync(file).size).toBeGreaterThan(5_000);
}

beforeAll(async () => {
  if (!CHROMIUM) return;
  shots = process.env.FLEETCAST_CONSOLE_SCREENSHOTS ?? tempDir('fleetcast-console-shots-');
  fleet = await RealFleet.start({ rolloutTickMs: 100 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
  const telemetry = JSON.stringify({ windowMs: 1000, sampleRate: 1 });
  IDS.forEach((id, i) => agents.push(fleet.spawn(id, tempDir(`fleetcast-console-${id}-`), { FLEETCAST_AGENT_HEARTBEAT_MS: '1000', FLEETCAST_AGENT_TELEMETRY: telemetry, FLEETCAST_AGENT_CAPABILITIES: JSON.stringify({ tags: i === 0 ? ['canary', 'eu'] : ['eu'] }) })));
  await waitFor(() => fleet.hub.store.countDevices() === IDS.length, 'every agent to report', 60_000);
  ids.v1 = await publish(1);
  const d = await api(fleet.hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: IDS }, fleet.token);
  expect(d.status).toBe(200);
  await Promise.all(IDS.map((id) => fleet.registrySays(id, ids.v1, 'committed')));
  ids.v2 = await publish(2);
  // A canary of one tagged device that waits for an operator (no automatic promotion, a long soak).
  const spec = { rings: [{ name: 'canary', tags: ['canary'] }, { name: 'rest', percent: 100 }], gates: { minRequests: 20, soak: '10m' } };
  const r = await api<{ id: string }>(fleet.hub, 'POST', '/v1/rollouts', { name: 'churn', version: 2, spec, autoPromote: false }, fleet.token);
  expect(r.status).toBe(201);
  ids.rollout = r.body.id;
  await fleet.registrySays('dev-a', ids.v2, 'committed');
  await Promise.all(agents.map((a) => predictions(a, 40)));
  // Telemetry windows of 1 s: the drift report has the canary's field data once its reports are in.
  await waitFor(async () => (await api<{ rows: unknown[] }>(fleet.hub, 'GET', '/v1/drift/churn/2', undefined, fleet.token)).body.rows?.length > 0, 'telemetry of churn@2', 30_000, 250);
  tokens.operator = await token('operator', 'alice');
  tokens.auditor = await token('auditor', 'audrey');
}, 150_000);

afterAll(async () => {
  await browser?.close();
  killAll();
  await fleet?.close();
  cleanupTempDirs();
});

describe.skipIf(!CHROMIUM)('web console', () => {
  it('is served by the hub with a strict CSP and no inline script', async () => {
    const res = await fetch(`${fleet.hub.httpUrl}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toContain("script-src 'self'");
    expect(CONSOLE_CSP).not.toMatch(/unsafe-inline|unsafe-eval/);
    const html = await res.text();
    // Every script has a src on this origin: nothing inline for the CSP to have to allow.
    expect(html.match(/<script[^>]*>/g)).toEqual(['<script type="module" src="/console/app.js">']);
    expect(html).not.toMatch(/ on[a-z]+=|style=/);
    const js = await fetch(`${fleet.hub.httpUrl}/console/app.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await fetch(`${fleet.hub.httpUrl}/console/..%2Fhub.db`)).status).toBe(400);
    // The page is code only; the data it shows needs a token, and the console asks the API who a token is.
    expect((await fetch(`${fleet.hub.httpUrl}/v1/devices`)).status).toBe(401);
    const who = await api<Record<string, unknown>>(fleet.hub, 'GET', '/v1/whoami', undefined, tokens.operator);
    expect(who.body).toEqual({ id: expect.stringMatching(/^tok-[0-9a-f]{12}$/), role: 'operator', label: 'alice', expiresAt: null, revoked: false });
  });

  it('refuses a wrong token with the API\'s coded error, and signing out forgets the token', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const own: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') own.push(m.text()); });
    page.on('pageerror', (e) => own.push(e.message));
    await page.goto(`${fleet.hub.httpUrl}/`);
    await page.getByLabel('API token').fill('fct_not-a-token');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#sign-in-error').innerText(), { timeout: 20_000 }).toMatch(/^HUB_ERR_UNAUTHENTICATED: /);
    expect(await page.locator('#nav').isHidden()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.getByLabel('API token').fill(tokens.auditor);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#role').waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('fleetcast.token'))).toBe(tokens.auditor);
    await page.getByRole('button', { name: 'Sign out' }).click();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await page.getByLabel('API token').isVisible()).toBe(true);
    // The one console error is Chromium's own line for the refused whoami (401).
    expect(own).toEqual([expect.stringContaining('status of 401')]);
    await ctx.close();
  });

  it('shows data that looks like markup as text (a token label), never as HTML', async () => {
    const label = '<img src="/x" id="injected"><b>bob</b>';
    const page = await signedIn(await token('auditor', label));
    expect(await page.locator('#who').innerText()).toBe(`${label} · auditor`);
    expect(await page.locator('#injected, #who b').count()).toBe(0);
    await page.context().close();
  });

  it('an operator sees the fleet, a device, bundles, drift and the audit log with real data', async () => {
    const page = await signedIn(tokens.operator);
    expect(await page.locator('#role').innerText()).toBe('operator');
    // Keyboard: Tab reaches the navigation links, the focused one has a visible outline, Enter follows it.
    let focused = '';
    for (let i = 0; i < 10 && focused !== 'Rollouts'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement?.textContent ?? '');
    }
    expect(focused).toBe('Rollouts');
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).not.toBe('none');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => location.hash), { timeout: 20_000 }).toBe('#/rollouts');
    await page.getByRole('link', { name: 'Fleet', exact: true }).click();
    await expect.poll(() => page.locator('#online-count').innerText(), { timeout: 20_000 }).toBe('3 devices: 3 online, 0 offline');
    await expect.poll(() => page.locator('#by-version tbody tr').allInnerTexts(), { timeout: 20_000 }).toEqual(expect.arrayContaining(['churn@1\t2', 'churn@2\t1']));
    expect(await page.locator('#device-table tbody tr').count()).toBe(3);
    await shot(page, 'fleet');
    // Server-side filters: a tag, then part of an id.
    await page.getByLabel('Tag').fill('canary');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.locator('#device-table tbody tr').allInnerTexts(), { timeout: 20_000 }).toEqual([expect.stringMatching(/^dev-a\tonline\tchurn@2\tcanary\tcommitted\tcanary, eu/)]);
    await page.getByLabel('Tag').fill('');
    await page.getByLabel('Device id').fill('-c');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.locator('#page-info').innerText(), { timeout: 20_000 }).toBe('Devices 1–1 of 1');

    await page.getByRole('link', { name: 'dev-c' }).click();
    await expect.poll(() => page.locator('#device-facts').innerText(), { timeout: 20_000 }).toContain('churn@1');
    expect(await page.locator('#device-events').innerText()).toContain('installed');
    // Health rides on the state reports (heartbeats every second here): the page shows the predictions made above.
    await expect.poll(async () => Number(await page.locator('#device-health tbody td').first().innerText({ timeout: 1000 }).catch(() => '0')), { timeout: 20_000 }).toBeGreaterThanOrEqual(40);
    expect(await page.locator('#device-facts').innerText()).toContain('Debug sampling\toff');
    await shot(page, 'device');

    await page.getByRole('link', { name: 'Bundles' }).click();
    await expect.poll(() => page.locator('#bundle-table tbody tr').count(), { timeout: 20_000 }).toBe(2);
    await shot(page, 'bundles');
    await page.getByRole('link', { name: 'churn@2' }).click();
    await expect.poll(() => page.locator('#signers').innerText(), { timeout: 20_000 }).toContain('(release)');
    expect(await page.locator('#deployed').innerText()).toBe('1 device runs it');
    expect(await page.locator('#bundle-facts').innerText()).toContain(`${ids.rollout} (running, canary)`);
    expect(await page.locator('#reference tbody tr').count()).toBe(4);
    await shot(page, 'bundle');

    await page.getByRole('link', { name: 'Drift' }).click();
    const cell = page.locator('#heat-table td.cell button').first();
    await cell.waitFor({ timeout: 20_000 });
    await cell.focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#histogram rect.ref-bar').count(), { timeout: 20_000 }).toBeGreaterThan(2);
    expect(await page.locator('#histogram rect.cur-bar').count()).toBe(await page.locator('#histogram rect.ref-bar').count());
    expect(await page.locator('#drift-detail').innerText()).toMatch(/n \d+ against reference n 2000 · verdict/);
    await shot(page, 'drift');

    await page.getByRole('link', { name: 'Audit' }).click();
    const verify = page.locator('#entry-table button').first();
    await verify.waitFor({ timeout: 20_000 });
    const index = (await verify.getAttribute('id'))!.replace('verify-', '');
    await verify.click();
    await expect.poll(() => page.locator(`#proof-${index}`).innerText(), { timeout: 20_000 }).toMatch(/^included: \d+ hashes lead to the root of checkpoint \d+$/);
    await shot(page, 'audit');
    await page.context().close();
  });

  it('an operator pauses, then rolls back the rollout through the console, and the device follows', async () => {
    const page = await signedIn(tokens.operator);
    await page.getByRole('link', { name: 'Rollouts' }).click();
    await page.getByRole('link', { name: ids.rollout }).click();
    await expect.poll(() => page.locator('#rollout-state').innerText(), { timeout: 20_000 }).toBe('running');
    const gates = await page.locator('#gates-0 tbody tr').allInnerTexts();
    expect(gates.find((g) => g.startsWith('Requests'))).toMatch(/^Requests\t\d+\/20\t≥ 20\t/);
    expect(gates.find((g) => g.startsWith('Soak'))).toContain('of 10 min');
    await shot(page, 'rollout');

    // Pause: the confirmation can be cancelled, and nothing happens then.
    await page.locator('#action-pause').click();
    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => page.locator('#action-result').innerText(), { timeout: 20_000 }).toBe('pause cancelled');
    expect((await api<{ state: string }>(fleet.hub, 'GET', `/v1/rollouts/${ids.rollout}`, undefined, fleet.token)).body.state).toBe('running');
    await page.locator('#action-pause').click();
    await page.getByLabel('Reason (recorded with the decision)').fill('checking canary latency');
    await page.locator('#confirm-ok').click();
    await expect.poll(() => page.locator('#rollout-state').innerText(), { timeout: 20_000 }).toBe('paused');

    await page.locator('#action-rollback').click();
    await page.locator('#confirm-ok').click();
    await expect.poll(() => page.locator('#rollout-state').innerText(), { timeout: 30_000 }).toMatch(/^rolling-back|rolled-back$/);
    // The canary device goes back to the version it ran before.
    await fleet.registrySays('dev-a', ids.v1, 'committed');
    // And the agent itself serves v1 again (its own status API, not the hub's record of it).
    const port = await agents[0].port();
    await waitFor(async () => (await status(port)).active?.bundleId === ids.v1, 'dev-a to serve churn@1 again', 30_000, 100);
    const h = await api<{ decisions: { kind: string; actor: string; reason: string }[] }>(fleet.hub, 'GET', `/v1/rollouts/${ids.rollout}/history`, undefined, fleet.token);
    expect(h.body.decisions.map((d) => d.kind).slice(0, 3)).toEqual(['start', 'pause', 'rollback']);
    expect(h.body.decisions[1]).toMatchObject({ reason: 'checking canary latency', actor: expect.stringMatching(/^operator:tok-[0-9a-f]{12} \(alice\)$/) });
    await expect.poll(() => page.locator('#timeline').innerText(), { timeout: 20_000 }).toContain('rollback');
    expect(await page.locator('#timeline').innerText()).toContain('(alice)');
    await shot(page, 'rollout-rolled-back');
    await page.context().close();
  });

  it('an auditor sees no action buttons, and a POST forced from the page is refused by the API', async () => {
    const page = await signedIn(tokens.auditor);
    expect(await page.locator('#role').innerText()).toBe('auditor');
    // Live: a rollout started elsewhere (the API, as the CLI does) appears on the open page without a reload.
    await page.getByRole('link', { name: 'Rollouts' }).click();
    await expect.poll(() => page.locator('#rollout-table tbody tr').count(), { timeout: 20_000 }).toBe(1);
    await page.evaluate(() => { (window as unknown as { notReloaded: boolean }).notReloaded = true; });
    await publish(3);
    const spec = { rings: [{ name: 'canary', tags: ['canary'] }, { name: 'rest', percent: 100 }], gates: { soak: '10m' } };
    const v3 = await api<{ id: string }>(fleet.hub, 'POST', '/v1/rollouts', { name: 'churn', version: 3, spec, autoPromote: false }, fleet.token);
    expect(v3.status).toBe(201);
    await expect.poll(() => page.locator('#rollout-table tbody tr').count(), { timeout: 20_000 }).toBe(2);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    // The running rollout, which an operator could pause, promote, abort or roll back: the auditor gets no button.
    await page.getByRole('link', { name: v3.body.id }).click();
    await expect.poll(() => page.locator('#rollout-state').innerText(), { timeout: 20_000 }).toBe('running');
    await expect.poll(() => page.locator('#timeline li').count(), { timeout: 20_000 }).toBe(1);
    expect(await page.locator('#rollout-actions button').count()).toBe(0);
    expect(await page.getByRole('button', { name: /pause|resume|promote|abort|roll ?back/i }).count()).toBe(0);
    const before = problems.length;
    const forced = await page.evaluate(async (id) => {
      const r = await fetch(`/v1/rollouts/${id}/pause`, { method: 'POST', headers: { authorization: `Bearer ${sessionStorage.getItem('fleetcast.token')}`, 'content-type': 'application/json' }, body: '{}' });
      return { status: r.status, body: await r.json() };
    }, v3.body.id);
    // Chromium logs the refused request itself as a console error: that one is this test's own doing.
    problems.push(...problems.splice(before).filter((p) => !p.includes('status of 403')));
    expect(forced.status).toBe(403);
    expect(forced.body.error.code).toBe('HUB_ERR_FORBIDDEN');
    expect((await api<{ state: string }>(fleet.hub, 'GET', `/v1/rollouts/${v3.body.id}`, undefined, fleet.token)).body.state).toBe('running');
    await shot(page, 'rollout-auditor');
    await page.context().close();
  });

  it('logged no console error, page error or CSP violation on any page', () => {
    expect(problems).toEqual([]);
  });
});
