import type { Host } from "../../model/index.js";
import type { Verdict } from "../types.js";

const OK: Verdict = Object.freeze({ ok: true });

/** A destination must be another host, reachable, not in maintenance and not disabled on the hypervisor side. */
export function destinationState(source: Host, dest: Host): Verdict {
  if (dest.name === source.name) return { ok: false, code: "same-host", reason: `${dest.name} is the source` };
  if (dest.maintenance) return { ok: false, code: "maintenance", reason: `${dest.name} is in maintenance` };
  if (!dest.reachable) return { ok: false, code: "unreachable", reason: `${dest.name} is unreachable` };
  if (dest.disabled === true) return { ok: false, code: "disabled", reason: `${dest.name} is disabled on the hypervisor (accepts no new VMs)` };
  return OK;
}

/** A source must be reachable for anything to be migrated off it. */
export function sourceState(source: Host): Verdict {
  return source.reachable
    ? OK
    : { ok: false, code: "source-unreachable", reason: `source ${source.name} is unreachable: its VMs cannot be migrated` };
}
