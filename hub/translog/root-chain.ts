/**
 * The root versions a hub knows: keysDir/root.json (the current one) plus any
 * keysDir/roots/root-<N>.json archived by `fleetcast keys rotate`. They are
 * verified as a chain (each N+1 cross-signed by N) before they are logged or
 * served, so a hub never hands agents a chain they would refuse.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import { loadRoot, type TrustedRoot } from '@fleetcast/signing/root.js';
import { verifyNextRoot } from '@fleetcast/signing/root-rotation.js';
import { hubError } from '../errors.js';

export function loadRootChain(keysDir: string, current: TrustedRoot): Envelope[] {
  const byVersion = new Map<number, Envelope>([[current.version, current.envelope]]);
  const dir = join(keysDir, 'roots');
  if (existsSync(dir)) {
    for (const f of readdirSync(dir)) {
      if (!/^root-[0-9]+\.json$/.test(f)) continue;
      try {
        const r = loadRoot(JSON.parse(readFileSync(join(dir, f), 'utf8')), { allowExpired: true });
        if (r.version < current.version) byVersion.set(r.version, r.envelope);
      } catch (e) {
        throw hubError('HUB_ERR_KEYS', `${join(dir, f)}: ${(e as Error).message}`);
      }
    }
  }
  const versions = [...byVersion.keys()].sort((a, b) => a - b);
  // Only the unbroken run of versions that ends at the current root is served.
  let start = versions.length - 1;
  while (start > 0 && versions[start - 1] === versions[start] - 1) start--;
  const chain = versions.slice(start).map((v) => byVersion.get(v)!);
  let prev: TrustedRoot | undefined;
  for (const env of chain) {
    try {
      prev = prev ? verifyNextRoot(prev, env) : loadRoot(env, { allowExpired: true });
    } catch (e) {
      throw hubError('HUB_ERR_KEYS', `root chain in ${keysDir}: ${(e as Error).message}`);
    }
  }
  return chain;
}
