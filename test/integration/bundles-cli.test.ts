/**
 * The compiled `fleetcast bundle` CLI, run as a child process the way an
 * operator runs it: build, inspect, verify, and refusal of tampered bundles
 * with a coded error line and exit status 1.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { buildStreamingVad } from '../../bundle-build/onnx-build-edge.js';
import { readBundleFile } from '../../bundles/read.js';
import { readKeyFile } from '../../signing/keys.js';
import { distFile } from '../helpers/build-cli.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { needProgram } from '../helpers/programs.js';

/** The reference zstd CLI (Debian package zstd) decodes our payload. */
const ZSTD = needProgram('zstd', 'zstd');

const repo = fileURLToPath(new URL('../..', import.meta.url));
const cliPath = join(repo, 'cli/dist/fleetcast.js');

afterAll(cleanupTempDirs);

function fleetcast(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliPath, ...args], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir: string;
let model: Buffer;

beforeAll(() => {
  // The CLI as shipped: dist/ is compiled once, before the run, by test/setup/global.ts.
  distFile('cli/commands/bundle.js');
  dir = tempDir('fleetcast-bundle-cli-');
  model = Buffer.from(buildMlp({ categorical: true, padFloats: 300_000 }));
  writeFileSync(join(dir, 'churn.onnx'), model);
  writeFileSync(join(dir, 'schema.json'), JSON.stringify({ inputs: { x: { features: ['age', 'tenure', 'spend', 'visits'], min: 0, max: [120, 50, 1e6, 1000] } }, description: 'churn model' }));
  expect(fleetcast('keys', 'init', '--out', join(dir, 'keys')).status).toBe(0);
}, 150_000);

