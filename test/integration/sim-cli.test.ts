/**
 * `fleetcast sim` against the real hub in its default secure mode, as an
 * operator runs it (the compiled CLI): a token the hub refuses, credentials
 * the broker refuses, or devices nobody enrolled exit 1 within seconds with a
 * coded error (before, an unenrolled fleet printed `{"none":N}` forever); a
 * scenario whose expectation fails exits 1 and its HTML report, opened in
 * headless Chromium, shows the charts with fault bands and which expectation
 * failed. (Ctrl-C and a broker going away mid-run: sim-cli-lifecycle.test.ts.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../simulator/run-record.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { needProgram } from '../helpers/programs.js';
import { EXAMPLES, startSimHub, type SimHub } from '../helpers/sim-hub.js';

const CHROMIUM = needProgram('chromium', 'chromium');
let h: SimHub;

beforeAll(async () => { h = await startSimHub(); }, 60_000);
afterAll(async () => { await h?.hub.close(); cleanupTempDirs(); });

const FAILING = `
name: expects-too-much
timeScale: 0.5
duration: 12
groups: [{ name: lab, count: 3, tags: [lab] }]
traffic: [{ rate: 30 }]
faults: [{ kind: network-loss, group: lab, at: 6, for: 2 }]
actions:
  - { at: 0, publish: demo-mlp-1.fcb }
  - { at: 0.4, deploy: { model: demo-mlp@1 } }
expect:
  - { minPredictions: 1 }
  - { label: "every lab device on v2", allOn: demo-mlp@2 }
`;

describe('fleetcast sim against a secure hub', () => {
  it('a token the hub refuses: exit 1 within seconds with SIM_ERR_HUB_REFUSED and the hub\'s code', async () => {
    const bad = join(tempDir('fleetcast-sim-bad-'), 'bad.token');
    writeFileSync(bad, 'fc_not-a-token', { mode: 0o600 });
    const r = await h.sim(['--scenario', join(EXAMPLES, 'demo.yaml'), ...h.common()], { FLEETCAST_TOKEN_FILE: bad });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error SIM_ERR_HUB_REFUSED: .*HUB_ERR_/);
  }, 60_000);

  it('credentials the broker refuses: exit 1 with SIM_ERR_BROKER_REFUSED naming the device', async () => {
    const dir = tempDir('fleetcast-sim-creds-');
    writeFileSync(join(dir, 'stranger-0.json'), JSON.stringify({ mqttUsername: 'stranger-0', mqttPassword: 'wrong' }), { mode: 0o600 });
    const scenario = join(dir, 'one.yaml');
    writeFileSync(scenario, 'duration: 5\ngroups: [{ name: stranger, count: 1 }]\n');
    const r = await h.sim(['--scenario', scenario, '--broker', h.hub.mqttUrl, '--root', h.keys.rootPath, '--credentials', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error SIM_ERR_BROKER_REFUSED: .*stranger-0/);
  }, 60_000);

  it('unenrolled devices against a secure broker exit 1 at once instead of printing {"none":N} until --duration', async () => {
    const r = await h.sim(['--agents', '2', '--duration', '60', '--broker', h.hub.mqttUrl, '--root', h.keys.rootPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error SIM_ERR_BROKER_REFUSED: /);
    expect(r.stdout).not.toMatch(/"none"/);
    expect(r.ms).toBeLessThan(45_000); // far below --duration 60: it did not run on
  }, 90_000);

  it('an unknown key in a scenario is refused by its path before anything starts', async () => {
    const file = join(tempDir('fleetcast-sim-typo-'), 'typo.yaml');
    writeFileSync(file, 'duration: 5\ngroups: [{ name: lab, count: 1, colour: red }]\n');
    const r = await h.sim(['--scenario', file, ...h.common()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error SIM_ERR_SCENARIO_INVALID: Invalid scenario: groups\[0\]\.colour is not a known key/);
  }, 60_000);

  it('a failed expectation exits 1, and the HTML report in Chromium shows the charts, fault bands and which expectation failed', async () => {
    const dir = tempDir('fleetcast-sim-fail-');
    writeFileSync(join(dir, 'too-much.yaml'), FAILING);
    const report = join(dir, 'report');
    const r = await h.sim(['--scenario', join(dir, 'too-much.yaml'), ...h.common(), '--report', report]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/NOT MET\s+every lab device on v2: 3 of lab on demo-mlp@1/);
    const rec = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8')) as RunRecord;
    expect(rec.expectations.map((e) => [e.label, e.met])).toEqual([['at least 1 predictions served', true], ['every lab device on v2', false]]);
    // timeScale 0.5: 12 s of scenario time ran in 6 s, the fault from 3 s (never earlier: timers fire late, not early) to 4 s of the run.
    expect(rec.durationMs).toBe(6000);
    const [f] = rec.faults;
    expect([rec.faults.length, f.kind, f.from >= 3000, f.to >= 4000, f.from < 6000]).toEqual([1, 'network-loss', true, true, true]);
    if (!CHROMIUM) return;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      const fetched: string[] = [];
      page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('request', (q) => fetched.push(q.url()));
      await page.goto(pathToFileURL(join(report, 'report.html')).href);
      expect(await page.locator('#outcome').getAttribute('data-outcome')).toBe('unmet');
      expect(await page.locator('[data-verdict="unmet"]').allInnerTexts()).toEqual([expect.stringMatching(/NOT met\s+every lab device on v2\s+3 of lab on demo-mlp@1/)]);
      expect(await page.locator('[data-verdict="met"]').count()).toBe(1);
      const charts = await page.locator('svg.chart').evaluateAll((svgs) => svgs.map((s) => ({ id: s.getAttribute('data-chart'), series: s.querySelectorAll('path.series').length, bands: s.querySelectorAll('rect.band').length, width: s.getBoundingClientRect().width })));
      expect(charts.map((c) => c.id)).toEqual(['versions', 'install-cdf', 'predictions', 'rollout', 'drift', 'connected']);
      for (const c of charts) expect(c.width).toBeGreaterThan(100);
      // The network-loss fault is a band on every chart over time (the CDF's axis is milliseconds of install, not the run's clock).
      for (const c of charts.filter((x) => x.id !== 'install-cdf')) expect(c.bands, c.id!).toBeGreaterThan(0);
      for (const id of ['versions', 'install-cdf', 'predictions', 'connected']) expect(charts.find((c) => c.id === id)!.series, id).toBeGreaterThan(0);
      expect(problems).toEqual([]);
      expect(fetched.filter((u) => !u.startsWith('file:'))).toEqual([]); // self-contained: nothing from a CDN
    } finally {
      await browser.close();
    }
  }, 90_000);
});
