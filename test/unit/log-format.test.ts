import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { agentError } from '../../agent/errors.js';
import { logOptions, prettyLine } from '../../protocol/log-format.js';

/** One record through pino built exactly as the hub (hub/hub.ts, cli/commands/hub.ts) and the agent CLI build it. */
function record(component: string, obj: object, msg: string): { line: string; parsed: Record<string, unknown> } {
  let line = '';
  const log = pino(logOptions(component, 'info'), { write: (s: string) => { line += s; } });
  log.warn(obj, msg);
  return { line, parsed: JSON.parse(line) as Record<string, unknown> };
}

describe('log line shape (protocol/log-format.ts)', () => {
  it('hub and agent write the same keys: level label, ISO time, component, msg, code, err{message,code,stack}', () => {
    const err = agentError('AGENT_ERR_LISTEN', '127.0.0.1:9090: EADDRINUSE');
    const hub = record('fleetcast-hub', { code: err.code, err }, 'listen failed').parsed;
    const agent = record('fleetcast-agent', { code: err.code, err }, 'listen failed').parsed;
    expect(Object.keys(hub)).toEqual(Object.keys(agent));
    expect(Object.keys(agent)).toEqual(['level', 'time', 'component', 'code', 'err', 'msg']);
    expect(agent).toMatchObject({ level: 'warn', component: 'fleetcast-agent', code: 'AGENT_ERR_LISTEN', msg: 'listen failed' });
    expect(new Date(agent.time as string).toISOString()).toBe(agent.time);
    expect(Object.keys(agent.err as object)).toEqual(['message', 'code', 'stack']);
    expect(agent.err).toMatchObject({ code: 'AGENT_ERR_LISTEN', message: expect.stringContaining('EADDRINUSE') });
  });

  it('pretty: one line with time, level, component and message, fields after it, the stack indented below', () => {
    const { line } = record('fleetcast-agent', { bundleId: 'abc', err: new Error('boom') }, 'model failed');
    const text = prettyLine(line);
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN  fleetcast-agent: model failed bundleId=abc err="boom"\n {4}at /);
    expect(prettyLine('not json')).toBe('not json\n');
  });
});
