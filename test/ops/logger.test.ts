import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/daemon/logger.js";

function capture(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      cb();
    },
  });
  return { stream, lines };
}

const saved = process.env.JOURNAL_STREAM;
afterEach(() => {
  if (saved === undefined) delete process.env.JOURNAL_STREAM;
  else process.env.JOURNAL_STREAM = saved;
});

describe("logs", () => {
  it("are plain JSON lines with stable field names outside journald", async () => {
    delete process.env.JOURNAL_STREAM;
    const { stream, lines } = capture();
    const log = createLogger("info", stream);
    log.info({ vm: "v1", host: "h1", policy: "maintenance-drain", kind: "live-shared", outcome: "succeeded" }, "migration finished");
    await new Promise((r) => setImmediate(r));
    const rec = JSON.parse(lines[0] ?? "") as Record<string, unknown>;
    expect(rec).toMatchObject({ level: 30, vm: "v1", host: "h1", policy: "maintenance-drain", kind: "live-shared", outcome: "succeeded", msg: "migration finished" });
  });

  it.each([
    { level: "info" as const, prio: 6 },
    { level: "warn" as const, prio: 4 },
    { level: "error" as const, prio: 3 },
    { level: "fatal" as const, prio: 2 },
  ])("under journald each line carries its syslog priority: $level → <$prio>", async ({ level, prio }) => {
    process.env.JOURNAL_STREAM = "8:12345";
    const { stream, lines } = capture();
    const log = createLogger("info", stream);
    log[level]({ vm: "v1" }, "x");
    await new Promise((r) => setImmediate(r));
    expect(lines[0]?.startsWith(`<${prio}>{`)).toBe(true);
    expect(JSON.parse((lines[0] ?? "").slice(3))).toMatchObject({ vm: "v1", msg: "x" });
  });
});
