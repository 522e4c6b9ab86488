// Placeholder until the hub command lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fleetcast hub: not implemented yet\n');
  return 2;
}
