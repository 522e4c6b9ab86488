/**
 * The demo's last step (issue #6): export the hub's transparency log and verify
 * it offline against root.json, as an auditor would with
 * `fleetcast audit export` and `fleetcast audit verify`.
 */
import { join } from 'node:path';
import type { Hub } from '@fleetcast/hub/hub.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { readFileSync } from 'node:fs';
import { readExport } from '@fleetcast/signing/audit-export-format.js';
import { formatAuditReport, verifyAudit } from '@fleetcast/signing/audit-verify.js';
import { exportAudit } from './audit-export.js';

export async function demoAudit(hub: Hub, rootPath: string, dir: string): Promise<{ ok: boolean; text: string }> {
  const out = join(dir, 'audit');
  // Installs reach the log in batches (events.logIntervalMs); the demo's audit should see every one.
  hub.events.flushInstalls();
  await exportAudit(hub.httpUrl, out, { token: readAdminToken(hub.options.dataDir) });
  const report = verifyAudit(readExport(out), JSON.parse(readFileSync(rootPath, 'utf8')));
  const text = [
    `audit (\`fleetcast audit export --hub ${hub.httpUrl} --out ${out}\` then \`fleetcast audit verify ${out} --root ${rootPath}\`):`,
    formatAuditReport(report).trimEnd(),
  ].join('\n');
  return { ok: report.ok, text };
}
