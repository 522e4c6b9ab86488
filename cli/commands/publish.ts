// Placeholder until the publish command lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fleetcast publish: not implemented yet\n');
  return 2;
}
