/** Request and response shapes of the rollout routes (fastify validates; the OpenAPI document shows them). */
import { arr, bool, int, json, nullable, obj, optional, record, str, type Infer } from '@fleetcast/protocol/schema.js';

const bundleName = str({ pattern: /^[a-z0-9][a-z0-9._-]{0,63}$/ });

export const rolloutIdParams = obj({ id: str({ pattern: /^[A-Za-z0-9._-]{1,128}$/ }) });

export const startBody = obj({
  name: bundleName,
  version: int({ min: 1 }),
  /** The content of a rollout file (rings, gates, policy, window, rate, autoPromote); checked by the hub, faults are HUB_ERR_ROLLOUT_SPEC. */
  spec: optional(json()),
  autoPromote: optional(bool()),
  window: optional(str({ max: 200 })),
  /** "N/min", "N/min x2", N, or {perMinute, growth}. */
  rate: optional(json()),
  supersede: optional(bool()),
  reason: optional(str({ max: 1024 })),
  /** Let rings name device ids the hub has never seen (HUB_ERR_UNKNOWN_DEVICE otherwise). */
  allowUnknown: optional(bool()),
});
export type StartBody = Infer<typeof startBody>;

export const actionBody = obj({ reason: optional(str({ max: 1024 })) });

const ringStatus = obj({ name: str(), index: int({ min: 0 }), devices: int({ min: 0 }), counts: record(int({ min: 0 })), gates: json() });
export const rolloutStatus = obj({
  id: str(), name: str(), version: int(), bundleId: str(), state: str(), ring: str(), ringIndex: int({ min: 0 }),
  ringStartedAt: nullable(int()), awaitingPromotion: bool(), autoPromote: bool(), window: nullable(str()), onFailure: str(),
  createdAt: int(), createdBy: str(), updatedAt: int(),
  rings: arr(ringStatus),
  skipped: arr(obj({ deviceId: str(), ring: str(), reason: str() })),
});
export const rolloutList = obj({ rollouts: arr(rolloutStatus) });

export const decision = obj({
  type: str(), rolloutId: str(), seq: int({ min: 1 }), kind: str(), actor: str(), at: int(), reason: str(), ring: nullable(str()), gates: json(),
});
export const history = obj({ rolloutId: str(), decisions: arr(decision) });
