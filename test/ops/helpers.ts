import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { ballast, ROOT, startBallast, type RunningCli } from "../helpers/cli.js";

export type Tree = { [key: string]: unknown };

const isTree = (v: unknown): v is Tree => typeof v === "object" && v !== null && !Array.isArray(v);

/** base with patch laid over it, recursively (arrays and scalars replace). */
export function merge(base: Tree, patch: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const b = out[k];
    out[k] = isTree(b) && isTree(v) ? merge(b, v) : v;
  }
  return out;
}

export interface TempConfig {
  readonly dir: string;
  readonly file: string;
  readonly config: Tree;
  /** Rewrites the file: the demo-based config with patch laid over it, or raw text. */
  write(patch: Tree | string): void;
  cleanup(): void;
}

/** A temporary directory with a copy of config/demo.yaml (state inside it, HTTP on a free port) with patch laid over it. */
export function demoConfig(prefix: string, patch: Tree = {}): TempConfig {
  const dir = mkdtempSync(join(tmpdir(), `ballast-${prefix}-`));
  const demo = parse(readFileSync(join(ROOT, "config/demo.yaml"), "utf8")) as Tree;
  delete demo.maintenanceDir;
  const config = merge(merge(demo, { stateDir: join(dir, "state"), http: { listen: "127.0.0.1", port: 0 } }), patch);
  const file = join(dir, "ballast.yaml");
  const write = (p: Tree | string): void => writeFileSync(file, typeof p === "string" ? p : stringify(merge(config, p)));
  write({});
  return { dir, file, config, write, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A demo-like cluster where a migration starts within seconds and takes about a minute: rounds every 2 s,
 * the hotspot counts at once, a slow link (200 MiB/s), no VM that dirties memory faster than that and no
 * post-copy (a job in post-copy cannot be aborted).
 */
export const SLOW_MIGRATION: Tree = {
  schedule: "*/2 * * * * *",
  policies: { "hotspot-relief": { sustainMinutes: 0.01 } },
  migration: { permitPostCopy: false },
  sim: { bandwidthMiBps: 200, heavyDirtierFraction: 0 },
};

export type Daemon = RunningCli;

/** `ballast run` in the background with extra environment. */
export const runDaemon = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Daemon => startBallast(args, env);

export const msg = (m: string) => (l: string) => l.includes(`"msg":"${m}"`);

/** The HTTP port from the daemon's "http listening" line. */
export async function httpPort(d: Daemon): Promise<number> {
  return (JSON.parse(await d.waitFor(msg("http listening"), 15_000)) as { port: number }).port;
}

export interface HistoryJson {
  migrations: { id: number; vm: string; from: string; to: string; status: string; error: string | null }[];
  events: { kind: string; message: string; host?: string | null }[];
}

export function history(configFile: string): HistoryJson {
  const r = ballast(["history", "--config", configFile, "--json", "-n", "100"]);
  if (r.code !== 0) throw new Error(`ballast history exited ${String(r.code)}: ${r.stderr}`);
  return JSON.parse(r.stdout) as HistoryJson;
}

/** Kills a daemon a failed test left behind. */
export function killIfRunning(d: Daemon | undefined): void {
  if (d && d.child.exitCode === null && d.child.signalCode === null) d.child.kill("SIGKILL");
}
