/**
 * Where the agent's options come from, in increasing precedence: a JSON config
 * file, FLEETCAST_AGENT_* environment variables (systemd's Environment= and
 * EnvironmentFile=), then command-line flags. The merged object is validated
 * once by agentOptionsSchema (unknown keys refused and named, defaults in one
 * place, frozen) when the agent is created. Here only the sources are read:
 * an unknown FLEETCAST_AGENT_* variable is refused by name, and a value that
 * cannot be what its key needs (text for a number) is refused with the
 * variable named, before the schema sees it.
 */
import { readFileSync } from 'node:fs';
import { FleetcastError, isFleetcastError } from '@fleetcast/protocol/errors.js';
import { agentOptionsSchema } from './options.js';

export const ENV_PREFIX = 'FLEETCAST_AGENT_';

/** chunkTimeoutMs → FLEETCAST_AGENT_CHUNK_TIMEOUT_MS */
export function envName(key: string): string {
  return ENV_PREFIX + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

type Kind = 'number' | 'boolean' | 'string' | 'object';

function kindOf(json: Record<string, unknown>): { kind: Kind; nullable: boolean } {
  const any = json.anyOf as Record<string, unknown>[] | undefined;
  if (any) {
    const inner = any.find((j) => j.type !== 'null') ?? {};
    return { kind: kindOf(inner).kind, nullable: any.some((j) => j.type === 'null') };
  }
  const t = json.type;
  return { kind: t === 'integer' || t === 'number' ? 'number' : t === 'boolean' ? 'boolean' : t === 'object' || t === 'array' ? 'object' : 'string', nullable: false };
}

const usageError = (code: string, message: string) => new FleetcastError(code, message, 2);

export function readConfigFile(path: string): Record<string, unknown> {
  let v: unknown;
  try { v = JSON.parse(readFileSync(path, 'utf8')); } catch (e) {
    throw usageError('PROTO_ERR_INVALID_OPTION', `--config ${path}: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw usageError('PROTO_ERR_INVALID_OPTION', `--config ${path} must hold a JSON object of agent options`);
  return v as Record<string, unknown>;
}

/** The FLEETCAST_AGENT_* variables as option values, typed by the options schema. */
export function optionsFromEnv(env: Readonly<Record<string, string | undefined>>): Record<string, unknown> {
  const shape = agentOptionsSchema.shape as Record<string, { json: Record<string, unknown> }>;
  const byEnv = new Map(Object.keys(shape).map((k) => [envName(k), k]));
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined) continue;
    const key = byEnv.get(name);
    if (!key) throw usageError('PROTO_ERR_UNKNOWN_OPTION', `environment variable ${name} is not an agent option (known: ${[...byEnv.keys()].slice(0, 6).join(', ')}, …)`);
    const { kind, nullable } = kindOf(shape[key].json);
    if (nullable && (raw === 'null' || raw === 'none')) { out[key] = null; continue; }
    if (kind === 'number') {
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      if (!Number.isFinite(n)) throw usageError('PROTO_ERR_INVALID_OPTION', `${name}=${JSON.stringify(raw.slice(0, 50))}: ${key} must be a number`);
      out[key] = n;
    } else if (kind === 'boolean') {
      if (raw !== 'true' && raw !== 'false') throw usageError('PROTO_ERR_INVALID_OPTION', `${name}=${JSON.stringify(raw.slice(0, 50))}: ${key} must be true or false`);
      out[key] = raw === 'true';
    } else if (kind === 'object') {
      try { out[key] = JSON.parse(raw); } catch {
        throw usageError('PROTO_ERR_INVALID_OPTION', `${name}: ${key} must be JSON (an object, or an array for a list such as allowedHosts)`);
      }
    } else {
      out[key] = raw;
    }
  }
  return out;
}

/** File, then environment, then flags: later sources win key by key. */
export function mergeAgentConfig(sources: { file?: string; env: Readonly<Record<string, string | undefined>>; flags: Record<string, unknown> }): Record<string, unknown> {
  return {
    ...(sources.file !== undefined ? readConfigFile(sources.file) : {}),
    ...optionsFromEnv(sources.env),
    ...Object.fromEntries(Object.entries(sources.flags).filter(([, v]) => v !== undefined)),
  };
}

/**
 * Codes that mean "this device is configured wrong": a bad or unknown option, a
 * root.json that is missing, unreadable or does not verify, a data folder the
 * agent cannot create or write. Restarting cannot fix them, so the daemon exits 2
 * (the systemd unit's RestartPreventExitStatus=2); anything else exits 1 and is
 * restarted.
 */
export const CONFIG_ERROR_CODES: ReadonlySet<string> = new Set(['PROTO_ERR_INVALID_OPTION', 'PROTO_ERR_UNKNOWN_OPTION', 'SIGN_ERR_BAD_ROOT', 'AGENT_ERR_DATA_DIR']);

export function isConfigError(e: unknown): e is FleetcastError {
  return isFleetcastError(e) && CONFIG_ERROR_CODES.has(e.code);
}
