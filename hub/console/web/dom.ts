/**
 * Building the page from data without ever parsing data as HTML: every text
 * goes in with textContent (through `h`), so a device id or a decision reason
 * that looks like markup stays text.
 */
type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | ((e: Event) => void) | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

const SVG = 'http://www.w3.org/2000/svg';
export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export function table(head: string[], rows: Child[][], o: { caption?: string; numeric?: number[]; id?: string } = {}): HTMLTableElement {
  const num = new Set(o.numeric ?? []);
  const facts = head.every((t) => t === '');
  return h('table', o.id ? { id: o.id } : {},
    o.caption ? h('caption', {}, o.caption) : null,
    // A table of facts (label, value) has no column heads to show.
    !facts ? h('thead', {}, h('tr', {}, ...head.map((t, i) => h('th', { scope: 'col', class: num.has(i) ? 'num' : undefined }, t)))) : null,
    // In a table of facts the first cell of each row names it (a row header for screen readers).
    h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c, i) => (i === 0 && facts ? h('th', { scope: 'row' }, c) : h('td', { class: num.has(i) ? 'num' : undefined }, c)))))));
}

export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export function fixed(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

export function short(id: string, n = 12): string {
  return id.length > n ? `${id.slice(0, n)}…` : id;
}

/** A link inside the console (hash routes keep the page, its token and its state). */
export function link(route: string, text: string): HTMLAnchorElement {
  return h('a', { href: `#/${route.split('/').map(encodeURIComponent).join('/')}` }, text);
}
