import type { ResolvedConfig } from "../config/index.js";
import { imbalance, memoryFraction, type CellId } from "../model/index.js";
import type { HistoryStore } from "../store/index.js";
import type { Daemon } from "./daemon.js";

/** The /api/status document: what the daemon sees, plans and does, in one read. */
export function buildStatus(daemon: Daemon, store: HistoryStore, nowMs: number) {
  const config: ResolvedConfig = daemon.currentConfig;
  const snap = daemon.lastSnapshot;
  const plan = daemon.lastPlan;
  const vmCount = new Map<string, number>();
  for (const v of snap?.vms ?? []) vmCount.set(v.host, (vmCount.get(v.host) ?? 0) + 1);
  const blockedByHost = new Map<string, { vm: string; policy: string; reason: string }[]>();
  const vmHost = new Map<string, string>((snap?.vms ?? []).map((v) => [v.id, v.host]));
  for (const b of plan?.blocked ?? []) {
    const h = vmHost.get(b.vm) ?? "?";
    blockedByHost.set(h, [...(blockedByHost.get(h) ?? []), { vm: b.vm, policy: b.policy, reason: b.reason }]);
  }
  const cells = new Map<CellId, unknown[]>();
  for (const h of snap?.hosts ?? []) {
    const list = cells.get(h.cell) ?? [];
    list.push({
      name: h.name,
      cpuLoad: h.cpuLoad,
      memoryUsed: memoryFraction(h),
      memoryUsedMiB: h.memoryUsedMiB,
      memoryMiB: h.memoryMiB,
      vms: vmCount.get(h.name) ?? 0,
      maintenance: h.maintenance,
      reachable: h.reachable,
    });
    cells.set(h.cell, list);
  }
  return {
    now: new Date(nowMs).toISOString(),
    startedAt: new Date(daemon.startedAt).toISOString(),
    thresholds: config.thresholds,
    lastRound: daemon.lastRound ?? null,
    roundsRun: daemon.roundsRun,
    inFlight: daemon.inFlight ?? null,
    cells: [...cells.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([cell, hosts]) => ({ cell, hosts })),
    imbalance: snap ? imbalance(snap) : [],
    drains: [...daemon.maintenanceFlags.values()].map((f) => ({
      host: f.host,
      reason: f.reason,
      vmsLeft: vmCount.get(f.host) ?? 0,
      blocked: blockedByHost.get(f.host) ?? [],
    })),
    plan: plan ? { moves: plan.moves.slice(0, 50), blocked: plan.blocked.slice(0, 50), totalMoves: plan.moves.length, totalBlocked: plan.blocked.length } : null,
    recentMigrations: store.recentMigrations(20),
  };
}

export type DaemonStatus = ReturnType<typeof buildStatus>;
