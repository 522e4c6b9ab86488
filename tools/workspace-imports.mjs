#!/usr/bin/env node
/**
 * Rewrites imports for the npm workspaces (README "Packages"), idempotently:
 *
 * - an import that crosses a package boundary names the package
 *   (`../protocol/envelope.js` in agent/ becomes `@fleetcast/protocol/envelope.js`);
 *   an import inside one package stays relative; bench/ and tools/ (compiled into
 *   the private root's dist/) import packages by name too, so the compiled bench
 *   loads each module once, from the package's own dist/;
 * - test/ keeps relative imports: the root is private and never published, and
 *   vitest runs the sources (the `source` export condition), so a relative import
 *   and a package import reach the same .ts file;
 * - imports of files moved when the packages were cut (MOVED) follow the move, also
 *   in a moved file whose own relative imports still point from its old folder
 *   (a branch merged after the move may add such an import);
 * - paths of compiled files and folders in strings, docs and the root's tsconfig files
 *   (`dist/cli/fleetcast.js`, `dist/hub/console/web/`) become the package's own dist/
 *   (`cli/dist/fleetcast.js`, `hub/dist/console/web/`); a moved source named in a comment
 *   or a doc (`bundles/reference.ts`) is named at its new place.
 *
 * Plain Node, no build: run it from anywhere, `node tools/workspace-imports.mjs`
 * (`--check` lists what it would change and exits 1 if anything). Running it twice
 * changes nothing the second time. A moved file counts as moved even where it still
 * sits at its old place, so imports are always written as they are after the moves.
 *
 * Merging the branch that made the packages into a tree with other work: `git merge`;
 * a conflicted file whose only change on the packages side is what this script writes
 * (every .ts file except the hand edits the branch's note lists) is resolved with
 * `git checkout --ours FILE`, then this script is run once over the whole tree; then
 * test/unit/package-boundaries.test.ts names any import of a package a package.json
 * does not list yet.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Workspace folder → package name (also in package.json "workspaces"). */
export const PACKAGES = {
  protocol: '@fleetcast/protocol',
  signing: '@fleetcast/signing',
  bundles: '@fleetcast/bundles',
  'bundle-build': '@fleetcast/bundle-build',
  agent: '@fleetcast/agent',
  hub: '@fleetcast/hub',
  simulator: '@fleetcast/simulator',
  cli: '@fleetcast/cli',
};

/** Source files moved when the packages were cut: old path → new path. */
export const MOVED = {
  // Build-only (protobufjs, onnxruntime-node at build time): the agent installs @fleetcast/bundles without them.
  ...Object.fromEntries(['build', 'example-file', 'golden-file', 'json-tensor', 'onnx-build-edge', 'onnx-build-io', 'onnx-build', 'onnx-info', 'onnx-proto', 'reference', 'schema-file']
    .map((f) => [`bundles/${f}.ts`, `bundle-build/${f}.ts`])),
  // The agent's entry point ships in the agent package; the argument parser and exit handling it shares with `fleetcast` go to protocol.
  'cli/fleetcast-agent.ts': 'agent/fleetcast-agent.ts',
  'cli/args.ts': 'protocol/cli-args.ts',
  'cli/main.ts': 'protocol/cli-main.ts',
};

/** Private root folders compiled into dist/: they import packages by name. */
const ROOT_COMPILED = new Set(['bench', 'tools']);
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'vectors']);
const SELF = 'tools/workspace-imports.mjs';

const posix = (p) => p.split(sep).join('/');
const top = (rel) => rel.split('/')[0];

function walk(dir, out = []) {
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    if (e.name.startsWith('.') && e.name !== '.ci') continue;
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory()) { if (!SKIP_DIRS.has(e.name)) walk(rel, out); } else out.push(rel);
  }
  return out;
}

const exists = (rel) => existsSync(join(ROOT, rel));
const MOVED_FROM = Object.fromEntries(Object.entries(MOVED).map(([from, to]) => [to, from]));

/**
 * A module path (repo-relative, .ts for sources) after the moves; undefined when it is not a file we know.
 * A moved file counts as moved even where it still sits at its old place (a tree the moves are not merged
 * into yet), so that tree gets the same import lines as the moved one and the two merge without conflicts.
 */
function known(rel) {
  const ts = rel.replace(/\.js$/, '.ts');
  for (const c of [ts, rel]) {
    if (MOVED[c]) return MOVED[c];
    if (exists(c)) return c;
  }
  return undefined;
}

