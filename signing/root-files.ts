/**
 * Root rotation on disk (`fleetcast keys rotate|add|revoke`): keysDir/root.json
 * is the current root; every version is also kept as keysDir/roots/root-<N>.json,
 * which is the chain a hub serves to agents (one version at a time) and logs.
 * The new root is written only after it verifies against the old one.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyPair } from './ed25519.js';
import { loadRootText, type TrustedRoot } from './root.js';
import { nextRootPayload, signNextRoot, type RootChange } from './root-rotation.js';

export function rotateRootFiles(keysDir: string, o: { signers: readonly KeyPair[]; change: Omit<RootChange, 'expires'> & { expires?: number }; expiresInDays?: number; now?: number }): { previous: TrustedRoot; root: TrustedRoot; path: string } {
  const now = o.now ?? Date.now();
  const rootPath = join(keysDir, 'root.json');
  const previous = loadRootText(readFileSync(rootPath, 'utf8'), { allowExpired: true, now });
  const expires = o.change.expires ?? now + (o.expiresInDays ?? 365) * 86_400_000;
  const payload = nextRootPayload(previous.payload, { ...o.change, expires });
  const { envelope, root } = signNextRoot(previous, payload, o.signers, now);
  const archive = join(keysDir, 'roots');
  mkdirSync(archive, { recursive: true });
  const prevFile = join(archive, `root-${previous.version}.json`);
  if (!existsSync(prevFile)) writeFileSync(prevFile, JSON.stringify(previous.envelope, null, 2) + '\n');
  const text = JSON.stringify(envelope, null, 2) + '\n';
  writeFileSync(join(archive, `root-${root.version}.json`), text);
  writeFileSync(`${rootPath}.tmp`, text);
  renameSync(`${rootPath}.tmp`, rootPath);
  return { previous, root, path: rootPath };
}
