import type { GuardsConfig } from "../config/schema.js";
import type { HostId, VmId } from "../model/index.js";
import type { Verdict } from "../policies/types.js";
import type { HistoryStore } from "../store/index.js";

const MINUTE = 60_000;
const OK: Verdict = { ok: true };

export interface MoveGuards {
  /** Whether the VM may be moved now by the given policy; refusals are typed values with reasons (DESIGN rule 4). */
  readonly exclude: (vm: VmId, policy: string) => Verdict;
  /** Whether a host may take part in a migration (source or destination) for the policy now. */
  readonly excludeHost: (host: HostId, policy: string) => Verdict;
  /**
   * Whether the VM may go to the host now: not back to a host it left within the return cooldown (for a drain, the
   * planner's last resort).
   */
  readonly excludeDestination: (vm: VmId, dest: HostId, policy: string) => Verdict;
  /** Codes of the refusals handed out this round, one per refusal, for metrics. */
  readonly refusals: () => readonly string[];
  /** A reason when the per-hour migration limit is reached. */
  readonly hourlyLimitReached: () => string | undefined;
}

/** Each verdict is asked once per round (and each refusal counted once), however often the planner asks. */
function memo<A extends unknown[]>(key: (...args: A) => string, judge: (...args: A) => Verdict): (...args: A) => Verdict {
  const cache = new Map<string, Verdict>();
  return (...args) => {
    const k = key(...args);
    let v = cache.get(k);
    if (!v) {
      v = judge(...args);
      cache.set(k, v);
    }
    return v;
  };
}

const DRAIN = "maintenance-drain";

/**
 * Guards that read history (so they survive restarts): per-VM cooldown after a move, longer back-off after a
 * failure, no move while an earlier one is unreconciled, the hourly limits (overall and per host), host
 * back-off after repeated failures, and no return to a host the VM left within the return cooldown. A
 * drain is the operator's explicit wish, so it overrides the ordinary cooldown and the per-host limit, and
 * goes back to a host the VM just left only when no other host fits; never a failure back-off.
 */
export function moveGuards(store: HistoryStore, cfg: GuardsConfig, nowMs: number): MoveGuards {
  const given: string[] = [];
  const refuse = (code: string, reason: string): Verdict => {
    given.push(code);
    return { ok: false, code, reason };
  };
  const judge = (vm: VmId, policy: string): Verdict => {
    const last = store.lastMigrationOfVm(vm);
    if (!last) return OK;
    if (last.status === "intent" || last.status === "running") {
      return refuse("unreconciled", `migration #${last.id} of ${vm} is not closed yet`);
    }
    const ended = last.finishedAt ?? last.startedAt;
    // An interrupted record means ballast itself stopped (crash, shutdown), not that the VM resists moving: the
    // ordinary cooldown applies, and a drain resumes at once instead of waiting out the failure back-off.
    if (last.status === "succeeded" || last.status === "interrupted") {
      const until = ended + cfg.vmCooldownMinutes * MINUTE;
      if (nowMs < until && policy !== DRAIN) {
        return refuse("cooldown", `${vm} moved ${Math.round((nowMs - ended) / MINUTE)} min ago (cooldown ${cfg.vmCooldownMinutes} min)`);
      }
      return OK;
    }
    const until = ended + cfg.failureCooldownMinutes * MINUTE;
    if (nowMs < until) {
      return refuse("failure-backoff", `last migration of ${vm} ${last.status} ${Math.round((nowMs - ended) / MINUTE)} min ago (back-off ${cfg.failureCooldownMinutes} min)`);
    }
    return OK;
  };
  let lastHour: ReadonlyMap<HostId, number> | undefined;
  const judgeHost = (host: HostId, policy: string): Verdict => {
    const windowStart = nowMs - cfg.hostBackoffMinutes * MINUTE;
    const f = store.failuresSince(windowStart, { host });
    if (f.count >= cfg.hostFailureLimit && f.lastAt !== null) {
      return refuse("host-backoff", `${host} took part in ${f.count} failed migrations in the last ${cfg.hostBackoffMinutes} min (limit ${cfg.hostFailureLimit})`);
    }
    if (policy === DRAIN) return OK;
    lastHour ??= store.migrationsSince(nowMs - 60 * MINUTE).byHost;
    const n = lastHour.get(host) ?? 0;
    return n >= cfg.maxMigrationsPerHostPerHour
      ? refuse("host-hourly-limit", `${host} took part in ${n} migrations in the last hour (limit ${cfg.maxMigrationsPerHostPerHour} per host)`)
      : OK;
  };
  // Asked of drains too: the planner then prefers another host and sends the VM back only when none other fits.
  const judgeDestination = (vm: VmId, dest: HostId): Verdict => {
    if (cfg.returnCooldownMinutes <= 0) return OK;
    const left = store.vmLeftHostAt(vm, dest);
    if (left === undefined || nowMs >= left + cfg.returnCooldownMinutes * MINUTE) return OK;
    return refuse("return-cooldown", `${vm} left ${dest} ${Math.round((nowMs - left) / MINUTE)} min ago (return cooldown ${cfg.returnCooldownMinutes} min)`);
  };
  const drainOr = (policy: string): string => (policy === DRAIN ? DRAIN : "");
  return {
    excludeHost: memo((host: HostId, policy: string) => `${drainOr(policy)}\u0000${host}`, judgeHost),
    excludeDestination: memo((vm: VmId, dest: HostId) => `${vm}\u0000${dest}`, judgeDestination),
    exclude: memo((vm: VmId, policy: string) => `${policy}\u0000${vm}`, judge),
    refusals: () => given,
    hourlyLimitReached: () => {
      const n = store.migrationsSince(nowMs - 60 * MINUTE).total;
      return n >= cfg.maxMigrationsPerHour ? `${n} migrations in the last hour (limit ${cfg.maxMigrationsPerHour})` : undefined;
    },
  };
}
