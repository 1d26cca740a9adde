import { chmodSync, mkdirSync, readdirSync, readFileSync, lstatSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { expect } from "vitest";

/** A Node stack frame (`at fn (file.js:1:2)`) or the CLI's internal-error prefix: never shown to an operator. */
export function expectNoTrace(output: string): void {
  expect(output).not.toMatch(/^\s+at .*:\d+:\d+\)?$/m);
  expect(output).not.toMatch(/internal error/);
}

/**
 * Names that break naive code: shell metacharacters and substitutions, quotes, control characters, bidi
 * overrides, JSON/HTML/Prometheus syntax, prototype keys, 4 KiB of text. Each is a valid name in a
 * snapshot (any non-empty string), so it reaches every layer.
 */
export const HOSTILE_NAMES: readonly string[] = [
  "$(touch /tmp/ballast-pwned)",
  "`id > /tmp/ballast-pwned`",
  "a; rm -rf / #",
  "a && reboot || true | cat > x",
  "'single' \"double\" \\back\\",
  "line1\nline2\r\nline3",
  "\u001b[2J\u001b[31mred\u0007",
  "right\u202eto-left\u2066x",
  '<script>alert("x")</script>&amp;',
  '"},{"injected":true',
  'label"} 1\nfake_metric{a="',
  "__proto__",
  "constructor",
  "toString",
  "-rf",
  "..",
  "é—漢字🙂",
  "tab\there\u0000nul",
  "x".repeat(4096),
];

/** Every file and directory under root (relative), with its type: to prove nothing else was written. */
export function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      out.push(`${relative(root, p)}${st.isDirectory() ? "/" : st.isSymbolicLink() ? "@" : ""}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

/**
 * A directory of fake `sh`, `bash`, `dash`, `zsh` and `env` that record their being called in `log` and fail:
 * put first on PATH, it proves ballast never runs a shell (Node's `shell: true` and exec() look them up there).
 */
export function fakeShells(dir: string, log: string): string {
  const bin = join(dir, "fake-bin");
  mkdirSync(bin, { recursive: true });
  for (const name of ["sh", "bash", "dash", "zsh", "env"]) {
    const p = join(bin, name);
    // Not a shell script (that would need a shell): a tiny node program that records its argv.
    writeFileSync(p, `#!${process.execPath}\nrequire("node:fs").appendFileSync(${JSON.stringify(log)}, ${JSON.stringify(name)} + " " + JSON.stringify(process.argv.slice(2)) + "\\n");\nprocess.exit(99);\n`);
    chmodSync(p, 0o755);
  }
  return bin;
}

export const readIfAny = (path: string): string => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
};
