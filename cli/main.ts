/** Shared CLI entry: coded errors become one line on stderr and a non-zero exit, never a stack trace. */
import { isFleetcastError } from '../protocol/errors.js';

export function runMain(main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e: unknown) => {
      if (isFleetcastError(e)) {
        process.stderr.write(`error ${e.code}: ${e.message}\n`);
        process.exitCode = e.status === 2 ? 2 : 1;
      } else {
        process.stderr.write(`error PROTO_ERR_INTERNAL: ${(e as Error)?.stack ?? String(e)}\n`);
        process.exitCode = 1;
      }
    },
  );
}
