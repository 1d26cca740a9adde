import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { ballast } from "../helpers/cli.js";
import { expectNoTrace } from "./hostile.js";

/**
 * Hostile configuration files through the compiled CLI: every one exits 78 (EX_CONFIG) with one line per
 * problem naming the file and, where there is one, the line and field; never a stack trace, never a hang.
 * The 52 files of test/config/invalid have their exact messages checked in-process by
 * test/config/invalid.test.ts; here they go through the real binary. The extra kinds are made at run time
 * (a 10 MiB file is not kept in git).
 */

const dir = mkdtempSync(join(tmpdir(), "ballast-hostile-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CORPUS = "test/config/invalid";
const corpus = readdirSync(CORPUS).filter((f) => f.endsWith(".yaml")).sort();

/** A valid config's body (sim backend), to which a hostile part is added. */
const VALID = "sim:\n  cells:\n    - name: a\n      hosts: 2\n";

function make(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

/** Each case: the file to check, and what the message must say. `line` false: whole-file problems have no line. */
const GENERATED: readonly { name: string; path: () => string; message: RegExp; line: boolean }[] = [
  { name: "binary file", path: () => make("binary.yaml", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256))), message: /not UTF-8/, line: true },
  { name: "10 MiB file", path: () => make("huge.yaml", VALID + "x: " + "x".repeat(10 * 1024 * 1024)), message: /at most 1 MiB/, line: false },
  { name: "deeply nested flow sequences (100,000 deep)", path: () => make("deep-flow.yaml", VALID + "x: " + "[".repeat(100_000) + "]".repeat(100_000)), message: /nested too deeply/, line: true },
  { name: "deeply nested flow mappings (30,000 deep)", path: () => make("deep-map.yaml", VALID + "x: " + "{a: ".repeat(30_000) + "1" + "}".repeat(30_000)), message: /nested too deeply/, line: true },
  {
    name: "deeply nested block mappings (500 deep)",
    path: () => make("deep-block.yaml", VALID + Array.from({ length: 500 }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n") + " 1\n"),
    message: /unknown key 'k0'/,
    line: true,
  },
  {
    // Nine levels of ten: 10^9 nodes if expanded. yaml's maxAliasCount (100) stops it before any expansion.
    name: "billion laughs (9 levels of 10 aliases)",
    path: () => {
      const lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
      for (let i = 1; i < 9; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(", ")}]`);
      return make("laughs.yaml", VALID + lines.join("\n") + "\n");
    },
    message: /alias/,
    line: true,
  },
  { name: "alias to a merge key chain", path: () => make("merge-bomb.yaml", VALID + "b: &b {x: 1}\nc: &c {<<: [*b, *b, *b]}\nd: {<<: [*c, *c, *c]}\n"), message: /unknown key/, line: true },
  { name: "Latin-1 text (not UTF-8)", path: () => make("latin1.yaml", Buffer.concat([Buffer.from(VALID + "logLevel: caf"), Buffer.from([0xe9]), Buffer.from("\n")])), message: /not UTF-8/, line: true },
  { name: "UTF-16 with a byte order mark", path: () => make("utf16.yaml", Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(VALID, "utf16le")])), message: /not UTF-8|YAML/, line: true },
  { name: "empty file", path: () => make("empty2.yaml", ""), message: /empty/, line: true },
  { name: "only whitespace and comments", path: () => make("blank.yaml", "\n   \n# nothing\n"), message: /empty/, line: true },
  { name: "NUL bytes", path: () => make("nul.yaml", VALID + "logLevel: info\0\0\0\n"), message: /YAML|logLevel/, line: true },
  { name: "a directory", path: () => (mkdirSync(join(dir, "adir.yaml"), { recursive: true }), join(dir, "adir.yaml")), message: /is a directory/, line: false },
  { name: "a missing file", path: () => join(dir, "missing.yaml"), message: /does not exist/, line: false },
  { name: "a dangling symlink", path: () => (symlinkSync(join(dir, "nowhere"), join(dir, "dangling.yaml")), join(dir, "dangling.yaml")), message: /does not exist/, line: false },
  {
    // Opening a FIFO for reading blocks until a writer comes: the loader must refuse it, not hang.
    name: "a FIFO",
    path: () => (execFileSync("mkfifo", [join(dir, "fifo.yaml")]), join(dir, "fifo.yaml")),
    message: /not a regular file/,
    line: false,
  },
  { name: "/dev/zero (endless)", path: () => "/dev/zero", message: /not a regular file/, line: false },
  // Past yaml's 1024-character limit for implicit keys: refused by the parser, the key never echoed whole.
  { name: "a key 4 KiB long with escape sequences", path: () => make("longkey.yaml", VALID + `"${"\\e[2J".repeat(1024)}": 1\n`), message: /at most 1024 chars/, line: true },
  { name: "a value 4 KiB long with escape sequences", path: () => make("longvalue.yaml", VALID + `logLevel: "${"\\e[2J".repeat(1024)}"\n`), message: /logLevel: got "\\u001b\[2J/, line: true },
];

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("hostile configuration files via `ballast check-config`", () => {
  it("the committed corpus has at least 50 files", () => {
    expect(corpus.length).toBeGreaterThanOrEqual(50);
  });

  it.each(corpus)("test/config/invalid/%s exits 78 naming file:line: field", (f) => {
    const path = join(CORPUS, f);
    const r = ballast(["check-config", "--config", path]);
    expect(r.code, r.stderr).toBe(78);
    expect(r.stdout).toBe("");
    expectNoTrace(r.stderr);
    // Every problem line starts with file:line:column; the last line counts them.
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines.at(-1)).toMatch(new RegExp(`^${escape(path)}: \\d+ error\\(s\\)$`));
    for (const l of lines.slice(0, -1)) expect(l).toMatch(new RegExp(`^${escape(path)}:\\d+:\\d+: `));
  });

  it.each(GENERATED)("$name exits 78 with a clear message", ({ path, message, line }) => {
    const file = path();
    const r = ballast(["check-config", "--config", file]);
    expect(r.code, r.stderr).toBe(78);
    expect(r.stdout).toBe("");
    expectNoTrace(r.stderr);
    expect(r.stderr).toMatch(message);
    const first = r.stderr.split("\n")[0] ?? "";
    expect(first).toMatch(new RegExp(`^${escape(file)}${line ? ":\\d+:\\d+" : ""}: `));
    // One short line per problem: a 10 MiB value or a 4 KiB key is never echoed whole.
    for (const l of r.stderr.split("\n")) expect(l.length).toBeLessThan(400);
  });

  it("every other command refuses a hostile config with 78 too (run, drain, plan)", () => {
    const file = make("laughs-run.yaml", VALID + "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n");
    for (const args of [["run"], ["drain", "a-h1"], ["plan"]]) {
      const r = ballast([...args, "--config", file]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(78);
      expectNoTrace(r.stderr);
    }
  });
});
