/**
 * bench/plan — time and memory of planning on a generated 1,000-host / 40,000-VM snapshot (issue 2).
 * Targets: plan() ≤ 100 ms, the whole `ballast plan --snapshot FILE --json` call ≤ 1 s, peak RSS ≤ 300 MiB.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/plan.js [--hosts N --vms N --cells N --maintenance N --hotspots N --seed N --runs N]
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import type { ClusterSnapshot } from "../src/model/index.js";
import { plan, type Plan } from "../src/daemon/planner.js";
import { enabledPolicies, policyConfigSchema } from "../src/policies/registry.js";
import { generateSnapshot } from "./gen-snapshot.js";

const MiB = 1024 * 1024;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) ? v : fallback;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

const thresholds = { cpuHigh: 0.85, cpuLow: 0.7, memHigh: 0.9, memLow: 0.8 };
const migration = { allowBlockMigration: false, allowColdForTags: [] as string[] };

function planOnce(snapshot: ClusterSnapshot): Plan {
  return plan(snapshot, {
    policies: enabledPolicies(policyConfigSchema.parse({})),
    thresholds,
    migration,
    nowMs: Date.parse(snapshot.takenAt),
  });
}

/** The built CLI: package.json's `bin.ballast`, else the usual build outputs; undefined when not built. */
function cliPath(): string | undefined {
  const candidates: string[] = [];
  try {
    const pkg = JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as { bin?: Record<string, string> };
    if (pkg.bin?.ballast) candidates.push(pkg.bin.ballast);
  } catch {
    // no package.json here: fall back to the usual locations
  }
  candidates.push("dist/src/cli/main.js", "dist/cli/main.js");
  return candidates.map((c) => join(process.cwd(), c)).find((c) => existsSync(c));
}

/**
 * ── CLI call timing ──
 * Spawns `node <built CLI> plan --snapshot FILE --json` and reports wall time and the child's peak RSS,
 * taken from inside the child by a preloaded exit hook. Skipped ("CLI not built") when the CLI has not
 * been compiled.
 */
export function timeCliCall(file: string): { wallMs: number; maxRssMiB: number | undefined; exitCode: number | null } | undefined {
  const cli = cliPath();
  if (!cli) {
    console.log("CLI call:      CLI not built (run `npm run build`) — skipped");
    return undefined;
  }
  const hook = "data:text/javascript,process.on('exit',()=>process.stderr.write('\\nBALLAST_BENCH_MAXRSS_KIB='+process.resourceUsage().maxRSS+'\\n'))";
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ["--import", hook, cli, "plan", "--snapshot", file, "--json"], {
    encoding: "utf8",
    maxBuffer: 256 * MiB,
  });
  const wallMs = performance.now() - t0;
  const m = /BALLAST_BENCH_MAXRSS_KIB=(\d+)/.exec(r.stderr ?? "");
  const maxRssMiB = m?.[1] ? Number(m[1]) / 1024 : undefined;
  const rss = maxRssMiB === undefined ? "n/a" : `${maxRssMiB.toFixed(0)} MiB`;
  console.log(`CLI call:      ${wallMs.toFixed(0)} ms wall, child peak RSS ${rss}, exit ${r.status}   (target ≤ 1000 ms, ≤ 300 MiB)`);
  if (r.status !== 0) console.log(`               stderr: ${(r.stderr ?? "").slice(0, 500)}`);
  else {
    const out = JSON.parse(r.stdout) as { moves?: unknown[]; blocked?: unknown[] };
    console.log(`               CLI planned ${out.moves?.length ?? "?"} moves, ${out.blocked?.length ?? "?"} blocked`);
  }
  return { wallMs, maxRssMiB, exitCode: r.status };
}

function main(): void {
  const opts = {
    hosts: arg("hosts", 1000),
    vms: arg("vms", 40000),
    cells: arg("cells", 4),
    maintenance: arg("maintenance", 10),
    hotspots: arg("hotspots", 50),
    seed: arg("seed", 42),
  };
  const runs = Math.max(1, arg("runs", 9));
  let t0 = performance.now();
  const generated = generateSnapshot(opts);
  const genMs = performance.now() - t0;

  const dir = mkdtempSync(join(tmpdir(), "ballast-bench-"));
  const file = join(dir, "snapshot.json");
  const json = JSON.stringify(generated);
  writeFileSync(file, json);
  // Plan on what the file holds, as `ballast plan --snapshot` does.
  t0 = performance.now();
  const snapshot = JSON.parse(readFileSync(file, "utf8")) as ClusterSnapshot;
  const parseMs = performance.now() - t0;

  for (let i = 0; i < 3; i++) planOnce(snapshot);
  const times: number[] = [];
  let result: Plan | undefined;
  for (let i = 0; i < runs; i++) {
    t0 = performance.now();
    result = planOnce(snapshot);
    times.push(performance.now() - t0);
  }
  const byPolicy = (xs: readonly { policy: string }[]): string =>
    [...xs.reduce((m, x) => m.set(x.policy, (m.get(x.policy) ?? 0) + 1), new Map<string, number>())].map(([p, n]) => `${p} ${n}`).join(", ") || "none";

  console.log(`snapshot:      ${opts.hosts} hosts, ${opts.vms} VMs, ${opts.cells} cells, ${opts.maintenance} in maintenance, ${opts.hotspots} hotspots (seed ${opts.seed})`);
  console.log(`               generated in ${genMs.toFixed(0)} ms; ${(json.length / MiB).toFixed(1)} MiB JSON at ${file}; parsed in ${parseMs.toFixed(0)} ms`);
  console.log(`plan():        median ${median(times).toFixed(1)} ms, min ${Math.min(...times).toFixed(1)} ms, max ${Math.max(...times).toFixed(1)} ms over ${runs} runs after 3 warm-ups   (target ≤ 100 ms)`);
  console.log(`moves:         ${result?.moves.length ?? 0} (${byPolicy(result?.moves ?? [])}); by kind: ${[...(result?.moves ?? []).reduce((m, x) => m.set(x.kind, (m.get(x.kind) ?? 0) + 1), new Map<string, number>())].map(([k, n]) => `${k} ${n}`).join(", ")}`);
  console.log(`blocked:       ${result?.blocked.length ?? 0} (${byPolicy(result?.blocked ?? [])})`);
  const blockedReason = result?.blocked[0];
  if (blockedReason) console.log(`               e.g. ${blockedReason.vm}: ${blockedReason.reason}`);
  console.log(`peak RSS:      ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB (this process: generator + JSON + planning)   (target ≤ 300 MiB)`);
  timeCliCall(file);
  rmSync(dir, { recursive: true, force: true });
}

main();
