/**
 * bench/xen-snapshot — the XenServer driver against the XAPI simulator (issue 5): time to connect (login,
 * full record fetch into xen-api's cache) and build the first snapshot of a pool of 64 hosts and 2,000 VMs,
 * then the cost of one sampling round (RRD updates from every host + mapping the cache), one round per
 * simulated minute as the default schedule does.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/xen-snapshot.js [--hosts N --vms N --rounds N --transport json-rpc|xml-rpc]
 *
 * The simulator runs in this process over loopback HTTP, so the figures include its own work (serialising
 * records, computing RRD rows): an upper bound on the driver's cost. Prints a table, then one JSON line.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { table } from "../src/cli/table.js";
import { createXenServerDriver, type XenTransport } from "../src/drivers/xenserver/index.js";
import { ManualClock } from "../src/util/clock.js";
import { startXapiSim, type VmSpec } from "../test/xapi-sim/index.js";
import { argValue } from "./args.js";

function arg(name: string, fallback: string): string {
  return argValue(name) ?? fallback;
}

const hosts = Number(arg("hosts", "64"));
const vmCount = Number(arg("vms", "2000"));
const rounds = Number(arg("rounds", "10"));
const transport = arg("transport", "json-rpc") as XenTransport;

const hostNames = Array.from({ length: hosts }, (_, i) => `xs${String(i + 1).padStart(2, "0")}`);
const vms: VmSpec[] = Array.from({ length: vmCount }, (_, i) => ({
  name: `vm${i + 1}`,
  host: hostNames[i % hosts] as string,
  powerState: i % 25 === 0 ? "Halted" : "Running",
  memoryMiB: 2048 * (1 + (i % 4)),
  vcpus: 1 + (i % 4),
  cpuLoad: ((i * 37) % 100) / 100,
  disks: i % 10 === 0 ? [{ sr: `local-${hostNames[i % hosts]}`, sizeMiB: 20480 }] : [{ sr: "nfs", sizeMiB: 20480 }],
  tags: i % 3 === 0 ? ["web"] : [],
}));

const clock = new ManualClock(Date.now());
const sim = await startXapiSim({
  clock,
  pools: [
    {
      name: "bench",
      hosts: hostNames.map((name) => ({ name, cpus: 64, memoryMiB: 512 * 1024 })),
      srs: [{ name: "nfs", type: "nfs", shared: true, default: true }, ...hostNames.map((h) => ({ name: `local-${h}`, type: "ext" as const, shared: false, host: h }))],
      vms,
    },
  ],
});
const dir = mkdtempSync(join(tmpdir(), "ballast-bench-xen-"));
const credentialsFile = join(dir, "xapi.credentials");
writeFileSync(credentialsFile, `${sim.user}:${sim.password}\n`, { mode: 0o600 });

const ms = (t0: number): number => Math.round((performance.now() - t0) * 10) / 10;
const rpcCalls = (): number => sim.calls.filter((c) => c.method !== "event.from").length;

let t0 = performance.now();
const driver = await createXenServerDriver(
  { pools: [{ name: "bench", url: sim.url("bench"), credentialsFile, allowUnauthorized: false, hostCells: {}, disableOnDrain: true }] },
  { clock, transport },
);
const connectMs = ms(t0);
const connectCalls = rpcCalls();
t0 = performance.now();
const first = await driver.sample();
const firstSampleMs = ms(t0);

const roundMs: number[] = [];
const callsBefore = rpcCalls();
for (let i = 0; i < rounds; i++) {
  await clock.advance(60_000);
  t0 = performance.now();
  const s = await driver.sample();
  roundMs.push(ms(t0));
  if (s.vms.length !== first.vms.length) throw new Error(`round ${i}: ${s.vms.length} VMs, expected ${first.vms.length}`);
}
const callsPerRound = (rpcCalls() - callsBefore) / rounds;
// Where a round's time goes: the RRD fetch of a minute of rows from every host, then a sample with no new rows
// (64 empty RRD replies plus mapping the cache).
const rrdMs: number[] = [];
const mapMs: number[] = [];
for (let i = 0; i < rounds; i++) {
  await clock.advance(60_000);
  t0 = performance.now();
  await Promise.all(driver.pools.map((p) => p.refreshLoad()));
  rrdMs.push(ms(t0));
  t0 = performance.now();
  await driver.sample();
  mapMs.push(ms(t0));
}
await driver.close();
await sim.close();
rmSync(dir, { recursive: true, force: true });

const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
roundMs.sort((a, b) => a - b);
const median = med(roundMs);
const max = roundMs.at(-1) ?? NaN;
const rssMiB = Math.round(process.memoryUsage().rss / 1024 / 1024);
console.log(`XenServer driver on the XAPI simulator (${transport}): ${first.hosts.length} hosts, ${first.vms.length} VMs (${vms.length - first.vms.length} not listed)`);
console.log(
  table(
    ["measure", "value"],
    [
      ["connect (login + full fetch into the cache)", `${connectMs} ms, ${connectCalls} RPC calls`],
      ["first snapshot (RRD from every host + mapping)", `${firstSampleMs} ms`],
      [`sampling round, median of ${rounds} (1 simulated min apart)`, `${median} ms`],
      ["sampling round, max", `${max} ms`],
      ["  of which: RRD fetch + parse + smoothing (median)", `${med(rrdMs)} ms`],
      ["  of which: sample with no new RRD rows (median)", `${med(mapMs)} ms`],
      ["XAPI RPC calls per round (besides event.from; RRD is plain HTTP, one GET per host)", String(callsPerRound)],
      ["peak RSS (driver + simulator)", `${rssMiB} MiB`],
    ],
  ),
);
console.log(JSON.stringify({ bench: "xen-snapshot", transport, hosts: first.hosts.length, vms: first.vms.length, connectMs, firstSampleMs, roundMedianMs: median, roundMaxMs: max, rrdMedianMs: med(rrdMs), noRowsSampleMedianMs: med(mapMs), callsPerRound, rssMiB }));
