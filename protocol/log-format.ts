/**
 * One shape of log line for the hub and the agent, so that one journalctl or log
 * pipeline query reads both: `{"level":"info","time":"2026-12-04T23:50:00.123Z",
 * "component":"fleetcast-agent","msg":"…","code":"AGENT_ERR_…","err":{"message",
 * "code","stack"}}`. Both processes log through pino built from `logOptions`; this
 * module only describes the options (plain data and functions) so that protocol/
 * keeps importing nothing, and the agent and hub keep one definition of the shape.
 *
 * `prettyLine` turns one such JSON line into readable text for a terminal or
 * `--log-format pretty` (pino-pretty would be a new dependency on the device for
 * one string format).
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggedError { message: string; code?: string; stack?: string }

/** Errors keep what an operator acts on (message, code) and where (stack); nothing else they may carry. */
export function serializeError(e: unknown): LoggedError | unknown {
  if (!(e instanceof Error)) return e;
  const code = (e as { code?: unknown }).code;
  return { message: e.message, ...(typeof code === 'string' ? { code } : {}), ...(e.stack ? { stack: e.stack } : {}) };
}

/** pino options (structurally typed: pino is the caller's dependency, not protocol's). */
export function logOptions(component: string, level: LogLevel) {
  return {
    level,
    // No pid/hostname: systemd's journal and container runtimes already record them per line.
    base: { component },
    messageKey: 'msg',
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: serializeError },
  };
}

const LEVEL_TAG: Record<string, string> = { fatal: 'FATAL', error: 'ERROR', warn: 'WARN ', info: 'INFO ', debug: 'DEBUG', trace: 'TRACE' };

/** `2026-12-04T23:50:00.123Z INFO  fleetcast-agent: msg code=… key=value` (one line; the stack indented below). */
export function prettyLine(jsonLine: string): string {
  let o: Record<string, unknown>;
  try { o = JSON.parse(jsonLine) as Record<string, unknown>; } catch { return jsonLine.endsWith('\n') ? jsonLine : `${jsonLine}\n`; }
  const { time, level, component, msg, err, ...rest } = o;
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  const e = err as LoggedError | undefined;
  if (e && typeof e === 'object') fields.push(`err=${JSON.stringify(`${e.code ? `${e.code}: ` : ''}${e.message}`)}`);
  const head = `${String(time)} ${LEVEL_TAG[String(level)] ?? String(level)} ${String(component ?? '')}: ${String(msg ?? '')}`;
  const stack = e && typeof e === 'object' && e.stack ? `\n    ${e.stack.split('\n').slice(1).join('\n    ').trim()}` : '';
  return `${head}${fields.length ? ` ${fields.join(' ')}` : ''}${stack}\n`;
}
