/**
 * The agent's local status page (GET /) in headless Chromium: active and
 * previous model, install phase, last error codes with their meaning, predict
 * counts and latency; the essentials are there with JavaScript disabled.
 */
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { AGENT_ERRORS } from '../../agent/errors.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { cleanupTempDirs } from '../helpers/env.js';
import { needProgram } from '../helpers/programs.js';

const CHROMIUM = needProgram('chromium', 'chromium');

let fx: Fixture;
let browser: Browser;
let agent: Agent;
let url: string;

beforeAll(async () => {
  if (!CHROMIUM) return;
  fx = await fixture();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
  const v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, name: 'pump-model', mlp: { seed: 97 } }));
  const v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, name: 'pump-model', mlp: { seed: 98 } }));
  agent = fx.newAgent('dev-page', { listen: '127.0.0.1:0' });
  await agent.start();
  await fx.hub.assign('dev-page', v1, 1);
  await waitInstalled(agent, v1.bundleId);
  await fx.hub.assign('dev-page', v2, 2);
  await waitInstalled(agent, v2.bundleId);
  url = `http://127.0.0.1:${agent.address!.port}/`;
  for (let i = 0; i < 5; i++) await http(agent.address!.port, 'POST', '/v1/predict', JSON.stringify({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } }));
  // A bad request leaves a code on the page.
  await http(agent.address!.port, 'POST', '/v1/predict', JSON.stringify({ inputs: { x: [[1, 2, 3]], category: [[1]] } }));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await fx?.close();
  cleanupTempDirs();
});

describe.skipIf(!CHROMIUM)('agent status page', () => {
  for (const javaScriptEnabled of [false, true]) {
    it(`shows models, phase, error codes with meaning and predict counts (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`, async () => {
      const ctx = await browser.newContext({ javaScriptEnabled });
      try {
        const page = await ctx.newPage();
        const res = await page.goto(url);
        expect(res?.status()).toBe(200);
        expect(await page.title()).toBe('fleetcast-agent dev-page');
        expect(await page.locator('#row-active td').innerText()).toMatch(/^pump-model v2 /);
        expect(await page.locator('#row-previous td').innerText()).toMatch(/^pump-model v1 /);
        expect(await page.locator('#row-phase td').innerText()).toBe('committed');
        expect(await page.locator('#row-runtime td').innerText()).toMatch(/^onnxruntime-node@/);
        const cells = await page.locator('#predict tbody td').allInnerTexts();
        expect(Number(cells[0])).toBe(5);
        expect(cells[4]).toMatch(/^\d+\.\d\d ms$/);
        const err = page.locator('#errors tbody tr').first();
        expect(await err.locator('td').first().innerText()).toBe('AGENT_ERR_INPUT_SHAPE');
        expect(await err.locator('td').nth(2).innerText()).toBe(AGENT_ERRORS.AGENT_ERR_INPUT_SHAPE.message);
      } finally {
        await ctx.close();
      }
    });
  }

  it('is plain HTML with no script, answers HEAD, and refuses other methods like the API', async () => {
    const r = await http(agent.address!.port, 'GET', '/');
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(String(r.json)).not.toMatch(/<script/i);
    expect((await http(agent.address!.port, 'HEAD', '/')).status).toBe(200);
    const post = await http(agent.address!.port, 'POST', '/', '{}');
    expect(post.status).toBe(405);
    expect(post.json.error.code).toBe('AGENT_ERR_METHOD');
  });
});
