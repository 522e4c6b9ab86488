// Placeholder until the bundle command lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fleetcast bundle: not implemented yet\n');
  return 2;
}
