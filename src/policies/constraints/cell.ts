import type { Host } from "../../model/index.js";
import type { Verdict } from "../types.js";

const OK: Verdict = Object.freeze({ ok: true });

/**
 * Migrations happen within, never between, cells (DESIGN.md). Applied to every proposal of every
 * policy; there is no parameter to turn it off. Hosts without a cell are all in the cell `default`.
 */
export function cellBoundary(source: Host, dest: Host): Verdict {
  return source.cell === dest.cell
    ? OK
    : { ok: false, code: "cell", reason: `${dest.name} is in cell ${dest.cell}, not ${source.cell}` };
}
