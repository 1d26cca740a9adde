/**
 * bench/plan — time and memory of planning on a generated 1,000-host / 40,000-VM snapshot (issue 2).
 * Targets: plan() ≤ 100 ms, the whole `ballast plan --snapshot FILE --json` call ≤ 1 s, its peak RSS ≤ 300 MiB.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/plan.js [--hosts N --vms N --cells N --maintenance N --hotspots N --seed N --runs N --cli-runs N]
 *
 * Prints one table, then one line of JSON (`{"bench":"plan",…}`) for scripts. Exits 1 when the CLI
 * call fails or disagrees with the in-process plan; missed targets are reported, not fatal.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { migrationSchema, thresholdsSchema } from "../src/config/schema.js";
import { plan, type Plan } from "../src/daemon/planner.js";
import type { ClusterSnapshot } from "../src/model/index.js";
import { parseSnapshot } from "../src/model/parse-snapshot.js";
import { enabledPolicies, policyConfigSchema } from "../src/policies/registry.js";
import { table } from "../src/cli/table.js";
import { argValue } from "./args.js";
import { generateSnapshot } from "./gen-snapshot.js";

const MiB = 1024 * 1024;
const TARGET = { planMs: 100, cliMs: 1000, rssMiB: 300 } as const;

function arg(name: string, fallback: number): number {
  const v = Number(argValue(name));
  return Number.isFinite(v) ? v : fallback;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
const round1 = (x: number): number => Math.round(x * 10) / 10;
const ms = (x: number): string => `${x.toFixed(1)} ms`;
const mib = (x: number | undefined): string => (x === undefined ? "n/a" : `${x.toFixed(0)} MiB`);
const selfPeakRssMiB = (): number => process.resourceUsage().maxRSS / 1024;

/** The same parameters `ballast plan --snapshot FILE` uses without a config: the schemas' defaults. */
const policies = enabledPolicies(policyConfigSchema.parse({}));
const thresholds = thresholdsSchema.parse({});
const migration = migrationSchema.parse({});

function planOnce(snapshot: ClusterSnapshot): Plan {
  return plan(snapshot, { policies, thresholds, migration, nowMs: Date.parse(snapshot.takenAt) || 0 });
}

/** What `ballast plan --json` prints for a plan (its fields only), to compare the CLI with the in-process run. */
const planJson = (p: Plan): string =>
  JSON.stringify({
    moves: p.moves.map((m) => ({ vm: m.vm, from: m.from, to: m.to, policy: m.policy, reason: m.reason, kind: m.kind })),
    blocked: p.blocked.map((b) => ({ vm: b.vm, policy: b.policy, reason: b.reason })),
  });

/** The built CLI: package.json's `bin.ballast`, else the usual build output; undefined when not built. */
function cliPath(): string | undefined {
  const candidates: string[] = [];
  try {
    const pkg = JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8")) as { bin?: Record<string, string> };
    if (pkg.bin?.ballast) candidates.push(pkg.bin.ballast);
  } catch {
    // no package.json here: fall back to the usual location
  }
  candidates.push("dist/src/cli/main.js");
  return candidates.map((c) => join(process.cwd(), c)).find((c) => existsSync(c));
}

