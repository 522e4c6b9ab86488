/**
 * Coded errors shared by every room. Each room keeps its own `errors.ts` with a
 * table of stable codes (`<ROOM>_ERR_<WHAT>`); codes are never reused, and
 * `docs/errors.md` lists them all (a test keeps the two in step).
 * Devices report codes, not prose.
 */

export interface ErrorSpec {
  /** What went wrong and what to do about it, for a person. */
  readonly message: string;
  /** HTTP status to answer with, where the error reaches an HTTP client. */
  readonly status: number;
}

export type ErrorTable = Readonly<Record<string, ErrorSpec>>;

export class FleetcastError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, status = 500, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'FleetcastError';
    this.code = code;
    this.status = status;
    this.details = details;
  }

  toJSON(): { code: string; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: { ...this.details } };
  }
}

/**
 * Build a typed factory for one room's table: `fail('AGENT_ERR_X', 'extra words', {input})`.
 * The table's message comes first; `detail` says what exactly was wrong this time.
 */
export function errorFactory<T extends ErrorTable>(table: T) {
  return function makeError(code: keyof T & string, detail?: string, details: Record<string, unknown> = {}): FleetcastError {
    const spec = table[code];
    const message = detail ? `${spec.message} (${detail})` : spec.message;
    return new FleetcastError(code, message, spec.status, details);
  };
}

export function isFleetcastError(e: unknown): e is FleetcastError {
  return e instanceof FleetcastError || (typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' && (e as { name?: unknown }).name === 'FleetcastError');
}

/** The code of any thrown value, for reports: unknown errors become PROTO_ERR_INTERNAL. */
export function errorCode(e: unknown): string {
  return isFleetcastError(e) ? e.code : 'PROTO_ERR_INTERNAL';
}

export const PROTOCOL_ERRORS = {
  PROTO_ERR_INTERNAL: { message: 'An unexpected internal error happened; the log has the stack trace. Please report it', status: 500 },
  PROTO_ERR_INVALID_MESSAGE: { message: 'A message did not match its schema; fix the sender so it sends the documented shape', status: 400 },
  PROTO_ERR_INVALID_JSON: { message: 'A message was not valid JSON; send UTF-8 JSON', status: 400 },
  PROTO_ERR_MESSAGE_TOO_LARGE: { message: 'A message was larger than the limit for its type; send less or raise the limit', status: 413 },
  PROTO_ERR_BAD_TOPIC: { message: 'A topic did not match any fleetcast topic; check the topic layout in protocol/topics.ts', status: 400 },
  PROTO_ERR_UNKNOWN_OPTION: { message: 'An option is not known; remove it or check its spelling', status: 400 },
  PROTO_ERR_INVALID_OPTION: { message: 'An option has the wrong type or value; see the documented options', status: 400 },
  PROTO_ERR_SECRET_IN_ARGV: { message: 'A secret was given as a command-line flag, where any local user can read it (ps, /proc/PID/cmdline) and shell history keeps it; nothing was started or sent. Pass it in a file (mode 0600) or in the environment variable the usage names', status: 400 },
} as const satisfies ErrorTable;

export const protocolError = errorFactory(PROTOCOL_ERRORS);
