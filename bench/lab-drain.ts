/**
 * bench/lab-drain — issue 4 on the real libvirt lab (three libvirtd hosts on loopback, TCG guests):
 *
 *  1. Wall time for the ballast daemon to drain N idle guests off a host (flag file written → last migration
 *     done), against a plain sequential `virsh migrate --live --p2p --persistent --undefinesource` loop over
 *     the same number of guests on the same lab. Ratio ballast / virsh; target ≤ 1.10. Runs alternate
 *     (virsh, ballast, virsh, …) so drift of a noisy machine hits both.
 *  2. Per-host sampling cost of /proc over one reused SSH connection (target ≤ 10 ms), and of a whole
 *     driver sample with loadSource proc.
 *
 *   npm run bench:lab-drain [-- --guests N --runs R --samples S]     (as root, with scripts/test-deps.sh done)
 *
 * Prints a table, then one JSON line.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import { stringify } from "yaml";
import { table } from "../src/cli/table.js";
import { checkConfigText, configSchema, formatIssue } from "../src/config/index.js";
import { Daemon } from "../src/daemon/daemon.js";
import { Metrics } from "../src/daemon/metrics.js";
import type { Driver, MigrationHandle, MigrationRequest } from "../src/drivers/driver.js";
import { createLibvirtDriver } from "../src/drivers/libvirt/index.js";
import { ProcLoadSampler } from "../src/drivers/ssh/proc-load.js";
import { SshSession } from "../src/drivers/ssh/session.js";
import { openHistory } from "../src/store/index.js";
import { realClock } from "../src/util/clock.js";
import { labPrerequisites, startLab, type Lab, type LabHostName } from "../test/lab/lab.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got ${process.argv[i + 1]}`);
  return v;
}

const guests = arg("guests", 4);
const runs = arg("runs", 2);
const samples = arg("samples", 50);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};
const p95 = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)] as number;

/** Counts the daemon's migrations and when the last one ended. */
class Watch implements Driver {
  started = 0;
  finished = 0;
  lastDoneAt = 0;
  constructor(readonly inner: Driver) {}
  get name(): string {
    return this.inner.name;
  }
  get capabilities(): Driver["capabilities"] {
    return this.inner.capabilities;
  }
  sample: Driver["sample"] = () => this.inner.sample();
  async migrate(req: MigrationRequest): Promise<MigrationHandle> {
    const h = await this.inner.migrate(req);
    this.started++;
    void h.done.finally(() => {
      this.finished++;
      this.lastDoneAt = performance.now();
    });
    return h;
  }
  locate: Driver["locate"] = (vm) => this.inner.locate(vm);
  cancel: Driver["cancel"] = (vm) => this.inner.cancel(vm);
  resume: Driver["resume"] = (vm, host) => this.inner.resume(vm, host);
  close: Driver["close"] = () => this.inner.close();
}

function libvirtSection(lab: Lab, loadSource: "domains" | "proc" = "domains"): Record<string, unknown> {
  const cfg = lab.libvirtConfig();
  return { ...cfg, hosts: cfg.hosts.map((h) => ({ ...h, loadSource, sharedStorage: [lab.sharedPath] })) };
}

async function defineOn(lab: Lab, host: LabHostName, prefix: string): Promise<string[]> {
  const names = Array.from({ length: guests }, (_, i) => `${prefix}-${i + 1}`);
  for (const name of names) await lab.defineGuest(host, { name, kind: "idle" });
  return names;
}

async function destroyAll(lab: Lab, names: readonly string[]): Promise<void> {
  for (const name of names) {
    for (const h of (await lab.where(name)).defined) {
      await lab.virsh(h, "destroy", name).catch(() => undefined);
      await lab.virsh(h, "undefine", name).catch(() => undefined);
    }
  }
}

/** The operator's loop: one `virsh migrate` after another, destinations alternating. */
async function virshLoop(lab: Lab, run: number): Promise<number> {
  const names = await defineOn(lab, "h3", `vl${run}`);
  await sleep(1000);
  const t0 = performance.now();
  for (const [i, name] of names.entries()) {
    const dest = lab.host(i % 2 ? "h2" : "h1");
    await lab.virsh("h3", "migrate", "--live", "--p2p", "--persistent", "--undefinesource", name, dest.uri);
  }
  const ms = performance.now() - t0;
  await destroyAll(lab, names);
  return ms;
}