interface CliTiming {
  readonly wallMs: readonly number[];
  /** Highest peak RSS of the child over the runs (undefined when it could not be read). */
  readonly peakRssMiB: number | undefined;
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node <built CLI> plan --snapshot FILE --json` `runs` times, as a user would. The child's peak
 * RSS is reported from inside it by a preloaded exit hook (a data: URL module, no file to find, no
 * measurable start-up cost), since Node gives no rusage of children.
 */
function timeCliCalls(cli: string, file: string, runs: number): CliTiming {
  const hook = "data:text/javascript,process.on('exit',()=>process.stderr.write('\\nBALLAST_BENCH_MAXRSS_KIB='+process.resourceUsage().maxRSS+'\\n'))";
  const wallMs: number[] = [];
  let peak: number | undefined;
  let last: { status: number | null; stdout: string; stderr: string } = { status: null, stdout: "", stderr: "" };
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, ["--import", hook, cli, "plan", "--snapshot", file, "--json"], { encoding: "utf8", maxBuffer: 256 * MiB });
    wallMs.push(performance.now() - t0);
    const m = /BALLAST_BENCH_MAXRSS_KIB=(\d+)/.exec(r.stderr ?? "");
    if (m?.[1]) peak = Math.max(peak ?? 0, Number(m[1]) / 1024);
    last = { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "").replace(/\s*BALLAST_BENCH_MAXRSS_KIB=\d+\s*$/, "") };
    if (r.status !== 0) break;
  }
  return { wallMs, peakRssMiB: peak, exitCode: last.status, stdout: last.stdout, stderr: last.stderr };
}

function main(): number {
  const opts = {
    hosts: arg("hosts", 1000),
    vms: arg("vms", 40000),
    cells: arg("cells", 4),
    maintenance: arg("maintenance", 10),
    hotspots: arg("hotspots", 50),
    seed: arg("seed", 42),
  };
  const runs = Math.max(1, arg("runs", 9));
  const cliRuns = Math.max(1, arg("cli-runs", 5));

  let t0 = performance.now();
  const generated = generateSnapshot(opts);
  const genMs = performance.now() - t0;
  const dir = mkdtempSync(join(tmpdir(), "ballast-bench-"));
  try {
    const file = join(dir, "snapshot.json");
    const json = JSON.stringify(generated);
    writeFileSync(file, json);

    // Read, parse and validate the file exactly as `ballast plan --snapshot` does (first, cold run).
    t0 = performance.now();
    const snapshot = parseSnapshot(readFileSync(file, "utf8"), file);
    const parseMs = performance.now() - t0;

    t0 = performance.now();
    const first = planOnce(snapshot);
    const coldMs = performance.now() - t0;
    for (let i = 0; i < 2; i++) planOnce(snapshot);
    const times: number[] = [];
    let result = first;
    for (let i = 0; i < runs; i++) {
      t0 = performance.now();
      result = planOnce(snapshot);
      times.push(performance.now() - t0);
    }
    const planMs = median(times);
    const benchRssMiB = selfPeakRssMiB();

    const cli = cliPath();
    const timing = cli === undefined ? undefined : timeCliCalls(cli, file, cliRuns);
    const cliMs = timing && timing.exitCode === 0 ? median(timing.wallMs) : undefined;
    let cliAgrees: boolean | undefined;
    if (timing?.exitCode === 0) {
      try {
        cliAgrees = JSON.stringify(JSON.parse(timing.stdout)) === planJson(result);
      } catch {
        cliAgrees = false;
      }
    }

    const count = <T,>(xs: readonly T[], key: (x: T) => string): string =>
      [...xs.reduce((m, x) => m.set(key(x), (m.get(key(x)) ?? 0) + 1), new Map<string, number>())].map(([k, n]) => `${k} ${n}`).join(", ") || "none";
    const verdict = (ok: boolean | undefined): string => (ok === undefined ? "-" : ok ? "ok" : "MISSED");

    console.log(
      `bench/plan: ${opts.hosts} hosts, ${opts.vms} VMs, ${opts.cells} cells, ${opts.maintenance} in maintenance, ${opts.hotspots} hotspots (seed ${opts.seed}); ` +
        `${(json.length / MiB).toFixed(1)} MiB of JSON, generated in ${genMs.toFixed(0)} ms`,
    );
    console.log(`plan: ${result.moves.length} moves (${count(result.moves, (m) => m.policy)}; ${count(result.moves, (m) => m.kind)}), ${result.blocked.length} blocked (${count(result.blocked, (b) => b.policy)})\n`);
    console.log(
      table(
        ["measure", "value", "target", ""],
        [
          [`plan() in-process, median of ${runs} (after 3 runs)`, ms(planMs), `≤ ${TARGET.planMs} ms`, verdict(planMs <= TARGET.planMs)],
          ["plan() in-process, first (cold) run", ms(coldMs), "", ""],
          ["parseSnapshot() in-process, read + parse + validate", ms(parseMs), "", ""],
          [
            `CLI call \`ballast plan --snapshot F --json\`, wall, median of ${timing?.wallMs.length ?? 0}`,
            cliMs === undefined ? (timing ? `failed (exit ${timing.exitCode})` : "CLI not built (npm run build)") : ms(cliMs),
            `≤ ${TARGET.cliMs} ms`,
            verdict(cliMs === undefined ? undefined : cliMs <= TARGET.cliMs),
          ],
          ["CLI call, wall of each run", timing ? timing.wallMs.map((x) => x.toFixed(0)).join(" / ") + " ms" : "-", "", ""],
          ["CLI child peak RSS (highest of the runs)", mib(timing?.peakRssMiB), `≤ ${TARGET.rssMiB} MiB`, verdict(timing?.peakRssMiB === undefined ? undefined : timing.peakRssMiB <= TARGET.rssMiB)],
          ["bench process peak RSS (generator + parse + plans)", mib(benchRssMiB), "", ""],
          ["CLI output = in-process plan", cliAgrees === undefined ? "-" : cliAgrees ? "yes" : "NO", "", verdict(cliAgrees)],
        ],
      ),
    );
    if (timing && timing.exitCode !== 0) console.log(`\nCLI stderr: ${timing.stderr.slice(0, 1000)}`);
    console.log(
      "\n" +
        JSON.stringify({
          bench: "plan",
          ...opts,
          moves: result.moves.length,
          blocked: result.blocked.length,
          planMedianMs: round1(planMs),
          planColdMs: round1(coldMs),
          parseMs: round1(parseMs),
          cliWallMedianMs: cliMs === undefined ? null : round1(cliMs),
          cliWallMs: timing?.wallMs.map(round1) ?? [],
          cliPeakRssMiB: timing?.peakRssMiB === undefined ? null : round1(timing.peakRssMiB),
          benchPeakRssMiB: round1(benchRssMiB),
          cliAgrees: cliAgrees ?? null,
          targets: TARGET,
          targetsMet: planMs <= TARGET.planMs && cliMs !== undefined && cliMs <= TARGET.cliMs && (timing?.peakRssMiB ?? Infinity) <= TARGET.rssMiB,
        }),
    );
    return timing && (timing.exitCode !== 0 || cliAgrees === false) ? 1 : 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main();
