import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { collectErrorTables, renderErrorsDoc } from '../../tools/errors-doc.js';

describe('error codes', () => {
  it('are unique across rooms and carry an actionable message and an HTTP status', async () => {
    const seen = new Set<string>();
    const tables = await collectErrorTables();
    expect(tables.map((t) => t.room)).toEqual(expect.arrayContaining(['protocol', 'signing']));
    for (const { room, table } of tables) {
      for (const [code, spec] of Object.entries(table)) {
        expect(seen.has(code), `${code} appears twice`).toBe(false);
        seen.add(code);
        expect(code.startsWith(`${{ protocol: 'PROTO', signing: 'SIGN', bundles: 'BUNDLE', agent: 'AGENT', hub: 'HUB', simulator: 'SIM' }[room]}_ERR_`)).toBe(true);
        expect(spec.message.length).toBeGreaterThan(20);
        expect(spec.status).toBeGreaterThanOrEqual(400);
      }
    }
  });

  it('docs/errors.md lists exactly the codes in the tables (run `npm run docs:errors`)', async () => {
    expect(readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')).toBe(await renderErrorsDoc());
  });
});
