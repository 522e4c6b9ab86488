/**
 * The schema validator knows a key only when the shape has it as its OWN
 * property: names every object inherits (`__proto__`, `constructor`,
 * `toString`, …) arriving in a JSON.parse'd message are unknown keys, refused
 * and named like any other, for every object-shaped schema protocol/ exports.
 */
import { describe, expect, it } from 'vitest';
import * as control from '../../protocol/control.js';
import * as ddsketch from '../../protocol/ddsketch.js';
import * as envelope from '../../protocol/envelope.js';
import * as featureSummary from '../../protocol/feature-summary.js';
import * as manifest from '../../protocol/manifest.js';
import * as messages from '../../protocol/messages.js';
import { parse, type Issue, type Schema } from '../../protocol/schema.js';
import * as telemetry from '../../protocol/telemetry.js';
import * as trust from '../../protocol/trust-messages.js';
import { stateReport } from '../helpers/hub-fixtures.js';

const INHERITED = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'];

/** Every exported schema whose JSON Schema is an object with named properties. */
const objectSchemas = Object.entries({ ...control, ...ddsketch, ...envelope, ...featureSummary, ...manifest, ...messages, ...telemetry, ...trust })
  .filter(([, v]) => typeof (v as Schema<unknown>)?.check === 'function' && (v as Schema<unknown>).json?.type === 'object' && (v as Schema<unknown>).json?.properties)
  .map(([name, v]) => [name, v as Schema<unknown>] as const);

describe('inherited names are unknown keys', () => {
  it('finds the message schemas', () => {
    const names = objectSchemas.map(([n]) => n);
    for (const n of ['stateReportSchema', 'deviceEventSchema', 'chunkRequestSchema', 'assignMessageSchema', 'telemetryReportSchema', 'proofRequestSchema', 'controlMessageSchema', 'manifestSchema', 'envelopeSchema']) expect(names).toContain(n);
  });

  for (const [name, schema] of objectSchemas) {
    it(`Inherited_key_refused: ${name}`, () => {
      for (const key of INHERITED) {
        const value = JSON.parse(`{${JSON.stringify(key)}:{"polluted":true}}`);
        expect(Object.hasOwn(value, key)).toBe(true);
        const issues: Issue[] = [];
        expect(schema.check(value, '', issues)).toBeUndefined();
        expect(issues, `${name} with ${key}`).toContainEqual(expect.objectContaining({ path: key, kind: 'unknown' }));
      }
    });
  }

  it('a valid state report with a __proto__ key is refused with PROTO_ERR_INVALID_MESSAGE naming it; without it, decoded', () => {
    const good = JSON.stringify(stateReport('dev-1'));
    expect(messages.decodeStateReport(good).deviceId).toBe('dev-1');
    const bad = `${good.slice(0, -1)},"__proto__":{"isAdmin":true}}`;
    expect(() => messages.decodeStateReport(bad)).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_MESSAGE', message: expect.stringContaining('__proto__ is not a known key') }));
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  it('nested: a checkpoint message whose proof carries "constructor" is refused at that path', () => {
    const msg = JSON.parse('{"v":1,"checkpoint":"x","proof":{"from":1,"hashes":[],"constructor":{"prototype":{"x":1}}}}');
    expect(() => parse(trust.checkpointMessageSchema, msg)).toThrow(expect.objectContaining({ message: expect.stringContaining('proof.constructor is not a known key') }));
    expect(parse(trust.checkpointMessageSchema, JSON.parse('{"v":1,"checkpoint":"x","proof":{"from":1,"hashes":[]}}'))).toEqual({ v: 1, checkpoint: 'x', proof: { from: 1, hashes: [] } });
  });

  it('an inherited name is never read as a value: a missing required key stays missing', () => {
    const issues: Issue[] = [];
    // `constructor` is not in the shape; a required key is not found on Object.prototype either.
    expect(messages.chunkRequestSchema.check(Object.create({ v: 1, deviceId: 'dev-1', bundleId: 'a'.repeat(64), chunks: [0] }), '', issues)).toBeUndefined();
    expect(issues.map((i) => i.path)).toEqual(expect.arrayContaining(['v', 'deviceId', 'bundleId', 'chunks']));
  });
});
