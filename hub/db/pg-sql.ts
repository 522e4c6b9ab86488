/**
 * SQLite's dialect, as the hub's store code writes it, turned into PostgreSQL's: the store keeps one
 * text per statement and the PostgreSQL Db rewrites it once, at prepare. Only what the hub uses is
 * handled; each rule names the SQLite form and the PostgreSQL one:
 *
 * - `?` and `@name` parameters → `$1…$n` (names map to numbers in order of first use);
 * - `INSERT OR IGNORE` → `ON CONFLICT DO NOTHING`; `INSERT OR REPLACE` → `ON CONFLICT (primary key)
 *   DO UPDATE SET` every other column (the key comes from the catalog: `primaryKey`);
 * - two-argument `max(a, b)` / `min(a, b)` (SQLite's scalar forms) → GREATEST / LEAST;
 * - `json_extract(x, '$.a.b')` → `x::jsonb #> '{a,b}'` (a JSON value, which node-postgres parses, so
 *   numbers stay numbers as in SQLite), or `#>>` (text) where it is compared, tested with IS (a JSON
 *   null is SQL NULL in SQLite, and in `#>>`, but not in `#>`) or joined with `||` (jsonb || '@' would
 *   parse '@' as JSON);
 * - `instr(haystack, needle)` → `strpos(haystack, needle)`;
 * - `AS camelCase` → `AS "camelCase"` (PostgreSQL folds unquoted names to lower case);
 * - `PRAGMA table_info(t)` → the column names from information_schema;
 * - DDL: INTEGER → BIGINT (rows hold millisecond times and counters), INTEGER PRIMARY KEY AUTOINCREMENT
 *   → an identity column, REAL → DOUBLE PRECISION, BLOB → BYTEA, no WITHOUT ROWID.
 */

export interface PgStatement { text: string; names: string[] | null; count: number }

/** Split into code and quoted parts ('…', "…", -- comments), so rewrites touch code only. */
function parts(sql: string): { code: boolean; s: string }[] {
  const out: { code: boolean; s: string }[] = [];
  let i = 0;
  let start = 0;
  const push = (end: number, code: boolean) => { if (end > start) out.push({ code, s: sql.slice(start, end) }); start = end; };
  while (i < sql.length) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      push(i, true);
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) break;
        if (sql[j] === c) { if (sql[j + 1] === c) { j += 2; continue; } break; }
        j++;
      }
      i = j + 1;
      push(Math.min(i, sql.length), false);
    } else if (c === '-' && sql[i + 1] === '-') {
      push(i, true);
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl;
      push(i, false);
    } else i++;
  }
  push(sql.length, true);
  return out;
}

function params(sql: string): PgStatement {
  const names: string[] = [];
  let positional = 0;
  const text = parts(sql).map((p) => !p.code ? p.s : p.s.replace(/\?|@([A-Za-z_][A-Za-z0-9_]*)/g, (m, name: string | undefined) => {
    if (name === undefined) return `$${++positional}`;
    let k = names.indexOf(name);
    if (k < 0) k = names.push(name) - 1;
    return `$${k + 1}`;
  })).join('');
  if (positional > 0 && names.length > 0) throw new Error('a statement mixes ? and @name parameters');
  return { text, names: names.length ? names : null, count: names.length || positional };
}

/** Index of the parenthesis closing the one at `open`, or -1. */
function closing(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return i;
  }
  return -1;
}

function topLevelComma(s: string): boolean {
  let depth = 0;
  for (const c of s) {
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) return true;
  }
  return false;
}