describe('fleetcast bundle (compiled CLI)', () => {
  it.skipIf(!ZSTD)('build → inspect → verify, and the file is a plain tar whose payload the zstd CLI decodes', () => {
    const out = join(dir, 'churn-3.fcb');
    const b = fleetcast('bundle', 'build', join(dir, 'churn.onnx'), '--name', 'churn', '--version', '3', '--key', join(dir, 'keys/release.key'), '--out', out, '--schema', join(dir, 'schema.json'), '--chunk-size', '65536');
    expect(b.stderr).toBe('');
    expect(b.status).toBe(0);
    const id = /id ([0-9a-f]{64})/.exec(b.stdout)?.[1];
    expect(id).toBeDefined();

    const keyid = readKeyFile(join(dir, 'keys/release.key')).keyid;
    const human = fleetcast('bundle', 'inspect', out);
    expect(human.status).toBe(0);
    for (const text of ['churn v3', id!, 'x ', 'float32', '[batch, 4]', 'category', 'int64', '[batch, 1]', 'y ', '[batch, 2]', 'features age, tenure, spend, visits', 'opset 13', keyid, 'of 64 KiB']) {
      expect(human.stdout, text).toContain(text);
    }
    const json = JSON.parse(fleetcast('bundle', 'inspect', out, '--json').stdout) as { bundleId: string; manifest: { name: string; payload: { rawSha256: string; chunkHashes: string[] }; inputs: { features?: string[] }[] }; signatures: { keyid: string }[] };
    expect(json.bundleId).toBe(id);
    expect(json.manifest.payload.rawSha256).toBe(createHash('sha256').update(model).digest('hex'));
    expect(json.manifest.payload.chunkHashes.length).toBeGreaterThan(1);
    expect(json.manifest.inputs[0].features).toEqual(['age', 'tenure', 'spend', 'visits']);
    expect(json.signatures.map((s) => s.keyid)).toEqual([keyid]);

    const v = fleetcast('bundle', 'verify', out, '--root', join(dir, 'keys/root.json'));
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`^ok churn v3 ${id}`));

    expect(execFileSync('tar', ['tf', out]).toString()).toBe('manifest.json\nmodel.onnx.zst\n');
    const decoded = execFileSync('sh', ['-c', `tar xOf "${out}" model.onnx.zst | "${ZSTD}" -d -c`], { maxBuffer: 64 * 1024 * 1024 });
    expect(decoded.equals(model)).toBe(true);
  });

  it('verify exits 1 with a coded error for a tampered payload, a foreign root, or a non-bundle', async () => {
    const out = join(dir, 'churn-4.fcb');
    expect(fleetcast('bundle', 'build', join(dir, 'churn.onnx'), '--name', 'churn', '--version', '4', '--key', join(dir, 'keys/release.key'), '--out', out).status).toBe(0);
    const { payloadOffset } = await readBundleFile(out);
    const bytes = readFileSync(out);
    bytes[payloadOffset + 100] ^= 0x40;
    const tampered = join(dir, 'tampered.fcb');
    writeFileSync(tampered, bytes);
    const t = fleetcast('bundle', 'verify', tampered, '--root', join(dir, 'keys/root.json'));
    expect(t.status).toBe(1);
    expect(t.stderr).toMatch(/^error BUNDLE_ERR_CHUNK_HASH: .*chunk 0/);
    expect(t.stdout).toBe('');

    expect(fleetcast('keys', 'init', '--out', join(dir, 'other')).status).toBe(0);
    const foreign = fleetcast('bundle', 'verify', out, '--root', join(dir, 'other/root.json'));
    expect(foreign.status).toBe(1);
    expect(foreign.stderr).toMatch(/^error SIGN_ERR_UNKNOWN_KEY: /);

    const notBundle = fleetcast('bundle', 'verify', join(dir, 'churn.onnx'), '--root', join(dir, 'keys/root.json'));
    expect(notBundle.status).toBe(1);
    expect(notBundle.stderr).toMatch(/^error BUNDLE_ERR_NOT_A_BUNDLE: /);

    const noRoot = fleetcast('bundle', 'verify', out, '--root', join(dir, 'nope.json'));
    expect(noRoot.status).toBe(1);
    expect(noRoot.stderr).toMatch(/^error BUNDLE_ERR_IO: .*nope\.json/);
  });

  it('build refuses bad input with a code and leaves no file behind; usage errors exit 2', () => {
    writeFileSync(join(dir, 'bad-schema.json'), JSON.stringify({ inputs: { z: { min: 0 } } }));
    const out = join(dir, 'never.fcb');
    const bad = fleetcast('bundle', 'build', join(dir, 'churn.onnx'), '--name', 'churn', '--version', '5', '--key', join(dir, 'keys/release.key'), '--out', out, '--schema', join(dir, 'bad-schema.json'));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^error BUNDLE_ERR_BAD_SCHEMA_FILE: .*"z"/);
    const hubKey = fleetcast('bundle', 'build', join(dir, 'churn.onnx'), '--name', 'churn', '--version', '5', '--key', join(dir, 'keys/hub.key'), '--out', out);
    expect(hubKey.status).toBe(1);
    expect(hubKey.stderr).toMatch(/^error BUNDLE_ERR_BAD_OPTION: .*hub key/);
    writeFileSync(join(dir, 'not-a-model.onnx'), 'hello');
    const notModel = fleetcast('bundle', 'build', join(dir, 'not-a-model.onnx'), '--name', 'churn', '--version', '5', '--key', join(dir, 'keys/release.key'), '--out', out);
    expect(notModel.status).toBe(1);
    expect(notModel.stderr).toMatch(/^error BUNDLE_ERR_BAD_MODEL: /);
    expect(existsSync(out)).toBe(false);
    expect(fleetcast('bundle', 'build', join(dir, 'churn.onnx'), '--name', 'churn').status).toBe(2);
    expect(fleetcast('bundle', 'verify', out).status).toBe(2);
    expect(fleetcast('bundle', 'frobnicate').status).toBe(2);
  });

  it('build of a model the synthetic smoke input breaks: refused with BUNDLE_ERR_SMOKE_FAILED naming the fixes, built with --example or --smoke-dims', async () => {
    // Streaming-VAD shaped: reflect padding by 32 needs samples ≥ 33, the synthetic input has 1.
    writeFileSync(join(dir, 'vad.onnx'), buildStreamingVad());
    const args = (out: string, ...more: string[]) => ['bundle', 'build', join(dir, 'vad.onnx'), '--name', 'vad', '--version', '1', '--key', join(dir, 'keys/release.key'), '--out', join(dir, out), ...more];
    const refused = fleetcast(...args('vad-0.fcb'));
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^error BUNDLE_ERR_SMOKE_FAILED: .*--example FILE.*--golden FILE.*--smoke-dims.*smoke inference: .*Pad/s);
    expect(existsSync(join(dir, 'vad-0.fcb'))).toBe(false);

    const x = [Array.from({ length: 64 }, (_, i) => Math.sin(i / 5))];
    const state = [0, 1].map(() => [new Array(128).fill(0)]);
    writeFileSync(join(dir, 'vad-example.json'), JSON.stringify({ inputs: { x, state, sr: 16000 } }));
    const withExample = fleetcast(...args('vad-1.fcb', '--example', join(dir, 'vad-example.json')));
    expect(withExample.stderr).toBe('');
    expect(withExample.status).toBe(0);
    expect(withExample.stdout).toContain('golden cases: 1');
    const golden = (await readBundleFile(join(dir, 'vad-1.fcb'))).manifest.golden!;
    expect(golden[0].inputs).toEqual({ x, state, sr: 16000 });
    expect(golden[0].outputs.prob.dims).toEqual([1, 1]);
    expect(golden[0].outputs.new_state.dims).toEqual([2, 1, 128]);

    const withDims = fleetcast(...args('vad-2.fcb', '--smoke-dims', 'samples=64,batch=1'));
    expect(withDims.status).toBe(0);
    expect(withDims.stdout).toContain('smoke dims: samples=64,batch=1');
    expect(fleetcast('bundle', 'inspect', join(dir, 'vad-2.fcb')).stdout).toMatch(/smoke +dims samples=64,batch=1/);
    const badDims = fleetcast(...args('vad-3.fcb', '--smoke-dims', 'samplez=64'));
    expect(badDims.stderr).toMatch(/^error BUNDLE_ERR_BAD_OPTION: .*samplez/);
  });
});
