import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { envName, optionsFromEnv } from '../../agent/config.js';
import { agentOptionsSchema } from '../../agent/options.js';
import { hubOptionsSchema } from '../../hub/options.js';
import { AGENT_SECTIONS, renderAgentConfigDoc, renderHubConfigDoc, renderSection, schemaComments } from '../../tools/config-doc.js';

describe('configuration reference', () => {
  it('docs/agent-config.md is generated from the agent options schema (run `npm run docs:config`)', () => {
    expect(readFileSync(new URL('../../docs/agent-config.md', import.meta.url), 'utf8')).toBe(renderAgentConfigDoc());
  });

  it('docs/hub-config.md is generated from the hub options schema (run `npm run docs:config`)', () => {
    expect(readFileSync(new URL('../../docs/hub-config.md', import.meta.url), 'utf8')).toBe(renderHubConfigDoc());
  });

  it('lists every agent and hub key with its type, default, range and (agent) a variable the agent really reads', () => {
    const agent = renderAgentConfigDoc();
    for (const key of Object.keys(agentOptionsSchema.shape)) {
      const row = agent.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
      expect(row, key).toBeDefined();
      expect(row).toContain(`\`${envName(key)}\``);
    }
    // The variable named in the reference is the one the agent accepts.
    expect(optionsFromEnv({ [envName('chunkTimeoutMs')]: '250' })).toEqual({ chunkTimeoutMs: 250 });
    expect(agent).toMatch(/\| `chunkTimeoutMs` \| integer \| `5000` \| 10 … 3_600_000 \| `FLEETCAST_AGENT_CHUNK_TIMEOUT_MS` \| No new chunk for this long/);
    expect(agent).toMatch(/\| `runtime` \| string \| `"node"` \| `node`, `wasm` \|/);
    expect(agent).toMatch(/\| `deviceId` \| string \| \*\*required\*\* \|/);
    expect(agent).toMatch(/\| `telemetry\.sampleRate` \| number \| `0.1` \| 0 … 1 \|/);
    const hub = renderHubConfigDoc();
    for (const key of Object.keys(hubOptionsSchema.shape)) expect(hub, key).toContain(`| \`${key}\` |`);
  });

  it('a key without a doc comment is refused by the generator, naming it', () => {
    const comments = schemaComments('agent/options.ts', 'agentOptionsSchema');
    expect(comments.get('chunkTimeoutMs')).toBe('No new chunk for this long → ask again for the missing ones (then back off).');
    const undocumented = { ...AGENT_SECTIONS[0], schema: { json: {}, shape: { ...agentOptionsSchema.shape, notAKeyInTheSource: { json: { type: 'string' } } } } };
    expect(() => renderSection(undocumented)).toThrow(/option notAKeyInTheSource has no \/\*\* doc comment/);
  });
});
