import { pino, type Logger } from "pino";

/** syslog priorities for pino levels, so journald keeps each line's severity. */
const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/**
 * JSON lines on stdout. Under journald (JOURNAL_STREAM set) each line starts with its `<N>` priority prefix.
 */
export function createLogger(level: string, dest: NodeJS.WritableStream = process.stdout): Logger {
  const journald = process.env.JOURNAL_STREAM !== undefined;
  const stream = journald
    ? {
        write(line: string): void {
          const m = /"level":(\d+)/.exec(line);
          dest.write(`<${PRIORITY[Number(m?.[1])] ?? 6}>${line}`);
        },
      }
    : dest;
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}
