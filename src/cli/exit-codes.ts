/** sysexits.h codes, so scripts and systemd can tell bad input from a broken daemon. */
export const EX_OK = 0;
export const EX_FAILURE = 1;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_UNAVAILABLE = 69;
export const EX_SOFTWARE = 70;
export const EX_IOERR = 74;
export const EX_CONFIG = 78;

/** An error the CLI reports as one clean message and an exit code, never a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}
