/** Published bundles (the bundles table): immutable once stored, so their parsed records are cached. */
import { parseEnvelope, type Envelope } from '@fleetcast/protocol/envelope.js';
import { chunkCount, parseManifest, type Manifest } from '@fleetcast/protocol/manifest.js';
import { hubError } from '../errors.js';
import type { BundleRecord } from '../store.js';
import type { BundleRow } from '../store-schema.js';
import { StoreTable } from './store-table.js';

export class BundleTable extends StoreTable {
  private readonly bundleCache = new Map<string, BundleRecord>();

  /**
   * Record a verified bundle whose blob is already in place. Same id → already
   * there (idempotent); same name@version with another id → HUB_ERR_DUPLICATE_VERSION.
   */
  insertBundle(b: { id: string; envelope: Envelope; manifest: Manifest; createdAt: number }): { created: boolean; bundle: BundleRecord } {
    const run = this.db.transaction(() => {
      const same = this.getBundle(b.id);
      if (same) return { created: false, bundle: same };
      this.assertVersionFree(b.manifest.name, b.manifest.version, b.id);
      this.db.prepare(`INSERT INTO bundles (id, name, version, envelope, compressed_length, raw_length, chunk_size, chunk_count, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
        b.id, b.manifest.name, b.manifest.version, JSON.stringify(b.envelope), b.manifest.payload.compressedLength,
        b.manifest.payload.rawLength, b.manifest.payload.chunkSize, chunkCount(b.manifest), b.createdAt);
      return { created: true, bundle: this.getBundle(b.id)! };
    });
    return this.guard('cannot record bundle', () => run());
  }

  /** Throws HUB_ERR_DUPLICATE_VERSION when name@version belongs to a bundle other than `id`. */
  assertVersionFree(name: string, version: number, id: string): void {
    const other = this.getBundleByVersion(name, version);
    if (other && other.id !== id) {
      throw hubError('HUB_ERR_DUPLICATE_VERSION', `${name}@${version} is bundle ${other.id.slice(0, 16)}…, this upload is ${id.slice(0, 16)}…`, { bundleId: other.id });
    }
  }

  getBundle(id: string): BundleRecord | undefined {
    const hit = this.bundleCache.get(id);
    if (hit) return hit;
    const row = this.guard('cannot read bundles', () => this.db.prepare('SELECT * FROM bundles WHERE id = ?').get(id) as BundleRow | undefined);
    return row ? this.bundleFromRow(row) : undefined;
  }

  getBundleByVersion(name: string, version: number): BundleRecord | undefined {
    const row = this.guard('cannot read bundles', () => this.db.prepare('SELECT * FROM bundles WHERE name = ? AND version = ?').get(name, version) as BundleRow | undefined);
    return row ? this.bundleFromRow(row) : undefined;
  }

  listBundles(): BundleRecord[] {
    const rows = this.guard('cannot read bundles', () => this.db.prepare('SELECT * FROM bundles ORDER BY name, version').all() as BundleRow[]);
    return rows.map((r) => this.bundleFromRow(r));
  }

  private bundleFromRow(r: BundleRow): BundleRecord {
    const hit = this.bundleCache.get(r.id);
    if (hit) return hit;
    const envelope = parseEnvelope(JSON.parse(r.envelope));
    const manifest = parseManifest(JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')));
    const rec: BundleRecord = {
      id: r.id, name: r.name, version: r.version, envelope, manifest,
      compressedLength: r.compressed_length, rawLength: r.raw_length, chunkSize: r.chunk_size, chunkCount: r.chunk_count, createdAt: r.created_at,
    };
    this.bundleCache.set(r.id, rec);
    return rec;
  }
}
