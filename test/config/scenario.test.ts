import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkConfig, formatIssue, type ConfigIssue } from "../../src/config/index.js";

const SHIPPED = "config/scenarios";
const INVALID = "test/config/scenario-invalid";

interface Expected {
  readonly line: number;
  readonly path: string;
  readonly message: RegExp;
  readonly value?: string;
}

/** One row per file in test/config/scenario-invalid/ (each file's first line says what is wrong): every issue expected, in order. */
const CASES: Record<string, readonly Expected[]> = {
  "two-actions.yaml": [{ line: 9, path: "scenario.events[0]", message: /^expected exactly one of drain, undrain or burst in each event$/ }],
  "bad-duration.yaml": [{ line: 9, path: "scenario.events[0].at", value: '"soon"', message: /^expected a duration like 90s, 15m, 6h or 2d$/ }],
  "unknown-host.yaml": [{ line: 10, path: "scenario.events[0].undrain", value: '"a-h3"', message: /expected a simulated host name '<cell>-h<N>'/ }],
  "unknown-tenant.yaml": [{ line: 14, path: "scenario.events[0].burst.tenant", value: '"acne"', message: /^expected a tenant of sim\.tenants \(acme\)$/ }],
  "no-sim.yaml": [{ line: 6, path: "scenario", message: /expected a sim: section \(scenarios run on the simulated cluster\)/ }],
  "key-typo.yaml": [{ line: 8, path: "scenario.evnets", message: /^unknown key 'evnets' \(did you mean 'events'\?\)$/ }],
  "burst-no-target.yaml": [{ line: 10, path: "scenario.events[0].burst", message: /^expected exactly one of tenant or hosts: which VMs burst$/ }],
  "tenant-unknown-cell.yaml": [{ line: 9, path: "sim.tenants[0].cells[1]", value: '"b"', message: /^expected the name of a cell in sim\.cells$/ }],
  "burst-zero-length.yaml": [
    { line: 12, path: "scenario.events[0].burst.cpu", value: "1.5", message: /^expected a number ≤ 1$/ },
    { line: 13, path: "scenario.events[0].burst.for", value: '"0s"', message: /^expected a duration above zero$/ },
  ],
};

describe("scenario files", () => {
  it.each(readdirSync(SHIPPED).filter((f) => f.endsWith(".yaml")))("shipped %s is valid", (file) => {
    const r = checkConfig(join(SHIPPED, file));
    expect(r.ok ? [] : r.errors.map(formatIssue)).toEqual([]);
    if (!r.ok) return;
    expect(r.config.scenario?.name).toBe(file.replace(/\.yaml$/, ""));
    expect(r.config.sim).toBeDefined();
  });

  it("every invalid file has a case and every case a file", () => {
    expect(readdirSync(INVALID).sort()).toEqual(Object.keys(CASES).sort());
  });

  it.each(Object.entries(CASES))("%s: names the line, field and what is expected", (file, expected) => {
    const path = join(INVALID, file);
    const r = checkConfig(path);
    expect(r.ok).toBe(false);
    const errors: readonly ConfigIssue[] = r.ok ? [] : r.errors;
    expect(errors).toHaveLength(expected.length);
    for (const [i, want] of expected.entries()) {
      const got = errors[i];
      expect(got, formatIssue(got ?? { file: path, line: 0, column: 0, path: "", message: "missing" })).toMatchObject({ file: path, line: want.line, path: want.path });
      expect(got?.message).toMatch(want.message);
      expect(got?.value).toBe(want.value);
    }
  });

  it("durations become milliseconds, repeats and defaults are filled in", () => {
    const r = checkConfig(join(SHIPPED, "bursty-tenant.yaml"));
    if (!r.ok) throw new Error(r.errors.map(formatIssue).join("\n"));
    expect(r.config.scenario?.events).toEqual([{ at: 3_600_000, every: 4 * 3_600_000, burst: { tenant: "batchco", cpu: 0.6, for: 90 * 60_000 } }]);
  });
});