/** The repo-relative file a specifier in `file` names, or undefined (a package of the registry, node:, unknown). */
function target(file, spec) {
  if (spec.startsWith('.')) {
    const hit = known(posix(normalize(join(dirname(file), spec))));
    if (hit) return hit;
    const from = MOVED_FROM[file];
    return from ? known(posix(normalize(join(dirname(from), spec)))) : undefined;
  }
  for (const [dir, name] of Object.entries(PACKAGES)) {
    if (spec.startsWith(`${name}/`)) return known(`${dir}/${spec.slice(name.length + 1)}`);
  }
  return undefined;
}

/** How `file` should write an import of `to` (repo-relative source path), keeping the specifier's extension style. */
function specifier(file, to, original) {
  const ext = original.endsWith('.js') && to.endsWith('.ts') ? to.replace(/\.ts$/, '.js') : to;
  const from = top(file);
  const into = top(to);
  // test/ may name a package either way (both reach the source under vitest): a package name stays one.
  const byName = PACKAGES[from] || ROOT_COMPILED.has(from) || original.startsWith('@fleetcast/');
  if (from !== into && PACKAGES[into] && byName) return `${PACKAGES[into]}/${ext.slice(into.length + 1)}`;
  const r = posix(relative(dirname(file), ext));
  return r.startsWith('.') ? r : `./${r}`;
}

// import … from '…', export … from '…', import '…', import('…'), vi.mock('…'), vi.importActual('…'), require('…')
const IMPORT = /(\bfrom\s*|\bimport\s*\(?\s*|\bvi\.(?:mock|doMock|importActual|importMock)\(\s*|\brequire\(\s*)(['"])([^'"\n]+)\2/g;
// A compiled file or folder named by its old place in the single root dist/ (`dist/cli/fleetcast.js`, `dist/hub/console/web/`).
const DIST = new RegExp(`(?<![\\w-])dist/(${Object.keys(PACKAGES).join('|')})/([\\w./-]*)`, 'g');
// distFile('cli/fleetcast-agent.js'): a source-relative path of a compiled file (test/helpers/build-cli.ts).
const DIST_FILE = /(\bdistFile\(\s*)(['"])([\w./-]+\.js)\2/g;

/** Where a compiled file of source path `rel` (…/x.js) lives now, as a source-relative .js path. */
function movedJs(rel) {
  const ts = rel.replace(/\.js$/, '.ts');
  return rel.endsWith('.js') && MOVED[ts] ? MOVED[ts].replace(/\.ts$/, '.js') : rel;
}

// A moved source file named in a comment or a doc (`bundles/reference.ts`).
const MOVED_NAME = new RegExp(`(?<![\\w/.-])(${Object.keys(MOVED).map((f) => f.replace(/[.]/g, '\\.')).join('|')})(?![\\w-])`, 'g');

export function rewrite(file, text) {
  let out = text;
  if (/\.(ts|mts|mjs)$/.test(file)) {
    out = out.replace(IMPORT, (all, lead, q, spec) => {
      if (!spec.startsWith('.') && !spec.startsWith('@fleetcast/')) return all;
      const to = target(file, spec);
      // Written as from where the file lives after the moves.
      return to ? `${lead}${q}${specifier(MOVED[file] ?? file, to, spec)}${q}` : all;
    });
    out = out.replace(DIST_FILE, (_all, lead, q, rel) => `${lead}${q}${movedJs(rel)}${q}`);
  }
  out = out.replace(MOVED_NAME, (old) => MOVED[old]);
  return out.replace(DIST, (_all, dir, rest) => {
    const moved = movedJs(`${dir}/${rest}`);
    const pkg = top(moved);
    return `${pkg}/dist/${moved.slice(pkg.length + 1)}`;
  });
}

function main() {
  const check = process.argv.includes('--check');
  const changed = [];
  for (const file of walk('')) {
    const tsconfig = /^tsconfig[\w.-]*\.json$/.test(file);
    if (file === SELF || !(tsconfig || /\.(ts|mts|mjs|md|service)$/.test(file)) || file === 'docs/errors.md') continue;
    const text = readFileSync(join(ROOT, file), 'utf8');
    const next = rewrite(file, text);
    if (next === text) continue;
    changed.push(file);
    if (!check) writeFileSync(join(ROOT, file), next);
  }
  process.stdout.write(changed.length ? `${check ? 'would rewrite' : 'rewrote'} ${changed.length} file(s):\n${changed.join('\n')}\n` : 'imports already follow the packages\n');
  if (check && changed.length) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) main();
