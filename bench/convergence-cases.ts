/**
 * The case table of bench/convergence: RAM × (dirty rate / bandwidth) × link bandwidth. Ratios below 1 converge
 * under plain pre-copy (0.9 only slowly); ratios at or above 1 never do, whatever the downtime limit allows.
 */

export interface ConvergenceCase {
  /** Short stable name, e.g. "8G-r1.5-bw100". */
  readonly name: string;
  readonly memoryGiB: number;
  /** Guest dirty rate as a fraction of the link bandwidth. */
  readonly ratio: number;
  /** Link bandwidth of the simulated cluster, MiB/s. */
  readonly bandwidthMiBps: number;
}

const c = (memoryGiB: number, ratio: number, bandwidthMiBps: number): ConvergenceCase => ({
  name: `${memoryGiB}G-r${ratio}-bw${bandwidthMiBps}`,
  memoryGiB,
  ratio,
  bandwidthMiBps,
});

export const CASES: readonly ConvergenceCase[] = [
  // Converging: a few passes.
  c(2, 0.1, 1000),
  c(16, 0.1, 100),
  c(4, 0.5, 1000),
  c(8, 0.5, 100),
  // Converging slowly: ~10× the single-pass time, many passes.
  c(4, 0.9, 1000),
  c(8, 0.9, 100),
  c(16, 0.9, 1000),
  // Converging, but each pass takes longer than migration.progressTimeoutSec (150 s).
  c(16, 0.97, 100),
  // Not converging: the guest dirties memory faster than the link copies it.
  c(2, 1.5, 1000),
  c(4, 1.5, 100),
  c(8, 1.5, 1000),
  c(16, 1.5, 100),
  c(2, 2.5, 100),
  c(8, 2.5, 1000),
  c(16, 2.5, 1000),
  c(4, 5, 1000),
  c(16, 5, 100),
];

/** A small subset for the smoke test: one converging and one non-converging case. */
export const SMOKE_CASES: readonly ConvergenceCase[] = [c(2, 0.5, 1000), c(2, 2.5, 1000)];
