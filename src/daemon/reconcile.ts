import type { Logger } from "pino";
import type { Driver } from "../drivers/driver.js";
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
    await driver.cancel(m.vm).catch((e: unknown) => log.warn({ err: e, vm: m.vm, migration: m.id }, "could not cancel a leftover migration job"));
    let placements;
    try {
      placements = (await driver.locate(m.vm)).placements;
    } catch (e) {
      log.error({ err: e, vm: m.vm, migration: m.id }, "could not locate VM to reconcile its migration; it will not be moved until then");
      continue;
    }
    const pausedByUs = store.migrationWithEvents(m.id)?.events.some((e) => e.kind === "guard" && isPause(e.data));
    for (const p of placements) {
      if (p.state === "paused" && pausedByUs) {
        await driver.resume(m.vm, p.host).catch((e: unknown) => log.error({ err: e, vm: m.vm, host: p.host }, "could not resume a guest paused by ballast"));
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
