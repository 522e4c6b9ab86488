/**
 * Data that only its own service may read: the hub's database, WAL and bundle
 * blobs, an agent's state, trust files and models. Folders 0700, files 0600,
 * whatever the umask or a service manager chose (systemd's StateDirectory= is
 * 0755 unless StateDirectoryMode= says otherwise). Here because both the hub and
 * the agent need it and both import signing, the room that already keeps
 * secrets on disk (key files are written 0600 likewise).
 *
 * Creation asks for these modes (a umask can only narrow them); a tree made by
 * an older version is tightened at start, and the caller logs what changed.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Create `dir` (and parents) if missing; the folder itself ends 0700 even when it already existed wider. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * Remove group and other access from every folder and file under `root` (root
 * included; symbolic links are not followed). Returns the paths changed, with
 * their old mode, so the caller can warn once.
 */
export function tightenTree(root: string): { path: string; was: number }[] {
  const changed: { path: string; was: number }[] = [];
  const walk = (p: string) => {
    let st;
    try { st = lstatSync(p); } catch { return; } // removed meanwhile
    if (st.isSymbolicLink()) return;
    const mode = st.mode & 0o777;
    // Only group and other bits go: what the owner may do is left as it is.
    if ((mode & 0o077) !== 0) { chmodSync(p, mode & 0o700); changed.push({ path: p, was: mode }); }
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
  };
  walk(root);
  return changed;
}

/** "path (0644)" for the first few changed paths, for one log line. */
export function describeChanges(changed: readonly { path: string; was: number }[], max = 5): string {
  const shown = changed.slice(0, max).map((c) => `${c.path} (0${c.was.toString(8)})`).join(', ');
  return changed.length > max ? `${shown} and ${changed.length - max} more` : shown;
}
