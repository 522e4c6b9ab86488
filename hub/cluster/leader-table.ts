/**
 * The leader lease's table (hub/cluster/leader.ts), in one place for its two creators: a step of the store's
 * migration chain on PostgreSQL (hub/store-schema.ts), so that schema_version describes every table a cluster
 * needs, and the lease itself at start, which may reach its database before any hub's store has migrated it
 * (or a database no store migrates: cluster.url). Both take LEADER_TABLE_LOCK first: two CREATE TABLE IF NOT
 * EXISTS at once can both pass the check and one then fails on a unique violation in pg_type.
 */

/** Any fixed number: the advisory lock both creators of hub_leader hold while they create it. */
export const LEADER_TABLE_LOCK = 7046011;

/** One row (id = 1): the lease, its fencing epoch, holder, advertised URL and expiry in the database's clock. */
export const LEADER_TABLE_SQL = `CREATE TABLE IF NOT EXISTS hub_leader (
  id smallint PRIMARY KEY CHECK (id = 1),
  epoch bigint NOT NULL,
  holder text NOT NULL,
  url text,
  expires_at timestamptz NOT NULL
)`;
