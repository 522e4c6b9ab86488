import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFleet } from '@fleetcast/simulator/fleet.js';
import { need, parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = 'fleetcast sim --broker URL --agents N --root root.json [--data DIR] [--prefix sim] [--duration SECONDS] [--concurrency 8]';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, {
    broker: { type: 'string' }, agents: { type: 'string' }, root: { type: 'string' }, data: { type: 'string' },
    prefix: { type: 'string' }, duration: { type: 'string' }, concurrency: { type: 'string' },
  }, USAGE);
  const agents = Number(need(values.agents, '--agents', USAGE));
  if (!Number.isInteger(agents) || agents < 1 || agents > 20_000) { process.stderr.write(`--agents must be an integer 1..20000\nusage: ${USAGE}\n`); return 2; }
  const duration = values.duration ? Number(values.duration) : Infinity;
  const dataDir = values.data ?? mkdtempSync(join(tmpdir(), 'fleetcast-sim-'));
  const fleet = await startFleet({
    brokerUrl: need(values.broker, '--broker', USAGE), agents, rootPath: need(values.root, '--root', USAGE), dataDir,
    ...(values.prefix ? { idPrefix: values.prefix } : {}),
  });
  process.stdout.write(`sim: ${agents} agents (${fleet.ids[0]} … ${fleet.ids[fleet.ids.length - 1]}) in ${dataDir}\n`);
  const drive = fleet.drive({ concurrency: values.concurrency ? Number(values.concurrency) : 8 });
  const t0 = Date.now();
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const s = drive.stats;
      process.stdout.write(`sim: ${JSON.stringify(fleet.versions())} predictions ok ${s.ok} failed ${s.failed}\n`);
      if (Date.now() - t0 >= duration * 1000) { clearInterval(tick); resolve(); }
    }, 2000);
    const stop = () => { clearInterval(tick); resolve(); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const s = await drive.stop();
  await fleet.stop();
  process.stdout.write(`sim: done; predictions ok ${s.ok} failed ${s.failed} ${JSON.stringify(s.failuresByCode)}\n`);
  return 0;
}
