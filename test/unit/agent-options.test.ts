import { describe, expect, it } from 'vitest';
import { parseAgentOptions } from '../../agent/options.js';

const base = { deviceId: 'dev-1', dataDir: '/tmp/x', rootPath: '/tmp/root.json' };

describe('agent options', () => {
  it('applies defaults in one place and freezes the result', () => {
    const o = parseAgentOptions(base);
    expect(o).toMatchObject({ brokerUrl: null, listen: null, maxBodyBytes: 1024 * 1024, maxBatch: 1024, chunkTimeoutMs: 5000, maxFetchAttempts: 8, capabilities: {} });
    expect(Object.isFrozen(o)).toBe(true);
    expect(Object.isFrozen(o.capabilities)).toBe(true);
    expect(parseAgentOptions({ ...base, listen: '127.0.0.1:9090', capabilities: { gpu: false } }).listen).toBe('127.0.0.1:9090');
  });

  it('refuses unknown keys by name and bad values with a coded error', () => {
    expect(() => parseAgentOptions({ ...base, heartbeatMillis: 5 })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_UNKNOWN_OPTION', message: expect.stringContaining('heartbeatMillis') }));
    expect(() => parseAgentOptions({ ...base, deviceId: 'a/b' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION', message: expect.stringContaining('deviceId') }));
    expect(() => parseAgentOptions({ ...base, listen: 'localhost' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    expect(() => parseAgentOptions({ ...base, maxBodyBytes: -1 })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    expect(() => parseAgentOptions({ deviceId: 'd' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION', message: expect.stringContaining('dataDir') }));
  });
});
