/**
 * Audit: the transparency log's latest entries and signed checkpoints, and for
 * any entry a button that checks its inclusion proof against the checkpoint's
 * root hash here, in the browser (merkle.ts), from the entry's own bytes.
 * The checkpoint's Ed25519 signature is checked by `fleetcast audit verify`
 * with the log keys, not here.
 */
import { api, qs } from './api.js';
import { fill, h, table, time } from './dom.js';
import { checkpointRoot, equal, fromBase64, leafHash, rootFromInclusionProof } from './merkle.js';

interface Checkpoint { size: number; checkpoint: string; createdAt: number }
const SHOWN = 20;

/** A leaf's bytes as text when they are text (JSON entries), else their length. */
function preview(data: Uint8Array): string {
  try {
    const t = new TextDecoder('utf-8', { fatal: true }).decode(data);
    return t.length > 120 ? `${t.slice(0, 120)}…` : t;
  } catch { return `${data.length} bytes`; }
}

export function auditPage(root: HTMLElement) {
  const head = h('div', { id: 'checkpoint' });
  const entries = h('div', { id: 'entries' });
  const cps = h('div', { id: 'checkpoints' });
  fill(root, h('h1', {}, 'Audit'), head, h('h2', {}, `Latest log entries`), entries, h('h2', {}, 'Checkpoints'), cps);
  let shownSize = -1;

  const verify = async (index: number, data: Uint8Array, cp: Checkpoint, out: HTMLElement) => {
    out.textContent = 'checking…';
    try {
      const { size, root } = checkpointRoot(cp.checkpoint);
      const p = await api.get<{ leafHash: string; proof: string[] }>(`/v1/log/proof/inclusion${qs({ index, size })}`);
      const leaf = await leafHash(data);
      if (!equal(leaf, fromBase64(p.leafHash))) throw new Error('the entry\'s bytes do not hash to the leaf the hub proves');
      const got = await rootFromInclusionProof(index, size, leaf, p.proof.map(fromBase64));
      if (!equal(got, root)) throw new Error('the proof leads to another root than the checkpoint\'s');
      out.textContent = `included: ${p.proof.length} hashes lead to the root of checkpoint ${size}`;
      out.className = 'ok verified';
    } catch (e) {
      out.textContent = `NOT verified: ${(e as Error).message}`;
      out.className = 'bad';
    }
  };

  return async () => {
    const cp = await api.get<Checkpoint>('/v1/log/checkpoint');
    fill(head, table(['', ''], [['Tree size', String(cp.size)], ['Signed', time(cp.createdAt)], ['Checkpoint', h('pre', { class: 'mono' }, cp.checkpoint)]], { id: 'checkpoint-facts' }));
    // The entry rows hold verification results: rebuilt only when the log grew.
    if (cp.size !== shownSize) {
      shownSize = cp.size;
      const start = Math.max(0, cp.size - SHOWN);
      const r = await api.get<{ entries: { index: number; data: string }[] }>(`/v1/log/entries${qs({ start, end: cp.size })}`);
      fill(entries, table(['Index', 'Entry', 'Inclusion proof', 'Result'], [...r.entries].reverse().map((e) => {
        const data = fromBase64(e.data);
        const out = h('span', { class: 'muted', id: `proof-${e.index}` });
        return [String(e.index), h('code', {}, preview(data)), h('button', { type: 'button', id: `verify-${e.index}`, 'aria-label': `Check the inclusion proof of entry ${e.index}`, onclick: () => void verify(e.index, data, cp, out) }, 'Check'), out];
      }), { id: 'entry-table', numeric: [0] }));
    }
    const list = await api.get<{ checkpoints: Checkpoint[] }>(`/v1/log/checkpoints${qs({ from: Math.max(0, cp.size - 200) })}`);
    fill(cps, table(['Size', 'Signed'], [...list.checkpoints].reverse().slice(0, 10).map((c) => [String(c.size), time(c.createdAt)]), { numeric: [0] }));
  };
}
