/** Shared CLI entry: coded errors become one line on stderr and a non-zero exit, never a stack trace. */
import { isFleetcastError } from './errors.js';

/**
 * When the reader of our output goes away (`fleetcast devices list | head -1`),
 * stop quietly as a C tool killed by SIGPIPE would: exit status 141 (128 + 13)
 * for `set -o pipefail` scripts, no stack trace. Node ignores SIGPIPE, so the
 * write fails with EPIPE instead, and an unhandled stream 'error' prints a trace.
 */
export function quietOnClosedPipe(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(141);
    throw e;
  });
  // A closed stderr has no one left to tell; its errors are dropped rather than crash the process on the way out.
  process.stderr.on('error', () => undefined);
}

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
