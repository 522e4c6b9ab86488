/** Agent configuration sources: JSON file < FLEETCAST_AGENT_* variables < flags, validated once with keys named. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../agent/agent.js';
import { envName, mergeAgentConfig, optionsFromEnv } from '../../agent/config.js';
import { parseAgentOptions } from '../../agent/options.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';

afterAll(() => cleanupTempDirs());

const base = { deviceId: 'd1', dataDir: '/tmp/x', rootPath: '/tmp/root.json' };

describe('agent configuration', () => {
  it('maps option keys to FLEETCAST_AGENT_* names and types the values by the schema', () => {
    expect(envName('chunkTimeoutMs')).toBe('FLEETCAST_AGENT_CHUNK_TIMEOUT_MS');
    expect(optionsFromEnv({
      FLEETCAST_AGENT_CHUNK_TIMEOUT_MS: '250', FLEETCAST_AGENT_BROKER_URL: 'none', FLEETCAST_AGENT_RUNTIME: 'wasm',
      FLEETCAST_AGENT_CAPABILITIES: '{"site":"north"}', FLEETCAST_AGENT_PROBATION_MAX_ERROR_RATE: '0.1', PATH: '/bin',
    })).toEqual({ chunkTimeoutMs: 250, brokerUrl: null, runtime: 'wasm', capabilities: { site: 'north' }, probationMaxErrorRate: 0.1 });
  });

  it('takes a boolean option from its variable (FLEETCAST_AGENT_INFERENCE_THREAD=false, as docs/agent-config.md lists it), and refuses anything but true/false', () => {
    expect(optionsFromEnv({ FLEETCAST_AGENT_INFERENCE_THREAD: 'false' })).toEqual({ inferenceThread: false });
    expect(optionsFromEnv({ FLEETCAST_AGENT_INFERENCE_THREAD: 'true' })).toEqual({ inferenceThread: true });
    expect(parseAgentOptions({ ...base, ...optionsFromEnv({ FLEETCAST_AGENT_INFERENCE_THREAD: 'false' }) }).inferenceThread).toBe(false);
    expect(() => optionsFromEnv({ FLEETCAST_AGENT_INFERENCE_THREAD: 'nope' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION', message: expect.stringMatching(/FLEETCAST_AGENT_INFERENCE_THREAD.*inferenceThread must be true or false/) }));
  });

  it('merges file < environment < flags, key by key', () => {
    const file = join(tempDir(), 'agent.json');
    writeFileSync(file, JSON.stringify({ ...base, chunkTimeoutMs: 100, heartbeatMs: 5, listen: '127.0.0.1:1' }));
    const merged = mergeAgentConfig({ file, env: { FLEETCAST_AGENT_HEARTBEAT_MS: '7', FLEETCAST_AGENT_LISTEN: '127.0.0.1:2' }, flags: { listen: '127.0.0.1:3', runtime: undefined } });
    const o = parseAgentOptions(merged);
    expect(o).toMatchObject({ chunkTimeoutMs: 100, heartbeatMs: 7, listen: '127.0.0.1:3', runtime: 'node' });
    expect(Object.isFrozen(o)).toBe(true);
  });

  it('refuses an unknown key by name, from the file, the environment or an option object', () => {
    const file = join(tempDir(), 'typo.json');
    writeFileSync(file, JSON.stringify({ ...base, probationMillis: 5 }));
    expect(() => createAgent(mergeAgentConfig({ file, env: {}, flags: {} }))).toThrow(expect.objectContaining({ code: 'PROTO_ERR_UNKNOWN_OPTION', message: expect.stringContaining('probationMillis') }));
    expect(() => optionsFromEnv({ FLEETCAST_AGENT_PROBATION_MILLIS: '5' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_UNKNOWN_OPTION', message: expect.stringContaining('FLEETCAST_AGENT_PROBATION_MILLIS') }));
  });

  it('refuses bad value types at start with the key named', () => {
    expect(() => optionsFromEnv({ FLEETCAST_AGENT_CHUNK_TIMEOUT_MS: 'soon' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION', message: expect.stringMatching(/FLEETCAST_AGENT_CHUNK_TIMEOUT_MS.*chunkTimeoutMs must be a number/) }));
    expect(() => optionsFromEnv({ FLEETCAST_AGENT_CAPABILITIES: '{not json' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    for (const [key, value] of [['maxConcurrentPredictions', '8'], ['runtime', 'gpu'], ['probationMaxErrorRate', 2], ['probationMs', -1]] as const) {
      expect(() => createAgent({ ...base, [key]: value })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION', message: expect.stringContaining(key) }));
    }
    const file = join(tempDir(), 'bad.json');
    writeFileSync(file, '[1, 2]');
    expect(() => mergeAgentConfig({ file, env: {}, flags: {} })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
  });
});

describe('agent configuration: who may call the local API', () => {
  it('takes allowedHosts and allowedOrigins as JSON arrays from variables, apiTokenFile as a path; refuses bad entries', () => {
    expect(optionsFromEnv({
      FLEETCAST_AGENT_ALLOWED_HOSTS: '["pump-0042.local"]', FLEETCAST_AGENT_ALLOWED_ORIGINS: '["http://kiosk.local:8080"]', FLEETCAST_AGENT_API_TOKEN_FILE: '/etc/fleetcast/api-token',
    })).toEqual({ allowedHosts: ['pump-0042.local'], allowedOrigins: ['http://kiosk.local:8080'], apiTokenFile: '/etc/fleetcast/api-token' });
    const o = parseAgentOptions(base);
    expect([o.allowedHosts, o.allowedOrigins, o.apiTokenFile]).toEqual([[], [], undefined]);
    expect(() => parseAgentOptions({ ...base, allowedHosts: ['evil host'] })).toThrow(expect.objectContaining({ message: expect.stringContaining('allowedHosts') }));
    expect(() => parseAgentOptions({ ...base, allowedOrigins: ['*'] })).toThrow(expect.objectContaining({ message: expect.stringContaining('allowedOrigins') }));
    expect(() => optionsFromEnv({ FLEETCAST_AGENT_ALLOWED_HOSTS: 'a.local,b.local' })).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
  });

  it('refuses to start with an unreadable or too short token file (AGENT_ERR_CONFIG), never serving unprotected', async () => {
    const dir = tempDir('fleetcast-token-');
    const short = join(dir, 'short');
    writeFileSync(short, 'abc\n');
    const { rootPath } = makeKeys();
    for (const apiTokenFile of [join(dir, 'missing'), short]) {
      const a = createAgent({ ...base, dataDir: tempDir('fleetcast-agent-data-'), rootPath, listen: '127.0.0.1:0', brokerUrl: null, apiTokenFile });
      await expect(a.start()).rejects.toMatchObject({ code: 'AGENT_ERR_CONFIG', message: expect.stringContaining(apiTokenFile) });
      expect(a.address).toBeNull();
    }
  });
});
