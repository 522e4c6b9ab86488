// Placeholder until the sim command lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fleetcast sim: not implemented yet\n');
  return 2;
}
