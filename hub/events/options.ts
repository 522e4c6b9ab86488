/**
 * Options for device events (the `events` key of the hub options): how fast one
 * device may report events, how long they are kept, and how installs are batched
 * into the transparency log. Defaults here and nowhere else.
 */
import { int, obj, parse, withDefault, type Infer } from '@fleetcast/protocol/schema.js';

const ms = (def: number, min = 1) => withDefault(int({ min, max: 10 * 365 * 86_400_000 }), def);

export const eventOptionsSchema = obj({
  /**
   * Token bucket per device: at most `burst` events at once, refilled at `perMinute`. An install emits a
   * handful of events; a device past this is flooding, and its excess is dropped and counted
   * (HUB_ERR_EVENT_RATE), never stored.
   */
  perMinute: withDefault(int({ min: 1, max: 1_000_000 }), 60),
  /** Token bucket size: events one device may send at once (refilled at perMinute). */
  burst: withDefault(int({ min: 1, max: 1_000_000 }), 60),
  /** Events older than this are deleted (the newest of each device is kept: replay protection reads it). */
  retentionMs: ms(90 * 86_400_000),
  /** At most this many events are kept per device (newest first). */
  maxPerDevice: withDefault(int({ min: 1, max: 1_000_000 }), 1_000),
  /** Installs are appended to the transparency log in one leaf at least this often… */
  logIntervalMs: ms(2_000, 10),
  /** …or as soon as this many are waiting (also the most one leaf holds). */
  maxInstallsPerLeaf: withDefault(int({ min: 1, max: 10_000 }), 1_000),
  /** How often retention runs. */
  pruneIntervalMs: ms(3_600_000, 10),
});

export type EventOptions = Readonly<Required<Infer<typeof eventOptionsSchema>>>;
export const EVENT_DEFAULTS = Object.freeze(parse(eventOptionsSchema, {})) as EventOptions;
