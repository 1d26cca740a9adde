import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, startBallast } from "../helpers/cli.js";

/**
 * Prometheus conventions on a live /metrics (promtool check metrics), the shipped alert rules (promtool check
 * rules, promtool test rules) and the Grafana dashboard (every query parses and names metrics that exist).
 * promtool comes from the Debian package `prometheus` (scripts/test-deps.sh); without it these tests fail.
 */

const ALERTS = join(ROOT, "config/prometheus/alerts.yml");
const ALERT_TESTS = join(ROOT, "config/prometheus/alerts.test.yml");
const DASHBOARD = join(ROOT, "config/grafana/ballast.json");

/** Label names a ballast metric may carry: all take a bounded set of values. `le` is the histogram bucket. */
const BOUNDED_LABELS = new Set(["host", "cell", "policy", "kind", "outcome", "step", "reason", "resource", "driver", "version", "le"]);

function promtool(args: readonly string[], input?: string): { code: number | null; out: string } {
  const r = spawnSync("promtool", args, { encoding: "utf8", input: input ?? "", timeout: 60_000 });
  if (r.error) throw new Error(`promtool could not be run (${r.error.message}); install the Debian package "prometheus" (bash scripts/test-deps.sh)`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Family {
  readonly type: string;
  help?: string;
  readonly samples: { name: string; labels: Record<string, string> }[];
}

/** The metric families of an exposition, with their sample names (histograms: _bucket, _sum, _count). */
function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  const helps = new Map<string, string>();
  for (const line of text.split("\n")) {
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      helps.set(m[1]!, m[2]!);
      continue;
    }
    m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      out.set(m[1]!, { type: m[2]!, help: helps.get(m[1]!), samples: [] });
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!m) continue;
    const name = m[1]!;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const family = out.get(name) ?? out.get(name.replace(/_(bucket|sum|count)$/, ""));
    if (!family) throw new Error(`sample ${name} has no # TYPE line`);
    family.samples.push({ name, labels });
  }
  return out;
}

/** Every name a query may select: each family, plus the series names of histograms and summaries. */
function selectableNames(fams: ReadonlyMap<string, Family>): Set<string> {
  const names = new Set<string>();
  for (const [name, f] of fams) {
    names.add(name);
    if (f.type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    if (f.type === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
  }
  return names;
}

const PROMQL_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless", "atan2", "inf", "nan"]);

/** The metric names a PromQL expression selects (strings, label matchers, ranges, grouping lists and functions removed). */
function metricNames(expr: string): Set<string> {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\$\{?\w+\}?/g, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = s[m.index - 1] ?? " ";
    if (/[0-9.]/.test(before)) continue; // a unit of a number or duration: 30m, 1e3
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    if (/^\s*\(/.test(s.slice(m.index + m[0].length))) continue; // a function or aggregation
    names.add(m[0]);
  }
  return names;
}

/** Grafana variables replaced by values PromQL accepts, so a query can be checked by promtool. */
const substituteVariables = (expr: string): string => expr.replace(/\$\{?(\w+)\}?/g, (_all, name: string) => (name.startsWith("__") ? "5m" : ".*"));

interface Rule {
  readonly alert?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
const alertRules = (): Rule[] => (parse(readFileSync(ALERTS, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

interface Panel {
  readonly type: string;
  readonly title?: string;
  readonly id?: number;
  readonly datasource?: { type?: string; uid?: string };
  readonly targets?: { expr?: string; datasource?: { uid?: string } }[];
  readonly panels?: Panel[];
}
interface Dashboard {
  readonly schemaVersion: number;
  readonly uid: string;
  readonly title: string;
  readonly panels: Panel[];
  readonly templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
  readonly annotations?: { list: { expr?: string }[] };
}
const allPanels = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
function dashboardExprs(d: Dashboard): string[] {
  const exprs: string[] = [];
  for (const p of allPanels(d)) for (const t of p.targets ?? []) if (t.expr !== undefined) exprs.push(t.expr);
  for (const a of d.annotations?.list ?? []) if (a.expr !== undefined) exprs.push(a.expr);
  return exprs;
}

/** Checks expressions for syntax with promtool, as recording rules of a scratch file. */
function checkExprs(dir: string, exprs: readonly string[]): { code: number | null; out: string } {
  const file = join(dir, "exprs.yml");
  writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules: exprs.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: substituteVariables(e) })) }] }));
  return promtool(["check", "rules", file]);
}

