import { readFileSync } from "node:fs";
import type { ResolvedConfig } from "../config/index.js";
import type { ClusterSnapshot } from "../model/index.js";
import { parseSnapshot, SnapshotError } from "../model/parse-snapshot.js";
import { CliError, EX_DATAERR } from "./exit-codes.js";

const EX_NOINPUT = 66;

/** Reads and validates a snapshot file: 66 when it cannot be read, 65 when it is not a valid snapshot. */
export function readSnapshotFile(file: string): ClusterSnapshot {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new CliError(`${file}: cannot read snapshot: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, EX_NOINPUT);
  }
  try {
    return parseSnapshot(text, file);
  } catch (e) {
    if (e instanceof SnapshotError) throw new CliError(e.message, EX_DATAERR);
    throw e;
  }
}

/** Asks the running daemon for its last sample; undefined when no daemon answers. */
async function fromDaemon(config: ResolvedConfig): Promise<ClusterSnapshot | undefined> {
  if (!config.http.enabled) return undefined;
  const host = config.http.listen.includes(":") ? `[${config.http.listen}]` : config.http.listen;
  try {
    const res = await fetch(`http://${host}:${config.http.port}/api/snapshot`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return undefined;
    return parseSnapshot(await res.text(), `daemon at ${host}:${config.http.port}`);
  } catch {
    return undefined;
  }
}

/**
 * The live cluster: from the running daemon when there is one, else sampled directly through the
 * drivers. The driver and daemon modules are imported here, not at the top: reading a snapshot file
 * (`plan --snapshot`) needs none of them.
 */
export async function liveSnapshot(config: ResolvedConfig): Promise<{ snapshot: ClusterSnapshot; source: string }> {
  const viaDaemon = await fromDaemon(config);
  if (viaDaemon) return { snapshot: viaDaemon, source: "daemon" };
  const [{ createDriver }, { withMaintenance }, { scanFlags }, { realClock }] = await Promise.all([
    import("../drivers/index.js"),
    import("../daemon/daemon.js"),
    import("../daemon/flags.js"),
    import("../util/clock.js"),
  ]);
  const driver = await createDriver(config, realClock);
  try {
    const sampled = await driver.sample();
    const { flags } = await scanFlags(config.maintenanceDir);
    return { snapshot: withMaintenance(sampled, flags), source: driver.name };
  } finally {
    await driver.close();
  }
}
