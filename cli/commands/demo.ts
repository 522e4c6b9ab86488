// Placeholder until the demo command lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fleetcast demo: not implemented yet\n');
  return 2;
}
