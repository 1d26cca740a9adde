import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseSnapshot, SnapshotError } from "../../src/model/parse-snapshot.js";
import { ballast } from "../helpers/cli.js";
import { expectNoTrace } from "./hostile.js";

/**
 * Malformed snapshots for `ballast plan --snapshot FILE` (compiled CLI): exit 65 (EX_DATAERR) with a
 * message naming the field, one short line per problem, never a stack trace; prototype keys pollute nothing.
 */

const dir = mkdtempSync(join(tmpdir(), "ballast-hostile-snapshot-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOST = { name: "h1", hypervisor: "kvm", cpus: 32, memoryMiB: 131072, cpuLoad: 0.1, memoryUsedMiB: 8192 };
const VM = { id: "v1", host: "h1", state: "running", vcpus: 2, memoryMiB: 2048, cpuLoad: 0.5, storage: { kind: "local" } };
const snap = (hosts: unknown[] = [HOST], vms: unknown[] = [VM], extra: object = {}): string => JSON.stringify({ hosts, vms, ...extra });
const deep = (n: number, open: string, close: string, inner = ""): string => open.repeat(n) + inner + close.repeat(n);
/** `text` with the JSON string "RAW" replaced by raw JSON text (values JSON.stringify cannot build, e.g. 100,000 deep). */
const raw = (text: string, value: string): string => text.replace('"RAW"', value);

const CASES: readonly { name: string; text: string; message: RegExp }[] = [
  { name: "truncated JSON", text: snap().slice(0, 40), message: /:1:\d+: invalid JSON at position \d+: unterminated string/ },
  { name: "binary garbage", text: Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256)).toString("latin1"), message: /invalid JSON at position/ },
  { name: "not an object", text: "[1, 2, 3]", message: /got \[1,2,3\], expected a JSON object/ },
  { name: "hosts of the wrong type", text: JSON.stringify({ hosts: "h1", vms: {} }), message: /hosts: got "h1", expected a list of hosts/ },
  { name: "numbers as strings", text: snap([{ ...HOST, cpus: "32" }]), message: /hosts\[0\]\.cpus: got "32", expected an integer > 0/ },
  { name: "NaN and Infinity as strings", text: snap([{ ...HOST, memoryMiB: "NaN", cpuLoad: "Infinity" }]), message: /hosts\[0\]\.memoryMiB: got "NaN"/ },
  { name: "bare NaN (not JSON)", text: snap().replace('"cpus":32', '"cpus":NaN'), message: /invalid JSON/ },
  { name: "a number that overflows to Infinity", text: snap().replace('"cpus":32', '"cpus":1e999'), message: /hosts\[0\]\.cpus: got Infinity/ },
  { name: "a huge finite number", text: snap([{ ...HOST, memoryMiB: 1e300 }]), message: /hosts\[0\]\.memoryMiB: got 1e\+300, expected a number > 0, at most 2\^40/ },
  { name: "a huge integer", text: snap().replace('"cpus":32', '"cpus":123456789012345678901234567890'), message: /hosts\[0\]\.cpus: got 1\.2345678901234568e\+29/ },
  { name: "a huge VM", text: snap(undefined, [{ ...VM, vcpus: 2 ** 53, memoryMiB: 2 ** 60 }]), message: /vms\[0\]\.vcpus: got 9007199254740992/ },
  { name: "negative host load", text: snap([{ ...HOST, cpuLoad: -0.5 }]), message: /hosts\[0\]\.cpuLoad: got -0\.5/ },
  { name: "duplicate host names", text: snap([HOST, HOST]), message: /hosts\[1\]\.name: got "h1", expected a unique host name \(hosts\[0\]/ },
  { name: "duplicate VM ids", text: snap(undefined, [VM, VM]), message: /vms\[1\]\.id: got "v1", expected a unique VM id/ },
  { name: "VM on an unknown host", text: snap(undefined, [{ ...VM, host: "ghost" }]), message: /vms\[0\]\.host: got "ghost", expected the name of a host listed in hosts\[\]/ },
  { name: "a 100,000-deep array as a field", text: raw(snap([{ ...HOST, cpus: "RAW" }]), deep(100_000, "[", "]")), message: /hosts\[0\]\.cpus: got a list of 1 item/ },
  { name: "a 100,000-deep array as the document", text: deep(100_000, "[", "]"), message: /got a list of 1 item, expected a JSON object/ },
  { name: "a 100,000-deep object as a field", text: raw(snap(undefined, undefined, { takenAt: "RAW" }), deep(100_000, '{"a":', "}", "1")), message: /takenAt: got an object \{"a"\}/ },
  { name: "100,000 unclosed brackets", text: "[".repeat(100_000), message: /unexpected end of input/ },
  { name: "a 1 MiB name with escapes", text: snap([{ ...HOST, name: "\u001b[2J".repeat(250_000) }]), message: /vms\[0\]\.host: got "h1", expected the name of a host listed/ },
  { name: "prototype keys", text: `{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}},"hosts":[{"__proto__":{"cpus":4},"name":"h1","hypervisor":"kvm","memoryMiB":1,"cpuLoad":0.1,"memoryUsedMiB":1}],"vms":[]}`, message: /hosts\[0\]\.cpus: got nothing \(field missing\)/ },
  { name: "many problems at once", text: snap(Array.from({ length: 200 }, () => ({})), []), message: /… and \d+ more/ },
];

describe("malformed snapshots via `ballast plan --snapshot`", () => {
  it.each(CASES)("$name: exit 65 naming the field", ({ name, text, message }) => {
    const file = join(dir, `${name.replace(/\W+/g, "-")}.json`);
    writeFileSync(file, text);
    const r = ballast(["plan", "--snapshot", file, "--json"]);
    expect(r.code, r.stderr.slice(0, 2000)).toBe(65);
    expect(r.stdout).toBe("");
    expectNoTrace(r.stderr);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.startsWith(`ballast: ${file}: invalid snapshot`)).toBe(true);
    for (const line of r.stderr.split("\n")) {
      expect(line.length).toBeLessThan(300);
      // eslint-disable-next-line no-control-regex
      expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/);
    }
  });

  it("in process: prototype keys neither pollute Object.prototype nor reach a parsed host", () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    const text = `{"__proto__":{"polluted":1},"hosts":[{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"polluted":1}},"name":"h1","hypervisor":"kvm","cpus":4,"memoryMiB":1,"cpuLoad":0.1,"memoryUsedMiB":1}],"vms":[]}`;
    const s = parseSnapshot(text, "proto");
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const host = s.hosts[0] as unknown as Record<string, unknown>;
    expect(host.isAdmin).toBeUndefined();
    expect(Object.getPrototypeOf(host)).toBe(Object.prototype);
    expect(Object.keys(host)).not.toContain("__proto__");
    expect(() => parseSnapshot(`{"hosts":[],"vms":[],"takenAt":{"__proto__":1}}`, "x")).toThrow(SnapshotError);
  });
});
