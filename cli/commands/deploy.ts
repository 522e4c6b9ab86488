// Placeholder until the deploy command lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fleetcast deploy: not implemented yet\n');
  return 2;
}