describe("metricNames", () => {
  it("finds selected metrics and nothing else", () => {
    expect([...metricNames('histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))')]).toEqual(["a_bucket"]);
    expect([...metricNames("(x > 0 and x >= max_over_time(x[30m]) and x offset 30m) * ignoring (cell) group_left (cell) y")].sort()).toEqual(["x", "y"]);
    expect([...metricNames('count(up{a="b c"} == 0) or vector(0) + time() - 1e3')]).toEqual(["up"]);
  });
});

describe("Prometheus and Grafana integration", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballast-prom-"));
  let run: ReturnType<typeof startBallast> | undefined;
  let scrape = "";

  beforeAll(async () => {
    const demo = parse(readFileSync(join(ROOT, "config/demo.yaml"), "utf8")) as Record<string, unknown>;
    const cfgFile = join(dir, "demo.yaml");
    writeFileSync(cfgFile, stringify({ ...demo, stateDir: join(dir, "state"), maintenanceDir: join(dir, "state/maintenance"), http: { listen: "127.0.0.1", port: 0 } }));
    run = startBallast(["run", "--config", cfgFile]);
    const listening = await run.waitFor((l) => l.includes('"http listening"'), 15_000);
    const port = (JSON.parse(listening) as { port: number }).port;
    // After a migration, every histogram and labelled counter has samples (the demo relieves a hotspot in < 60 s).
    await run.waitFor((l) => l.includes('"migration finished"') || l.includes('"migration did not succeed"'), 75_000);
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    scrape = await res.text();
  }, 100_000);

  afterAll(async () => {
    const child = run?.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("promtool check metrics finds nothing to complain about in a live /metrics", () => {
    expect(scrape).toMatch(/^ballast_migrations_total\{.*\} [1-9]/m);
    expect(scrape).toMatch(/^ballast_migration_duration_seconds_bucket\{/m);
    const r = promtool(["check", "metrics"], scrape);
    expect(r.out).toBe("");
    expect(r.code).toBe(0);
  });

  it("every ballast metric has help, a conventional name and only bounded labels", () => {
    const fams = families(scrape);
    const ours = [...fams].filter(([name]) => name.startsWith("ballast_"));
    expect(ours.length).toBeGreaterThan(20);
    for (const [name, f] of ours) {
      expect(f.help, name).toBeTruthy();
      expect(name, "snake_case").toMatch(/^ballast_[a-z0-9_]+$/);
      if (f.type === "counter") expect(name, "counters end in _total").toMatch(/_total$/);
      else expect(name, "only counters end in _total").not.toMatch(/_total$/);
      if (f.type === "histogram") expect(name, "histograms observe a base unit").toMatch(/_(seconds|bytes)$/);
      expect(name, "base units only").not.toMatch(/_(milliseconds|ms|minutes|hours|mib|kib|mb|gb|percent)(_|$)/);
      for (const s of f.samples) {
        for (const [label, value] of Object.entries(s.labels)) {
          expect(BOUNDED_LABELS.has(label), `${name}: label ${label}`).toBe(true);
          if (label === "reason") expect(value, `${name}: reason is a code`).toMatch(/^[a-z]+(-[a-z]+)*$/);
        }
      }
    }
    for (const name of ["process_start_time_seconds", "ballast_build_info", "ballast_last_round_timestamp_seconds"]) expect(fams.has(name), name).toBe(true);
    expect(scrape).toMatch(/^ballast_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$/m);
    // Known label values are exported before they happen, so increase() sees the first one.
    for (const step of ["raise-downtime", "post-copy", "pause", "abort"]) expect(scrape).toContain(`ballast_guard_escalations_total{step="${step}"}`);
    expect(scrape).toContain('ballast_rounds_total{outcome="error"} 0');
  });

  it("the README lists every ballast metric", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    for (const name of families(scrape).keys()) if (name.startsWith("ballast_")) expect(readme, name).toContain(`\`${name}`);
  });

  it("promtool check rules accepts the alert rules", () => {
    const r = promtool(["check", "rules", ALERTS]);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.out).not.toMatch(/WARNING|FAILED/);
    expect(r.code).toBe(0);
  });

  it("promtool test rules: the alert unit tests pass", () => {
    const r = promtool(["test", "rules", ALERT_TESTS]);
    expect(r.out).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  it("every alert has a for, a severity and templated annotations, and is unit-tested firing and not firing", () => {
    const rules = alertRules();
    const tests = (parse(readFileSync(ALERT_TESTS, "utf8")) as { tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[] }).tests.flatMap(
      (t) => t.alert_rule_test ?? [],
    );
    const names = rules.map((r) => r.alert);
    for (const required of ["BallastDrainStuck", "BallastMigrationsFailing", "BallastRoundsStale", "BallastMetricsAbsent", "BallastHostUnreachable", "BallastGuardEscalationsRising"]) {
      expect(names).toContain(required);
    }
    for (const r of rules) {
      expect(r.alert, r.expr).toBeDefined();
      const name = r.alert!;
      expect(r.for, name).toMatch(/^\d+[smh]$/);
      expect(["warning", "critical"], name).toContain(r.labels?.severity);
      expect(r.annotations?.summary, name).toBeTruthy();
      expect(r.annotations?.description, name).toBeTruthy();
      if (/ballast_(host|drain)_/.test(r.expr)) {
        // Per-host alerts name the host and its cell.
        for (const a of [r.annotations?.summary, r.annotations?.description]) for (const l of ["$labels.host", "$labels.cell"]) expect(a, name).toContain(l);
      }
      expect(tests.some((t) => t.alertname === name && t.exp_alerts.length > 0), `${name} fires in a test`).toBe(true);
      expect(tests.some((t) => t.alertname === name && t.exp_alerts.length === 0), `${name} stays quiet in a test`).toBe(true);
    }
  });

  it("alert rules only use metrics that /metrics exports", () => {
    const known = selectableNames(families(scrape));
    for (const r of alertRules()) {
      const used = metricNames(r.expr);
      expect(used.size, r.expr).toBeGreaterThan(0);
      for (const n of used) expect(known.has(n), `${r.alert ?? "?"}: ${n}`).toBe(true);
    }
  });

  it("the Grafana dashboard is valid JSON whose queries parse and select metrics that /metrics exports", () => {
    const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.uid).toBe("ballast");
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    expect(vars.get("datasource")?.type).toBe("datasource");
    expect(vars.get("cell")?.type).toBe("query");
    expect(vars.get("host")?.type).toBe("query");

    const panels = allPanels(d);
    const rows = panels.filter((p) => p.type === "row").map((p) => p.title);
    for (const section of ["Cells", "Hosts", "Drains", "Migrations", "Guards", "Rounds"]) expect(rows).toContain(section);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);

    const known = selectableNames(families(scrape));
    for (const p of panels.filter((x) => x.type !== "row")) {
      expect(p.datasource?.uid, p.title).toBe("${datasource}");
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.datasource?.uid, p.title).toBe("${datasource}");
        expect(t.expr, p.title).toBeTruthy();
      }
    }
    const exprs = dashboardExprs(d);
    for (const v of d.templating.list) {
      const m = /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(v.definition ?? "");
      if (v.type === "query") expect(m, v.name).not.toBeNull();
      if (m) expect(known.has(m[1]!), `variable ${v.name}: ${m[1]!}`).toBe(true);
    }
    const used = new Set<string>();
    for (const e of exprs) {
      const names = metricNames(e);
      expect(names.size, e).toBeGreaterThan(0);
      for (const n of names) {
        expect(known.has(n), `${n} in ${e}`).toBe(true);
        used.add(n);
      }
    }
    // Each area the dashboard covers is backed by its metrics.
    for (const n of ["ballast_cell_imbalance_ratio", "ballast_host_cpu_load_ratio", "ballast_drain_vms_remaining", "ballast_drain_vms_blocked", "ballast_migrations_total", "ballast_migration_downtime_seconds_bucket", "ballast_guard_escalations_total", "ballast_guard_refusals_total", "ballast_rounds_total", "ballast_last_round_timestamp_seconds"]) {
      expect(used.has(n), n).toBe(true);
    }
    const r = checkExprs(dir, exprs);
    expect(r.out).toMatch(/SUCCESS/);
    expect(r.code).toBe(0);
  });
});
