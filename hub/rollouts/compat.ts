/**
 * Hub-side compatibility (issue #3 "Compatibility"): a bundle's manifest says
 * what it needs (compat: runtimes, agentVersion range, opset, hardware,
 * minMemoryMB); a device's state report says what it has (runtime,
 * agentVersion, capabilities.maxOpset / hardware / memoryMB). An incompatible
 * device is never sent the bundle; the reason is shown. The agent checks again
 * on its side (agent/assignment-check.ts): two checks, one of them local.
 */
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import type { StateReport } from '@fleetcast/protocol/messages.js';

function parseVersion(v: string): number[] | null {
  const m = /^v?([0-9]+)(?:\.([0-9]+|x|\*))?(?:\.([0-9]+|x|\*))?/.exec(v.trim());
  if (!m) return null;
  return [1, 2, 3].map((i) => (m[i] === undefined || m[i] === 'x' || m[i] === '*' ? 0 : Number(m[i])));
}

function cmp(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** A small semver range: space-separated comparators (>=1.2.0 <2), ^1.2.3, ~1.2.3, 1.2.x, or an exact version. */
export function satisfies(version: string, range: string): boolean {
  const v = parseVersion(version);
  if (!v) return false;
  for (const part of range.trim().split(/\s+/)) {
    const m = /^(>=|<=|>|<|=|\^|~)?(.+)$/.exec(part);
    const want = m ? parseVersion(m[2]) : null;
    if (!m || !want) return false;
    const c = cmp(v, want);
    const op = m[1] ?? (/[x*]/.test(m[2]) || m[2].split('.').length < 3 ? '~x' : '=');
    const ok = op === '>=' ? c >= 0 : op === '<=' ? c <= 0 : op === '>' ? c > 0 : op === '<' ? c < 0 : op === '='
      ? c === 0
      : op === '^' ? c >= 0 && (want[0] > 0 ? v[0] === want[0] : want[1] > 0 ? v[0] === 0 && v[1] === want[1] : v[0] === 0 && v[1] === 0 && v[2] === want[2])
      : op === '~' ? c >= 0 && v[0] === want[0] && v[1] === want[1]
      : /* 1.2.x or 1.2 */ m[2].split('.').every((p, i) => p === 'x' || p === '*' || Number(p) === v[i]);
    if (!ok) return false;
  }
  return true;
}

/** Why the device cannot run the bundle, or null when it can. */
export function incompatibility(manifest: Manifest, state: StateReport): string | null {
  const c = manifest.compat;
  const caps = state.capabilities;
  if (c.runtimes?.length && !c.runtimes.some((r) => state.runtime.startsWith(r))) return `runtime ${state.runtime} is not one of ${c.runtimes.join(', ')}`;
  if (c.agentVersion && !satisfies(state.agentVersion, c.agentVersion)) return `agent ${state.agentVersion} is outside ${c.agentVersion}`;
  if (c.opset !== undefined && typeof caps.maxOpset === 'number' && caps.maxOpset < c.opset) return `ONNX opset ${c.opset} needed, device supports up to ${caps.maxOpset}`;
  if (c.hardware?.length) {
    const hw = Array.isArray(caps.hardware) ? caps.hardware : typeof caps.hardware === 'string' ? [caps.hardware] : [];
    if (hw.length === 0) return `bundle needs hardware ${c.hardware.join(' or ')}; the device reports none`;
    if (!c.hardware.some((h) => hw.includes(h))) return `bundle needs hardware ${c.hardware.join(' or ')}; the device has ${hw.join(', ')}`;
  }
  if (c.minMemoryMB !== undefined && typeof caps.memoryMB === 'number' && caps.memoryMB < c.minMemoryMB) return `bundle needs ${c.minMemoryMB} MB of memory, the device has ${caps.memoryMB} MB`;
  return null;
}
