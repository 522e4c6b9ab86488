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

/** Create `dir` (and parents) 0700 if missing. An existing folder is left to tightenTree, which says what it changed. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/**
 * Remove group and other access from every folder and file under `root` (root
 * included; symbolic links are not followed). Returns the paths changed, with
 * their old mode, so the caller can warn once; a path it may not change (not
 * its owner, a read-only mount) is counted as such, not thrown.
 */
export function tightenTree(root: string): { path: string; was: number }[] & { failed: number } {
  const changed = Object.assign([] as { path: string; was: number }[], { failed: 0 });
  const walk = (p: string) => {
    let st;
    try { st = lstatSync(p); } catch { return; } // removed meanwhile
    if (st.isSymbolicLink()) return;
    const mode = st.mode & 0o777;
    // Only group and other bits go: what the owner may do is left as it is.
    if ((mode & 0o077) !== 0) {
      try { chmodSync(p, mode & 0o700); changed.push({ path: p, was: mode }); } catch { changed.failed++; }
    }
    if (st.isDirectory()) {
      let names: string[] = [];
      try { names = readdirSync(p); } catch { changed.failed++; }
      for (const name of names) walk(join(p, name));
    }
  };
  // A data path that is not a folder is the caller's configuration error to report, not a file to chmod.
  let isDir = false;
  try { isDir = lstatSync(root).isDirectory(); } catch { /* missing: nothing to tighten */ }
  if (isDir) walk(root);
  return changed;
}

/** One log line for what tightenTree did: "path (0644)" for the first few, and what it could not change; null when nothing. */
export function describeChanges(changed: ReturnType<typeof tightenTree>, max = 5): string | null {
  if (changed.length === 0 && changed.failed === 0) return null;
  const shown = changed.slice(0, max).map((c) => `${c.path} (0${c.was.toString(8)})`).join(', ');
  const more = changed.length > max ? ` and ${changed.length - max} more` : '';
  const failed = changed.failed > 0 ? `; ${changed.failed} could not be changed or read (check the owner)` : '';
  return `data folder was readable by other users; set folders to 0700 and files to 0600: ${shown}${more}${failed}`;
}
