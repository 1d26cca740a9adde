/**
 * A test process that dies without lab.stop() must not leave libvirtd, QEMU, sshd or FUSE behind:
 * on SIGTERM the lab's signal hook cleans up at once; after SIGKILL the next lab reclaims the slot.
 * The lab runs in a child Node process (lab.ts transpiled as is, without type checking).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import ts from "typescript";
import { ROOT } from "../helpers/cli.js";
import { labPrerequisites, startLab } from "./lab.js";

// Inside the project, so the child resolves ssh2 from node_modules.
const OUT = join(ROOT, "node_modules/.cache/ballast-lab-safety-net");

function transpile(rel: string): void {
  const out = join(OUT, rel.replace(/\.ts$/, ".js"));
  mkdirSync(dirname(out), { recursive: true });
  const js = ts.transpileModule(readFileSync(join(ROOT, rel), "utf8"), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  writeFileSync(out, js);
}

const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

interface Held {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly pids: number[];
}

/** A child process holding a started 2-host lab; resolves once the lab is up. */
function holdLab(): Promise<Held> {
  const script = `import { startLab } from ${JSON.stringify(join(OUT, "test/lab/lab.js"))};
const lab = await startLab({ hosts: 2, ssh: true });
process.stdout.write(JSON.stringify({ dir: lab.dir, pids: lab.pids() }) + "\\n");
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line !== undefined) resolve({ child, ...(JSON.parse(line) as { dir: string; pids: number[] }) });
    });
    child.once("exit", (code) => reject(new Error(`lab holder exited (${code}): ${err}`)));
  });
}

beforeAll(() => {
  expect(labPrerequisites(), "this machine lacks what the lab needs (run scripts/test-deps.sh as root)").toEqual([]);
  transpile("test/lab/lab.ts");
  transpile("src/drivers/ssh/session.ts");
  mkdirSync(join(OUT, "test/lab/guest"), { recursive: true });
  copyFileSync(join(ROOT, "test/lab/guest/kernel.asm"), join(OUT, "test/lab/guest/kernel.asm"));
});
afterAll(() => {
  rmSync(OUT, { recursive: true, force: true });
});

describe("lab safety net", () => {
  it("kills every lab process and removes the folder when the test process gets SIGTERM", async () => {
    const held = await holdLab();
    expect(held.pids.length).toBeGreaterThanOrEqual(5); // 2 libvirtd, 2 sshd, bindfs
    expect(held.pids.every(alive)).toBe(true);
    const exited = new Promise<NodeJS.Signals | null>((r) => held.child.once("exit", (_code, signal) => r(signal)));
    held.child.kill("SIGTERM");
    // The hook re-raises the signal: the process still ends as a SIGTERM would end it.
    expect(await exited).toBe("SIGTERM");
    expect(held.pids.filter(alive)).toEqual([]);
    expect(existsSync(held.dir)).toBe(false);
    expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(held.dir);
  });

  it("reclaims what a SIGKILLed test process left behind when the next lab starts", async () => {
    const held = await holdLab();
    held.child.kill("SIGKILL");
    await new Promise((r) => held.child.once("exit", r));
    // Nothing could run in the killed process: its lab is still there…
    expect(held.pids.every(alive)).toBe(true);
    const lab = await startLab({ hosts: 2 });
    try {
      // …until the next lab starts and finds its slot's owner dead.
      expect(held.pids.filter(alive)).toEqual([]);
      expect(existsSync(held.dir)).toBe(false);
    } finally {
      await lab.stop();
    }
  });
});
