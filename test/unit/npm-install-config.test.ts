/**
 * How the repository keeps onnxruntime-node from downloading its CUDA
 * libraries at install time: the environment variable its install script
 * reads (ONNXRUNTIME_NODE_INSTALL=skip, exported by .ci/run and README's
 * "Two commands"), not a project .npmrc key, which npm 11 warns about on every
 * npm/npx call in the repository and npm 12 ignores.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('npm install configuration', () => {
  it('npm_in_the_repository_prints_no_config_warning: no project config key npm does not know', () => {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (/^npm_config_onnxruntime/i.test(k)) delete env[k];
    const r = spawnSync('npm', ['--version'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/Unknown project config/);
    expect(existsSync(join(ROOT, '.npmrc')) ? readFileSync(join(ROOT, '.npmrc'), 'utf8') : '').not.toMatch(/onnxruntime/);
  }, 60_000);

  it('plain_npm_install_skips_the_cuda_download: package.json denies onnxruntime-node its install script, and npm honours it', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { allowScripts?: Record<string, boolean>; dependencies: Record<string, string> };
    expect(pkg.allowScripts?.['onnxruntime-node']).toBe(false);
    // The claim on a real npm: a fresh folder with the same record installs onnxruntime-node with no variable set,
    // from npm's cache (filled by the repository's own install), and its script never runs: it would fail offline.
    const dir = mkdtempSync(join(tmpdir(), 'fc-npm-'));
    try {
      const version = (JSON.parse(readFileSync(join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'probe', version: '1.0.0', private: true, dependencies: { 'onnxruntime-node': version }, allowScripts: pkg.allowScripts }));
      const env = { ...process.env };
      for (const k of Object.keys(env)) if (/onnxruntime/i.test(k)) delete env[k];
      const r = spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--omit=optional', '--foreground-scripts'], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(/onnxruntime-node@[^ ]* postinstall|script\/install/);
      expect(existsSync(join(dir, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node')) || process.platform !== 'linux').toBe(true);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  }, 150_000);

  it('onnxruntime_install_skipped_by_the_ci_variable: .ci/run exports what onnxruntime-node reads, before npm ci', () => {
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    const exported = ci.search(/^export ONNXRUNTIME_NODE_INSTALL=skip$/m);
    expect(exported).toBeGreaterThan(-1);
    expect(ci.search(/^npm ci\b/m)).toBeGreaterThan(exported);
    // onnxruntime-node's own parser: `false` is "skip the download" (its install.js exits 0 at once).
    const { parseInstallFlag } = createRequire(join(ROOT, 'package.json'))('onnxruntime-node/script/install-utils.js') as { parseInstallFlag(): unknown };
    const saved = { a: process.env.ONNXRUNTIME_NODE_INSTALL, b: process.env.npm_config_onnxruntime_node_install };
    try {
      delete process.env.npm_config_onnxruntime_node_install;
      process.env.ONNXRUNTIME_NODE_INSTALL = 'skip';
      expect(parseInstallFlag()).toBe(false);
    } finally {
      if (saved.a === undefined) delete process.env.ONNXRUNTIME_NODE_INSTALL; else process.env.ONNXRUNTIME_NODE_INSTALL = saved.a;
      if (saved.b !== undefined) process.env.npm_config_onnxruntime_node_install = saved.b;
    }
  });
});
