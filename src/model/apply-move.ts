import type { Move } from "./move.js";
import type { ClusterSnapshot } from "./snapshot.js";
import { footprint, hostWith } from "./load.js";

/** The snapshot as it would be after the move: the VM on its destination and both hosts' loads adjusted. */
export function applyMove(snapshot: ClusterSnapshot, move: Move): ClusterSnapshot {
  const vm = snapshot.vms.find((v) => v.id === move.vm);
  if (!vm) throw new Error(`applyMove: VM ${move.vm} is not in the snapshot`);
  if (vm.host !== move.from) throw new Error(`applyMove: VM ${move.vm} is on ${vm.host}, not on ${move.from}`);
  if (!snapshot.hosts.some((h) => h.name === move.to)) throw new Error(`applyMove: unknown destination ${move.to}`);
  const fp = footprint(vm);
  return {
    takenAt: snapshot.takenAt,
    hosts: snapshot.hosts.map((h) =>
      h.name === move.from ? hostWith(h, fp, -1) : h.name === move.to ? hostWith(h, fp, 1) : h,
    ),
    vms: snapshot.vms.map((v) => (v.id === move.vm ? { ...v, host: move.to } : v)),
  };
}
