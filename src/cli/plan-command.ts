// Loaded only for `plan` (main.ts imports this module on demand). Defaults come from the schemas
// themselves (config/schema.js, not config/index.js: a snapshot file needs no YAML loader).
import { migrationSchema, thresholdsSchema } from "../config/schema.js";
import { enabledPolicies, policyConfigSchema } from "../policies/registry.js";
import { plan, type Plan } from "../daemon/planner.js";
import type { ClusterSnapshot } from "../model/index.js";
import { loadConfigOrFail } from "./config-arg.js";
import { liveSnapshot, readSnapshotFile } from "./snapshot-source.js";
import { CliError, EX_USAGE } from "./exit-codes.js";
import { table } from "./table.js";

export interface PlanOptions {
  readonly snapshot?: string;
  readonly config?: string;
  readonly json?: boolean;
  readonly explain?: boolean;
}

/** Plans with the daemon's own planner; a snapshot file needs no config (defaults apply). */
export async function planCommand(opts: PlanOptions): Promise<string> {
  const config = opts.config !== undefined ? await loadConfigOrFail(opts.config) : undefined;
  let snapshot: ClusterSnapshot;
  if (opts.snapshot !== undefined) snapshot = readSnapshotFile(opts.snapshot);
  else if (config) snapshot = (await liveSnapshot(config)).snapshot;
  else throw new CliError("plan: give --snapshot FILE, or --config FILE to plan on the live cluster", EX_USAGE);

  const policies = config?.policies ?? policyConfigSchema.parse({});
  const result = plan(snapshot, {
    policies: enabledPolicies(policies),
    tags: policies.affinity.tags,
    thresholds: config?.thresholds ?? thresholdsSchema.parse({}),
    migration: config?.migration ?? migrationSchema.parse({}),
    nowMs: Date.parse(snapshot.takenAt) || 0,
    explain: opts.explain === true,
  });
  return opts.json ? JSON.stringify(planJson(result, opts.explain === true), null, 2) : planText(result, opts.explain === true);
}

function planJson(p: Plan, explain: boolean): object {
  return {
    moves: p.moves.map((m) => ({ vm: m.vm, from: m.from, to: m.to, policy: m.policy, reason: m.reason, kind: m.kind })),
    blocked: p.blocked.map((b) => ({ vm: b.vm, policy: b.policy, reason: b.reason })),
    ...(p.notes && { notes: p.notes }),
    ...(explain && { explain: p.explain ?? [] }),
  };
}

function planText(p: Plan, explain: boolean): string {
  const out: string[] = [];
  out.push(
    p.moves.length === 0
      ? "No moves."
      : `${p.moves.length} move(s), in execution order:\n` +
          table(
            ["#", "vm", "from", "to", "kind", "policy", "reason"],
            p.moves.map((m, i) => [i + 1, m.vm, m.from, m.to, m.kind, m.policy, m.reason]),
          ),
  );
  if (p.blocked.length > 0) {
    out.push(`\n${p.blocked.length} blocked:\n` + table(["vm", "policy", "reason"], p.blocked.map((b) => [b.vm, b.policy, b.reason])));
  }
  if (p.notes) {
    out.push(`\nNotes:\n` + table(["policy", "host/cell", "note"], p.notes.map((n) => [n.policy, n.host ?? n.cell ?? "", n.message])));
  }
  if (explain) out.push("\nExplanation:\n" + JSON.stringify(p.explain ?? [], null, 2));
  return out.join("\n");
}
