/**
 * A device installs the agent package alone (README "Packages"): `npm pack` of
 * @fleetcast/agent and the core (protocol, signing, bundles) into a temporary
 * folder, `npm install` of those tarballs in a fresh folder with
 * --omit=optional (the smallest device install: no onnxruntime-web, no
 * prom-client), then the installed `fleetcast-agent` bin runs against the real
 * hub (authentication on, embedded broker, an enrolled credential) until it
 * installs a bundle and answers a prediction. The folder is outside the
 * repository, so nothing of the repository is on the agent's module path.
 *
 * The versions come from npm's cache (`npm ci` filled it; --prefer-offline).
 * Where npm can reach neither its cache nor the registry the suite is skipped
 * with the reason printed, except under CI (FLEETCAST_REQUIRE_PROGRAMS), where
 * that is a failure.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/agent-fixture.js';
import { killAll } from '../helpers/agent-process.js';
import { REPO } from '../helpers/build-cli.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { programsRequired } from '../helpers/programs.js';
import { expectServing, RealFleet, stopAgent } from '../helpers/real-fleet.js';

const run = promisify(execFile);
const CORE = ['protocol', 'signing', 'bundles'];
/** What the hub, the CLI and bundle building need, and the agent must not bring to a device. */
const NOT_ON_DEVICE = ['fastify', 'aedes', 'better-sqlite3', 'pg', 'node-cron', 'yaml', 'protobufjs', 'onnxruntime-web', 'prom-client'];
/** npm's words for "could not get the package": no cache entry and no network. */
const OFFLINE = /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|network/i;

// npm run by `npm test` passes its settings down as npm_config_* (local_prefix would point npm back at the
// repository): the fresh folder gets npm's defaults, but the same cache, registry and network settings.
const KEEP = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig', 'npm_config_proxy', 'npm_config_https_proxy', 'npm_config_noproxy', 'npm_config_cafile', 'npm_config_strict_ssl']);
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') || KEEP.has(k.toLowerCase())));
const npm = (args: string[], cwd: string, env: Record<string, string> = {}) => run('npm', args, { cwd, env: { ...npmEnv, ...env }, maxBuffer: 16 * 1024 * 1024, timeout: 150_000 });

let device = '';
let unavailable: string | null = null;
let fleet: RealFleet | undefined;

beforeAll(async () => {
  const dir = tempDir('fleetcast-agent-package-');
  const packs = join(dir, 'packs');
  device = join(dir, 'device');
  mkdirSync(device);
  mkdirSync(packs);
  // dist/ is built by test/setup/global.ts; --ignore-scripts so pack does not rebuild it under a running suite.
  await npm(['pack', '--ignore-scripts', '--pack-destination', packs, ...['agent', ...CORE].flatMap((w) => ['-w', w])], REPO);
  const tarballs = readdirSync(packs).filter((f) => f.endsWith('.tgz')).map((f) => join(packs, f));
  writeFileSync(join(device, 'package.json'), JSON.stringify({ name: 'device', private: true }));
  try {
    // As README's device install: onnxruntime-node's install script would otherwise look for GPU binaries on the network.
    await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--omit=optional', ...tarballs], device, { ONNXRUNTIME_NODE_INSTALL: 'skip' });
  } catch (e) {
    const text = `${(e as { stderr?: string }).stderr ?? ''}${(e as Error).message}`;
    if (!OFFLINE.test(text) || programsRequired()) throw e;
    unavailable = `npm could not install the agent's dependencies (no cache entry and no registry): ${text.split('\n').find((l) => OFFLINE.test(l))}`;
    console.warn(`${expect.getState().testPath}: skipped: ${unavailable}`);
  }
}, 180_000);

afterAll(async () => {
  killAll();
  await fleet?.close();
  cleanupTempDirs();
});

describe('the agent package installed alone in a fresh folder', () => {
  it('holds the agent and the core packages as copies, with none of the hub\'s dependencies', (ctx) => {
    if (unavailable) ctx.skip();
    const modules = join(device, 'node_modules');
    expect(readdirSync(join(modules, '@fleetcast')).sort()).toEqual(['agent', ...CORE].sort());
    // Unpacked tarballs, not links back into the repository.
    for (const p of ['agent', ...CORE]) expect(lstatSync(join(modules, '@fleetcast', p)).isSymbolicLink()).toBe(false);
    for (const dep of ['mqtt', 'onnxruntime-node', 'pino', 'tweetnacl', 'zstd-codec']) expect(existsSync(join(modules, dep)), dep).toBe(true);
    expect(NOT_ON_DEVICE.filter((dep) => existsSync(join(modules, dep)))).toEqual([]);
    expect(existsSync(join(modules, '.bin/fleetcast-agent'))).toBe(true);
  });

  it('runs against the real hub: installs a bundle, answers a prediction, and says /metrics needs prom-client', async (ctx) => {
    if (unavailable) ctx.skip();
    fleet = await RealFleet.start();
    const b = await fleet.publish(1);
    await fleet.deploy(b, ['pkg-dev-1']);
    const agent = fleet.spawn('pkg-dev-1', tempDir('fleetcast-pkg-data-'), { FLEETCAST_AGENT_PROBATION_MS: '300', FLEETCAST_AGENT_PROBATION_MIN_REQUESTS: '1000' },
      join(device, 'node_modules/.bin/fleetcast-agent'));
    const port = await agent.port();
    // Installed through the hub (fetched over the authenticated broker, verified, staged, committed), then a prediction by that model.
    await expectServing(port, b.bundleId, 'committed');
    await fleet.registrySays('pkg-dev-1', b.bundleId, 'committed');
    const metrics = await http(port, 'GET', '/metrics');
    expect(metrics.status).toBe(501);
    expect(metrics.json.error.code).toBe('AGENT_ERR_METRICS_UNAVAILABLE');
    expect((await stopAgent(agent)).code).toBe(0);
  }, 120_000);
});
