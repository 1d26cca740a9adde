import type { ResolvedConfig } from "../config/index.js";
import { imbalance, memoryFraction, type CellId } from "../model/index.js";
import type { HistoryStore, JsonValue } from "../store/index.js";
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
    const list = blockedByHost.get(h) ?? [];
    list.push({ vm: b.vm, policy: b.policy, reason: b.reason });
    blockedByHost.set(h, list);
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
      ...(h.maintenanceReason !== undefined && { maintenanceReason: h.maintenanceReason }),
    });
    cells.set(h.cell, list);
  }
  return {
    now: new Date(nowMs).toISOString(),
    startedAt: new Date(daemon.startedAt).toISOString(),
    thresholds: config.thresholds,
    lastRound: daemon.lastRound ?? null,
    roundsRun: daemon.roundsRun,
    inFlight: inFlightStatus(daemon, store, nowMs),
    cells: [...cells.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([cell, hosts]) => ({ cell, hosts })),
    imbalance: snap ? imbalance(snap) : [],
    drains: drainStatus(daemon, store, vmCount, blockedByHost),
    // notes: hosts consolidation emptied ("can be powered off") and moves held back by anti-flapping rules.
    plan: plan ? { moves: plan.moves.slice(0, 50), blocked: plan.blocked.slice(0, 50), totalMoves: plan.moves.length, totalBlocked: plan.blocked.length, notes: plan.notes ?? [] } : null,
    recentMigrations: store.recentMigrations(20),
  };
}

export type DaemonStatus = ReturnType<typeof buildStatus>;

const num = (v: JsonValue | undefined): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const field = (v: JsonValue | null | undefined, key: string): JsonValue | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as { readonly [k: string]: JsonValue })[key] : undefined;

/** The in-flight migration with its prediction and the convergence guard's decisions so far (newest last). */
function inFlightStatus(daemon: Daemon, store: HistoryStore, nowMs: number) {
  const f = daemon.inFlight;
  if (!f) return null;
  const row = store.migrationWithEvents(f.migrationId);
  const prediction = field(row?.details, "prediction");
  const guardDecisions = (row?.events ?? [])
    .filter((e) => e.kind === "guard")
    .slice(-20)
    .map((e) => {
      const action = field(e.data, "action");
      const kind = field(action, "kind");
      const ms = num(field(action, "ms"));
      const reason = field(e.data, "reason");
      return { at: e.at, action: typeof kind === "string" ? kind : "?", ...(ms !== null && { ms }), reason: typeof reason === "string" ? reason : "" };
    });
  return {
    ...f,
    guardActions: [...f.guardActions],
    elapsedMs: Math.max(0, nowMs - f.startedAt),
    predictedMs: row?.predictedMs ?? null,
    predictedDowntimeMs: num(field(prediction, "downtimeMs")),
    guardDecisions,
  };
}

/** Drains with progress: VMs moved off the host since its flag appeared, VMs left, and why some cannot move. */
function drainStatus(
  daemon: Daemon,
  store: HistoryStore,
  vmCount: ReadonlyMap<string, number>,
  blockedByHost: ReadonlyMap<string, { vm: string; policy: string; reason: string }[]>,
) {
  const flags = [...daemon.maintenanceFlags.values()];
  if (flags.length === 0) return [];
  const flaggedAt = new Map<string, number>();
  for (const e of store.recentEvents(500, { kind: "flag-set" })) {
    if (e.host !== null && !flaggedAt.has(e.host)) flaggedAt.set(e.host, e.at); // newest first
  }
  const recent = store.recentMigrations(500);
  return flags
    .map((f) => {
      const since = flaggedAt.get(f.host) ?? null;
      const fromHost = since === null ? [] : recent.filter((m) => m.from === f.host && m.startedAt >= since);
      return {
        host: f.host,
        reason: f.reason,
        since,
        vmsLeft: vmCount.get(f.host) ?? 0,
        moved: fromHost.filter((m) => m.status === "succeeded").length,
        failed: fromHost.filter((m) => m.status === "failed" || m.status === "aborted").length,
        blocked: blockedByHost.get(f.host) ?? [],
      };
    })
    .sort((a, b) => a.host.localeCompare(b.host));
}

/** Largest number of points per cell /api/imbalance returns; longer series are averaged into buckets. */
const MAX_IMBALANCE_POINTS = 360;

/** Per-cell imbalance (standard deviation of host CPU and memory use) over the last `minutes`, for the status page. */
export function buildImbalance(store: HistoryStore, nowMs: number, minutes: number) {
  const fromMs = nowMs - minutes * 60_000;
  const history = store.imbalanceHistory(fromMs);
  const bucketMs = (nowMs - fromMs) / MAX_IMBALANCE_POINTS;
  const cells = [...history.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([cell, points]) => {
      const out: [number, number, number][] = [];
      let bucket = -1;
      let n = 0;
      for (const p of points) {
        const b = Math.floor((p.atMs - fromMs) / bucketMs);
        const last = out[out.length - 1];
        if (b === bucket && last) {
          n++;
          last[0] = p.atMs;
          last[1] += (p.cpu - last[1]) / n;
          last[2] += (p.memory - last[2]) / n;
        } else {
          bucket = b;
          n = 1;
          out.push([p.atMs, p.cpu, p.memory]);
        }
      }
      return { cell, points: out.map(([t, c, m]) => [t, Math.round(c * 1e4) / 1e4, Math.round(m * 1e4) / 1e4] as const) };
    });
  return { fromMs, toMs: nowMs, cells };
}
