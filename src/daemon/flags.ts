import { constants, mkdirSync, promises as fsp, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { hostId, type HostId } from "../model/index.js";
import type { Clock } from "../util/clock.js";

/** Same rule as host names in the config: nothing that could climb out of the directory or hide in a shell. */
const FLAG_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
/** A reason is a note for humans: the first few KiB are plenty, whatever the file holds. */
const MAX_READ_BYTES = 4096;
const MAX_REASON_CHARS = 200;

export interface MaintenanceFlag {
  readonly host: HostId;
  readonly reason: string;
}

export interface FlagScan {
  readonly flags: ReadonlyMap<HostId, MaintenanceFlag>;
  /** Entries that are not honoured, with why (symlinks, odd names, directories…). */
  readonly ignored: readonly { readonly name: string; readonly why: string }[];
}

export function validFlagName(name: string): boolean {
  return FLAG_NAME.test(name) && name !== "." && name !== "..";
}

/** Printable one-line text from arbitrary bytes. */
export function sanitizeReason(raw: Buffer): string {
  return raw
    .toString("utf8")
    .replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\uFFFD]+/gu, " ")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, MAX_REASON_CHARS);
}

async function readReason(path: string): Promise<string> {
  // O_NOFOLLOW: a symlink swapped in after lstat is refused; O_NONBLOCK: a FIFO cannot hang the scan.
  const fh = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(MAX_READ_BYTES);
    const { bytesRead } = await fh.read(buf, 0, MAX_READ_BYTES, 0);
    return sanitizeReason(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

export async function scanFlags(dir: string): Promise<FlagScan> {
  const flags = new Map<HostId, MaintenanceFlag>();
  const ignored: { name: string; why: string }[] = [];
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { flags, ignored };
    throw e;
  }
  for (const entry of entries) {
    const printable = JSON.stringify(entry.name).slice(0, 80);
    if (entry.name.startsWith(".")) continue; // editors' and our own temporary files
    if (!validFlagName(entry.name)) {
      ignored.push({ name: printable, why: "not a valid host name" });
    } else if (!entry.isFile()) {
      ignored.push({ name: printable, why: entry.isSymbolicLink() ? "symbolic link (not followed)" : "not a regular file" });
    } else {
      try {
        const host = hostId(entry.name);
        flags.set(host, { host, reason: await readReason(join(dir, entry.name)) });
      } catch (e) {
        ignored.push({ name: printable, why: `unreadable: ${(e as NodeJS.ErrnoException).code ?? String(e)}` });
      }
    }
  }
  return { flags, ignored };
}

export interface FlagChange {
  readonly set: readonly MaintenanceFlag[];
  readonly cleared: readonly HostId[];
}

export type IgnoredEntry = FlagScan["ignored"][number];

/**
 * Notices flags appearing and disappearing: a directory watch for speed plus a periodic rescan, because
 * watches miss events on some filesystems and when the directory is replaced. Entries it ignores and scans
 * that fail are reported once when they appear, not at every rescan.
 */
export class FlagWatcher {
  private current: ReadonlyMap<HostId, MaintenanceFlag> = new Map();
  private ignored = new Set<string>();
  private lastError: string | undefined;
  private watcher: FSWatcher | undefined;
  private stopRescan: (() => void) | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly clock: Clock,
    private readonly rescanMs: number,
    private readonly onChange: (change: FlagChange, scan: FlagScan) => void,
    private readonly onError: (e: unknown) => void,
    private readonly onIgnored: (entries: readonly IgnoredEntry[]) => void,
  ) {}

  get flags(): ReadonlyMap<HostId, MaintenanceFlag> {
    return this.current;
  }

  /** The last scan failed: the flags in force may not be the directory's. */
  get scanFailing(): boolean {
    return this.lastError !== undefined;
  }

  /** Never throws: a directory that cannot be created or read is reported, and rescans go on trying. */
  async start(): Promise<void> {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    } catch (e) {
      this.report(e);
    }
    await this.rescan();
    try {
      this.watcher = watch(this.dir, { persistent: false }, () => void this.rescan());
      this.watcher.on("error", (e) => this.report(e));
    } catch (e) {
      this.report(e); // the periodic rescan still works
    }
    this.stopRescan = this.clock.every(this.rescanMs, () => void this.rescan());
  }

  /** Scans now; concurrent requests coalesce into one follow-up scan. */
  rescan(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.again = false;
        try {
          const scan = await scanFlags(this.dir);
          // A scan that ends after stop() must not report: the daemon may have closed its history by then.
          if (this.stopped) return;
          this.apply(scan);
          this.lastError = undefined;
        } catch (e) {
          // The flags in force stay in force: an unreadable directory is not an undrain.
          this.report(e);
        }
      } while (this.again);
    })().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private report(e: unknown): void {
    if (this.stopped) return;
    const text = e instanceof Error ? e.message : String(e);
    if (text === this.lastError) return;
    this.lastError = text;
    this.onError(e);
  }

  private apply(scan: FlagScan): void {
    const key = (i: IgnoredEntry): string => `${i.name}\0${i.why}`;
    const fresh = scan.ignored.filter((i) => !this.ignored.has(key(i)));
    this.ignored = new Set(scan.ignored.map(key));
    if (fresh.length > 0) this.onIgnored(fresh);
    const set = [...scan.flags.values()].filter((f) => this.current.get(f.host)?.reason !== f.reason);
    const cleared = [...this.current.keys()].filter((h) => !scan.flags.has(h));
    this.current = scan.flags;
    if (set.length > 0 || cleared.length > 0) this.onChange({ set, cleared }, scan);
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.stopRescan?.();
  }
}

/** `ballast drain`: written atomically (temporary file, then rename) so the daemon never reads half a reason. */
export async function setFlag(dir: string, host: string, reason: string): Promise<void> {
  if (!validFlagName(host)) throw new Error(`invalid host name ${JSON.stringify(host)}: expected letters, digits, '.', '_' or '-'`);
  await fsp.mkdir(dir, { recursive: true, mode: 0o750 });
  const tmp = join(dir, `.${host}.${process.pid}.tmp`);
  await fsp.writeFile(tmp, reason.slice(0, MAX_READ_BYTES) + "\n", { mode: 0o640, flag: "wx" });
  await fsp.rename(tmp, join(dir, host));
}

/** `ballast undrain`: false when the host was not in maintenance. */
export async function clearFlag(dir: string, host: string): Promise<boolean> {
  if (!validFlagName(host)) throw new Error(`invalid host name ${JSON.stringify(host)}: expected letters, digits, '.', '_' or '-'`);
  try {
    await fsp.unlink(join(dir, host));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}