/** The ballast daemon with its defaults, draining h3 after its maintenance flag appears. */
async function ballastDrain(lab: Lab, run: number, dir: string): Promise<number> {
  const names = await defineOn(lab, "h3", `bd${run}`);
  const stateDir = mkdtempSync(join(dir, "state-"));
  const text = stringify({ stateDir, http: { enabled: false }, logLevel: "fatal", libvirt: libvirtSection(lab) });
  const checked = checkConfigText(text, join(stateDir, "bench.yaml"), stateDir);
  if (!checked.ok) throw new Error(checked.errors.map(formatIssue).join("\n"));
  const config = checked.config;
  const watch = new Watch(await createLibvirtDriver(configSchema.shape.libvirt.unwrap().parse(libvirtSection(lab)), { clock: realClock }));
  const store = openHistory(join(stateDir, "ballast.db"));
  const daemon = new Daemon({ config, driver: watch, store, clock: realClock, log: pino({ level: "silent" }), metrics: new Metrics(false) });
  await daemon.start();
  await sleep(1000);
  try {
    const t0 = performance.now();
    writeFileSync(join(config.maintenanceDir, "h3"), "bench drain\n");
    const deadline = t0 + 120_000 * guests;
    while (watch.finished < guests || daemon.busy) {
      if (performance.now() > deadline) throw new Error(`ballast drained ${watch.finished}/${guests} guests before the deadline`);
      await sleep(20);
    }
    for (const name of names) {
      const where = await lab.where(name);
      if (where.defined.includes("h3") || where.running.length !== 1) throw new Error(`${name} not drained: ${JSON.stringify(where)}`);
    }
    return watch.lastDoneAt - t0;
  } finally {
    await daemon.stop();
    await watch.close();
    store.close();
    await destroyAll(lab, names);
  }
}

async function sshCost(lab: Lab): Promise<{ procMs: number[]; connects: number; driverMs: number[] }> {
  const h1 = lab.libvirtConfig().hosts.find((h) => h.name === "h1");
  if (!h1?.ssh) throw new Error("the lab has no sshd");
  const session = new SshSession({ label: "h1", host: lab.host("h1").address, port: h1.ssh.port, user: "root", privateKeyFile: h1.ssh.privateKeyFile, hostKeys: h1.ssh.hostKeys, keepaliveSec: 15 });
  const sampler = new ProcLoadSampler((p) => session.readFile(p, { keepOpen: true }));
  const procMs: number[] = [];
  try {
    await sampler.sample(); // connect, open the files
    for (let i = 0; i < samples; i++) {
      const t = performance.now();
      await sampler.sample();
      procMs.push(performance.now() - t);
      await sleep(20);
    }
  } finally {
    await session.close();
  }
  const driver = await createLibvirtDriver(configSchema.shape.libvirt.unwrap().parse(libvirtSection(lab, "proc")), { clock: realClock });
  const driverMs: number[] = [];
  try {
    for (let i = 0; i < Math.min(samples, 20); i++) {
      const t = performance.now();
      await driver.sample();
      driverMs.push(performance.now() - t);
      await sleep(50);
    }
  } finally {
    await driver.close();
  }
  return { procMs, connects: session.connects, driverMs };
}

async function main(): Promise<void> {
  const missing = labPrerequisites();
  if (missing.length > 0) throw new Error(`this machine lacks what the lab needs: ${missing.join("; ")} (run scripts/test-deps.sh as root)`);
  const dir = mkdtempSync(join(tmpdir(), "ballast-bench-lab-"));
  const lab = await startLab({ hosts: 3, ssh: true });
  try {
    // Warm-up: the first migration of a lab pays for QEMU's and libvirt's caches.
    const warm = await defineOn(lab, "h3", "warm");
    await lab.virsh("h3", "migrate", "--live", "--p2p", "--persistent", "--undefinesource", warm[0] as string, lab.host("h1").uri);
    await destroyAll(lab, warm);
    const virsh: number[] = [];
    const ballast: number[] = [];
    for (let r = 1; r <= runs; r++) {
      virsh.push(await virshLoop(lab, r));
      ballast.push(await ballastDrain(lab, r, dir));
    }
    const ssh = await sshCost(lab);
    const ratio = median(ballast) / median(virsh);
    const s = (ms: number): string => (ms / 1000).toFixed(2);
    process.stdout.write(
      table(
        ["measure", "median", "runs / samples", "target"],
        [
          [`virsh loop, ${guests} guests (s)`, s(median(virsh)), virsh.map(s).join(" "), ""],
          [`ballast drain, ${guests} guests (s)`, s(median(ballast)), ballast.map(s).join(" "), ""],
          ["ballast / virsh", ratio.toFixed(3), "", "≤ 1.10"],
          ["/proc sample over reused SSH (ms)", median(ssh.procMs).toFixed(2), `p95 ${p95(ssh.procMs).toFixed(2)}, ${ssh.connects} connect(s)`, "≤ 10"],
          ["driver sample, 3 hosts, loadSource proc (ms)", median(ssh.driverMs).toFixed(1), `p95 ${p95(ssh.driverMs).toFixed(1)}`, ""],
        ],
      ) + "\n",
    );
    process.stdout.write(
      JSON.stringify({
        guests,
        runs,
        virshMs: virsh.map(Math.round),
        ballastMs: ballast.map(Math.round),
        ratio: Number(ratio.toFixed(3)),
        sshProcMedianMs: Number(median(ssh.procMs).toFixed(2)),
        sshProcP95Ms: Number(p95(ssh.procMs).toFixed(2)),
        sshConnects: ssh.connects,
        driverSampleMedianMs: Number(median(ssh.driverMs).toFixed(1)),
      }) + "\n",
    );
  } finally {
    await lab.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
