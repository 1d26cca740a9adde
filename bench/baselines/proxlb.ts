/**
 * (b) ProxLB's published method (github.com/gyptazy/ProxLB, README and docs): per cluster (here: per cell),
 * while the gap between the busiest and the emptiest node's usage of the balancing resource exceeds
 * `balanciness` percentage points, move the largest guest of the busiest node (by that resource) to the
 * emptiest node, planning on paper; each guest moves at most once per run, and only to a node with the
 * memory for it. Migrations then run one after another (`parallel: false`).
 *
 * Published defaults used: balanciness 10, mode `used`, sequential migrations. `method` is memory by default;
 * the bench runs both memory and cpu. The schedule default (every 24 h, 12 h in later versions) would give
 * at most one run in a day's simulation; the documented examples run it hourly, which is used here.
 */
import type { HostId } from "../../src/model/index.js";
import { applyOnPaper, freeMiB, movable, paperHosts, type BaselineAlgorithm, type BaselineMove, type PaperHost } from "./runner.js";

export const PROXLB_DEFAULTS = { balanciness: 10, intervalMs: 3_600_000, concurrency: 1 } as const;

export function proxlb(method: "memory" | "cpu"): BaselineAlgorithm {
  const usage = (h: PaperHost): number => (method === "cpu" ? h.cpu : h.memUsedMiB / h.host.memoryMiB);
  return {
    name: `proxlb-${method === "cpu" ? "cpu" : "mem"}`,
    concurrency: PROXLB_DEFAULTS.concurrency,
    intervalMs: PROXLB_DEFAULTS.intervalMs,
    plan: (input) => {
      const hosts = paperHosts(input);
      const vms = movable(input);
      const moves: BaselineMove[] = [];
      const blocked: string[] = [];
      const cells = new Map<string, PaperHost[]>();
      for (const h of hosts.values()) cells.set(h.host.cell, [...(cells.get(h.host.cell) ?? []), h]);
      const moved = new Set<string>();
      const where = new Map<string, HostId>(vms.map((v) => [v.id, v.host]));
      for (const cell of [...cells.keys()].sort()) {
        const members = cells.get(cell) ?? [];
        for (;;) {
          const sorted = [...members].sort((a, b) => usage(b) - usage(a) || a.host.name.localeCompare(b.host.name));
          const busiest = sorted[0];
          const emptiest = sorted[sorted.length - 1];
          if (!busiest || !emptiest || busiest === emptiest) break;
          if ((usage(busiest) - usage(emptiest)) * 100 <= PROXLB_DEFAULTS.balanciness) break;
          const size = (v: (typeof vms)[number]): number => (method === "cpu" ? v.cpuLoad : v.memoryMiB);
          const candidates = vms
            .filter((v) => where.get(v.id) === busiest.host.name && !moved.has(v.id))
            .sort((a, b) => size(b) - size(a) || a.id.localeCompare(b.id));
          const vm = candidates.find((v) => freeMiB(emptiest) >= v.memoryMiB);
          if (!vm) {
            if (candidates.length > 0) blocked.push("proxlb/no-memory");
            break;
          }
          applyOnPaper(vm, busiest, emptiest);
          moved.add(vm.id);
          where.set(vm.id, emptiest.host.name);
          moves.push({ vm: vm.id, to: emptiest.host.name });
        }
      }
      return { moves, blocked };
    },
  };
}
