/** Statements prepared once per module and text, for queries a hot path asks again and again. */
import type { Db, Stmt } from './db.js';

export function statementCache(db: Db): (sql: string) => Stmt {
  const cache = new Map<string, Stmt>();
  return (sql) => {
    let st = cache.get(sql);
    if (!st) { st = db.prepare(sql); cache.set(sql, st); }
    return st;
  };
}
