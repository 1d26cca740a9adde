import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readCredentials } from "../../src/drivers/xenserver/credentials.js";

describe("XenServer credentials file", () => {
  const dir = mkdtempSync(join(tmpdir(), "ballast-cred-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it("reads user:password from the first line; the password may hold colons", async () => {
    await expect(readCredentials(file("ok", "root:pa:ss:word\nignored\n"), "p1")).resolves.toEqual({ user: "root", password: "pa:ss:word" });
    await expect(readCredentials(file("crlf", "root:secret\r\n"), "p1")).resolves.toEqual({ user: "root", password: "secret" });
  });

  it.each([
    ["no colon", "rootsecret\n"],
    ["empty user", ":secret\n"],
    ["empty password", "root:\n"],
    ["empty file", ""],
  ])("refuses a malformed file (%s), naming the file and the pool, never the content", async (name, text) => {
    const p = file(name.replace(/ /g, "-"), text);
    const err = (await readCredentials(p, "p1").catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe("CREDENTIALS_MALFORMED");
    expect(err.message).toContain(p);
    expect(err.message).toContain("pool p1");
    if (text.length > 2) expect(err.message).not.toContain(text.trim());
  });

  it("names a missing file", async () => {
    const p = join(dir, "missing");
    await expect(readCredentials(p, "p1")).rejects.toMatchObject({ code: "CREDENTIALS_UNREADABLE", message: expect.stringContaining(`${p} (ENOENT)`) as string });
  });
});
