import { readFileSync, writeFileSync } from 'node:fs';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { readExport } from '@fleetcast/signing/audit-export-format.js';
import { formatAuditReport, verifyAudit } from '@fleetcast/signing/audit-verify.js';
import { need, parseCli } from '@fleetcast/protocol/cli-args.js';
import { exportAudit } from '../audit-export.js';
import { tokenFrom } from '../hub-client.js';

export const USAGE = `fleetcast audit export --hub URL --out DIR   (an auditor token or higher: FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN)
fleetcast audit verify DIR --root root.json [--checkpoint FILE ...] [--json] [--save-checkpoint FILE]`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, {
    hub: { type: 'string' }, out: { type: 'string' }, token: { type: 'string' }, root: { type: 'string' },
    checkpoint: { type: 'string', multiple: true }, json: { type: 'boolean' }, 'save-checkpoint': { type: 'string' },
  }, USAGE);
  if (positionals[0] === 'export') {
    const hub = need(values.hub ?? process.env.FLEETCAST_HUB, '--hub', USAGE);
    const out = need(values.out, '--out', USAGE);
    const r = await exportAudit(hub, out, { token: tokenFrom(values.token) });
    process.stdout.write(`exported ${r.size} log entries, ${r.checkpoints} checkpoints, ${r.installs} logged installs and ${r.claims} unverified device claims to ${out}\n`);
    return 0;
  }
  if (positionals[0] === 'verify' && positionals[1]) {
    const rootPath = need(values.root, '--root', USAGE);
    let root: unknown;
    try { root = JSON.parse(readFileSync(rootPath, 'utf8')); } catch (e) {
      throw new FleetcastError('SIGN_ERR_BAD_ROOT', `cannot read ${rootPath} as JSON: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
    }
    const known = (values.checkpoint ?? []).map((f) => ({ name: f, text: readFileSync(f, 'utf8') }));
    const data = readExport(positionals[1]);
    const report = verifyAudit(data, root, { knownCheckpoints: known });
    process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatAuditReport(report));
    // Keeping the latest checkpoint lets the next audit prove the log only grew (--checkpoint).
    const last = data.checkpoints[data.checkpoints.length - 1];
    if (report.ok && values['save-checkpoint'] && last) writeFileSync(values['save-checkpoint'], last.checkpoint);
    return report.ok ? 0 : 1;
  }
  process.stderr.write(`usage: ${USAGE}\n`);
  return 2;
}
