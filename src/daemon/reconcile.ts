import type { Logger } from "pino";
import type { Driver, Placement } from "../drivers/driver.js";
import type { HostId, VmId } from "../model/index.js";
import type { HistoryStore } from "../store/index.js";
import type { Clock } from "../util/clock.js";

/** Guard events hold the decision: `{ kind: "act", action: { kind: "pause" }, … }`. */
const isPause = (data: unknown): boolean =>
  typeof data === "object" && data !== null && (data as { action?: { kind?: unknown } }).action?.kind === "pause";

/**
 * Closes every journal record a previous instance left open, with the outcome the hypervisor shows now.
 * Runs at start-up and again before each round while records stay open, so no VM is migrated again while
 * its last migration is unaccounted for (the guards refuse it until then).
 */
export async function reconcile(deps: { store: HistoryStore; driver: Driver; clock: Clock; log: Logger }): Promise<number> {
  const { store, driver, clock, log } = deps;
  let closed = 0;
  for (const m of store.openIntents()) {
    // A job the dead instance started may still be running: stop it, so the VM settles on one host. A job
    // already in post-copy cannot be stopped; the guest then runs on the destination and locate says so.
    // If that fails the record stays open (and the VM unmoved) until a later round manages it.
    try {
      await driver.cancel(m.vm);
    } catch (e) {
      log.warn({ err: e, vm: m.vm, migration: m.id }, "could not cancel a leftover migration job; the record stays open and is retried before the next round");
      continue;
    }
    let placements;
    try {
      placements = await settledPlacements(driver, clock, m.vm, m.to);
    } catch (e) {
      log.error({ err: e, vm: m.vm, migration: m.id }, "could not locate VM to reconcile its migration; it will not be moved until then");
      continue;
    }
    const pausedByUs = store.migrationWithEvents(m.id)?.events.some((e) => e.kind === "guard" && isPause(e.data));
    // A cold move stops a running guest before moving it; one the dead instance left stopped runs again where it is.
    const stoppedByUs = m.kind === "cold" && (m.details as { vmState?: unknown } | null)?.vmState === "running";
    for (const p of placements) {
      if (p.state === "paused" && pausedByUs) {
        await driver.resume(m.vm, p.host).catch((e: unknown) => log.error({ err: e, vm: m.vm, host: p.host }, "could not resume a guest paused by ballast"));
      } else if (p.state === "shutoff" && stoppedByUs && driver.start) {
        await driver.start(m.vm, p.host).then(
          () => log.warn({ vm: m.vm, host: p.host, migration: m.id }, "started a guest an unfinished cold move had stopped"),
          (e: unknown) => log.error({ err: e, vm: m.vm, host: p.host }, "could not start a guest an unfinished cold move had stopped"),
        );
      }
    }
    const hosts = placements.map((p) => p.host);
    const [status, error] =
      hosts.length === 1 && hosts[0] === m.to
        ? (["succeeded", undefined] as const)
        : hosts.length === 1 && hosts[0] === m.from
          ? (["interrupted", "daemon stopped during the migration; VM remained on its source"] as const)
          : (["failed", `after restart the VM is on ${hosts.length ? hosts.join(", ") : "no host"}`] as const);
    store.finishMigration(m.id, { status, finishedAt: clock.now(), ...(error && { error }) });
    store.recordEvent({ at: clock.now(), kind: "reconciled", host: m.from, message: `migration #${m.id} of ${m.vm} closed as ${status}`, data: { placements } });
    log.warn({ vm: m.vm, host: m.from, to: m.to, outcome: status, migration: m.id }, "reconciled unfinished migration");
    closed++;
  }
  return closed;
}

const SETTLE_POLLS = 20;
const SETTLE_POLL_MS = 500;

/**
 * Where the VM is once a cancelled job has been torn down: right after the abort, libvirt still lists the
 * destination's incoming (paused) domain for a moment, next to the source's or alone while the source daemon
 * restarts (both seen on the lab); neither is where the VM is. Such a picture is re-read for up to 10 s; what
 * remains then is the answer.
 */
async function settledPlacements(driver: Driver, clock: Clock, vm: VmId, to: HostId): Promise<readonly Placement[]> {
  const unsettled = (p: readonly Placement[]): boolean => p.length > 1 || (p[0]?.host === to && p[0].state === "paused");
  let placements = (await driver.locate(vm)).placements;
  for (let i = 0; i < SETTLE_POLLS && unsettled(placements); i++) {
    await clock.sleep(SETTLE_POLL_MS);
    placements = (await driver.locate(vm)).placements;
  }
  return placements;
}
