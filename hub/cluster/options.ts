/**
 * Options of a hub that is one of several (the `cluster` key of the hub options; DESIGN.md "Scale-out").
 * Defaults here and nowhere else. A hub without them runs alone, exactly as before.
 */
import { int, obj, optional, str, withDefault, type Infer } from '@fleetcast/protocol/schema.js';

export const clusterOptionsSchema = obj({
  /**
   * postgres://USER@HOST:PORT/DB holding the leader lease; defaults to storeUrl, the PostgreSQL store every hub of
   * the cluster shares, and must be that database if given (the fenced writes read the lease in their own
   * transaction; anything else is refused, HUB_ERR_CLUSTER_CONFIG). The password comes from PGPASSWORD or
   * ~/.pgpass (node-postgres reads both), never from argv.
   */
  url: optional(str({ pattern: /^postgres(ql)?:\/\/\S+$/, max: 2048 })),
  /** MQTT 5 shared subscription group the hubs consume device channels through ($share/<group>/fc/v1/dev/+/…). */
  shareGroup: withDefault(str({ pattern: /^[A-Za-z0-9._-]{1,64}$/ }), 'fleetcast'),
  /** How long a leader's lease lasts after each renewal; a dead leader is replaced within about leaseMs + renewMs. */
  leaseMs: withDefault(int({ min: 1_000, max: 600_000 }), 5_000),
  /** How often the leader renews its lease and a follower tries to take an expired one. */
  renewMs: withDefault(int({ min: 100, max: 60_000 }), 1_000),
  /**
   * This hub's API URL as the other hubs reach it (they forward single-writer calls to the leader there).
   * Defaults to the URL the API listens on, which is right only when the hubs share a host.
   */
  advertiseUrl: optional(str({ pattern: /^https?:\/\/\S+$/, max: 2048 })),
});

export type ClusterOptions = Readonly<Required<Omit<Infer<typeof clusterOptionsSchema>, 'advertiseUrl' | 'url'>> & Pick<Infer<typeof clusterOptionsSchema>, 'advertiseUrl' | 'url'>>;
