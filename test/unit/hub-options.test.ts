import { describe, expect, it } from 'vitest';
import { parseHubOptions } from '../../hub/options.js';

describe('hub options', () => {
  it('applies defaults, freezes, and refuses unknown or mistyped keys by name', () => {
    const o = parseHubOptions({ dataDir: '/d', keysDir: '/k' });
    expect(o).toMatchObject({ host: '127.0.0.1', mqttPort: 1883, httpPort: 8080, assignmentTtlMs: 86_400_000, chunkQuietMs: 30, chunkMaxWaitMs: 300 });
    expect(o.brokerUrl).toBeUndefined();
    expect(Object.isFrozen(o)).toBe(true);
    expect(() => parseHubOptions({ dataDir: '/d', keysDir: '/k', mqtPort: 1 })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_UNKNOWN_OPTION', message: expect.stringContaining('mqtPort') }));
    expect(() => parseHubOptions({ dataDir: '/d', keysDir: '/k', httpPort: 70_000 })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION', message: expect.stringContaining('httpPort') }));
    expect(() => parseHubOptions({ dataDir: '/d', keysDir: '/k', brokerUrl: 'http://x' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    expect(() => parseHubOptions({ keysDir: '/k' })).toThrow(expect.objectContaining({ message: expect.stringContaining('dataDir') }));
  });
});
