// Placeholder until the devices command lands; replaced by its owner.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('fleetcast devices: not implemented yet\n');
  return 2;
}
