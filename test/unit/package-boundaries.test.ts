/**
 * The rooms are npm workspaces (README "Packages"), so the import directions of
 * docs/architecture.md are written in package.json and checked here:
 * - every import in a package names one of its own files, a package its
 *   package.json lists (dependencies, optional or peer), or a node: builtin;
 * - the @fleetcast dependencies follow the directions (agent never hub, hub
 *   never agent, only the CLI takes the simulator, protocol takes nothing);
 * - what a device installs with the agent stays the short list of the issue.
 * Imports are read with TypeScript's own pre-processor (static, dynamic, type-only,
 * `export … from` and require()), not with a regular expression.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { FleetcastError } from '../../protocol/errors.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Manifest {
  name: string;
  private?: boolean;
  workspaces?: string[];
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Manifest;
const WORKSPACES = readJson(join(ROOT, 'package.json')).workspaces ?? [];
const manifests = new Map(WORKSPACES.map((dir) => [dir, readJson(join(ROOT, dir, 'package.json'))]));
const dirOf = new Map([...manifests].map(([dir, m]) => [m.name, dir]));

/** Which workspace may depend on which (docs/architecture.md: protocol ← signing ← bundles ← {agent, hub}; simulator → agent; cli → any). */
const MAY_DEPEND_ON: Record<string, string[]> = {
  protocol: [],
  signing: ['protocol'],
  bundles: ['protocol', 'signing'],
  'bundle-build': ['protocol', 'signing', 'bundles'],
  agent: ['protocol', 'signing', 'bundles'],
  hub: ['protocol', 'signing', 'bundles'],
  simulator: ['protocol', 'signing', 'bundles', 'bundle-build', 'agent'],
  cli: ['protocol', 'signing', 'bundles', 'bundle-build', 'agent', 'hub', 'simulator'],
};

/** Everything outside our packages that installing the agent may bring in: the list, and what the core needs at run time. */
const AGENT_INSTALL = {
  agent: ['mqtt', 'onnxruntime-node', 'pino'],
  agentOptional: ['onnxruntime-web', 'prom-client'],
  core: ['tweetnacl', 'zstd-codec'],
};

const declared = (m: Manifest) => new Set([...Object.keys(m.dependencies ?? {}), ...Object.keys(m.optionalDependencies ?? {}), ...Object.keys(m.peerDependencies ?? {})]);
const packageOf = (spec: string) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .filter((f) => !f.split('/').includes('dist') && !f.split('/').includes('node_modules'));
}

/**
 * What is wrong with the imports of one source file of workspace `dir`: each
 * offending specifier with the reason. `file` is repo-relative.
 */
export function importViolations(dir: string, manifest: Manifest, file: string, text: string): string[] {
  const bad: string[] = [];
  const deps = declared(manifest);
  for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
    if (spec.startsWith('.')) {
      const to = normalize(join(dirname(file), spec));
      if (to.split('/')[0] !== dir) bad.push(`${file}: '${spec}' leaves the package ${manifest.name}; import another package by its name (node tools/workspace-imports.mjs rewrites it)`);
    } else if (spec.startsWith('node:')) {
      continue;
    } else if (isBuiltin(spec)) {
      bad.push(`${file}: '${spec}' is a builtin without the node: prefix; write 'node:${spec}'`);
    } else if (!deps.has(packageOf(spec))) {
      bad.push(`${file}: '${spec}' is not a dependency of ${manifest.name}; add ${packageOf(spec)} to ${dir}/package.json (if the import direction allows it)`);
    }
  }
  return bad;
}

/** The @fleetcast packages a workspace depends on, directly or through others. */
function closure(dir: string, seen = new Set<string>()): Set<string> {
  for (const name of declared(manifests.get(dir)!)) {
    const d = dirOf.get(name);
    if (d && !seen.has(d)) { seen.add(d); closure(d, seen); }
  }
  return seen;
}

describe('package boundaries', () => {
  it('every room is a workspace package and the root is private', () => {
    expect(readJson(join(ROOT, 'package.json')).private).toBe(true);
    expect([...manifests.keys()].sort()).toEqual(Object.keys(MAY_DEPEND_ON).sort());
    for (const [dir, m] of manifests) expect(m.name).toBe(`@fleetcast/${dir}`);
  });

  it('every import in a package is its own file, a declared dependency or a node: builtin', () => {
    const bad: string[] = [];
    for (const [dir, m] of manifests) {
      for (const file of sources(dir)) bad.push(...importViolations(dir, m, file, readFileSync(join(ROOT, file), 'utf8')));
    }
    expect(bad).toEqual([]);
  });

  it('refuses an agent file that imports the hub, relatively or by name', () => {
    const agent = manifests.get('agent')!;
    expect(importViolations('agent', agent, 'agent/x.ts', "import { Store } from '../hub/store.js';\n")).toHaveLength(1);
    expect(importViolations('agent', agent, 'agent/x.ts', "import type { Store } from '@fleetcast/hub/store.js';\n")).toHaveLength(1);
    expect(importViolations('agent', agent, 'agent/x.ts', "const m = await import('fastify');\n")).toHaveLength(1);
    expect(importViolations('agent', agent, 'agent/x.ts', "import { createHash } from 'crypto';\n")).toHaveLength(1);
    expect(importViolations('agent', agent, 'agent/sub/x.ts', "import { a } from '../y.js';\nimport { b } from '@fleetcast/protocol/errors.js';\nimport 'node:fs';\n")).toEqual([]);
  });

  it('the package dependencies follow the import directions', () => {
    for (const [dir, m] of manifests) {
      const ours = [...declared(m)].filter((n) => n.startsWith('@fleetcast/')).map((n) => dirOf.get(n) ?? n);
      expect(ours.filter((d) => !MAY_DEPEND_ON[dir]!.includes(d)), `${dir} depends on`).toEqual([]);
    }
    expect(closure('agent').has('hub')).toBe(false);
    expect(closure('hub').has('agent')).toBe(false);
    expect(closure('protocol').size).toBe(0);
    for (const dir of manifests.keys()) expect(closure(dir).has(dir), `${dir} depends on itself`).toBe(false);
  });

  it('installing the agent brings only mqtt, onnxruntime, pino, prom-client (optional) and the core', () => {
    const inAgentInstall = ['agent', ...closure('agent')];
    expect(inAgentInstall.sort()).toEqual(['agent', 'bundles', 'protocol', 'signing']);
    const external = (dir: string, field: 'dependencies' | 'optionalDependencies') => Object.keys(manifests.get(dir)![field] ?? {}).filter((n) => !n.startsWith('@fleetcast/'));
    expect(external('agent', 'dependencies').sort()).toEqual(AGENT_INSTALL.agent);
    expect(external('agent', 'optionalDependencies').sort()).toEqual(AGENT_INSTALL.agentOptional);
    expect(['protocol', 'signing', 'bundles'].flatMap((d) => external(d, 'dependencies')).sort()).toEqual(AGENT_INSTALL.core);
  });

  it('no import crosses a package boundary relatively (tools/workspace-imports.mjs has nothing to rewrite)', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'tools/workspace-imports.mjs'), '--check'], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toContain('imports already follow the packages');
    expect(r.status).toBe(0);
  });

  it('under vitest a package imported by name is the same module as its source (the "source" export condition)', async () => {
    const byName = await import('@fleetcast/protocol/errors.js');
    expect(byName.FleetcastError).toBe(FleetcastError);
    const { agentError } = await import('@fleetcast/agent/errors.js');
    expect(agentError('AGENT_ERR_NOT_FOUND')).toBeInstanceOf(FleetcastError);
  });
});