function scalarMinMax(code: string): string {
  return code.replace(/\b(max|min)\s*\(/gi, (m, fn: string, offset: number, whole: string) => {
    const open = offset + m.length - 1;
    const end = closing(whole, open);
    if (end < 0 || !topLevelComma(whole.slice(open + 1, end))) return m;
    return `${fn.toLowerCase() === 'max' ? 'GREATEST' : 'LEAST'}(`;
  });
}

function jsonExtract(sql: string): string {
  // The path is a string literal, so this runs over the whole text; the JSON source never holds quotes here.
  return sql.replace(/json_extract\(\s*([A-Za-z_][A-Za-z0-9_.]*)\s*,\s*'\$\.([A-Za-z0-9_.[\]]+)'\s*\)(\s*(?:=|<>|!=|<=|>=|<|>|\bIN\b|\bLIKE\b|\bIS\b|\|\|))?/gi,
    (_m, src: string, path: string, cmp: string | undefined, offset: number, whole: string) => {
      const keys = path.replace(/\[(\d+)\]/g, '.$1').split('.').filter(Boolean).join(',');
      const text = cmp !== undefined || /\|\|\s*$/.test(whole.slice(0, offset));
      return `(${src}::jsonb ${text ? '#>>' : '#>'} '{${keys}}')${cmp ?? ''}`;
    });
}

const KEYWORDS = new Set(['excluded', 'null', 'case', 'when', 'then', 'else', 'end', 'and', 'or', 'not', 'is', 'true', 'false', 'in', 'coalesce', 'greatest', 'least']);

/**
 * In an upsert's `DO UPDATE SET col = expr`, SQLite reads a bare column in `expr` as the stored row's;
 * PostgreSQL calls it ambiguous (stored row or EXCLUDED?). Qualify it with the table's name.
 */
function qualifyUpsert(code: string): string {
  const m = /^\s*INSERT\s+INTO\s+([A-Za-z_][A-Za-z0-9_]*)/i.exec(code);
  const at = code.search(/\bDO\s+UPDATE\s+SET\b/i);
  if (!m || at < 0) return code;
  const table = m[1];
  const setStart = at + /\bDO\s+UPDATE\s+SET\b/i.exec(code.slice(at))![0].length;
  const tail = code.slice(setStart);
  const stop = tail.search(/\b(RETURNING|WHERE)\b/i);
  const set = stop < 0 ? tail : tail.slice(0, stop);
  const after = stop < 0 ? '' : tail.slice(stop);
  const qualified = set.replace(/(=\s*)([^,]+?)(?=,|$)/gs, (_all, eq: string, expr: string) =>
    eq + expr.replace(/(?<![.$\w])([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*[.(])/g, (w: string) => (KEYWORDS.has(w.toLowerCase()) ? w : `${table}.${w}`)));
  return code.slice(0, setStart) + qualified + after;
}

function instr(code: string): string {
  return code.replace(/\binstr\s*\(/gi, 'strpos(');
}

function quoteCamelAliases(code: string): string {
  return code.replace(/\bAS\s+([a-z_][a-z0-9_]*[A-Z][A-Za-z0-9_]*)\b/g, 'AS "$1"');
}

function ddl(code: string): string {
  return code
    .replace(/\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b/gi, 'BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY')
    .replace(/\bINTEGER\b/gi, 'BIGINT')
    .replace(/\bREAL\b/gi, 'DOUBLE PRECISION')
    .replace(/\bBLOB\b/gi, 'BYTEA')
    .replace(/\)\s*WITHOUT\s+ROWID/gi, ')');
}

/** The statement in PostgreSQL's dialect; `primaryKey(table)` is asked only for INSERT OR REPLACE. */
export function toPostgres(sql: string, primaryKey: (table: string) => string[]): PgStatement {
  const pragma = /^\s*PRAGMA\s+table_info\(\s*"?([A-Za-z_][A-Za-z0-9_]*)"?\s*\)\s*;?\s*$/i.exec(sql);
  if (pragma) {
    return { text: `SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '${pragma[1].toLowerCase()}' ORDER BY ordinal_position`, names: null, count: 0 };
  }
  const st = params(sql);
  let text = jsonExtract(st.text);
  text = parts(text).map((p) => (p.code ? quoteCamelAliases(instr(scalarMinMax(isDdl(sql) ? ddl(p.s) : p.s))) : p.s)).join('');
  text = qualifyUpsert(text);
  const ignore = /^\s*INSERT\s+OR\s+IGNORE\s+INTO\b/i;
  const replace = /^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^)]*)\)/i;
  if (ignore.test(text)) {
    text = `${text.replace(ignore, 'INSERT INTO').replace(/;\s*$/, '')} ON CONFLICT DO NOTHING`;
  } else {
    const m = replace.exec(text);
    if (m) {
      const key = primaryKey(m[1]);
      const cols = m[2].split(',').map((c) => c.trim());
      const rest = cols.filter((c) => !key.includes(c));
      const action = rest.length ? `DO UPDATE SET ${rest.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}` : 'DO NOTHING';
      text = `${text.replace(/^\s*INSERT\s+OR\s+REPLACE\s+INTO/i, 'INSERT INTO').replace(/;\s*$/, '')} ON CONFLICT (${key.join(', ')}) ${action}`;
    }
  }
  return { ...st, text };
}

function isDdl(sql: string): boolean {
  return /^\s*(CREATE|ALTER)\b/im.test(sql);
}

/** A script of DDL/DML without parameters (exec), in PostgreSQL's dialect. */
export function scriptToPostgres(sql: string): string {
  return parts(sql).map((p) => (p.code ? scalarMinMax(ddl(p.s)) : p.s)).join('');
}
