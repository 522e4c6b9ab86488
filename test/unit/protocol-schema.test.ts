import { describe, expect, it } from 'vitest';
import { arr, int, num, obj, optional, parse, parseOptions, str, withDefault } from '../../protocol/schema.js';
import { parseTopic, topics } from '../../protocol/topics.js';
import { decodeStateReport } from '../../protocol/messages.js';

describe('schema', () => {
  const s = obj({ a: int({ min: 0 }), b: optional(num()), c: withDefault(str(), 'x'), d: optional(arr(int())) });

  it('accepts absent optional keys and applies defaults', () => {
    expect(parse(s, { a: 1 })).toEqual({ a: 1, c: 'x' });
    expect(parse(s, { a: 1, b: 2.5, c: 'y', d: [1] })).toEqual({ a: 1, b: 2.5, c: 'y', d: [1] });
  });

  it('names every bad path, and unknown keys', () => {
    try {
      parse(s, { a: -1, b: 'no', zz: 1 });
      expect.unreachable();
    } catch (e) {
      const err = e as { code: string; message: string };
      expect(err.code).toBe('PROTO_ERR_INVALID_MESSAGE');
      expect(err.message).toMatch(/a must be ≥ 0/);
      expect(err.message).toMatch(/b expected a finite number/);
      expect(err.message).toMatch(/zz is not a known key/);
    }
  });

  it('options: unknown keys get their own code and the result is frozen', () => {
    expect(() => parseOptions(s, { a: 1, typo: 2 })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_UNKNOWN_OPTION', message: expect.stringMatching(/typo/) }));
    expect(() => parseOptions(s, { a: '1' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    const o = parseOptions(s, { a: 1, d: [2] });
    expect(Object.isFrozen(o) && Object.isFrozen(o.d)).toBe(true);
  });
});

describe('topics and messages', () => {
  it('round-trips topics and refuses foreign ones', () => {
    expect(parseTopic(topics.assign('dev-1'))).toEqual({ kind: 'assign', deviceId: 'dev-1' });
    expect(parseTopic(topics.device('dev-1', 'state'))).toEqual({ kind: 'device', deviceId: 'dev-1', channel: 'state' });
    const id = 'a'.repeat(64);
    expect(parseTopic(topics.chunk(id, 12))).toEqual({ kind: 'chunk', bundleId: id, index: 12 });
    for (const bad of ['fc/v1/dev/+/state', 'fc/v1/dev/x/other', 'other/topic', `fc/v1/bundle/${id}/chunk/01`, 'fc/v1/dev/a/b/state']) {
      expect(() => parseTopic(bad)).toThrow(expect.objectContaining({ code: 'PROTO_ERR_BAD_TOPIC' }));
    }
    expect(() => topics.assign('a/b')).toThrow(expect.objectContaining({ code: 'PROTO_ERR_BAD_TOPIC' }));
  });

  it('decodes with size limits and coded errors', () => {
    expect(() => decodeStateReport('{')).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_JSON' }));
    expect(() => decodeStateReport('x'.repeat(70_000))).toThrow(expect.objectContaining({ code: 'PROTO_ERR_MESSAGE_TOO_LARGE' }));
    expect(() => decodeStateReport('{"v":1}')).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_MESSAGE' }));
  });
});
